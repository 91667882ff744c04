package diagnose

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// The comparison with the endpoint's baseline (step 3 of the drill). A
// request is judged only against a warm baseline, and only when it is
// markedly slower than the endpoint's median; then its excess — each
// category's time above that category's median — says what changed.
const (
	// slowNum/slowDen is 1.5: a request under 1.5× the median duration is
	// typical, whatever its mix.
	slowNum, slowDen = 3, 2
	// slowFloorNS: nor is one less than 1 ms slower than the median (the
	// noise of a busy node on a sub-millisecond endpoint).
	slowFloorNS = 1_000_000
	// concentrated: a category holding 80% of the excess is the deviation,
	// even on an endpoint whose time usually goes there too.
	concentrated = 0.8
	// proportionalDistance: below it (total variation distance between how
	// the excess and the typical time split over categories), the request
	// is the usual request, only slower.
	proportionalDistance = 0.25
)

// Compare judges p against the baseline it carries. ok is false when p has
// no baseline. It does not allocate: the sidecar runs it for every request
// it counts in /metrics.
func Compare(p *profile.Profile) (d profile.Deviation, ok bool) {
	if p == nil || p.Baseline == nil {
		return d, false
	}
	b := p.Baseline
	if !b.Warm {
		return profile.Deviation{Verdict: profile.VerdictWarmingUp}, true
	}
	dur, med := p.DurationNS, b.DurationNS
	if dur*slowDen < med*slowNum || dur-med < slowFloorNS {
		return profile.Deviation{Verdict: profile.VerdictTypical}, true
	}
	var excess, typical int64
	top, topNS := profile.Category(""), int64(0)
	for c, a := range p.Breakdown {
		e := a - b.Breakdown[c]
		if e <= 0 {
			continue
		}
		excess += e
		if e > topNS || (e == topNS && before(c, top)) {
			top, topNS = c, e
		}
	}
	if excess == 0 {
		// Slower in total, yet no category above its median: nothing
		// stands out.
		return profile.Deviation{Verdict: profile.VerdictTypical}, true
	}
	for _, t := range b.Breakdown {
		typical += max(t, 0)
	}
	d = profile.Deviation{
		Verdict: profile.VerdictDeviates, Category: top,
		ActualNS: p.Breakdown[top], TypicalNS: b.Breakdown[top], ExcessNS: topNS, TotalExcessNS: excess,
	}
	if float64(topNS) >= concentrated*float64(excess) || typical == 0 {
		return d, true
	}
	// Total variation distance between the split of the excess and the
	// split of the typical request.
	var dist float64
	for c, a := range p.Breakdown {
		t := max(b.Breakdown[c], 0)
		x := float64(max(a-t, 0)) / float64(excess)
		dist += math.Abs(x - float64(t)/float64(typical))
	}
	for c, t := range b.Breakdown {
		if _, seen := p.Breakdown[c]; !seen && t > 0 {
			dist += float64(t) / float64(typical)
		}
	}
	if dist/2 <= proportionalDistance {
		d.Verdict = profile.VerdictProportional
	}
	return d, true
}

// before orders categories for ties: contract order, then by name.
func before(a, b profile.Category) bool {
	if b == "" {
		return true
	}
	if ia, ib := catIndex(a), catIndex(b); ia != ib {
		return ia < ib
	}
	return a < b
}

// Cause is the cause Diagnose(p) names, computed without building any
// text or allocating, so it can be counted for every request.
func Cause(p *profile.Profile) profile.Cause {
	c, _, _ := CauseAndDeviation(p)
	return c
}

// CauseAndDeviation is Cause and Compare in one pass.
func CauseAndDeviation(p *profile.Profile) (profile.Cause, profile.Deviation, bool) {
	d, ok := Compare(p)
	if p == nil || p.DurationNS <= 0 || p.Accounting == profile.AccountingEstimated {
		return profile.CauseUnknown, d, ok
	}
	top, topNS := profile.Category(""), int64(0)
	for c, ns := range p.Breakdown {
		if ns > 0 && (ns > topNS || (ns == topNS && before(c, top))) {
			top, topNS = c, ns
		}
	}
	if topNS == 0 {
		return profile.CauseUnknown, d, ok
	}
	if ok {
		switch d.Verdict {
		case profile.VerdictProportional:
			return profile.CauseUnknown, d, ok
		case profile.VerdictDeviates:
			return causeOf(p, d.Category, d.ExcessNS, p.Baseline.DNSNS), d, ok
		}
	}
	return causeOf(p, top, topNS, 0), d, ok
}

// causeOf maps the deciding category (holding ns) to its cause with the
// refinements of the rules; dnsTypical is subtracted from the lookups'
// time when the decision is about an excess.
func causeOf(p *profile.Profile, c profile.Category, ns, dnsTypical int64) profile.Cause {
	switch c {
	case profile.CPU:
		return profile.CauseCPU
	case profile.Runq:
		return profile.CauseRunq
	case profile.Net:
		if isDNS(p, ns, dnsTypical) {
			return profile.CauseDNS
		}
		if isTCPWindow(p, ns) {
			return profile.CauseTCPWindow
		}
		return profile.CauseNet
	case profile.File:
		return profile.CauseFile
	case profile.Lock:
		if isGC(p, ns) {
			return profile.CauseGC
		}
		return profile.CauseLock
	case profile.Sleep:
		if loopWaitedForWindow(p, ns) {
			return profile.CauseTCPWindow
		}
		return profile.CauseSleep
	case profile.Queue:
		return profile.CauseQueue
	case profile.Loop:
		return profile.CauseLoop
	case profile.GC:
		return profile.CauseGC
	case profile.Epoll:
		if isTCPWindow(p, ns) {
			return profile.CauseTCPWindow
		}
		if !hasPeer(p) {
			return profile.CauseUnknown
		}
		if isDNS(p, ns, dnsTypical) {
			return profile.CauseDNS
		}
		return profile.CauseNet
	}
	return profile.CauseUnknown
}

// isDNS is the dns refinement: the lookups (above their typical time) hold
// at least half of ns.
func isDNS(p *profile.Profile, ns, dnsTypical int64) bool {
	if len(p.DNS) == 0 {
		return false
	}
	var total int64
	for _, q := range p.DNS {
		total += q.LatencyNS
	}
	return (total-dnsTypical)*2 >= ns
}

// hasPeer says whether peerWaits(p, epoll and net segments, skipping the
// client) would find anyone.
func hasPeer(p *profile.Profile) bool {
	for _, s := range p.Timeline {
		if (s.Category == profile.Epoll || s.Category == profile.Net) && s.Peer != "" && s.Peer != p.Client {
			return true
		}
	}
	for _, n := range p.Network {
		if n.Peer != "" && n.Peer != p.Client && n.WaitNS > 0 {
			return true
		}
	}
	return false
}

func endpointName(b *profile.Baseline) string {
	return strings.TrimSpace(b.Method + " " + b.Route)
}

// versusLine puts the request next to the endpoint's median.
func versusLine(p *profile.Profile) string {
	b := p.Baseline
	return fmt.Sprintf("vs typical: %s is %s the median %s of %s (%s)",
		profile.FormatDuration(p.DurationNS), ratio(p.DurationNS, b.DurationNS), profile.FormatDuration(b.DurationNS),
		endpointName(b), profile.Plural(int(b.Samples), "request", "requests"))
}

func ratio(a, b int64) string {
	if b <= 0 {
		return "∞×"
	}
	return fmt.Sprintf("%.1f×", float64(a)/float64(b))
}

// baselineNote is the evidence line of a request the baseline does not
// single out.
func baselineNote(p *profile.Profile, d profile.Deviation) string {
	b := p.Baseline
	if d.Verdict == profile.VerdictWarmingUp {
		return fmt.Sprintf("no verdict against the baseline yet: %s has %d of the %d requests it needs",
			endpointName(b), b.Samples, profile.BaselineMinSamples)
	}
	return fmt.Sprintf("as usual for %s: %s vs typical %s (median of %s)",
		endpointName(b), profile.FormatDuration(p.DurationNS), profile.FormatDuration(b.DurationNS),
		profile.Plural(int(b.Samples), "request", "requests"))
}

// excesses lists every category's time above its median, largest first.
func excesses(p *profile.Profile) []share {
	var out []share
	for c, a := range p.Breakdown {
		if e := a - p.Baseline.Breakdown[c]; e > 0 {
			out = append(out, share{c, e})
		}
	}
	slices.SortFunc(out, func(a, b share) int {
		if a.ns != b.ns {
			return cmp.Compare(b.ns, a.ns)
		}
		if before(a.cat, b.cat) {
			return -1
		}
		return 1
	})
	return out
}

func excessLine(ex []share, total int64, n int) string {
	parts := make([]string, 0, n)
	for _, s := range ex[:min(n, len(ex))] {
		parts = append(parts, fmt.Sprintf("%s +%s (%s)", s.cat, profile.FormatDuration(s.ns), profile.FormatPercent(s.ns, total)))
	}
	return strings.Join(parts, ", ")
}

// deviating diagnoses a request whose excess sits in d.Category: the cause
// and its detail come from that category, not from the largest one.
func deviating(p *profile.Profile, shares []share, denom int64, d profile.Deviation) profile.Diagnosis {
	f := analyze(p, share{d.Category, d.ExcessNS}, p.Baseline.DNSNS)
	typical := profile.FormatDuration(d.TypicalNS)
	if d.TypicalNS == 0 {
		typical = "0 ms"
	}
	head := fmt.Sprintf("%s %s vs typical %s (+%s) — %s of the excess", d.Category,
		profile.FormatDuration(d.ActualNS), typical, profile.FormatDuration(d.ExcessNS),
		profile.FormatPercent(d.ExcessNS, d.TotalExcessNS))
	if f.label != string(d.Category) {
		head = f.label + ": " + head
	}
	summary := head + "; " + f.phrase
	if d.ExcessNS*2 < d.TotalExcessNS {
		summary = "mixed: " + excessLine(excesses(p), d.TotalExcessNS, 2) + " of the excess — " + summary
	}
	evidence := []string{versusLine(p), "breakdown: " + shareLine(shares, denom, 3)}
	room := maxEvidence - 3
	if p.Partial {
		room--
	}
	evidence = append(evidence, f.details[:min(len(f.details), room, maxSegmentEvidence)]...)
	evidence = append(evidence, f.count)
	return profile.Diagnosis{Cause: f.cause, Summary: summary, Evidence: withPartial(p, evidence), Deviation: &d}
}

// proportional diagnoses a request that is the usual request, only slower:
// naming its largest category would send the reader after a change that
// did not happen.
func proportional(p *profile.Profile, shares []share, denom int64, d profile.Deviation) profile.Diagnosis {
	b := p.Baseline
	typ, typTotal := rank(b.Breakdown)
	mix := make([]string, 0, 2)
	for _, s := range shares[:min(2, len(shares))] {
		mix = append(mix, fmt.Sprintf("%s %s vs %s", s.cat, profile.FormatPercent(s.ns, denom), profile.FormatPercent(max(b.Breakdown[s.cat], 0), typTotal)))
	}
	summary := fmt.Sprintf("proportionally slower: %s is %s the typical %s of %s, with the usual mix (%s); no single category explains the excess",
		profile.FormatDuration(p.DurationNS), ratio(p.DurationNS, b.DurationNS), profile.FormatDuration(b.DurationNS),
		endpointName(b), strings.Join(mix, ", "))
	evidence := []string{
		versusLine(p),
		"breakdown: " + shareLine(shares, denom, 3),
		"typical: " + shareLine(typ, typTotal, 3),
		fmt.Sprintf("excess %s: %s", profile.FormatDuration(d.TotalExcessNS), excessLine(excesses(p), d.TotalExcessNS, 3)),
		"everything grew together: more work per request (a larger input?) or a slower node, not one resource",
	}
	if p.Partial {
		evidence = evidence[:4]
	}
	return profile.Diagnosis{Cause: profile.CauseUnknown, Summary: summary, Evidence: withPartial(p, evidence), Deviation: &d}
}
