package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tracecam/tracecam/sidecar/cgroup"
)

// taxRow is one syscall loop at one placement, with ns/op per trial.
type taxRow struct {
	loop    string // syscall_loop mode: getppid or rw
	n       int    // iterations
	inside  bool   // run inside the watched cgroup (pod tax) or outside (node tax)
	without []float64
	with    []float64
}

func (r taxRow) label() string {
	if r.inside {
		return "pod tax (inside watched cgroup)"
	}
	return "node tax (outside watched cgroup)"
}

// newTaxRows lists the measurements: each loop outside and inside.
func newTaxRows() []*taxRow {
	var rows []*taxRow
	for _, inside := range []bool{false, true} {
		rows = append(rows,
			&taxRow{loop: "getppid", n: 5_000_000, inside: inside},
			&taxRow{loop: "rw", n: 1_000_000, inside: inside},
		)
	}
	return rows
}

// runSyscallTax alternates trials without and with a sidecar watching pod,
// which holds an idle process so the watched cgroup is not empty (as in a
// real pod). Each trial runs every row once.
func runSyscallTax(ctx context.Context, cl *cleaner, cfg config, t tools, pod cgroup.Target) ([]*taxRow, error) {
	idle, err := startChild("idle pod process", &pod, "sleep", "infinity")
	if err != nil {
		return nil, err
	}
	cl.add(func() { idle.stop(2 * time.Second) })

	rows := newTaxRows()
	for i := 1; i <= cfg.trials; i++ {
		if err := taxTrial(ctx, t, pod, rows, false); err != nil {
			return rows, fmt.Errorf("trial %d without sidecar: %w", i, err)
		}
		logTaxTrial(i, cfg.trials, "without sidecar", rows, false)

		s, err := startSidecar(ctx, cl, t.sidecar, pod)
		if err != nil {
			return rows, fmt.Errorf("trial %d: %w", i, err)
		}
		err = taxTrial(ctx, t, pod, rows, true)
		s.stop()
		if err != nil {
			return rows, fmt.Errorf("trial %d with sidecar: %w", i, err)
		}
		logTaxTrial(i, cfg.trials, "with sidecar", rows, true)
	}
	return rows, nil
}

// taxTrial runs every row once and appends its ns/op to the given side.
func taxTrial(ctx context.Context, t tools, pod cgroup.Target, rows []*taxRow, with bool) error {
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	foreignSidecars.scan()
	for _, r := range rows {
		var cg *cgroup.Target
		if r.inside {
			cg = &pod
		}
		ns, err := runSyscallLoop(ctx, t.syscallLoop, cg, r.loop, r.n)
		if err != nil {
			return err
		}
		if with {
			r.with = append(r.with, ns)
		} else {
			r.without = append(r.without, ns)
		}
	}
	return nil
}

// runSyscallLoop runs the loop (inside cg when non-nil, else in our own
// cgroup) and returns its ns_per_op.
func runSyscallLoop(ctx context.Context, bin string, cg *cgroup.Target, mode string, n int) (float64, error) {
	out, err := runShort(ctx, cg, bin, mode, strconv.Itoa(n))
	if err != nil {
		return 0, fmt.Errorf("syscall_loop %s: %w", mode, err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(out), "ns_per_op=")
	if !ok {
		return 0, fmt.Errorf("syscall_loop %s printed %q, want ns_per_op=<float>", mode, out)
	}
	ns, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("syscall_loop %s: parsing %q: %w", mode, out, err)
	}
	return ns, nil
}

func logTaxTrial(i, trials int, side string, rows []*taxRow, with bool) {
	var parts []string
	for _, r := range rows {
		v := r.without
		if with {
			v = r.with
		}
		where := "outside"
		if r.inside {
			where = "inside"
		}
		parts = append(parts, fmt.Sprintf("%s/%s %.1f ns", r.loop, where, v[len(v)-1]))
	}
	logf("syscall trial %d/%d %s: %s", i, trials, side, strings.Join(parts, ", "))
}
