package assemble

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/event"
	"github.com/tracecam/tracecam/sidecar/profile"
)

// gor models a goroutine the kernel follows: its own cumulative counters
// (whatever threads it ran on), reported with every socket event of the
// thread it is on.
type gor struct {
	goid uint64
	ts   uint64
	cnt  [event.NumCategories]uint64
}

func (g *gor) spend(cat int, ns uint64) *gor {
	g.ts += ns
	g.cnt[cat] += ns
	return g
}

// on is a socket event of g's on thread th (the thread's clock follows).
func (g *gor) on(th *thr, d func(*thr) *event.Data) *event.Data {
	th.ts = g.ts
	e := d(th)
	e.Goid, e.Counters = g.goid, g.cnt
	return e
}

// park is the segment the kernel reports for g's park of blocked ns in
// cat, then runq ns until it ran again, with Go's wait reason.
func (g *gor) park(th *thr, cat int, blocked, runq uint64, reason int64, waker uint64) *event.Segment {
	start := g.ts
	g.spend(cat, blocked)
	wake := g.ts
	g.spend(event.CatRunq, runq)
	th.ts = g.ts
	return &event.Segment{
		Header: event.Header{Type: event.TypeSegment, PID: th.pid, TID: th.tid, TS: g.ts, Goid: g.goid},
		Start:  start, Wake: wake, Run: g.ts, BlockedNS: blocked, RunqNS: runq, WakerGoid: waker, Count: 1, Bytes: -1,
		Category: cat, Comm: th.comm, Syscall: event.SyscallGoPark, Arg0: reason, FD: -1,
	}
}

var goReasons = []string{"", "GC assist marking", "IO wait", "chan receive", "sync.Mutex.Lock"}

func goConfig() Config {
	return Config{
		Runtime: func(uint32) string { return "go" },
		GoWaitReason: func(_ uint32, r int64) string {
			if r >= 0 && r < int64(len(goReasons)) {
				return goReasons[r]
			}
			return ""
		},
	}
}

func TestGoroutineAcrossThreads(t *testing.T) {
	h := newHarness(t, goConfig())
	m1, m2 := newThr(101, "goserver"), newThr(102, "goserver")
	g := &gor{goid: 7, ts: t0}
	g.spend(event.CatCPU, 3*ms) // the goroutine's life before the request
	h.feed(g.on(m1, func(th *thr) *event.Data { return th.read(5, req("GET", "/lock")) }))
	g.spend(event.CatCPU, 1*ms)
	// parked on a sync.Mutex 50 ms, then 20 µs in Go's run queue; it runs
	// again on another thread
	h.feed(g.park(m1, event.CatLock, 50*ms, 20*us, 4, 31))
	g.spend(event.CatCPU, 2*ms).spend(event.CatFile, 5*ms)
	h.feed(g.on(m2, func(th *thr) *event.Data { return th.write(5, resp(200, "ok")) }))
	h.wantN(1)
	p := h.out[0]
	checkExact(t, p)
	if p.Accounting != profile.AccountingGoroutine || p.GoroutineID != 7 || p.Partial {
		t.Fatalf("accounting %q goroutine %d partial %v (%s), want goroutine 7, whole", p.Accounting, p.GoroutineID, p.Partial, p.PartialReason)
	}
	want := bd{profile.CPU: int64(3 * ms), profile.Lock: int64(50 * ms), profile.Runq: int64(20 * us), profile.File: int64(5 * ms)}
	if !reflect.DeepEqual(p.Breakdown, want) {
		t.Errorf("breakdown %v, want %v", p.Breakdown, want)
	}
	if len(p.Timeline) != 1 || p.Timeline[0].Detail != "goroutine parked: sync.Mutex.Lock" || p.Timeline[0].Category != profile.Lock ||
		p.Timeline[0].WakerName != "goroutine 31" ||
		p.Timeline[0].DurationNS != int64(50*ms) || p.Timeline[0].Syscall != "" {
		t.Errorf("timeline %+v, want the mutex park", p.Timeline)
	}
}

func TestGoroutineHandOffIsEstimated(t *testing.T) {
	h := newHarness(t, goConfig())
	m1 := newThr(101, "goserver")
	g, other := &gor{goid: 7, ts: t0}, &gor{goid: 9, ts: t0}
	h.feed(g.on(m1, func(th *thr) *event.Data { return th.read(5, req("GET", "/x")) }))
	other.spend(event.CatCPU, 10*ms)
	h.feed(other.on(m1, func(th *thr) *event.Data { return th.write(5, resp(200, "ok")) }))
	h.wantN(1)
	p := h.out[0]
	if p.Accounting != profile.AccountingEstimated || !p.Partial ||
		!strings.Contains(p.PartialReason, "response written by goroutine 9, request read by goroutine 7") {
		t.Errorf("accounting %q partial %v %q: want estimated, the two goroutines named", p.Accounting, p.Partial, p.PartialReason)
	}
}

// A handler goroutine parked on a channel while net/http's client reader
// goroutine waited for the downstream: the park names the downstream, from
// the traffic of the goroutine that woke it, and the peer joins the
// request's network.
func TestGoroutineParkNamesTheWakersPeer(t *testing.T) {
	h := newHarness(t, goConfig())
	m1, m2 := newThr(101, "goserver"), newThr(102, "goserver")
	down := event.Sock{Family: 2, Proto: 6, Local: netip.MustParseAddrPort("10.0.0.2:41000"), Remote: netip.MustParseAddrPort("10.1.2.3:9000")}
	m1.socks[20], m2.socks[20] = down, down
	g, reader := &gor{goid: 7, ts: t0}, &gor{goid: 30, ts: t0}
	h.feed(g.on(m1, func(th *thr) *event.Data { return th.read(5, req("GET", "/client")) }))
	g.spend(event.CatCPU, 100*us)
	reader.ts = g.ts
	h.feed(reader.on(m2, func(th *thr) *event.Data { return th.write(20, "GET / HTTP/1.1\r\n\r\n") }))
	reader.spend(event.CatNet, 80*ms)
	h.feed(reader.on(m2, func(th *thr) *event.Data { return th.read(20, "HTTP/1.1 200 OK\r\n\r\n") }))
	// the kernel: a channel wait ended by a goroutine that had waited for
	// the network is net
	h.feed(g.park(m1, event.CatNet, 80*ms+50*us, 10*us, 3, reader.goid))
	g.spend(event.CatCPU, 100*us)
	h.feed(g.on(m1, func(th *thr) *event.Data { return th.write(5, resp(200, "ok")) }))
	h.wantN(1)
	p := h.out[0]
	checkExact(t, p)
	if len(p.Timeline) != 1 || p.Timeline[0].Peer != "10.1.2.3:9000" || p.Timeline[0].Detail != "goroutine parked: chan receive" {
		t.Errorf("timeline %+v, want the park on 10.1.2.3:9000", p.Timeline)
	}
	if len(p.Network) != 1 || p.Network[0].Peer != "10.1.2.3:9000" || p.Network[0].BytesReceived == 0 || p.Network[0].WaitNS != int64(80*ms+50*us) {
		t.Errorf("network %+v, want the downstream with its wait", p.Network)
	}
}

// Go's net/http reads one byte of a keep-alive connection in a background
// goroutine while the handler runs: the next request's first byte comes in
// a read of its own, the rest in the next. Both requests are profiled.
func TestRequestFirstByteReadAlone(t *testing.T) {
	h := newHarness(t, goConfig())
	m1, m2 := newThr(101, "goserver"), newThr(102, "goserver")
	g, bg := &gor{goid: 7, ts: t0}, &gor{goid: 8, ts: t0}
	h.feed(g.on(m1, func(th *thr) *event.Data { return th.read(5, req("GET", "/a")) }))
	g.spend(event.CatCPU, 1*ms)
	h.feed(g.on(m1, func(th *thr) *event.Data { return th.write(5, resp(200, "a")) }))
	bg.ts = g.ts + 10*us
	h.feed(bg.on(m2, func(th *thr) *event.Data { return th.read(5, "G") }))
	g.spend(event.CatNet, 50*us)
	second := req("GET", "/b")
	h.feed(g.on(m1, func(th *thr) *event.Data { return th.read(5, second[1:]) }))
	g.spend(event.CatCPU, 1*ms)
	h.feed(g.on(m1, func(th *thr) *event.Data { return th.write(5, resp(200, "b")) }))
	h.a.Flush(g.ts + uint64(time.Hour))
	h.wantN(2)
	if p := h.out[1]; p.Path != "/b" || p.RequestBytes != int64(len(second)) || p.Accounting != profile.AccountingGoroutine {
		t.Errorf("second request: path %q, %d bytes (want /b, %d), accounting %s", p.Path, p.RequestBytes, len(second), p.Accounting)
	}
}
