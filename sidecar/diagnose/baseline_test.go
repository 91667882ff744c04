package diagnose

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tracecam/tracecam/sidecar/profile"
)

func baseline(dur int64, b bd) *profile.Baseline {
	return &profile.Baseline{Method: "GET", Route: "/work", Samples: 240, Warm: true, DurationNS: dur, DurationP90NS: dur * 11 / 10, Breakdown: b}
}

func withBaseline(p *profile.Profile, b *profile.Baseline) *profile.Profile {
	p.Baseline = b
	return p
}

var lockHolder = []profile.Segment{{Category: profile.Lock, Syscall: "futex", StartOffsetNS: 1 * ms, DurationNS: 150 * ms, WakerTID: 25000, WakerName: "lock-holder"}}

func TestCompareVerdicts(t *testing.T) {
	steady := baseline(30*ms, bd{profile.Sleep: 20 * ms, profile.CPU: 8 * ms, profile.Runq: 1 * ms, profile.Lock: 50 * us})
	tests := []struct {
		name     string
		p        *profile.Profile
		verdict  profile.Verdict // "" = no comparison
		category profile.Category
		excess   int64 // ExcessNS, when set
		total    int64 // TotalExcessNS, when set
		cause    profile.Cause
		summary  []string // substrings
		evidence []string // substrings some evidence line holds
	}{
		{
			name:  "no baseline",
			p:     prof(bd{profile.Sleep: 20 * ms}, nil),
			cause: profile.CauseSleep,
		},
		{
			name: "warming up",
			p: withBaseline(prof(bd{profile.Sleep: 20 * ms, profile.Lock: 400 * ms}, nil),
				&profile.Baseline{Method: "GET", Route: "/work", Samples: 12, DurationNS: 20 * ms, Breakdown: bd{profile.Sleep: 20 * ms}}),
			verdict:  profile.VerdictWarmingUp,
			cause:    profile.CauseLock, // the usual rules
			summary:  []string{"lock: 400.0 ms (95%)"},
			evidence: []string{"GET /work has 12 of the 20 requests it needs"},
		},
		{
			name:     "typical request",
			p:        withBaseline(prof(bd{profile.Sleep: 20 * ms, profile.CPU: 10 * ms, profile.Runq: 3 * ms}, nil), steady),
			verdict:  profile.VerdictTypical,
			cause:    profile.CauseSleep,
			summary:  []string{"sleep: 20.0 ms (61%)"},
			evidence: []string{"as usual for GET /work: 33.0 ms vs typical 30.0 ms (median of 240 requests)"},
		},
		{
			name:    "faster than usual",
			p:       withBaseline(prof(bd{profile.CPU: 2 * ms}, nil), steady),
			verdict: profile.VerdictTypical,
			cause:   profile.CauseCPU,
		},
		{
			name:    "twice the median but under 1 ms slower",
			p:       withBaseline(prof(bd{profile.CPU: 1800 * us}, nil), baseline(900*us, bd{profile.CPU: 900 * us})),
			verdict: profile.VerdictTypical,
			cause:   profile.CauseCPU,
		},
		{
			name:     "a lock wait on a sleeping endpoint: lock, not the larger sleep",
			p:        withBaseline(prof(bd{profile.Sleep: 200 * ms, profile.CPU: 5 * ms, profile.Lock: 150 * ms}, lockHolder), baseline(205*ms, bd{profile.Sleep: 200 * ms, profile.CPU: 5 * ms})),
			verdict:  profile.VerdictDeviates,
			category: profile.Lock,
			excess:   150 * ms,
			total:    150 * ms,
			cause:    profile.CauseLock,
			summary:  []string{"lock 150.0 ms vs typical 0 ms (+150.0 ms) — 100% of the excess; blocked on a futex held by thread 25000 (lock-holder)"},
			evidence: []string{"vs typical: 355.0 ms is 1.7× the median 205.0 ms of GET /work (240 requests)", "breakdown: sleep 56%"},
		},
		{
			name: "the issue's example",
			p: withBaseline(prof(bd{profile.Lock: 412 * ms, profile.CPU: 30 * ms, profile.Sleep: 20 * ms}, lockHolder),
				baseline(45*ms, bd{profile.Lock: 3 * ms, profile.CPU: 2 * ms, profile.Sleep: 20 * ms})),
			verdict:  profile.VerdictDeviates,
			category: profile.Lock,
			excess:   409 * ms,
			total:    437 * ms,
			cause:    profile.CauseLock,
			summary:  []string{"lock 412.0 ms vs typical 3.0 ms (+409.0 ms) — 94% of the excess"},
		},
		{
			name:     "everything proportionally slower",
			p:        withBaseline(prof(bd{profile.CPU: 30 * ms, profile.Sleep: 30 * ms}, nil), baseline(20*ms, bd{profile.CPU: 10 * ms, profile.Sleep: 10 * ms})),
			verdict:  profile.VerdictProportional,
			category: profile.CPU,
			total:    40 * ms,
			cause:    profile.CauseUnknown,
			summary:  []string{"proportionally slower: 60.0 ms is 3.0× the typical 20.0 ms of GET /work, with the usual mix (cpu 50% vs 50%, sleep 50% vs 50%)"},
			evidence: []string{"typical: cpu 50% (10.0 ms), sleep 50% (10.0 ms)", "excess 40.0 ms: cpu +20.0 ms (50%), sleep +20.0 ms (50%)"},
		},
		{
			name:     "roughly proportional, with noise",
			p:        withBaseline(prof(bd{profile.CPU: 25 * ms, profile.Net: 50 * ms, profile.Runq: 5 * ms}, nil), baseline(40*ms, bd{profile.CPU: 12 * ms, profile.Net: 26 * ms, profile.Runq: 1 * ms})),
			verdict:  profile.VerdictProportional,
			category: profile.Net,
			cause:    profile.CauseUnknown,
		},
		{
			name:     "the usual dominant category grew alone: a deviation, not proportional",
			p:        withBaseline(prof(bd{profile.CPU: 200 * ms, profile.Runq: 2 * ms}, nil), baseline(20*ms, bd{profile.CPU: 19 * ms, profile.Runq: 1 * ms})),
			verdict:  profile.VerdictDeviates,
			category: profile.CPU,
			excess:   181 * ms,
			total:    182 * ms,
			cause:    profile.CauseCPU,
			summary:  []string{"cpu 200.0 ms vs typical 19.0 ms (+181.0 ms) — 99% of the excess; on CPU"},
		},
		{
			name:     "excess spread over new categories is mixed",
			p:        withBaseline(prof(bd{profile.CPU: 10 * ms, profile.Sleep: 10 * ms, profile.Lock: 40 * ms, profile.File: 38 * ms, profile.Net: 20 * ms}, nil), baseline(20*ms, bd{profile.CPU: 10 * ms, profile.Sleep: 10 * ms})),
			verdict:  profile.VerdictDeviates,
			category: profile.Lock,
			excess:   40 * ms,
			total:    98 * ms,
			cause:    profile.CauseLock,
			summary:  []string{"mixed: lock +40.0 ms (41%), file +38.0 ms (39%) of the excess — lock 40.0 ms vs typical 0 ms (+40.0 ms) — 41% of the excess"},
		},
		{
			name: "slow DNS on an endpoint that always calls a downstream is dns",
			p: with(withBaseline(prof(bd{profile.Net: 170 * ms, profile.CPU: 5 * ms}, nil), &profile.Baseline{
				Method: "GET", Route: "/checkout", Samples: 50, Warm: true, DurationNS: 105 * ms,
				Breakdown: bd{profile.Net: 100 * ms, profile.CPU: 5 * ms}, DNSNS: 1 * ms,
			}), func(p *profile.Profile) {
				p.DNS = []profile.DNSQuery{{Name: "payments.svc", Type: "A", LatencyNS: 71 * ms, Answered: true, Rcode: "NOERROR"}}
			}),
			verdict:  profile.VerdictDeviates,
			category: profile.Net,
			excess:   70 * ms,
			cause:    profile.CauseDNS,
			summary:  []string{"dns: net 170.0 ms vs typical 100.0 ms (+70.0 ms) — 100% of the excess; resolving payments.svc"},
		},
		{
			name: "idle epoll with no downstream is unknown",
			p: withBaseline(prof(bd{profile.Epoll: 90 * ms, profile.CPU: 5 * ms}, nil),
				baseline(10*ms, bd{profile.CPU: 5 * ms, profile.Epoll: 5 * ms})),
			verdict:  profile.VerdictDeviates,
			category: profile.Epoll,
			cause:    profile.CauseUnknown,
		},
		{
			name: "partial capture is still compared",
			p: with(withBaseline(prof(bd{profile.Sleep: 20 * ms, profile.File: 90 * ms}, nil), steady), func(p *profile.Profile) {
				p.Partial, p.PartialReason = true, "lost 3 events"
			}),
			verdict:  profile.VerdictDeviates,
			category: profile.File,
			cause:    profile.CauseFile,
			evidence: []string{"partial capture: lost 3 events"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := Compare(tt.p)
			if ok != (tt.verdict != "") || d.Verdict != tt.verdict {
				t.Fatalf("Compare = %+v, %v; want verdict %q", d, ok, tt.verdict)
			}
			if tt.category != "" && d.Category != tt.category {
				t.Errorf("category = %q, want %q", d.Category, tt.category)
			}
			if tt.excess != 0 && d.ExcessNS != tt.excess {
				t.Errorf("excess = %d, want %d", d.ExcessNS, tt.excess)
			}
			if tt.total != 0 && d.TotalExcessNS != tt.total {
				t.Errorf("total excess = %d, want %d", d.TotalExcessNS, tt.total)
			}
			got := Diagnose(tt.p)
			if got.Cause != tt.cause {
				t.Errorf("cause = %q, want %q (%s)", got.Cause, tt.cause, got.Summary)
			}
			if c := Cause(tt.p); c != got.Cause {
				t.Errorf("Cause() = %q, Diagnose().Cause = %q", c, got.Cause)
			}
			if ok != (got.Deviation != nil) || (ok && *got.Deviation != d) {
				t.Errorf("Diagnose().Deviation = %+v, Compare = %+v", got.Deviation, d)
			}
			for _, s := range tt.summary {
				if !strings.Contains(got.Summary, s) {
					t.Errorf("summary\n %q\nlacks\n %q", got.Summary, s)
				}
			}
			if n := len(got.Evidence); n < 2 || n > 5 {
				t.Errorf("evidence has %d lines, want 2..5: %q", n, got.Evidence)
			}
			for _, e := range tt.evidence {
				found := false
				for _, l := range got.Evidence {
					found = found || strings.Contains(l, e)
				}
				if !found {
					t.Errorf("no evidence line holds %q: %q", e, got.Evidence)
				}
			}
			if tt.p.Partial && !strings.HasPrefix(got.Evidence[len(got.Evidence)-1], "partial capture") {
				t.Errorf("partial note is not last: %q", got.Evidence)
			}
		})
	}
}

// TestCauseMatchesDiagnose checks the allocation-free Cause against the
// full diagnosis on random profiles and baselines.
func TestCauseMatchesDiagnose(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	cats := append([]profile.Category{"gpu"}, profile.Categories...)
	randBD := func() bd {
		b := bd{}
		for _, c := range cats {
			if rng.IntN(3) == 0 {
				b[c] = rng.Int64N(100*ms) - ms
			}
		}
		return b
	}
	peers := []string{"", "10.0.0.9:41000", "10.1.0.1:80", "10.96.0.10:53"}
	for i := range 20000 {
		p := &profile.Profile{Breakdown: randBD(), Client: "10.0.0.9:41000", DurationNS: rng.Int64N(200 * ms)}
		for range rng.IntN(3) {
			p.Timeline = append(p.Timeline, profile.Segment{Category: cats[rng.IntN(len(cats))], Peer: peers[rng.IntN(len(peers))], DurationNS: rng.Int64N(50 * ms)})
		}
		for range rng.IntN(2) {
			p.Network = append(p.Network, profile.NetworkPeer{Peer: peers[rng.IntN(len(peers))], WaitNS: rng.Int64N(2) * ms})
		}
		for range rng.IntN(3) {
			p.DNS = append(p.DNS, profile.DNSQuery{Name: "x", LatencyNS: rng.Int64N(80 * ms)})
		}
		if rng.IntN(4) > 0 {
			p.Baseline = &profile.Baseline{Warm: rng.IntN(5) > 0, DurationNS: rng.Int64N(100 * ms), Breakdown: randBD(), DNSNS: rng.Int64N(10 * ms)}
		}
		if c, d := Cause(p), Diagnose(p); c != d.Cause {
			t.Fatalf("case %d: Cause() = %q, Diagnose() = %q (%s)\n%+v\nbaseline %+v", i, c, d.Cause, d.Summary, p, p.Baseline)
		}
	}
}

func TestCompareAndCauseDoNotAllocate(t *testing.T) {
	p := withBaseline(prof(bd{profile.Sleep: 200 * ms, profile.CPU: 5 * ms, profile.Lock: 150 * ms}, lockHolder),
		baseline(205*ms, bd{profile.Sleep: 200 * ms, profile.CPU: 5 * ms}))
	p.DNS = []profile.DNSQuery{{LatencyNS: ms}}
	if n := testing.AllocsPerRun(100, func() {
		Compare(p)
		Cause(p)
	}); n != 0 {
		t.Errorf("Compare + Cause allocate %.0f times", n)
	}
}
