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
	fmt.Fprintf(&b, "%s. %d trials per side, run alternately (without, with, without, ...), then one `--bpf-stats` trial per server; every figure is the median over trials unless noted. Load average (1/5/15 min) at start %s, at end %s.\n\n", h, cfg.trials, h.loadStart, loadAvg())
	if s := foreignSidecars.summary(); s != "" {
		fmt.Fprintf(&b, "**Warning:** tracecam sidecars this benchmark did not start were running during the run. Their probes are node-wide, so they slow the \"without sidecar\" baseline too (and compete for the 2 CPUs); treat the ratios with care:\n\n%s\n\n", s)
	}
	if n := foreignStatsTrials(tps); n > 0 {
		fmt.Fprintf(&b, "**Warning:** BPF run-time statistics were on during %d measured with-sidecar trial(s) (the sidecar's BPF programs gained kernel run time while it ran without `--bpf-stats`: another process had them enabled, e.g. another sidecar's `--bpf-stats` or the kernel.bpf_stats_enabled sysctl). They add two clock reads to every BPF program run, so those trials' with-sidecar figures are slowed.\n\n", n)
	}
	for _, tp := range tps {
		writeThroughput(&b, cfg, tp)
		writeSidecarCost(&b, tp)
		writeBPFStats(&b, tp)
	}
	if len(tax) > 0 {
		writeTax(&b, tax)
	}
	writeAllTrials(&b, tps, tax)
	return b.String()
}

// serverAbout says what each server of the throughput sections serves.
var serverAbout = map[string]struct{ title, about string }{
	"nginx": {"nginx throughput", fmt.Sprintf("nginx 1 worker, %d B static file, sendfile, keep-alive", indexSize)},
	"nginx-fast": {"nginx at its fastest (no sendfile, 512 B)", fmt.Sprintf("Debian's nginx as a new user runs it, at its fastest: 1 worker, stock http settings (sendfile off, so the file leaves with its headers in one writev), access log off, %d B static file, keep-alive (e2e/workloads/nginx-fast.conf.tmpl); "+
		"nginx's per-request work is the least here, so the sidecar's share is the largest", fastIndexSize)},
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
	us := func(v float64) string { return fmt.Sprintf("%.2f µs", v) }
	row("sidecar user-space CPU per request", throughputTrial.cpuPerReqUs, us)
	if st := tp.stats; st != nil {
		bpfUs := st.bpfNSPerRequest() / 1000
		fmt.Fprintf(b, "| kernel BPF time per request (bpf_stats, separate trial) | %s | – | – |\n", us(bpfUs))
		row("**all-in µs per request**", func(t throughputTrial) float64 { return t.cpuPerReqUs() + bpfUs },
			func(v float64) string { return fmt.Sprintf("**%.2f µs**", v) })
	} else {
		fmt.Fprintf(b, "| kernel BPF time per request (bpf_stats, separate trial) | n/a | – | – |\n")
		fmt.Fprintf(b, "| **all-in µs per request** | n/a | – | – |\n")
	}
	row("sidecar peak RSS (VmHWM)", func(t throughputTrial) float64 { return float64(t.rssKB) / 1024 }, func(v float64) string { return fmt.Sprintf("%.1f MiB", v) })
	row("sidecar memory at the end (PSS: the ring buffer's pages, mapped twice, counted once)", func(t throughputTrial) float64 { return float64(t.pssKB) / 1024 }, func(v float64) string { return fmt.Sprintf("%.1f MiB", v) })
	counter := func(name string, f func(throughputTrial) uint64) {
		row(name, func(t throughputTrial) float64 { return float64(f(t)) }, commas)
	}
	counter("requests served (wrk)", func(t throughputTrial) uint64 { return t.wrk.requests })
	counter("kernel events seen", func(t throughputTrial) uint64 { return t.delta.eventsTotal() })
	row("kernel events per request", throughputTrial.eventsPerRequest, func(v float64) string { return fmt.Sprintf("%.2f", v) })
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
	fmt.Fprintf(b, "Sidecar user-space CPU is the sidecar process's own CPU time (user + system: reading the ring buffer, assembling profiles) per request. "+
		"The kernel BPF time is what the probes cost in the kernel, in the context of the tasks they fire for; it comes from the one stats trial below (`--bpf-stats`), "+
		"as the statistics would slow the measured trials. It excludes the uprobe trap cost for Go (the breakpoint and the kernel's uprobe dispatch around go_execute and go_ready are not counted) "+
		"and includes the early exits of runs for tasks outside the pod (the programs fire for every task on the node). All-in is the two added: the sidecar's whole cost per request.\n\n")
	// wrk does not count the up to 32 requests in flight when it stops, so
	// a ratio a hair above 1 is expected; a shortfall means lost requests.
	for i, t := range w {
		if r := t.profilesPerRequest(); math.Abs(r-1) > 0.01 {
			fmt.Fprintf(b, "**Finding:** in with-sidecar trial %d the sidecar completed %s profiles for %s requests (%.1f%%; %s kernel events lost). Every request should yield one profile.\n\n",
				i+1, commas(float64(t.delta.Assembler.Profiles)), commas(float64(t.wrk.requests)), 100*r, commas(float64(t.delta.LostTotal)))
		}
	}
}

// writeBPFStats is the stats trial's table: each BPF program's runs and
// kernel time per request.
func writeBPFStats(b *strings.Builder, tp throughputResult) {
	fmt.Fprintf(b, "### %s: BPF programs per request (stats trial, `--bpf-stats`)\n\n", tp.server)
	st := tp.stats
	if st == nil {
		fmt.Fprintf(b, "The stats trial failed: %s\n\n", tp.statsErr)
		return
	}
	reqs := float64(st.wrk.requests)
	fmt.Fprintf(b, "One extra with-sidecar trial after the measured ones, the sidecar with `--bpf-stats` (kernel run counts and times of its programs, read from its `/metrics` as the load started and ended): "+
		"%s requests at %s requests/s (not compared with the trials above: the statistics add two clock reads to every program run), profiles / requests %.3f. "+
		"Runs count every task on the node, so they include the early exits for tasks outside the pod; the Go uprobes' trap cost is not in the times.\n\n",
		commas(reqs), commas(st.wrk.reqPerSec), st.profilesPerRequest())
	fmt.Fprintf(b, "| program | runs per request | ns per run | ns per request |\n|---|---:|---:|---:|\n")
	perRun := func(ns, runs float64) string {
		if runs == 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f", ns/runs)
	}
	var runs, ns float64
	for _, p := range st.bpf {
		runs += p.runs
		ns += p.ns
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", p.name, fmtSmall(p.runs/reqs, 2), perRun(p.ns, p.runs), fmtSmall(p.ns/reqs, 0))
	}
	fmt.Fprintf(b, "| **all programs** | **%s** | **%s** | **%s** |\n\n", fmtSmall(runs/reqs, 2), perRun(ns, runs), fmtSmall(ns/reqs, 0))
	if r := st.profilesPerRequest(); math.Abs(r-1) > 0.01 {
		fmt.Fprintf(b, "**Finding:** in the stats trial the sidecar completed %s profiles for %s requests (%.1f%%; %s kernel events lost).\n\n",
			commas(float64(st.delta.Assembler.Profiles)), commas(reqs), 100*r, commas(float64(st.delta.LostTotal)))
	}
	if st.wrk.socketErrors != "" {
		fmt.Fprintf(b, "**Note:** in the stats trial wrk reported %s.\n\n", st.wrk.socketErrors)
	}
}

// foreignStatsTrials counts the measured with-sidecar trials in which the
// sidecar's programs gained run time although it ran without --bpf-stats.
func foreignStatsTrials(tps []throughputResult) int {
	n := 0
	for _, tp := range tps {
		for _, t := range append(slices.Clone(tp.with), tp.withOff...) {
			if bpfTotalNS(t.bpf) > 0 {
				n++
			}
		}
	}
	return n
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
		fmt.Fprintf(b, "- %s kernel events seen: %s\n", tp.server, joinF(tp.with, func(t throughputTrial) string { return commas(float64(t.delta.eventsTotal())) }))
		if st := tp.stats; st != nil {
			fmt.Fprintf(b, "- %s stats trial (`--bpf-stats`, last): %s requests/s, p99 %s, profiles / requests %s/%s, kernel events seen %s, sidecar CPU %.1f ms per 1k requests; BPF runs / kernel ns: %s\n",
				tp.server, commas(st.wrk.reqPerSec), fmtDur(float64(st.wrk.p99)),
				commas(float64(st.delta.Assembler.Profiles)), commas(float64(st.wrk.requests)), commas(float64(st.delta.eventsTotal())), st.cpuPer1kReq(),
				joinF(st.bpf, func(p bpfProg) string { return fmt.Sprintf("%s %s / %s", p.name, commas(p.runs), commas(p.ns)) }))
		} else {
			fmt.Fprintf(b, "- %s stats trial: failed (%s)\n", tp.server, tp.statsErr)
		}
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

// fmtSmall prints v with prec decimals, or with two significant digits
// when that would round a non-zero v to 0.
func fmtSmall(v float64, prec int) string {
	if v != 0 && math.Abs(v) < 0.5*math.Pow(10, -float64(prec)) {
		prec = 1 - int(math.Floor(math.Log10(math.Abs(v))))
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
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
