// Package workloads bundles the demo and test workloads (the Python, Java and
// Node.js servers, the slow downstream, the DNS server) into Go binaries, so
// `tracecam-demo` runs from anywhere without the source tree.
package workloads

import "embed"

// Files holds the workload sources.
//
//go:embed *.py *.java *.js
var Files embed.FS
