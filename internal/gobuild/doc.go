// Package gobuild builds Go programs with a chosen Go toolchain for tests.
//
// tracecam probes Go programs it did not build, so its tests need real
// binaries from several Go releases (struct layouts and wait-reason numbers
// move between them) and link modes (stripped, cgo/external, PIE). The go
// command can fetch any release as the module golang.org/toolchain
// (GOTOOLCHAIN=go1.N.M), but a cold build of a net/http program costs tens
// of seconds, so outputs are cached by toolchain, options and a hash of the
// sources, and builds are serialised: the test machines have two cores and
// share them with timing-sensitive tests.
package gobuild
