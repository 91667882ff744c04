// Package agent wires the sidecar together: it resolves the cgroup to
// watch, opens the eBPF camera, feeds decoded events to the assembler, and
// hands completed profiles to the store and the stdout writer. It also
// serves the health and status endpoints on the HTTP port.
package agent
