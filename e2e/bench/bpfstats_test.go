package main

import (
	"math"
	"testing"
)

func TestParseBPFMetrics(t *testing.T) {
	text := `# HELP tracecam_bpf_program_run_seconds_total Kernel time spent in each of the camera's BPF programs.
# TYPE tracecam_bpf_program_run_seconds_total counter
tracecam_bpf_program_run_seconds_total{program="sched_switch"} 0.012345678
tracecam_bpf_program_run_seconds_total{program="go_ready"} 0
# HELP tracecam_bpf_program_runs_total Runs of each of the camera's BPF programs.
# TYPE tracecam_bpf_program_runs_total counter
tracecam_bpf_program_runs_total{program="sched_switch"} 1.234567e+06
tracecam_bpf_program_runs_total{program="go_ready"} 0
tracecam_events_total{type="data"} 99
tracecam_ready 1
`
	got, err := parseBPFMetrics(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].name != "sched_switch" || got[1].name != "go_ready" {
		t.Fatalf("programs = %+v", got)
	}
	if got[0].runs != 1234567 || math.Abs(got[0].ns-12345678) > 0.5 {
		t.Errorf("sched_switch = %+v, want 1234567 runs, 12345678 ns", got[0])
	}
	before := []bpfProg{{name: "sched_switch", runs: 1000, ns: 345678}}
	d := bpfDelta(before, got)
	if d[0].runs != 1233567 || math.Abs(d[0].ns-12000000) > 0.5 || d[1].runs != 0 {
		t.Errorf("delta = %+v", d)
	}
	if _, err := parseBPFMetrics("tracecam_ready 1\n"); err == nil {
		t.Error("a page without the families parsed")
	}
}

func TestFmtSmall(t *testing.T) {
	for _, c := range []struct {
		v    float64
		prec int
		want string
	}{{0, 2, "0.00"}, {1.456, 2, "1.46"}, {0.0024, 2, "0.0024"}, {0.004, 0, "0.0040"}, {6.4e-05, 2, "0.000064"}, {834.4, 0, "834"}} {
		if got := fmtSmall(c.v, c.prec); got != c.want {
			t.Errorf("fmtSmall(%v, %d) = %q, want %q", c.v, c.prec, got, c.want)
		}
	}
}
