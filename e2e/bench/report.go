package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// renderReport formats the results as markdown.
func renderReport(h hostInfo, cfg config, tps []throughputResult, tax []*taxRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# tracecam overhead benchmark\n\n")
	fmt.Fprintf(&b, "%s. %d trials per side, run alternately (without, with, without, ...); every figure is the median over trials unless noted. Load average (1/5/15 min) at start %s, at end %s.\n\n", h, cfg.trials, h.loadStart, loadAvg())
	if s := foreignSidecars.summary(); s != "" {
		fmt.Fprintf(&b, "**Warning:** tracecam sidecars this benchmark did not start were running during the run. Their probes are node-wide, so they slow the \"without sidecar\" baseline too (and compete for the 2 CPUs); treat the ratios with care:\n\n%s\n\n", s)
	}
	for _, tp := range tps {
		writeThroughput(&b, cfg, tp)
		writeSidecarCost(&b, tp)
	}
	writeTax(&b, tax)
	writeAllTrials(&b, tps, tax)
	return b.String()
}

// serverAbout says what each server of the throughput sections serves.
var serverAbout = map[string]struct{ title, about string }{
	"nginx": {"nginx throughput", fmt.Sprintf("nginx 1 worker, %d B static file, sendfile, keep-alive", indexSize)},
	"go": {"Go net/http throughput", "e2e/workloads/goserver (net/http, GOMAXPROCS = CPUs) `GET /fast`, keep-alive; " +
		"the sidecar follows its goroutines (uprobes on runtime.execute and runtime.ready); a third side runs the sidecar with `--go-probes=false`"},
	"go-work": {"Go net/http throughput, a handler doing 100 µs of work", "the same Go server, `GET /work?us=100` (burns 100 µs of CPU): the tax on a handler that does something; " +
		"sides as above"},
	"node": {"Node.js http throughput", "e2e/workloads/nodeserver.js (Debian's nodejs, `http`, one event loop) `GET /fast`, keep-alive"},
}

func writeThroughput(b *strings.Builder, cfg config, tp throughputResult) {
	secs := int(cfg.duration.Round(time.Second) / time.Second)
	about := serverAbout[tp.server]
	fmt.Fprintf(b, "## %s\n\n", about.title)
	fmt.Fprintf(b, "%s; `wrk -t1 -c32 -d%ds --latency` from outside the watched cgroup.\n\n", about.about, secs)
	rps := func(t throughputTrial) float64 { return t.wrk.reqPerSec }
	p50 := func(t throughputTrial) float64 { return float64(t.wrk.p50) }
	p99 := func(t throughputTrial) float64 { return float64(t.wrk.p99) }
	if len(tp.withOff) == 0 {
		fmt.Fprintf(b, "| | without sidecar | with sidecar | with / without |\n|---|---:|---:|---:|\n")
		a, w := medianOf(tp.without, rps), medianOf(tp.with, rps)
		fmt.Fprintf(b, "| requests/s | %s | %s | %.3f |\n", commas(a), commas(w), w/a)
		a, w = medianOf(tp.without, p50), medianOf(tp.with, p50)
		fmt.Fprintf(b, "| p50 latency | %s | %s | %.2f |\n", fmtDur(a), fmtDur(w), w/a)
		a, w = medianOf(tp.without, p99), medianOf(tp.with, p99)
		fmt.Fprintf(b, "| p99 latency | %s | %s | %.2f |\n\n", fmtDur(a), fmtDur(w), w/a)
	} else {
		fmt.Fprintf(b, "| | without sidecar | with sidecar | with / without | sidecar, goroutine probes off | off / without |\n|---|---:|---:|---:|---:|---:|\n")
		row := func(name string, f func(throughputTrial) float64, format func(float64) string, ratio string) {
			a, w, o := medianOf(tp.without, f), medianOf(tp.with, f), medianOf(tp.withOff, f)
			fmt.Fprintf(b, "| %s | %s | %s | "+ratio+" | %s | "+ratio+" |\n", name, format(a), format(w), w/a, format(o), o/a)
		}
		row("requests/s", rps, commas, "%.3f")
		row("p50 latency", p50, fmtDur, "%.2f")
		row("p99 latency", p99, fmtDur, "%.2f")
		b.WriteString("\n")
	}
	for _, t := range append(append(slices.Clone(tp.without), tp.with...), tp.withOff...) {
		if t.wrk.socketErrors != "" {
			fmt.Fprintf(b, "**Note:** wrk reported %s.\n\n", t.wrk.socketErrors)
		}
	}
}

func writeSidecarCost(b *strings.Builder, tp throughputResult) {
	w := tp.with
	fmt.Fprintf(b, "### %s: sidecar cost and coverage (with-sidecar trials)\n\n", tp.server)
	// Min and max too: one starved trial (lost events, missing profiles)
	// must not hide behind the median.
	fmt.Fprintf(b, "| per trial | median | min | max |\n|---|---:|---:|---:|\n")
	row := func(name string, f func(throughputTrial) float64, format func(float64) string) {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", name, format(medianOf(w, f)), format(minOf(w, f)), format(maxOf(w, f)))
	}
	row("sidecar CPU per 1,000 requests", throughputTrial.cpuPer1kReq, func(v float64) string { return fmt.Sprintf("%.1f ms", v) })
	row("sidecar CPU, share of one core", throughputTrial.cpuShare, func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) })
	row("sidecar peak RSS (VmHWM)", func(t throughputTrial) float64 { return float64(t.rssKB) / 1024 }, func(v float64) string { return fmt.Sprintf("%.1f MiB", v) })
	counter := func(name string, f func(throughputTrial) uint64) {
		row(name, func(t throughputTrial) float64 { return float64(f(t)) }, commas)
	}
	counter("requests served (wrk)", func(t throughputTrial) uint64 { return t.wrk.requests })
	counter("kernel events seen", func(t throughputTrial) uint64 { return t.delta.eventsTotal() })
	counter("kernel events lost", func(t throughputTrial) uint64 { return t.delta.LostTotal })
	counter("profiles completed", func(t throughputTrial) uint64 { return t.delta.Assembler.Profiles })
	row("**profiles / requests**", throughputTrial.profilesPerRequest, func(v float64) string { return fmt.Sprintf("**%.3f**", v) })
	counter("profiles marked partial", func(t throughputTrial) uint64 { return t.delta.Assembler.Partial })
	counter("requests dropped stale / incomplete", func(t throughputTrial) uint64 {
		return t.delta.Assembler.DroppedStale + t.delta.Assembler.Incomplete
	})
	counter("parse errors", func(t throughputTrial) uint64 { return t.delta.Assembler.ParseErrors })
	counter("connections evicted", func(t throughputTrial) uint64 { return t.delta.Assembler.DroppedConns })
	if len(tp.withOff) > 0 {
		row2 := func(name string, f func(throughputTrial) float64, format func(float64) string) {
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", name, format(medianOf(tp.withOff, f)), format(minOf(tp.withOff, f)), format(maxOf(tp.withOff, f)))
		}
		row2("goroutine probes off: sidecar CPU per 1,000 requests", throughputTrial.cpuPer1kReq, func(v float64) string { return fmt.Sprintf("%.1f ms", v) })
		row2("goroutine probes off: profiles / requests", throughputTrial.profilesPerRequest, func(v float64) string { return fmt.Sprintf("%.3f", v) })
	}
	b.WriteString("\n")
	// wrk does not count the up to 32 requests in flight when it stops, so
	// a ratio a hair above 1 is expected; a shortfall means lost requests.
	for i, t := range w {
		if r := t.profilesPerRequest(); math.Abs(r-1) > 0.01 {
			fmt.Fprintf(b, "**Finding:** in with-sidecar trial %d the sidecar completed %s profiles for %s requests (%.1f%%; %s kernel events lost). Every request should yield one profile.\n\n",
				i+1, commas(float64(t.delta.Assembler.Profiles)), commas(float64(t.wrk.requests)), 100*r, commas(float64(t.delta.LostTotal)))
		}
	}
}

func writeTax(b *strings.Builder, tax []*taxRow) {
	fmt.Fprintf(b, "## syscall tax\n\n")
	fmt.Fprintf(b, "`syscall_loop` (cc -O2), ns per op. Node tax: the loop runs outside the watched cgroup while the probes are attached (the cost every other process on the node pays). Pod tax: the loop runs inside the watched cgroup.\n\n")
	fmt.Fprintf(b, "| loop | where | without sidecar | with sidecar | with / without |\n|---|---|---:|---:|---:|\n")
	for _, r := range tax {
		a, w := median(r.without), median(r.with)
		fmt.Fprintf(b, "| %s | %s | %.1f | %.1f | %.2f |\n", loopName(r), r.label(), a, w, w/a)
	}
	b.WriteString("\n")
}

func loopName(r *taxRow) string {
	op := "getppid()"
	if r.loop == "rw" {
		op = "pipe write+read 64 B"
	}
	return fmt.Sprintf("%s ×%s", op, commas(float64(r.n)))
}

// writeAllTrials lists every trial, so noise (or one bad trial) is visible.
func writeAllTrials(b *strings.Builder, tps []throughputResult, tax []*taxRow) {
	fmt.Fprintf(b, "## all trials (in run order)\n\n")
	rps := func(ts []throughputTrial) string {
		return joinF(ts, func(t throughputTrial) string { return commas(t.wrk.reqPerSec) })
	}
	for _, tp := range tps {
		fmt.Fprintf(b, "- %s requests/s without: %s; with: %s", tp.server, rps(tp.without), rps(tp.with))
		if len(tp.withOff) > 0 {
			fmt.Fprintf(b, "; goroutine probes off: %s", rps(tp.withOff))
		}
		b.WriteString("\n")
		fmt.Fprintf(b, "- %s p99 without: %s; with: %s\n", tp.server,
			joinF(tp.without, func(t throughputTrial) string { return fmtDur(float64(t.wrk.p99)) }),
			joinF(tp.with, func(t throughputTrial) string { return fmtDur(float64(t.wrk.p99)) }))
		fmt.Fprintf(b, "- %s sidecar CPU ms per 1k requests: %s\n", tp.server, joinF(tp.with, func(t throughputTrial) string { return fmt.Sprintf("%.1f", t.cpuPer1kReq()) }))
		fmt.Fprintf(b, "- %s profiles / requests: %s\n", tp.server, joinF(tp.with, func(t throughputTrial) string {
			return fmt.Sprintf("%s/%s", commas(float64(t.delta.Assembler.Profiles)), commas(float64(t.wrk.requests)))
		}))
	}
	for _, r := range tax {
		ns := func(v float64) string { return fmt.Sprintf("%.1f", v) }
		fmt.Fprintf(b, "- %s, %s, ns/op without: %s; with: %s\n", r.loop, r.label(), joinF(r.without, ns), joinF(r.with, ns))
	}
}

func joinF[T any](xs []T, f func(T) string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = f(x)
	}
	return strings.Join(s, ", ")
}

func medianOf[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	return median(v)
}

func minOf[T any](xs []T, f func(T) float64) float64 {
	m := math.Inf(1)
	for _, x := range xs {
		m = math.Min(m, f(x))
	}
	return m
}

func maxOf[T any](xs []T, f func(T) float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, f(x))
	}
	return m
}

// median of v; the mean of the middle two for an even count.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// fmtDur prints a duration given in nanoseconds as µs or ms.
func fmtDur(ns float64) string {
	d := time.Duration(ns)
	if d < time.Millisecond {
		return fmt.Sprintf("%.0f µs", ns/1e3)
	}
	return fmt.Sprintf("%.2f ms", ns/1e6)
}

// commas rounds v and groups its digits: 1234567 -> 1,234,567.
func commas(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
