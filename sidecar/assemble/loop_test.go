package assemble

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/tracecam/tracecam/sidecar/event"
	"github.com/tracecam/tracecam/sidecar/profile"
)

const downstreamFD = 20

// loopThread is a Node.js-like event loop with a downstream service.
func loopThread() *thr {
	th := newThr(300, "node")
	th.socks[downstreamFD] = event.Sock{Family: 2, Proto: 6,
		Local:  netip.MustParseAddrPort("10.0.0.2:41000"),
		Remote: netip.MustParseAddrPort("10.0.0.50:9000")}
	return th
}

func traced(path, trace string) string {
	return req("GET", path, "traceparent: 00-"+trace+"-00f067aa0ba902b7-01\r\n")
}

const (
	traceSleep = "11111111111111111111111111111111"
	traceDown  = "22222222222222222222222222222222"
	traceHog   = "33333333333333333333333333333333"
)

// The concurrent scenario on one event loop: a request that sleeps
// 200 ms (a timer) and one that calls a downstream answering after 200 ms
// start; a 300 ms CPU hog arrives 50 ms later and holds the loop. Neither
// of the first two is charged the hog's CPU; both name it as what held the
// loop once they were ready; the hog is cpu.
func TestEventLoopConcurrent(t *testing.T) {
	h := newHarness(t, Config{})
	th := loopThread()
	start := th.ts
	// /sleep: read, 1 ms of JS, a 200 ms timer.
	h.feed(th.read(1, traced("/sleep", traceSleep)))
	sleepStart := th.ts
	th.spend(event.CatCPU, 1*ms)
	timer := sleepStart + 201*ms
	// /downstream arrives 1 ms later: read, call the service.
	th.idle(1*ms, 0, timer)
	h.feed(th.read(2, traced("/downstream", traceDown)))
	downStart := th.ts
	th.spend(event.CatCPU, 500*us)
	h.feed(th.write(downstreamFD, "GET /slow HTTP/1.1\r\n\r\n"))
	sent := th.ts
	th.spend(event.CatCPU, 500*us)
	// The loop idles until the hog arrives at +50 ms.
	th.idle(start+50*ms-th.ts, 0, timer)
	h.feed(th.read(3, traced("/hog", traceHog)))
	hogStart := th.ts
	th.spend(event.CatCPU, 300*ms)
	h.feed(th.write(3, resp(200, "hog")))
	hogEnd := th.ts
	// The timer and the reply were due long ago: no idle wait. The reply
	// reached the socket 200 ms after it was sent.
	rd := th.read(downstreamFD, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	rd.ArrivalAny = sent + 200*ms
	h.feed(rd)
	th.spend(event.CatCPU, 400*us)
	h.feed(th.write(2, resp(200, "down")))
	downEnd := th.ts
	th.spend(event.CatCPU, 300*us)
	h.feed(th.write(1, resp(200, "slept")))
	sleepEnd := th.ts
	h.wantN(3)

	byTrace := map[string]*profile.Profile{}
	for _, p := range h.out {
		byTrace[p.TraceID] = p
		checkExact(t, p)
	}
	hog, down, sleep := byTrace[traceHog], byTrace[traceDown], byTrace[traceSleep]

	if hog.Breakdown[profile.CPU] != int64(300*ms) || hog.DurationNS != int64(hogEnd-hogStart) {
		t.Errorf("hog: %v over %d ns, want 300 ms of cpu", hog.Breakdown, hog.DurationNS)
	}

	if sleep.Accounting != profile.AccountingEventLoop || down.Accounting != profile.AccountingEventLoop {
		t.Errorf("accounting sleep %q down %q, want event_loop", sleep.Accounting, down.Accounting)
	}
	if d := sleep.DurationNS; d != int64(sleepEnd-sleepStart) {
		t.Errorf("sleep duration %d, want %d", d, sleepEnd-sleepStart)
	}
	// /sleep: its own 1.3 ms of CPU, the timer until it was due, then the
	// loop held by the hog (and by /downstream's callback) until it ran.
	wantSleep := bd{
		profile.CPU:   int64(1300 * us),
		profile.Sleep: int64(timer - (sleepStart + 1*ms)),
		profile.Loop:  int64(downEnd - timer),
	}
	for c, want := range wantSleep {
		if got := sleep.Breakdown[c]; got != want {
			t.Errorf("/sleep %s = %d, want %d (breakdown %v)", c, got, want, sleep.Breakdown)
		}
	}
	var heldByHog bool
	for _, s := range sleep.Timeline {
		if s.Category == profile.Loop && s.HolderTraceID == traceHog && strings.Contains(s.Detail, "GET /hog") {
			heldByHog = true
		}
	}
	if !heldByHog {
		t.Errorf("/sleep timeline names no loop wait held by the hog: %+v", sleep.Timeline)
	}

	// /downstream: its own CPU, the network until the reply came, then the
	// loop held by the hog.
	wantDown := bd{
		profile.CPU:  int64(1400 * us),
		profile.Net:  int64(sent + 200*ms - (sent + 500*us)),
		profile.Loop: int64(hogEnd - (sent + 200*ms)),
	}
	for c, want := range wantDown {
		if got := down.Breakdown[c]; got != want {
			t.Errorf("/downstream %s = %d, want %d (breakdown %v)", c, got, want, down.Breakdown)
		}
	}
	if down.DurationNS != int64(downEnd-downStart) {
		t.Errorf("downstream duration %d, want %d", down.DurationNS, downEnd-downStart)
	}
	var peer bool
	for _, s := range down.Timeline {
		if s.Category == profile.Net && s.Peer == "10.0.0.50:9000" {
			peer = true
		}
	}
	if !peer {
		t.Errorf("/downstream timeline names no net wait on 10.0.0.50:9000: %+v", down.Timeline)
	}
	for _, p := range []*profile.Profile{sleep, down} {
		if p.Breakdown[profile.CPU] > int64(2*ms) {
			t.Errorf("%s charged %d ns of CPU: the hog's", p.Path, p.Breakdown[profile.CPU])
		}
	}
}

// One request at a time on an event loop: a timer is sleep, a downstream
// call is net on its peer, CPU is cpu — not epoll.
func TestEventLoopSequential(t *testing.T) {
	h := newHarness(t, Config{})
	th := loopThread()
	h.feed(th.read(1, traced("/sleep", traceSleep)))
	th.spend(event.CatCPU, 1*ms)
	th.idle(200*ms, 50*us, th.ts+200*ms)
	th.spend(event.CatCPU, 200*us)
	h.feed(th.write(1, resp(200, "slept")))

	th.idle(10*ms, 0, 0)
	h.feed(th.read(2, traced("/downstream", traceDown)))
	th.spend(event.CatCPU, 1*ms)
	h.feed(th.write(downstreamFD, "GET /slow HTTP/1.1\r\n\r\n"))
	th.idle(200*ms, 30*us, 0)
	rd := th.read(downstreamFD, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	h.feed(rd)
	th.spend(event.CatCPU, 300*us)
	h.feed(th.write(2, resp(200, "down")))
	h.wantN(2)

	sl, dn := h.out[0], h.out[1]
	checkExact(t, sl)
	checkExact(t, dn)
	if sl.Breakdown[profile.Sleep] != int64(200*ms) || sl.Breakdown[profile.Epoll] != 0 {
		t.Errorf("/sleep %v, want 200 ms of sleep and no epoll", sl.Breakdown)
	}
	if sl.Breakdown[profile.Runq] != int64(50*us) {
		t.Errorf("/sleep runq %d, want the 50 µs wake-up", sl.Breakdown[profile.Runq])
	}
	if dn.Breakdown[profile.Net] != int64(200*ms) || dn.Breakdown[profile.Epoll] != 0 {
		t.Errorf("/downstream %v, want 200 ms of net and no epoll", dn.Breakdown)
	}
	if len(dn.Network) != 1 || dn.Network[0].Peer != "10.0.0.50:9000" || dn.Network[0].WaitNS != int64(200*ms) {
		t.Errorf("/downstream network %+v, want the peer with its 200 ms", dn.Network)
	}
}

// An idle wait with nothing asked of the network and no timer pending: the
// camera cannot tell what the request waited for, and says so (epoll, not
// sleep or net).
func TestEventLoopUnknownWait(t *testing.T) {
	h := newHarness(t, Config{})
	th := loopThread()
	h.feed(th.read(1, traced("/wait", traceSleep)))
	th.idle(100*ms, 0, 0)
	h.feed(th.write(1, resp(200, "x")))
	h.wantN(1)
	p := h.out[0]
	checkExact(t, p)
	if p.Breakdown[profile.Epoll] != int64(100*ms) || p.Accounting != profile.AccountingEventLoop {
		t.Errorf("%v (%s), want 100 ms of epoll on the event-loop model", p.Breakdown, p.Accounting)
	}
}

// A downstream connection opened in the request's callback, written in a
// later one (once the handshake is done): the connect tells whose it is.
func TestEventLoopConnectThenWrite(t *testing.T) {
	h := newHarness(t, Config{})
	th := loopThread()
	h.feed(th.read(1, traced("/other", traceSleep)))
	th.spend(event.CatCPU, 100*us)
	th.idle(1*ms, 0, 0)
	h.feed(th.read(2, traced("/downstream", traceDown)))
	th.spend(event.CatCPU, 200*us)
	conn := th.write(downstreamFD, "")
	conn.Connect, conn.Ret = true, 0
	h.feed(conn)
	th.idle(300*us, 0, 0) // the handshake
	h.feed(th.write(downstreamFD, "200\n"))
	th.idle(200*ms, 0, 0)
	h.feed(th.read(downstreamFD, "ok 200\n"))
	h.feed(th.write(2, resp(200, "down")))
	h.feed(th.write(1, resp(200, "other")))
	h.wantN(2)
	dn := h.out[0]
	checkExact(t, dn)
	if dn.Path != "/downstream" || dn.Breakdown[profile.Net] < int64(200*ms) {
		t.Errorf("%s %v, want ≥ 200 ms of net on the downstream", dn.Path, dn.Breakdown)
	}
	if len(dn.Network) != 1 || dn.Network[0].Peer != "10.0.0.50:9000" {
		t.Errorf("network %+v, want the downstream peer", dn.Network)
	}
}

// A Go program's request is never read as a thread's: its goroutine may
// have run elsewhere while the thread ran others. The profile says so.
func TestGoProgramIsEstimated(t *testing.T) {
	h := newHarness(t, Config{Runtime: func(pid uint32) string {
		if pid == 100 {
			return "go"
		}
		return ""
	}})
	th := newThr(400, "goserver")
	h.feed(th.read(5, req("GET", "/cpu")))
	th.spend(event.CatLock, 160*ms).spend(event.CatCPU, 40*ms)
	h.feed(th.write(5, resp(200, "ok")))
	h.wantN(1)
	p := h.out[0]
	checkExact(t, p)
	if p.Accounting != profile.AccountingEstimated || !p.Partial || !strings.Contains(p.PartialReason, "Go program") {
		t.Errorf("accounting %q partial %v %q, want estimated with the Go reason", p.Accounting, p.Partial, p.PartialReason)
	}
}

// A request whose bytes arrived before the loop thread's first event the
// camera saw (a sidecar just started) waited to be read: queue, from its
// bytes' arrival — not an unexplained gap.
func TestEventLoopFirstRequestQueuedBeforeFirstEvent(t *testing.T) {
	h := newHarness(t, Config{})
	th := loopThread()
	arrival := th.ts
	th.spend(event.CatCPU, 5*ms) // the loop, busy before the camera looked
	rd := th.read(1, traced("/late", traceSleep))
	rd.Arrival, rd.ArrivalAny = arrival, arrival
	h.feed(rd)
	th.idle(50*ms, 0, th.ts+50*ms)
	h.feed(th.write(1, resp(200, "x")))
	h.wantN(1)
	p := h.out[0]
	checkExact(t, p)
	if p.Accounting != profile.AccountingEventLoop || p.Partial || p.Breakdown[profile.Queue] != int64(5*ms) {
		t.Errorf("accounting %s partial %v %q breakdown %v, want 5 ms of queue and nothing partial", p.Accounting, p.Partial, p.PartialReason, p.Breakdown)
	}
}

// Hundreds of short turns behind other requests: the longest stay named,
// the rest become one segment that counts them; the loop time is intact.
func TestBoundLoopSegments(t *testing.T) {
	var segs []profile.Segment
	var total int64
	for i := range 300 {
		d := int64(1000 + (i*7919)%300*100)
		total += d
		segs = append(segs, profile.Segment{Category: profile.Loop, StartOffsetNS: int64(i) * 1e5, DurationNS: d, Detail: fmt.Sprint("holder ", i)})
	}
	segs = append(segs, profile.Segment{Category: profile.Sleep, DurationNS: 5e6})
	out := boundLoopSegments(segs)
	var loops, merged int
	var sum, shortestKept int64
	shortestKept = 1 << 62
	for _, s := range out {
		if s.Category != profile.Loop {
			continue
		}
		loops++
		sum += s.DurationNS
		if s.Count > 0 {
			merged = s.Count
			continue
		}
		shortestKept = min(shortestKept, s.DurationNS)
	}
	// The ones kept by name are the longest: the shortest of them is the
	// 15th longest of all.
	var ds []int64
	for _, s := range segs[:300] {
		ds = append(ds, s.DurationNS)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] > ds[j] })
	if loops != maxLoopSegments || merged != 300-maxLoopSegments+1 || sum != total || len(out) != maxLoopSegments+1 {
		t.Fatalf("%d loop segments (%d merged), %d ns of %d, %d segments", loops, merged, sum, total, len(out))
	}
	if shortestKept != ds[maxLoopSegments-2] {
		t.Fatalf("shortest named turn %d ns, want the %dth longest, %d ns", shortestKept, maxLoopSegments-1, ds[maxLoopSegments-2])
	}
}
