package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// The stats trial: one extra with-sidecar trial per server with the
// sidecar's --bpf-stats, which turns on the kernel's per-program run
// counts and run times. They cost every BPF program run (on the whole
// node) two clock reads, so they stay off in the measured trials; this
// trial only tells where the kernel time of the probes goes.

// bpfProg is one BPF program's run count and kernel time, as read from
// the sidecar's /metrics, or gained between two reads.
type bpfProg struct {
	name string
	runs float64
	ns   float64
}

const (
	metricProgRuns = "tracecam_bpf_program_runs_total"
	metricProgTime = "tracecam_bpf_program_run_seconds_total"
)

// promSample matches a Prometheus text-format sample with labels:
// name{labels} value [timestamp].
var (
	promSample  = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}\s+(\S+)(?:\s+\S+)?$`)
	promProgram = regexp.MustCompile(`(?:^|,)\s*program="((?:[^"\\]|\\.)*)"`)
)

// parseBPFMetrics reads the tracecam_bpf_program_* families from a
// /metrics page, in the order the programs first appear.
func parseBPFMetrics(text string) ([]bpfProg, error) {
	var progs []bpfProg
	index := map[string]int{}
	var sawRuns, sawTime bool
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		m := promSample.FindStringSubmatch(line)
		if m == nil || (m[1] != metricProgRuns && m[1] != metricProgTime) {
			continue
		}
		l := promProgram.FindStringSubmatch(m[2])
		if l == nil {
			return nil, fmt.Errorf("/metrics: no program label in %q", line)
		}
		name, err := strconv.Unquote(`"` + l[1] + `"`)
		if err != nil {
			return nil, fmt.Errorf("/metrics: bad program label in %q: %w", line, err)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics: bad value in %q: %w", line, err)
		}
		i, ok := index[name]
		if !ok {
			i = len(progs)
			index[name] = i
			progs = append(progs, bpfProg{name: name})
		}
		if m[1] == metricProgRuns {
			progs[i].runs, sawRuns = v, true
		} else {
			progs[i].ns, sawTime = v*1e9, true
		}
	}
	if !sawRuns || !sawTime {
		return nil, fmt.Errorf("/metrics has no %s and %s (a sidecar without --bpf-stats support?)", metricProgRuns, metricProgTime)
	}
	return progs, nil
}

// bpfDelta is what each program gained from a to b, in b's order.
func bpfDelta(a, b []bpfProg) []bpfProg {
	prev := map[string]bpfProg{}
	for _, p := range a {
		prev[p.name] = p
	}
	out := make([]bpfProg, len(b))
	for i, p := range b {
		out[i] = bpfProg{name: p.name, runs: p.runs - prev[p.name].runs, ns: p.ns - prev[p.name].ns}
	}
	return out
}

// bpfTotalNS is the kernel time of all programs.
func bpfTotalNS(ps []bpfProg) float64 {
	var ns float64
	for _, p := range ps {
		ns += p.ns
	}
	return ns
}

// metrics fetches the sidecar's /metrics page.
func (s *sidecar) metrics(ctx context.Context) (string, error) {
	if s.proc.exited() {
		return "", s.proc.describeExit()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("sidecar /metrics: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("reading sidecar /metrics: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("sidecar /metrics: %s", resp.Status)
	}
	return string(body), nil
}

// bpfPrograms reads the sidecar's per-program counters.
func (s *sidecar) bpfPrograms(ctx context.Context) ([]bpfProg, error) {
	text, err := s.metrics(ctx)
	if err != nil {
		return nil, err
	}
	return parseBPFMetrics(text)
}
