// Package gobin reads a Go executable that tracecam did not build — possibly
// stripped (-ldflags=-s -w), position independent, or linked by an external
// C linker because it uses cgo — and returns what the eBPF side needs to
// follow its goroutines without the program's cooperation:
//
//   - where functions start, as file offsets a uprobe can be attached to,
//     found through .gopclntab because stripped binaries keep it (the runtime
//     needs it for tracebacks) while .symtab and DWARF are gone;
//   - the field offsets of runtime.g, runtime.m and runtime.p, which move
//     between Go releases: from DWARF when the binary has it, otherwise from
//     a per-release table checked against real toolchains by the tests;
//   - where the current g lives relative to the thread's fs base, which is
//     fs:-8 only when the Go linker laid out TLS itself: an external linker
//     may put C thread-locals after runtime.tlsg;
//   - the names of gopark wait reasons, whose numbering changes between
//     releases, and a coarse class per name (network, sleep, lock, channel,
//     GC, idle) that the diagnosis reports.
//
// Return probes are deliberately absent: uretprobes rewrite the return
// address on the stack, which breaks Go's stack unwinding and copying, so
// returns must be traced with uprobes on each RET instruction. Finding those
// needs an x86 decoder (golang.org/x/arch), which is not a dependency of
// this module.
//
// Only linux/amd64 executables are accepted: the TLS layout and the offset
// tables are specific to it.
package gobin
