// Package agent wires the sidecar together: it resolves the cgroup to
// watch, opens the eBPF camera, feeds decoded events to the assembler, and
// hands completed profiles to the metrics recorder (which attaches their
// endpoint's baseline), the store and the stdout writer. It also serves the
// health and status endpoints and /metrics (the per-endpoint metrics, the
// sidecar's health, the process and Go collectors) on the HTTP port.
package agent
