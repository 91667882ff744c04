package diagnose

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tracecam/tracecam/sidecar/profile"
)

const (
	us = int64(1_000)
	ms = int64(1_000_000)
)

type bd = map[profile.Category]int64

// prof builds a profile whose duration is the breakdown's sum, as the
// contract promises, so each case states only what it is about.
func prof(b bd, tl []profile.Segment) *profile.Profile {
	var total int64
	for _, ns := range b {
		total += ns
	}
	return &profile.Profile{DurationNS: total, Breakdown: b, Timeline: tl, Client: "10.0.0.9:41000"}
}

func with(p *profile.Profile, f func(*profile.Profile)) *profile.Profile {
	f(p)
	return p
}

func TestDiagnose(t *testing.T) {
	tests := []struct {
		name     string
		p        *profile.Profile
		cause    profile.Cause
		summary  string   // exact, when set
		contain  []string // substrings of the summary
		evidence []string // substrings that some evidence line must hold
	}{
		{
			name:    "nil profile",
			p:       nil,
			cause:   profile.CauseUnknown,
			summary: "unknown: no profile",
		},
		{
			name:    "zero duration",
			p:       &profile.Profile{},
			cause:   profile.CauseUnknown,
			summary: "unknown: request duration is zero, nothing to attribute",
		},
		{
			name:    "empty breakdown",
			p:       &profile.Profile{DurationNS: 12 * ms},
			cause:   profile.CauseUnknown,
			summary: "unknown: empty breakdown for a 12.0 ms request, no events were attributed",
		},
		{
			name:    "only zero and negative entries",
			p:       &profile.Profile{DurationNS: 5 * ms, Breakdown: bd{profile.CPU: 0, profile.Lock: -3}},
			cause:   profile.CauseUnknown,
			contain: []string{"empty breakdown"},
		},
		{
			name:     "cpu",
			p:        prof(bd{profile.CPU: 198 * ms, profile.Runq: 2 * ms}, nil),
			cause:    profile.CauseCPU,
			summary:  "cpu: 198.0 ms (99%) on CPU",
			evidence: []string{"breakdown: cpu 99% (198.0 ms), runq 1% (2.0 ms)", "0 off-CPU waits"},
		},
		{
			name: "runq names the longest post-wake-up delay",
			p: prof(bd{profile.Runq: 150 * ms, profile.CPU: 50 * ms}, []profile.Segment{
				{Category: profile.Lock, Syscall: "futex", StartOffsetNS: 1 * ms, DurationNS: 2 * ms, RunqNS: 40 * ms},
				{Category: profile.Net, Syscall: "read", StartOffsetNS: 60 * ms, DurationNS: 3 * ms, RunqNS: 90 * ms},
			}),
			cause:    profile.CauseRunq,
			summary:  "runq: 150.0 ms (75%) runnable but waiting for a CPU (longest 90.0 ms after a wake-up)",
			evidence: []string{"90.0 ms waiting for a CPU after read", "2 waits followed by a runq delay"},
		},
		{
			name: "runq from hypervisor steal says so",
			p: func() *profile.Profile {
				p := prof(bd{profile.Runq: 120 * ms, profile.CPU: 80 * ms}, nil)
				p.StealNS = 110 * ms
				return p
			}(),
			cause:    profile.CauseRunq,
			summary:  "runq: 120.0 ms (60%) runnable but waiting for a CPU; 110.0 ms of it hypervisor steal (the VM's vCPU was not running)",
			evidence: []string{"hypervisor steal 110.0 ms"},
		},
		{
			name: "loop names the request that held the event loop",
			p: func() *profile.Profile {
				p := prof(bd{profile.Loop: 160 * ms, profile.Sleep: 150 * ms, profile.CPU: 2 * ms}, []profile.Segment{
					{Category: profile.Sleep, StartOffsetNS: 1 * ms, DurationNS: 150 * ms, Detail: "timer: the event loop waited for its next timer"},
					{Category: profile.Loop, StartOffsetNS: 151 * ms, DurationNS: 160 * ms, HolderTraceID: "33333333333333333333333333333333",
						Detail: "the event loop was busy with GET /hog (trace 33333333333333333333333333333333)"},
				})
				p.Accounting = profile.AccountingEventLoop
				return p
			}(),
			cause:    profile.CauseLoop,
			contain:  []string{"loop: 160.0 ms", "event loop was busy with GET /hog (trace 33333333333333333333333333333333) for 160.0 ms"},
			evidence: []string{"GET /hog", "delays every request"},
		},
		{
			name: "goroutine: a Go lock names the wait reason",
			p: func() *profile.Profile {
				p := prof(bd{profile.Lock: 200 * ms, profile.CPU: 1 * ms}, []profile.Segment{
					{Category: profile.Lock, StartOffsetNS: 1 * ms, DurationNS: 200 * ms, Detail: "goroutine parked: sync.Mutex.Lock"},
				})
				p.Accounting = profile.AccountingGoroutine
				return p
			}(),
			cause:    profile.CauseLock,
			summary:  "lock: 200.0 ms (100%) blocked on sync.Mutex.Lock, holder not seen",
			evidence: []string{"goroutine parked: sync.Mutex.Lock"},
		},
		{
			name: "goroutine: the goroutine that released the lock is named",
			p: func() *profile.Profile {
				p := prof(bd{profile.Lock: 200 * ms, profile.CPU: 1 * ms}, []profile.Segment{
					{Category: profile.Lock, StartOffsetNS: 1 * ms, DurationNS: 200 * ms, Detail: "goroutine parked: sync.Mutex.Lock", WakerName: "goroutine 31"},
				})
				p.Accounting = profile.AccountingGoroutine
				return p
			}(),
			cause:   profile.CauseLock,
			summary: "lock: 200.0 ms (100%) blocked on sync.Mutex.Lock held by goroutine 31",
		},
		{
			name: "goroutine: a sleep is a timer, not a syscall",
			p: func() *profile.Profile {
				p := prof(bd{profile.Sleep: 200 * ms}, []profile.Segment{
					{Category: profile.Sleep, DurationNS: 200 * ms, Detail: "goroutine parked: sleep"},
				})
				p.Accounting = profile.AccountingGoroutine
				return p
			}(),
			cause:   profile.CauseSleep,
			summary: "sleep: 200.0 ms (100%) parked until a timer (time.Sleep, a timer or ticker channel)",
		},
		{
			name: "goroutine: a channel wait is queue, said as such",
			p: func() *profile.Profile {
				p := prof(bd{profile.Queue: 180 * ms, profile.CPU: 20 * ms}, []profile.Segment{
					{Category: profile.Queue, DurationNS: 180 * ms, Detail: "goroutine parked: chan receive"},
				})
				p.Accounting = profile.AccountingGoroutine
				return p
			}(),
			cause:    profile.CauseQueue,
			contain:  []string{"parked on a channel"},
			evidence: []string{"chan receive"},
		},
		{
			name: "goroutine: parked for the collector is gc",
			p: func() *profile.Profile {
				p := prof(bd{profile.GC: 150 * ms, profile.CPU: 50 * ms}, []profile.Segment{
					{Category: profile.GC, DurationNS: 150 * ms, Detail: "goroutine parked: GC assist wait"},
				})
				p.Accounting = profile.AccountingGoroutine
				return p
			}(),
			cause:    profile.CauseGC,
			contain:  []string{"garbage collector"},
			evidence: []string{"GC assist wait"},
		},
		{
			name: "an estimated breakdown gives no verdict",
			p: func() *profile.Profile {
				p := prof(bd{profile.Lock: 160 * ms, profile.CPU: 40 * ms}, nil)
				p.Accounting, p.Partial, p.PartialReason = profile.AccountingEstimated, true, "a Go program"
				return p
			}(),
			cause:    profile.CauseUnknown,
			contain:  []string{"could not follow"},
			evidence: []string{"estimated breakdown (not a verdict): lock 80%", "partial capture: a Go program"},
		},
		{
			name: "lock with waker",
			p: prof(bd{profile.Lock: 201_300 * us, profile.CPU: 6 * ms}, []profile.Segment{
				{Category: profile.Lock, Syscall: "futex", StartOffsetNS: 400 * us, DurationNS: 201_300 * us, WakerTID: 4242, WakerName: "worker-2"},
			}),
			cause:    profile.CauseLock,
			summary:  "lock: 201.3 ms (97%) blocked on a futex held by thread 4242 (worker-2)",
			evidence: []string{"futex 201.3 ms at +0.4 ms woken by thread 4242 (worker-2)", "1 lock wait totalling 201.3 ms"},
		},
		{
			name: "lock aggregates many short waits on one holder",
			p: prof(bd{profile.Lock: 100 * ms}, []profile.Segment{
				{Category: profile.Lock, Syscall: "futex", DurationNS: 40 * ms, WakerTID: 7},
				{Category: profile.Lock, Syscall: "futex", DurationNS: 20 * ms, WakerTID: 8, WakerName: "gc"},
				{Category: profile.Lock, Syscall: "futex", DurationNS: 20 * ms, WakerTID: 8, WakerName: "gc"},
				{Category: profile.Lock, Syscall: "futex", DurationNS: 20 * ms, WakerTID: 8, WakerName: "gc"},
			}),
			cause:   profile.CauseLock,
			summary: "lock: 100.0 ms (100%) blocked on a futex held by thread 8 (gc) (3 waits, 60.0 ms) and 1 other holder",
		},
		{
			name: "a response held back by the client's receive window is tcp_window",
			p: with(prof(bd{profile.Net: 900 * ms, profile.CPU: 20 * ms}, []profile.Segment{
				{Category: profile.Net, Syscall: "write", FDKind: "socket", Peer: "10.0.0.9:41000", StartOffsetNS: 5 * ms, DurationNS: 880 * ms},
			}), func(p *profile.Profile) {
				p.ResponseBytes = 1 << 20
				p.TCP = &profile.TCPSend{WindowLimitedNS: 850 * ms, PeerWindowMinBytes: 85 << 10, PeerWindowBytes: 85 << 10}
			}),
			cause:    profile.CauseTCPWindow,
			contain:  []string{"held back by the client's TCP receive window for 850.0 ms", "window as small as 85.0 KiB"},
			evidence: []string{"write 880.0 ms", "the client advertised 85.0 KiB at most"},
		},
		{
			// Measured: nginx sending 16 MiB to curl --limit-rate waits in
			// epoll_wait with its send timer as the timeout; the loop
			// accounting calls that wait sleep (timer), but the response
			// was held back by the client's window all along.
			name: "an event loop's timer wait while the client's window holds the response is tcp_window",
			p: with(prof(bd{profile.Sleep: 740 * ms, profile.CPU: 4 * ms, profile.Runq: 3 * ms}, []profile.Segment{
				{Category: profile.Sleep, StartOffsetNS: 114 * ms, DurationNS: 630 * ms, Detail: "timer: the event loop waited for its next timer"},
			}), func(p *profile.Profile) {
				p.Accounting = profile.AccountingEventLoop
				p.ResponseBytes = 16 << 20
				p.TCP = &profile.TCPSend{WindowLimitedNS: 662 * ms, PeerWindowBytes: 272 << 10}
			}),
			cause:   profile.CauseTCPWindow,
			contain: []string{"held back by the client's TCP receive window for 662.0 ms"},
		},
		{
			name: "a thread's real sleep stays sleep whatever the window",
			p: with(prof(bd{profile.Sleep: 740 * ms, profile.CPU: 4 * ms}, []profile.Segment{
				{Category: profile.Sleep, Syscall: "nanosleep", DurationNS: 740 * ms},
			}), func(p *profile.Profile) {
				p.Accounting = profile.AccountingThread
				p.TCP = &profile.TCPSend{WindowLimitedNS: 700 * ms}
			}),
			cause: profile.CauseSleep,
		},
		{
			name: "a slow downstream stays net even with a briefly limited window",
			p: with(prof(bd{profile.Net: 300 * ms}, []profile.Segment{
				{Category: profile.Net, Syscall: "read", FDKind: "socket", Peer: "10.1.0.5:5432", DurationNS: 290 * ms},
			}), func(p *profile.Profile) {
				p.TCP = &profile.TCPSend{WindowLimitedNS: 2 * ms, PeerWindowMinBytes: 64 << 10, PeerWindowBytes: 128 << 10}
			}),
			cause: profile.CauseNet,
		},
		{
			name: "JVM safepoint stops are gc, naming the VM thread",
			p: prof(bd{profile.Lock: 135 * ms, profile.CPU: 4 * ms, profile.Runq: 8 * ms}, []profile.Segment{
				{Category: profile.Lock, Syscall: "futex", StartOffsetNS: 3 * ms, DurationNS: 40 * ms, WakerTID: 7605, WakerName: "VM Thread"},
				{Category: profile.Lock, Syscall: "futex", StartOffsetNS: 50 * ms, DurationNS: 48 * ms, WakerTID: 7605, WakerName: "VM Thread"},
				{Category: profile.Lock, Syscall: "futex", StartOffsetNS: 100 * ms, DurationNS: 45 * ms, WakerTID: 7605, WakerName: "VM Thread", Count: 2},
			}),
			cause:    profile.CauseGC,
			summary:  "gc: 135.0 ms (92%) stopped at 4 safepoints by the runtime's collector (thread 7605 (VM Thread) 133.0 ms): stop-the-world garbage collection",
			evidence: []string{"futex 48.0 ms at +50.0 ms woken by thread 7605 (VM Thread)", "4 pauses totalling 133.0 ms"},
		},
		{
			name: "lock held by an app thread stays lock next to a short GC stop",
			p: prof(bd{profile.Lock: 210 * ms}, []profile.Segment{
				{Category: profile.Lock, Syscall: "futex", DurationNS: 200 * ms, WakerTID: 42, WakerName: "worker-1"},
				{Category: profile.Lock, Syscall: "futex", DurationNS: 10 * ms, WakerTID: 7, WakerName: "GC Thread#0"},
			}),
			cause:   profile.CauseLock,
			contain: []string{"held by thread 42 (worker-1)"},
		},
		{
			name: "lock without waker",
			p: prof(bd{profile.Lock: 10 * ms}, []profile.Segment{
				{Category: profile.Lock, Syscall: "futex", DurationNS: 10 * ms},
			}),
			cause:   profile.CauseLock,
			summary: "lock: 10.0 ms (100%) blocked on a futex, holder not seen",
		},
		{
			name: "net to a downstream peer",
			p: with(prof(bd{profile.Net: 205 * ms, profile.CPU: 9 * ms}, []profile.Segment{
				{Category: profile.Net, Syscall: "recvfrom", FDKind: "socket", Peer: "127.0.0.1:9000", StartOffsetNS: 3 * ms, DurationNS: 205 * ms, Bytes: 512},
			}), func(p *profile.Profile) {
				p.Network = []profile.NetworkPeer{{Peer: "127.0.0.1:9000", Protocol: "tcp", WaitNS: 205 * ms, Calls: 1}}
			}),
			cause:    profile.CauseNet,
			summary:  "net: 205.0 ms (96%) waiting on 127.0.0.1:9000 (1 call)",
			evidence: []string{"recvfrom 205.0 ms at +3.0 ms on 127.0.0.1:9000 (512 B)"},
		},
		{
			name: "net uses network summary when no segment crossed the threshold",
			p: with(prof(bd{profile.Net: 30 * ms}, nil), func(p *profile.Profile) {
				p.Network = []profile.NetworkPeer{
					{Peer: "10.1.1.1:5432", WaitNS: 25 * ms, Calls: 40},
					{Peer: "10.1.1.2:6379", WaitNS: 5 * ms, Calls: 3},
					{Peer: "10.1.1.3:80"},
				}
			}),
			cause:   profile.CauseNet,
			summary: "net: 30.0 ms (100%) waiting on 10.1.1.1:5432 (40 calls) and 1 other peer",
		},
		{
			name: "net waiting on the client",
			p: prof(bd{profile.Net: 80 * ms, profile.CPU: 20 * ms}, []profile.Segment{
				{Category: profile.Net, Syscall: "read", Peer: "10.0.0.9:41000", DurationNS: 80 * ms},
			}),
			cause:   profile.CauseNet,
			summary: "net: 80.0 ms (80%) waiting on the client 10.0.0.9:41000 (1 call)",
		},
		{
			name:    "net with nothing to name",
			p:       prof(bd{profile.Net: 8 * ms}, nil),
			cause:   profile.CauseNet,
			summary: "net: 8.0 ms (100%) blocked in socket I/O, no peer identified",
		},
		{
			name: "dns when lookups are at least half the net time",
			p: with(prof(bd{profile.Net: 780 * ms, profile.CPU: 32 * ms}, []profile.Segment{
				{Category: profile.Net, Syscall: "recvfrom", Peer: "10.96.0.10:53", DurationNS: 775 * ms},
			}), func(p *profile.Profile) {
				p.DNS = []profile.DNSQuery{
					{Name: "backend.default.svc.cluster.local", Type: "A", Server: "10.96.0.10:53", StartOffsetNS: 1 * ms, LatencyNS: 500 * ms},
					{Name: "backend.default.svc.cluster.local", Type: "A", Rcode: "NXDOMAIN", Server: "10.96.0.10:53", StartOffsetNS: 502 * ms, LatencyNS: 275 * ms, Answered: true},
				}
			}),
			cause:    profile.CauseDNS,
			summary:  "dns: 780.0 ms (96%) resolving backend.default.svc.cluster.local (2 lookups: timed out after 500.0 ms, NXDOMAIN in 275.0 ms)",
			evidence: []string{"backend.default.svc.cluster.local A timed out after 500.0 ms at +1.0 ms via 10.96.0.10:53", "2 DNS lookups totalling 775.0 ms, 99% of 780.0 ms net time"},
		},
		{
			name: "dns counts failures when there are many lookups",
			p: with(prof(bd{profile.Net: 40 * ms}, nil), func(p *profile.Profile) {
				for i := range 5 {
					q := profile.DNSQuery{Name: "api", Type: "AAAA", LatencyNS: 8 * ms, Answered: true, Rcode: "NOERROR"}
					if i%2 == 0 {
						q.Rcode = "SERVFAIL"
					}
					p.DNS = append(p.DNS, q)
				}
				p.DNS = append(p.DNS, profile.DNSQuery{Name: "other", LatencyNS: 1 * ms, Answered: true})
			}),
			cause:   profile.CauseDNS,
			summary: "dns: 40.0 ms (100%) resolving api (5 lookups, 3 failed) and 1 other name",
		},
		{
			name: "net stays net when dns is under half",
			p: with(prof(bd{profile.Net: 100 * ms}, []profile.Segment{
				{Category: profile.Net, Syscall: "read", Peer: "10.2.0.1:443", DurationNS: 90 * ms},
			}), func(p *profile.Profile) {
				p.DNS = []profile.DNSQuery{{Name: "x", LatencyNS: 49 * ms, Answered: true}}
			}),
			cause:   profile.CauseNet,
			contain: []string{"waiting on 10.2.0.1:443"},
		},
		{
			name: "file fsync",
			p: prof(bd{profile.File: 180 * ms, profile.CPU: 18 * ms}, []profile.Segment{
				{Category: profile.File, Syscall: "write", FDKind: "file", File: "/tmp/demo/data.log", DurationNS: 1 * ms},
				{Category: profile.File, Syscall: "fsync", FDKind: "file", File: "/tmp/demo/data.log", StartOffsetNS: 1 * ms, DurationNS: 179 * ms},
			}),
			cause:   profile.CauseFile,
			summary: "file: 180.0 ms (91%) in fsync of /tmp/demo/data.log (2 waits, 180.0 ms)",
		},
		{
			name: "file on an unnamed pipe",
			p: prof(bd{profile.File: 5 * ms}, []profile.Segment{
				{Category: profile.File, Syscall: "read", FDKind: "pipe", DurationNS: 5 * ms},
			}),
			cause:   profile.CauseFile,
			summary: "file: 5.0 ms (100%) in read of a pipe",
		},
		{
			name: "sleep",
			p: prof(bd{profile.Sleep: 150 * ms, profile.CPU: 1 * ms}, []profile.Segment{
				{Category: profile.Sleep, Syscall: "clock_nanosleep", DurationNS: 150 * ms},
			}),
			cause:   profile.CauseSleep,
			summary: "sleep: 150.0 ms (99%) in clock_nanosleep",
		},
		{
			name:    "queue",
			p:       prof(bd{profile.Queue: 90 * ms, profile.CPU: 10 * ms}, nil),
			cause:   profile.CauseQueue,
			summary: "queue: 90.0 ms (90%) waiting for a worker to pick the request up",
		},
		{
			name: "epoll with a downstream peer is net",
			p: prof(bd{profile.Epoll: 180 * ms, profile.CPU: 20 * ms}, []profile.Segment{
				{Category: profile.Epoll, Syscall: "epoll_wait", DurationNS: 170 * ms},
				{Category: profile.Net, Syscall: "connect", Peer: "10.3.0.7:8080", DurationNS: 2 * ms},
			}),
			cause:   profile.CauseNet,
			summary: "epoll: 180.0 ms (90%) idle in epoll_wait waiting on 10.3.0.7:8080 (1 call), an async downstream",
		},
		{
			name: "epoll waiting only on the client is unknown",
			p: prof(bd{profile.Epoll: 180 * ms, profile.CPU: 20 * ms}, []profile.Segment{
				{Category: profile.Epoll, Syscall: "epoll_wait", DurationNS: 170 * ms, Peer: "10.0.0.9:41000"},
			}),
			cause:   profile.CauseUnknown,
			summary: "epoll: 180.0 ms (90%) idle in epoll_wait, no downstream peer seen",
		},
		{
			name: "epoll on a resolver is dns",
			p: with(prof(bd{profile.Epoll: 100 * ms}, []profile.Segment{
				{Category: profile.Epoll, Syscall: "poll", Peer: "10.96.0.10:53", DurationNS: 100 * ms},
			}), func(p *profile.Profile) {
				p.DNS = []profile.DNSQuery{{Name: "db", Type: "A", LatencyNS: 99 * ms, Answered: true, Rcode: "NOERROR"}}
			}),
			cause:   profile.CauseDNS,
			summary: "dns: 100.0 ms (100%) resolving db (1 lookup: NOERROR in 99.0 ms)",
		},
		{
			name: "other is unknown",
			p: prof(bd{profile.Other: 60 * ms, profile.CPU: 40 * ms}, []profile.Segment{
				{Category: profile.Other, Syscall: "wait4", DurationNS: 60 * ms},
			}),
			cause:   profile.CauseUnknown,
			summary: "other: 60.0 ms (60%) off-CPU in wait4",
		},
		{
			name:    "category outside the contract",
			p:       prof(bd{"gpu": 10 * ms}, nil),
			cause:   profile.CauseUnknown,
			summary: "gpu: 10.0 ms (100%) in a category tracecam does not know",
		},
		{
			name: "mixed names the top two",
			p: prof(bd{profile.Net: 38 * ms, profile.Lock: 35 * ms, profile.CPU: 27 * ms}, []profile.Segment{
				{Category: profile.Net, Syscall: "read", Peer: "10.4.0.1:80", DurationNS: 38 * ms},
			}),
			cause:   profile.CauseNet,
			summary: "mixed: net 38%, lock 35% — net: 38.0 ms (38%) waiting on 10.4.0.1:80 (1 call)",
		},
		{
			name:    "mixed with one category names the unaccounted rest",
			p:       &profile.Profile{DurationNS: 100 * ms, Breakdown: bd{profile.CPU: 30 * ms}},
			cause:   profile.CauseCPU,
			summary: "mixed: cpu 30%, unaccounted 70% — cpu: 30.0 ms (30%) on CPU",
		},
		{
			name:    "exactly 40% is dominant",
			p:       prof(bd{profile.CPU: 40 * ms, profile.Sleep: 30 * ms, profile.Runq: 30 * ms}, nil),
			cause:   profile.CauseCPU,
			summary: "cpu: 40.0 ms (40%) on CPU",
		},
		{
			name:    "ties go to the earlier category",
			p:       prof(bd{profile.Sleep: 50 * ms, profile.CPU: 50 * ms}, nil),
			cause:   profile.CauseCPU,
			summary: "cpu: 50.0 ms (50%) on CPU",
		},
		{
			name:     "very short request",
			p:        prof(bd{profile.CPU: 300 * us, profile.Runq: 40 * us, profile.Lock: 80}, nil),
			cause:    profile.CauseCPU,
			summary:  "cpu: 0.3 ms (88%) on CPU",
			evidence: []string{"breakdown: cpu 88% (0.3 ms), runq 12% (40.0 µs), lock <1% (80 ns)"},
		},
		{
			name: "partial capture is noted",
			p: with(prof(bd{profile.CPU: 10 * ms}, nil), func(p *profile.Profile) {
				p.Partial, p.PartialReason = true, "lost 12 events"
			}),
			cause:    profile.CauseCPU,
			evidence: []string{"partial capture: lost 12 events"},
		},
		{
			name:    "breakdown larger than duration keeps shares under 100%",
			p:       &profile.Profile{DurationNS: 10 * ms, Breakdown: bd{profile.CPU: 12 * ms}},
			cause:   profile.CauseCPU,
			summary: "cpu: 12.0 ms (100%) on CPU",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diagnose(tt.p)
			if got.Cause != tt.cause {
				t.Errorf("cause = %q, want %q (summary %q)", got.Cause, tt.cause, got.Summary)
			}
			if c := Cause(tt.p); c != got.Cause {
				t.Errorf("Cause() = %q, Diagnose().Cause = %q", c, got.Cause)
			}
			if tt.summary != "" && got.Summary != tt.summary {
				t.Errorf("summary\n got %q\nwant %q", got.Summary, tt.summary)
			}
			for _, s := range tt.contain {
				if !strings.Contains(got.Summary, s) {
					t.Errorf("summary %q lacks %q", got.Summary, s)
				}
			}
			if n := len(got.Evidence); n < 2 || n > 5 {
				t.Errorf("evidence has %d lines, want 2..5: %q", n, got.Evidence)
			}
			for _, e := range tt.evidence {
				if !slices.ContainsFunc(got.Evidence, func(l string) bool { return strings.Contains(l, e) }) {
					t.Errorf("no evidence line holds %q: %q", e, got.Evidence)
				}
			}
		})
	}
}

// TestDiagnoseEvidenceCap feeds far more segments than fit, because the
// evidence must stay short enough to read whatever the capture produced.
func TestDiagnoseEvidenceCap(t *testing.T) {
	tests := []struct {
		name    string
		partial bool
		want    int
	}{
		{"complete", false, 5},
		{"partial", true, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tl []profile.Segment
			for i := range 50 {
				tl = append(tl, profile.Segment{Category: profile.Lock, Syscall: "futex", DurationNS: int64(i+1) * ms, WakerTID: uint32(i)})
			}
			p := prof(bd{profile.Lock: 1275 * ms}, tl)
			p.Partial = tt.partial
			got := Diagnose(p)
			if len(got.Evidence) != tt.want {
				t.Fatalf("evidence has %d lines, want %d: %q", len(got.Evidence), tt.want, got.Evidence)
			}
			if !strings.Contains(got.Evidence[1], "futex 50.0 ms") {
				t.Errorf("longest segment should come first, got %q", got.Evidence[1])
			}
			if tt.partial && got.Evidence[len(got.Evidence)-1] != "partial capture" {
				t.Errorf("partial note missing: %q", got.Evidence)
			}
		})
	}
}

// TestDiagnoseDoesNotMutate guards purity: callers diagnose profiles they
// are about to encode or render, so a sorted-in-place timeline would corrupt
// the output.
func TestDiagnoseDoesNotMutate(t *testing.T) {
	tests := []struct {
		name string
		mk   func() *profile.Profile
	}{
		{"lock", func() *profile.Profile {
			return prof(bd{profile.Lock: 30 * ms}, []profile.Segment{
				{Category: profile.Lock, Syscall: "futex", DurationNS: 10 * ms, WakerTID: 1},
				{Category: profile.Lock, Syscall: "futex", DurationNS: 20 * ms, WakerTID: 2},
			})
		}},
		{"dns", func() *profile.Profile {
			return with(prof(bd{profile.Net: 30 * ms}, nil), func(p *profile.Profile) {
				p.DNS = []profile.DNSQuery{
					{Name: "a", StartOffsetNS: 5, LatencyNS: 10 * ms},
					{Name: "a", StartOffsetNS: 1, LatencyNS: 20 * ms},
				}
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.mk()
			Diagnose(p)
			if want := tt.mk(); !reflect.DeepEqual(p, want) {
				t.Errorf("profile changed:\n got %+v\nwant %+v", p, want)
			}
		})
	}
}
