// Package e2e holds tracecam's end-to-end tests: real workloads (Python,
// Java, nginx) started in fresh cgroup v2 directories, the real sidecar
// binary with its eBPF programs loaded into the running kernel, and real
// HTTP clients. Nothing is mocked; the tests need root and a kernel with
// BTF, and skip with a reason otherwise.
package e2e
