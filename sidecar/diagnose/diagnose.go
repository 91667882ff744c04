package diagnose

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/tracecam/tracecam/sidecar/profile"
)

const (
	// dominantPermille is 40%: below it no single category explains the
	// request, so the summary is flagged as mixed.
	dominantPermille = 400
	// maxEvidence keeps evidence short enough to read in a log line.
	maxEvidence = 5
	// maxSegmentEvidence leaves room in the evidence for the share and count
	// lines, which are what a reader checks first.
	maxSegmentEvidence = 3
)

// share is one breakdown entry.
type share struct {
	cat profile.Category
	ns  int64
}

// finding is what a per-category analysis contributes to the diagnosis.
type finding struct {
	cause profile.Cause
	// label names the time in the summary ("lock: 201.3 ms ..."); it is the
	// cause for refinements such as dns, so the first word always matches the
	// cause a reader is told about.
	label  string
	phrase string
	// details are the evidence lines for the most telling waits, best first.
	details []string
	// count is the evidence line that puts the details in proportion.
	count string
}

// Diagnose returns the likely root cause of the request profiled by p. It
// never modifies p and accepts nil or partially filled profiles.
func Diagnose(p *profile.Profile) profile.Diagnosis {
	if p == nil {
		return profile.Diagnosis{
			Cause:    profile.CauseUnknown,
			Summary:  "unknown: no profile",
			Evidence: []string{"profile is nil", "nothing was captured"},
		}
	}
	shares, total := rank(p.Breakdown)
	if p.DurationNS <= 0 {
		return profile.Diagnosis{
			Cause:   profile.CauseUnknown,
			Summary: "unknown: request duration is zero, nothing to attribute",
			Evidence: withPartial(p, []string{
				fmt.Sprintf("duration_ns %d", p.DurationNS),
				fmt.Sprintf("breakdown holds %s in %d categories", profile.FormatDuration(total), len(shares)),
			}),
		}
	}
	if total == 0 {
		return profile.Diagnosis{
			Cause:   profile.CauseUnknown,
			Summary: fmt.Sprintf("unknown: empty breakdown for a %s request, no events were attributed", profile.FormatDuration(p.DurationNS)),
			Evidence: withPartial(p, []string{
				"duration " + profile.FormatDuration(p.DurationNS),
				"breakdown empty",
			}),
		}
	}

	// A partial capture can leave the breakdown summing to more than the
	// measured duration; using the larger keeps every share ≤ 100%.
	denom := max(p.DurationNS, total)
	if p.Accounting == profile.AccountingEstimated {
		// The camera could not follow the request's work: a cause drawn
		// from these figures could send the engineer to the wrong place.
		return profile.Diagnosis{
			Cause:   profile.CauseUnknown,
			Summary: "unknown: the camera could not follow this request's work, so its breakdown is an estimate",
			Evidence: withPartial(p, []string{
				"estimated breakdown (not a verdict): " + shareLine(shares, denom, 3),
			}),
		}
	}
	dev, hasDev := Compare(p)
	if hasDev {
		switch dev.Verdict {
		case profile.VerdictDeviates:
			return deviating(p, shares, denom, dev)
		case profile.VerdictProportional:
			return proportional(p, shares, denom, dev)
		}
	}
	top := shares[0]
	f := analyze(p, top, 0)

	summary := fmt.Sprintf("%s: %s (%s) %s", f.label, profile.FormatDuration(top.ns), profile.FormatPercent(top.ns, denom), f.phrase)
	if top.ns*1000 < denom*dominantPermille {
		summary = "mixed: " + mixedHead(shares, total, denom) + " — " + summary
	}

	evidence := []string{"breakdown: " + shareLine(shares, denom, 3)}
	room := maxEvidence - 1 - 1
	if p.Partial {
		room--
	}
	if hasDev {
		room--
	}
	evidence = append(evidence, f.details[:min(len(f.details), room, maxSegmentEvidence)]...)
	evidence = append(evidence, f.count)
	var devPtr *profile.Deviation
	if hasDev {
		// Typical or warming up: the usual rules decide, the baseline only
		// says the request is not out of line (or cannot say yet).
		evidence = append(evidence, baselineNote(p, dev))
		devPtr = &dev
	}
	return profile.Diagnosis{Cause: f.cause, Summary: summary, Evidence: withPartial(p, evidence), Deviation: devPtr}
}

// withPartial appends the partial-capture note, because a diagnosis from a
// capture that lost events may be missing the real culprit.
func withPartial(p *profile.Profile, ev []string) []string {
	if !p.Partial {
		return ev
	}
	if p.PartialReason == "" {
		return append(ev, "partial capture")
	}
	return append(ev, "partial capture: "+p.PartialReason)
}

// rank orders the positive breakdown entries largest first. Ties and
// categories outside the contract are ordered deterministically so the same
// profile always yields the same diagnosis.
func rank(b map[profile.Category]int64) ([]share, int64) {
	var out []share
	var total int64
	for c, ns := range b {
		if ns <= 0 {
			continue
		}
		out = append(out, share{c, ns})
		total += ns
	}
	slices.SortFunc(out, func(a, b share) int {
		if a.ns != b.ns {
			return cmp.Compare(b.ns, a.ns)
		}
		if d := cmp.Compare(catIndex(a.cat), catIndex(b.cat)); d != 0 {
			return d
		}
		return cmp.Compare(a.cat, b.cat)
	})
	return out, total
}

func catIndex(c profile.Category) int {
	if i := slices.Index(profile.Categories, c); i >= 0 {
		return i
	}
	return len(profile.Categories)
}

func mixedHead(shares []share, total, denom int64) string {
	first := fmt.Sprintf("%s %s", shares[0].cat, profile.FormatPercent(shares[0].ns, denom))
	if len(shares) > 1 {
		return fmt.Sprintf("%s, %s %s", first, shares[1].cat, profile.FormatPercent(shares[1].ns, denom))
	}
	// Only one category but under 40%: the rest of the duration was never
	// attributed, which is itself worth saying.
	return fmt.Sprintf("%s, unaccounted %s", first, profile.FormatPercent(denom-total, denom))
}

func shareLine(shares []share, denom int64, n int) string {
	parts := make([]string, 0, n)
	for _, s := range shares[:min(n, len(shares))] {
		parts = append(parts, fmt.Sprintf("%s %s (%s)", s.cat, profile.FormatPercent(s.ns, denom), profile.FormatDuration(s.ns)))
	}
	return strings.Join(parts, ", ")
}

// analyze explains the time top.ns of category top.cat (the dominant one,
// or the one holding the excess over the baseline, whose typical DNS time
// is dnsTypical).
func analyze(p *profile.Profile, top share, dnsTypical int64) finding {
	switch top.cat {
	case profile.CPU:
		return cpuFinding(p)
	case profile.Runq:
		return runqFinding(p)
	case profile.Net:
		if f, ok := dnsFinding(p, top, dnsTypical); ok {
			return f
		}
		if isTCPWindow(p, top.ns) {
			return tcpWindowFinding(p)
		}
		return netFinding(p)
	case profile.File:
		return fileFinding(p)
	case profile.Lock:
		if isGC(p, top.ns) {
			return gcFinding(p)
		}
		return lockFinding(p)
	case profile.Sleep:
		// An event loop idle until its next timer while the response
		// could not leave (nginx waits for a writable socket with its send
		// timeout as the deadline): the time is the client's window's.
		if loopWaitedForWindow(p, top.ns) {
			return tcpWindowFinding(p)
		}
		return sleepFinding(p)
	case profile.Queue:
		return queueFinding(p)
	case profile.Loop:
		return loopFinding(p)
	case profile.GC:
		return finding{
			cause:   profile.CauseGC,
			label:   string(profile.GC),
			phrase:  "parked for the Go garbage collector",
			details: longest(segmentsOf(p, profile.GC), byDuration, segLine),
			count:   "the request's goroutine waited for the collector (GC assist or sweep): the heap grows faster than the collector keeps up",
		}
	case profile.Epoll:
		if isTCPWindow(p, top.ns) {
			return tcpWindowFinding(p)
		}
		return epollFinding(p, top, dnsTypical)
	case profile.Other:
		return otherFinding(p)
	}
	return finding{
		cause:  profile.CauseUnknown,
		label:  string(top.cat),
		phrase: "in a category tracecam does not know",
		count:  fmt.Sprintf("category %q is not part of the contract", top.cat),
	}
}

// queueFinding explains queue time: a request no worker had taken up yet,
// or (a goroutine's) a channel wait for another goroutine's work.
func queueFinding(p *profile.Profile) finding {
	f := finding{
		cause:   profile.CauseQueue,
		label:   string(profile.Queue),
		phrase:  "waiting for a worker to pick the request up",
		details: longest(segmentsOf(p, profile.Queue), byDuration, segLine),
		count:   "the request was not being served yet: every worker was busy (a saturated pool, or requests pipelined behind a slow one)",
	}
	if p.Accounting == profile.AccountingGoroutine {
		f.phrase = "parked on a channel, waiting for another goroutine's work"
		f.count = "the request's goroutine handed work to another goroutine (a channel receive or select) and waited for it; the goroutine that answered was not waiting for the network"
	}
	return f
}

func segmentsOf(p *profile.Profile, cats ...profile.Category) []profile.Segment {
	var out []profile.Segment
	for _, s := range p.Timeline {
		if slices.Contains(cats, s.Category) {
			out = append(out, s)
		}
	}
	return out
}

// longest returns up to maxSegmentEvidence evidence lines for the longest
// segments by key.
func longest(segs []profile.Segment, key func(profile.Segment) int64, line func(profile.Segment) string) []string {
	segs = slices.Clone(segs)
	slices.SortStableFunc(segs, func(a, b profile.Segment) int { return cmp.Compare(key(b), key(a)) })
	var out []string
	for _, s := range segs {
		if len(out) == maxSegmentEvidence || key(s) <= 0 {
			break
		}
		out = append(out, line(s))
	}
	return out
}

func byDuration(s profile.Segment) int64 { return s.DurationNS }

func segCount(segs []profile.Segment, cat profile.Category) string {
	var sum int64
	n := 0
	for _, s := range segs {
		sum += s.DurationNS
		n += max(s.Count, 1)
	}
	if len(segs) == 0 {
		return fmt.Sprintf("no %s wait above the segment threshold", cat)
	}
	return fmt.Sprintf("%s totalling %s above the segment threshold", profile.Plural(n, string(cat)+" wait", string(cat)+" waits"), profile.FormatDuration(sum))
}

func cpuFinding(p *profile.Profile) finding {
	return finding{
		cause:  profile.CauseCPU,
		label:  string(profile.CPU),
		phrase: "on CPU",
		count:  fmt.Sprintf("%s above the segment threshold", profile.Plural(len(p.Timeline), "off-CPU wait", "off-CPU waits")),
	}
}

func runqFinding(p *profile.Profile) finding {
	f := finding{
		cause:  profile.CauseRunq,
		label:  string(profile.Runq),
		phrase: "runnable but waiting for a CPU",
	}
	var delayed []profile.Segment
	for _, s := range p.Timeline {
		if s.RunqNS > 0 {
			delayed = append(delayed, s)
		}
	}
	f.details = longest(delayed, func(s profile.Segment) int64 { return s.RunqNS }, func(s profile.Segment) string {
		return fmt.Sprintf("%s waiting for a CPU after %s", profile.FormatDuration(s.RunqNS), segLine(s))
	})
	if len(delayed) > 0 {
		// The longest post-wake-up delay tells whether one bad preemption or
		// steady CPU throttling is to blame.
		var maxRunq int64
		for _, s := range delayed {
			maxRunq = max(maxRunq, s.RunqNS)
		}
		f.phrase += fmt.Sprintf(" (longest %s after a wake-up)", profile.FormatDuration(maxRunq))
	}
	f.count = fmt.Sprintf("%s followed by a runq delay; CPU limit throttling or a busy node", profile.Plural(len(delayed), "wait", "waits"))
	if p.StealNS > 0 {
		// Time the thread held a vCPU the hypervisor did not run: the
		// fix is on the host (or the instance type), not in the pod.
		f.phrase += fmt.Sprintf("; %s of it hypervisor steal (the VM's vCPU was not running)", profile.FormatDuration(p.StealNS))
		f.details = append([]string{fmt.Sprintf("hypervisor steal %s: on a CPU the host did not run (a busy host or a noisy neighbour)",
			profile.FormatDuration(p.StealNS))}, f.details...)
	}
	return f
}

// peerAgg is the wait attributed to one network peer.
type peerAgg struct {
	peer   string
	waitNS int64
	calls  int
}

// peerWaits aggregates the waits on each peer from the given segments and
// the network summary. The network summary counts waits below the segment
// threshold too, so the larger of the two views wins.
func peerWaits(p *profile.Profile, segs []profile.Segment, skipClient bool) []peerAgg {
	idx := map[string]int{}
	var out []peerAgg
	get := func(peer string) *peerAgg {
		i, ok := idx[peer]
		if !ok {
			i = len(out)
			idx[peer] = i
			out = append(out, peerAgg{peer: peer})
		}
		return &out[i]
	}
	for _, s := range segs {
		if s.Peer == "" || (skipClient && s.Peer == p.Client) {
			continue
		}
		a := get(s.Peer)
		a.waitNS += s.DurationNS
		a.calls++
	}
	for _, n := range p.Network {
		if n.Peer == "" || (skipClient && n.Peer == p.Client) {
			continue
		}
		if _, seen := idx[n.Peer]; !seen && n.WaitNS <= 0 {
			// A peer the thread never waited on did not add latency.
			continue
		}
		a := get(n.Peer)
		a.waitNS = max(a.waitNS, n.WaitNS)
		a.calls = max(a.calls, n.Calls)
	}
	slices.SortStableFunc(out, func(a, b peerAgg) int { return cmp.Compare(b.waitNS, a.waitNS) })
	return out
}

func (p peerAgg) String() string {
	return fmt.Sprintf("%s (%s)", p.peer, profile.Plural(p.calls, "call", "calls"))
}

func netFinding(p *profile.Profile) finding {
	segs := segmentsOf(p, profile.Net)
	f := finding{
		cause:   profile.CauseNet,
		label:   string(profile.Net),
		details: longest(segs, byDuration, segLine),
		count:   segCount(segs, profile.Net),
	}
	peers := peerWaits(p, segs, false)
	if len(peers) == 0 {
		f.phrase = "blocked in socket I/O, no peer identified"
		return f
	}
	top := peers[0]
	if top.peer == p.Client {
		// Waiting on the client is a slow upload or a slow reader of the
		// response, not a downstream: say so, or the user hunts for one.
		f.phrase = "waiting on the client " + top.String()
	} else {
		f.phrase = "waiting on " + top.String()
	}
	if len(peers) > 1 {
		f.phrase += fmt.Sprintf(" and %s", profile.Plural(len(peers)-1, "other peer", "other peers"))
	}
	f.count = fmt.Sprintf("%s, %s on %s", segCount(segs, profile.Net), profile.FormatDuration(top.waitNS), top.peer)
	return f
}

// dnsFinding applies the dns refinement: lookups that take at least half the
// time blamed on the network (beyond their typical time, dnsTypical, when
// that time is an excess over the baseline) are the network problem.
func dnsFinding(p *profile.Profile, top share, dnsTypical int64) (finding, bool) {
	if !isDNS(p, top.ns, dnsTypical) {
		return finding{}, false
	}
	var total int64
	for _, q := range p.DNS {
		total += q.LatencyNS
	}
	type nameAgg struct {
		name    string
		latency int64
		queries []profile.DNSQuery
	}
	idx := map[string]int{}
	var names []nameAgg
	for _, q := range p.DNS {
		i, ok := idx[q.Name]
		if !ok {
			i = len(names)
			idx[q.Name] = i
			names = append(names, nameAgg{name: q.Name})
		}
		names[i].latency += q.LatencyNS
		names[i].queries = append(names[i].queries, q)
	}
	slices.SortStableFunc(names, func(a, b nameAgg) int { return cmp.Compare(b.latency, a.latency) })
	worst := names[0]
	slices.SortStableFunc(worst.queries, func(a, b profile.DNSQuery) int { return cmp.Compare(a.StartOffsetNS, b.StartOffsetNS) })

	name := worst.name
	if name == "" {
		name = "an unnamed query"
	}
	phrase := fmt.Sprintf("resolving %s (%s", name, profile.Plural(len(worst.queries), "lookup", "lookups"))
	if len(worst.queries) <= 3 {
		// A few lookups are told one by one in order: "first timed out,
		// then NXDOMAIN" is the story of a search-domain or retry problem.
		outs := make([]string, len(worst.queries))
		for i, q := range worst.queries {
			outs[i] = outcome(q)
		}
		phrase += ": " + strings.Join(outs, ", ")
	} else {
		failed := 0
		for _, q := range worst.queries {
			if !ok(q) {
				failed++
			}
		}
		phrase += fmt.Sprintf(", %d failed", failed)
	}
	phrase += ")"
	if len(names) > 1 {
		phrase += fmt.Sprintf(" and %s", profile.Plural(len(names)-1, "other name", "other names"))
	}

	byLatency := slices.Clone(p.DNS)
	slices.SortStableFunc(byLatency, func(a, b profile.DNSQuery) int { return cmp.Compare(b.LatencyNS, a.LatencyNS) })
	var details []string
	for _, q := range byLatency[:min(len(byLatency), maxSegmentEvidence)] {
		d := fmt.Sprintf("%s %s %s at +%s", q.Name, q.Type, outcome(q), profile.FormatDuration(q.StartOffsetNS))
		if q.Server != "" {
			d += " via " + q.Server
		}
		details = append(details, d)
	}
	return finding{
		cause:   profile.CauseDNS,
		label:   string(profile.CauseDNS),
		phrase:  phrase,
		details: details,
		count: fmt.Sprintf("%s totalling %s, %s of %s net time",
			profile.Plural(len(p.DNS), "DNS lookup", "DNS lookups"), profile.FormatDuration(total), profile.FormatPercent(total, top.ns), profile.FormatDuration(top.ns)),
	}, true
}

func ok(q profile.DNSQuery) bool {
	return q.Answered && (q.Rcode == "" || strings.EqualFold(q.Rcode, "NOERROR"))
}

func outcome(q profile.DNSQuery) string {
	switch {
	case !q.Answered:
		return "timed out after " + profile.FormatDuration(q.LatencyNS)
	case q.Rcode == "":
		return "answered in " + profile.FormatDuration(q.LatencyNS)
	default:
		return q.Rcode + " in " + profile.FormatDuration(q.LatencyNS)
	}
}

func fileFinding(p *profile.Profile) finding {
	segs := segmentsOf(p, profile.File)
	f := finding{
		cause:   profile.CauseFile,
		label:   string(profile.File),
		details: longest(segs, byDuration, segLine),
		count:   segCount(segs, profile.File),
	}
	groups := group(segs, func(s profile.Segment) string {
		if s.File != "" {
			return s.File
		}
		if s.FDKind != "" {
			return "a " + s.FDKind
		}
		return ""
	})
	if len(groups) == 0 {
		f.phrase = "blocked in file I/O"
		return f
	}
	g := groups[0]
	switch {
	case g.key == "" && g.syscall == "":
		f.phrase = "blocked in file I/O"
	case g.key == "":
		f.phrase = "in " + g.syscall
	case g.syscall == "":
		f.phrase = "blocked on " + g.key
	default:
		f.phrase = fmt.Sprintf("in %s of %s", g.syscall, g.key)
	}
	if g.count > 1 {
		f.phrase += fmt.Sprintf(" (%d waits, %s)", g.count, profile.FormatDuration(g.ns))
	}
	if len(groups) > 1 {
		f.phrase += fmt.Sprintf(" and %s", profile.Plural(len(groups)-1, "other file", "other files"))
	}
	return f
}

func lockFinding(p *profile.Profile) finding {
	segs := segmentsOf(p, profile.Lock)
	f := finding{
		cause:   profile.CauseLock,
		label:   string(profile.Lock),
		details: longest(segs, byDuration, segLine),
		count:   segCount(segs, profile.Lock),
	}
	// The waker of a futex wait is the thread that released the lock, i.e.
	// the holder the request was stuck behind: that is who to go and read.
	groups := group(segs, func(s profile.Segment) string { return waker(s) })
	if len(groups) == 0 {
		f.phrase = "blocked on a lock"
		return f
	}
	g := groups[0]
	what := "a lock"
	if g.syscall != "" {
		what = "a " + g.syscall
	}
	if r := parkReason(segs); r != "" {
		what = r // a goroutine's: sync.Mutex.Lock, semacquire, …
	}
	if g.key == "" {
		f.phrase = fmt.Sprintf("blocked on %s, holder not seen", what)
	} else {
		f.phrase = fmt.Sprintf("blocked on %s held by %s", what, g.key)
	}
	if g.count > 1 {
		f.phrase += fmt.Sprintf(" (%d waits, %s)", g.count, profile.FormatDuration(g.ns))
	}
	if len(groups) > 1 {
		f.phrase += fmt.Sprintf(" and %s", profile.Plural(len(groups)-1, "other holder", "other holders"))
	}
	return f
}

// parkPrefix starts the detail of a goroutine's park segment (assemble).
const parkPrefix = "goroutine parked: "

// parkReason is the Go wait reason most of segs' goroutine parks had.
func parkReason(segs []profile.Segment) string {
	groups := group(segs, func(s profile.Segment) string {
		r, _ := strings.CutPrefix(s.Detail, parkPrefix)
		if r == s.Detail {
			return ""
		}
		return r
	})
	if len(groups) == 0 {
		return ""
	}
	return groups[0].key
}

func sleepFinding(p *profile.Profile) finding {
	segs := segmentsOf(p, profile.Sleep)
	f := finding{
		cause:   profile.CauseSleep,
		label:   string(profile.Sleep),
		phrase:  "in a sleep syscall",
		details: longest(segs, byDuration, segLine),
		count:   segCount(segs, profile.Sleep),
	}
	if p.Accounting == profile.AccountingEventLoop {
		// On an event loop a sleep is a timer the request waited for
		// (setTimeout, asyncio.sleep), with nothing asked of the network.
		f.phrase = "waiting for a timer on its event loop (nothing asked of the network meanwhile)"
	}
	if p.Accounting == profile.AccountingGoroutine {
		// Go sleeps without a syscall: the goroutine parks until its timer.
		f.phrase = "parked until a timer (time.Sleep, a timer or ticker channel)"
		return f
	}
	if groups := group(segs, func(s profile.Segment) string { return s.Syscall }); len(groups) > 0 && groups[0].key != "" {
		f.phrase = "in " + groups[0].key
		if groups[0].count > 1 {
			f.phrase += fmt.Sprintf(" (%d calls)", groups[0].count)
		}
	}
	return f
}

func epollFinding(p *profile.Profile, top share, dnsTypical int64) finding {
	segs := segmentsOf(p, profile.Epoll)
	syscall := "epoll"
	if groups := group(segs, func(s profile.Segment) string { return s.Syscall }); len(groups) > 0 && groups[0].key != "" {
		syscall = groups[0].key
	}
	peers := peerWaits(p, segmentsOf(p, profile.Epoll, profile.Net), true)
	if len(peers) == 0 {
		return finding{
			cause:   profile.CauseUnknown,
			label:   string(profile.Epoll),
			phrase:  fmt.Sprintf("idle in %s, no downstream peer seen", syscall),
			details: longest(segs, byDuration, segLine),
			count:   segCount(segs, profile.Epoll) + "; the thread waited on nothing tracecam can name",
		}
	}
	if f, ok := dnsFinding(p, top, dnsTypical); ok {
		return f
	}
	return finding{
		cause:   profile.CauseNet,
		label:   string(profile.Epoll),
		phrase:  fmt.Sprintf("idle in %s waiting on %s, an async downstream", syscall, peers[0]),
		details: longest(segs, byDuration, segLine),
		count:   fmt.Sprintf("%s; %s waited on for %s", segCount(segs, profile.Epoll), peers[0].peer, profile.FormatDuration(peers[0].waitNS)),
	}
}

// loopFinding explains time a request was ready to run but its event loop
// worked for other requests: the classic "one slow handler blocks the whole
// process" — the fix is in the handlers that held the loop.
func loopFinding(p *profile.Profile) finding {
	segs := segmentsOf(p, profile.Loop)
	groups := group(segs, func(s profile.Segment) string { return s.Detail })
	f := finding{
		cause:  profile.CauseLoop,
		label:  string(profile.Loop),
		phrase: "ready, but its event loop was busy with other requests",
		count:  "the request had what it waited for; a handler that holds the event loop delays every request the process serves",
	}
	for _, g := range groups {
		if len(f.details) == maxSegmentEvidence {
			break
		}
		f.details = append(f.details, fmt.Sprintf("%s: %s", g.key, profile.FormatDuration(g.ns)))
	}
	if len(groups) > 0 && groups[0].key != "" {
		f.phrase = fmt.Sprintf("ready, but %s for %s", groups[0].key, profile.FormatDuration(groups[0].ns))
		if len(groups) > 1 {
			f.phrase += fmt.Sprintf(" (and %s)", profile.Plural(len(groups)-1, "other holder", "other holders"))
		}
	}
	return f
}

func otherFinding(p *profile.Profile) finding {
	segs := segmentsOf(p, profile.Other)
	f := finding{
		cause:   profile.CauseUnknown,
		label:   string(profile.Other),
		phrase:  "off-CPU for a reason tracecam does not classify",
		details: longest(segs, byDuration, segLine),
		count:   segCount(segs, profile.Other),
	}
	if groups := group(segs, func(s profile.Segment) string { return s.Syscall }); len(groups) > 0 && groups[0].key != "" {
		f.phrase = "off-CPU in " + groups[0].key
	}
	return f
}

// segGroup aggregates segments that share a key, so many short waits on the
// same thing outrank one longer wait on something else.
type segGroup struct {
	key     string
	ns      int64
	count   int
	syscall string // the syscall holding most of the group's time
}

func group(segs []profile.Segment, key func(profile.Segment) string) []segGroup {
	idx := map[string]int{}
	var out []segGroup
	sys := []map[string]int64{}
	for _, s := range segs {
		k := key(s)
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, segGroup{key: k})
			sys = append(sys, map[string]int64{})
		}
		out[i].ns += s.DurationNS
		out[i].count += max(s.Count, 1) // a segment may stand for several coalesced waits
		if s.Syscall != "" {
			sys[i][s.Syscall] += s.DurationNS
		}
	}
	for i := range out {
		var best int64 = -1
		for name, ns := range sys[i] {
			if ns > best || (ns == best && name < out[i].syscall) {
				best, out[i].syscall = ns, name
			}
		}
	}
	slices.SortStableFunc(out, func(a, b segGroup) int { return cmp.Compare(b.ns, a.ns) })
	return out
}

func waker(s profile.Segment) string {
	switch {
	case s.WakerTID != 0 && s.WakerName != "":
		return fmt.Sprintf("thread %d (%s)", s.WakerTID, s.WakerName)
	case s.WakerTID != 0:
		return fmt.Sprintf("thread %d", s.WakerTID)
	case s.WakerName != "":
		return s.WakerName // a goroutine ("goroutine 31")
	}
	return ""
}

// segLine is one segment as an evidence line, with the detail that lets a
// reader find the wait in the code: syscall, what it waited on, who woke it.
func segLine(s profile.Segment) string {
	name := s.Syscall
	if name == "" {
		name = string(s.Category)
	}
	parts := []string{fmt.Sprintf("%s %s at +%s", name, profile.FormatDuration(s.DurationNS), profile.FormatDuration(s.StartOffsetNS))}
	switch {
	case s.Peer != "":
		parts = append(parts, "on "+s.Peer)
	case s.File != "":
		parts = append(parts, "on "+s.File)
	case s.FDKind != "":
		parts = append(parts, "on a "+s.FDKind)
	}
	if s.Bytes > 0 {
		parts = append(parts, "("+profile.FormatBytes(s.Bytes)+")")
	}
	if w := waker(s); w != "" {
		parts = append(parts, "woken by "+w)
	}
	if s.Detail != "" {
		parts = append(parts, s.Detail)
	}
	return strings.Join(parts, " ")
}
