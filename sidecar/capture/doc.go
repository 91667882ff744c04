// Package capture is the thin shell around the kernel: it loads tracecam's
// eBPF programs for one target cgroup, attaches them, reads the ring buffer
// and the loss counters. Everything it hands on is raw event bytes; decoding
// and meaning live in package event and package assemble, which are pure.
package capture
