package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tracecam/tracecam/sidecar/cgroup"
)

// throughputTrial is one wrk run against nginx.
type throughputTrial struct {
	wrk wrkResult
	// Only for trials with the sidecar:
	cpuMs float64 // sidecar CPU time from load start until it caught up
	wall  time.Duration
	rssKB uint64        // sidecar VmHWM at the end of the trial
	pssKB uint64        // sidecar PSS at the end of the trial
	delta sidecarStatus // /v1/status counters gained during the trial
	// bpf is what each BPF program gained during the load: its runs and
	// kernel time. Counted only in the stats trial (--bpf-stats); in the
	// other with-sidecar trials a non-zero time means someone else had
	// BPF statistics on, taxing every program run.
	bpf []bpfProg
}

// eventsPerRequest is the kernel events the sidecar read per request served.
func (t throughputTrial) eventsPerRequest() float64 {
	return float64(t.delta.eventsTotal()) / float64(t.wrk.requests)
}

// cpuPerReqUs is the sidecar process's CPU (user + system) per request, in µs.
func (t throughputTrial) cpuPerReqUs() float64 { return t.cpuPer1kReq() }

// bpfNSPerRequest is the kernel time of all BPF programs per request.
func (t throughputTrial) bpfNSPerRequest() float64 {
	return bpfTotalNS(t.bpf) / float64(t.wrk.requests)
}

// cpuPer1kReq is the sidecar's CPU time per 1,000 requests served.
func (t throughputTrial) cpuPer1kReq() float64 {
	return t.cpuMs / (float64(t.wrk.requests) / 1000)
}

// cpuShare is the sidecar's CPU use as a fraction of one core.
func (t throughputTrial) cpuShare() float64 {
	return t.cpuMs / float64(t.wall.Milliseconds())
}

func (t throughputTrial) profilesPerRequest() float64 {
	return float64(t.delta.Assembler.Profiles) / float64(t.wrk.requests)
}

type throughputResult struct {
	server  string // nginx, go, node
	about   string // one line on the server and the load
	without []throughputTrial
	with    []throughputTrial
	// withOff (Go only): the sidecar with --go-probes=false, so the
	// goroutine probes' own cost shows apart from the rest of the sidecar.
	withOff []throughputTrial
	// stats is the one trial with --bpf-stats, after the others; nil if
	// it failed (statsErr says why).
	stats    *throughputTrial
	statsErr string
}

// runThroughput alternates wrk trials on n (running in cg) without and
// with the sidecar watching cg (and, with goOff, with the sidecar but
// without its goroutine probes).
func runThroughput(ctx context.Context, cl *cleaner, cfg config, t tools, n *server, cg cgroup.Target, goOff bool) (throughputResult, error) {
	res := throughputResult{server: n.name}
	logf("%s (pid %d) serving %s from cgroup %s", n.name, n.proc.pid(), n.url, cg.Path)
	// Warm up page cache, the server's allocations and the CPU clocks, so
	// the first "without" trial is not penalised.
	logf("warming up %s for 2s", n.name)
	if _, err := runWrk(ctx, n.url, 2*time.Second); err != nil {
		return res, fmt.Errorf("warm-up: %w", err)
	}
	for i := 1; i <= cfg.trials; i++ {
		a, err := throughputWithout(ctx, n, cfg.duration)
		if err != nil {
			return res, fmt.Errorf("%s trial %d without sidecar: %w", n.name, i, err)
		}
		res.without = append(res.without, a)
		logf("%s trial %d/%d without sidecar: %.0f req/s, p50 %s, p99 %s", n.name, i, cfg.trials, a.wrk.reqPerSec, a.wrk.p50, a.wrk.p99)

		b, err := throughputWith(ctx, cl, t, cg, n, cfg.duration, false)
		if err != nil {
			return res, fmt.Errorf("%s trial %d with sidecar: %w", n.name, i, err)
		}
		res.with = append(res.with, b)
		logf("%s trial %d/%d with sidecar:    %.0f req/s, p50 %s, p99 %s, sidecar %.1f ms CPU/1k req, profiles/requests %.3f, events lost %d",
			n.name, i, cfg.trials, b.wrk.reqPerSec, b.wrk.p50, b.wrk.p99, b.cpuPer1kReq(), b.profilesPerRequest(), b.delta.LostTotal)
		if goOff {
			c, err := throughputWith(ctx, cl, t, cg, n, cfg.duration, false, "--go-probes=false")
			if err != nil {
				return res, fmt.Errorf("%s trial %d with sidecar, goroutine probes off: %w", n.name, i, err)
			}
			res.withOff = append(res.withOff, c)
			logf("%s trial %d/%d with sidecar, goroutine probes off: %.0f req/s, sidecar %.1f ms CPU/1k req",
				n.name, i, cfg.trials, c.wrk.reqPerSec, c.cpuPer1kReq())
		}
	}
	// Last, apart from the measured trials: the statistics slow every
	// BPF program run, so this trial's throughput is not compared.
	st, err := throughputWith(ctx, cl, t, cg, n, cfg.duration, true)
	switch {
	case ctx.Err() != nil:
		return res, ctx.Err()
	case err != nil:
		// Keep the measured trials: an older kernel may refuse
		// BPF_ENABLE_STATS.
		res.statsErr = err.Error()
		logf("%s stats trial (--bpf-stats) failed: %v", n.name, err)
	default:
		res.stats = &st
		logf("%s stats trial (--bpf-stats): %.0f req/s, BPF kernel time %.0f ns per request, profiles/requests %.3f",
			n.name, st.wrk.reqPerSec, st.bpfNSPerRequest(), st.profilesPerRequest())
	}
	return res, nil
}

func throughputWithout(ctx context.Context, n *server, d time.Duration) (throughputTrial, error) {
	if err := pauseAndCheck(ctx, n); err != nil {
		return throughputTrial{}, err
	}
	w, err := runWrk(ctx, n.url, d)
	return throughputTrial{wrk: w}, err
}

// throughputWith starts a fresh sidecar per trial, so "without" trials
// really run with no probes attached. With bpfStats the sidecar runs with
// --bpf-stats (the stats trial).
func throughputWith(ctx context.Context, cl *cleaner, t tools, cg cgroup.Target, n *server, d time.Duration, bpfStats bool, sidecarArgs ...string) (throughputTrial, error) {
	var tr throughputTrial
	if bpfStats {
		sidecarArgs = append(sidecarArgs, "--bpf-stats")
	}
	s, err := startSidecar(ctx, cl, t.sidecar, cg, sidecarArgs...)
	if err != nil {
		return tr, err
	}
	defer s.stop()
	if err := pauseAndCheck(ctx, n); err != nil {
		return tr, err
	}
	before, err := s.status(ctx)
	if err != nil {
		return tr, err
	}
	// Outside the stats trial a sidecar without these metrics (an older
	// -sidecar binary) is fine: the check for foreign statistics is skipped.
	progs0, progsErr := s.bpfPrograms(ctx)
	if bpfStats && progsErr != nil {
		return tr, progsErr
	}
	ticks0, err := s.cpuTicks()
	if err != nil {
		return tr, err
	}
	start := time.Now()
	if tr.wrk, err = runWrk(ctx, n.url, d); err != nil {
		return tr, err
	}
	// The programs run as the events happen: in the stats trial, read
	// them as the load ends, before the node's background adds up. (The
	// other trials read them only to notice statistics someone else
	// turned on, after the CPU time, which then excludes the read.)
	var progs1 []bpfProg
	if bpfStats {
		if progs1, err = s.bpfPrograms(ctx); err != nil {
			return tr, err
		}
		tr.bpf = bpfDelta(progs0, progs1)
	}
	// CPU is read after the sidecar caught up: processing the trial's
	// backlog is part of what the requests cost.
	after, err := s.settledStatus(ctx)
	if err != nil {
		return tr, err
	}
	ticks1, err := s.cpuTicks()
	if err != nil {
		return tr, err
	}
	tr.wall = time.Since(start)
	tr.cpuMs = float64(ticks1-ticks0) * 1000 / float64(t.clkTck)
	if !bpfStats && progsErr == nil {
		if progs1, err = s.bpfPrograms(ctx); err == nil {
			tr.bpf = bpfDelta(progs0, progs1)
		}
	}
	tr.delta = statusDelta(before, after)
	if tr.pssKB, err = s.pss(); err != nil {
		return tr, err
	}
	if tr.rssKB, err = s.maxRSS(); err != nil {
		return tr, err
	}
	return tr, nil
}

// pauseAndCheck lets the previous trial's connections and sidecar teardown
// settle, and makes sure nginx is still up.
func pauseAndCheck(ctx context.Context, n *server) error {
	if err := sleepCtx(ctx, time.Second); err != nil {
		return err
	}
	if n.proc.exited() {
		return n.proc.describeExit()
	}
	foreignSidecars.scan()
	return nil
}

// statusDelta is what the counters gained between two /v1/status reads.
func statusDelta(a, b sidecarStatus) sidecarStatus {
	d := sidecarStatus{Events: map[string]uint64{}, LostTotal: b.LostTotal - a.LostTotal}
	for k, v := range b.Events {
		d.Events[k] = v - a.Events[k]
	}
	d.Assembler.Profiles = b.Assembler.Profiles - a.Assembler.Profiles
	d.Assembler.Partial = b.Assembler.Partial - a.Assembler.Partial
	d.Assembler.DroppedStale = b.Assembler.DroppedStale - a.Assembler.DroppedStale
	d.Assembler.DroppedConns = b.Assembler.DroppedConns - a.Assembler.DroppedConns
	d.Assembler.ParseErrors = b.Assembler.ParseErrors - a.Assembler.ParseErrors
	d.Assembler.Incomplete = b.Assembler.Incomplete - a.Assembler.Incomplete
	return d
}
