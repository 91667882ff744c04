package assemble

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/event"
	"github.com/tracecam/tracecam/sidecar/profile"
)

const (
	us = uint64(time.Microsecond)
	ms = uint64(time.Millisecond)

	pid = 100
	t0  = uint64(1_000_000_000_000) // an arbitrary CLOCK_MONOTONIC start
)

// ---- synthetic event builders ----

// thr models a watched thread whose cumulative counters are consistent:
// every nanosecond of its time is spent in exactly one category, so the
// counters always sum to ts - t0.
type thr struct {
	pid, tid uint32
	comm     string
	ts       uint64
	cnt      [event.NumCategories]uint64
	lost     uint64
	socks    map[int32]event.Sock
	// gen counts how often an fd was closed and reused: each reuse is a new
	// socket (a new kernel address) behind the same fd number.
	gen map[int32]uint64
	// loop is the thread's last idle wait in epoll (event loops), as the
	// kernel reports it with every socket event.
	loop event.LoopWait
}

func newThr(tid uint32, comm string) *thr {
	return &thr{pid: pid, tid: tid, comm: comm, ts: t0, socks: map[int32]event.Sock{}, gen: map[int32]uint64{}}
}

// spend moves the thread's clock forward by ns, all of it in category cat.
func (th *thr) spend(cat int, ns uint64) *thr {
	th.ts += ns
	th.cnt[cat] += ns
	return th
}

func clientSock(fd int32) event.Sock {
	return event.Sock{Family: 2, Proto: 6,
		Local:  netip.MustParseAddrPort("10.0.0.2:8080"),
		Remote: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.9"), uint16(50000+fd))}
}

func (th *thr) sock(fd int32) event.Sock {
	if s, ok := th.socks[fd]; ok {
		return s
	}
	return clientSock(fd)
}

// socket is the kernel address of the socket behind fd: distinct fds (and
// each reuse of an fd) are distinct sockets, the same for every thread of
// the process.
func (th *thr) socket(fd int32) uint64 {
	return 0xffff0000_0000_0000 | th.gen[fd]<<32 | uint64(uint32(fd))
}

func (th *thr) hdr(ty event.Type) event.Header {
	return event.Header{Type: ty, PID: th.pid, TID: th.tid, TS: th.ts, LostSeq: th.lost}
}

func (th *thr) data(fd int32, out bool, b string) *event.Data {
	return &event.Data{
		Header: th.hdr(event.TypeData), Counters: th.cnt,
		Ret: int64(len(b)), Socket: th.socket(fd), FD: fd, Out: out, Sock: th.sock(fd), Comm: th.comm,
		Bytes: []byte(b), Loop: th.loop,
	}
}

// idle makes an event-loop thread wait in epoll for blocked ns (its timeout
// would have ended it at deadline, 0 = none), then sit runnable for runq.
func (th *thr) idle(blocked, runq, deadline uint64) *thr {
	th.loop = event.LoopWait{Sleep: th.ts, Counters: th.cnt, Deadline: deadline}
	th.spend(event.CatEpoll, blocked).spend(event.CatRunq, runq)
	th.loop.Wake, th.loop.Runq = th.ts, runq
	return th
}

func (th *thr) read(fd int32, b string) *event.Data  { return th.data(fd, false, b) }
func (th *thr) write(fd int32, b string) *event.Data { return th.data(fd, true, b) }
func (th *thr) eof(fd int32) *event.Data             { return th.data(fd, false, "") }

// wait makes the thread block in cat for blocked ns, then sit runnable for
// runq ns, and returns the segment the kernel reports when it runs again.
func (th *thr) wait(cat int, blocked, runq uint64, mod func(*event.Segment)) *event.Segment {
	start := th.ts
	th.spend(cat, blocked)
	wake := th.ts
	th.spend(event.CatRunq, runq)
	s := &event.Segment{
		Header: th.hdr(event.TypeSegment),
		Start:  start, Wake: wake, Run: th.ts, BlockedNS: blocked, RunqNS: runq, Count: 1, Bytes: -1,
		Category: cat, Comm: th.comm, Syscall: -1, FD: -1,
	}
	if cat == event.CatRunq { // preempted: runnable the whole time
		s.Wake, s.BlockedNS, s.RunqNS = 0, blocked+runq, 0
	}
	if mod != nil {
		mod(s)
	}
	return s
}

func req(method, target string, headers ...string) string {
	return method + " " + target + " HTTP/1.1\r\nHost: svc.local\r\n" + strings.Join(headers, "") + "\r\n"
}

func resp(status int, body string) string {
	return fmt.Sprintf("HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s", status, len(body), body)
}

// ---- harness ----

type harness struct {
	t   *testing.T
	a   *Assembler
	out []*profile.Profile
}

func newHarness(t *testing.T, cfg Config) *harness {
	h := &harness{t: t}
	if cfg.WallClock == nil {
		cfg.WallClock = func(m uint64) time.Time { return time.Unix(0, int64(m)) }
	}
	h.a = New(cfg, func(p *profile.Profile) { h.out = append(h.out, p) })
	return h
}

func (h *harness) feed(evs ...any) *harness {
	for _, e := range evs {
		h.a.Handle(e)
	}
	return h
}

func (h *harness) wantN(n int) {
	h.t.Helper()
	if len(h.out) != n {
		for i, p := range h.out {
			h.t.Logf("profile %d: %s %s status %d dur %d partial %q", i, p.Method, p.Path, p.StatusCode, p.DurationNS, p.PartialReason)
		}
		h.t.Fatalf("got %d profiles, want %d", len(h.out), n)
	}
}

func sum(b map[profile.Category]int64) int64 {
	var s int64
	for _, v := range b {
		s += v
	}
	return s
}

func checkExact(t *testing.T, p *profile.Profile) {
	t.Helper()
	for c, v := range p.Breakdown {
		if v < 0 {
			t.Errorf("breakdown[%s] = %d < 0", c, v)
		}
	}
	if s := sum(p.Breakdown); s != p.DurationNS {
		t.Errorf("breakdown sums to %d, duration is %d (breakdown %v)", s, p.DurationNS, p.Breakdown)
	}
}

type bd = map[profile.Category]int64

// ---- tests ----

func TestKeepAliveSequential(t *testing.T) {
	h := newHarness(t, Config{Pod: "web-1", Namespace: "prod", Container: "app"})
	th := newThr(101, "worker")
	type want struct {
		method, path string
		status       int
		start, dur   uint64
		breakdown    bd
		reqBytes     int64
		respBytes    int64
	}
	var wants []want
	reqs := []struct {
		method, target, body string
		status               int
		respBody             string
	}{
		{"GET", "/users/1?verbose=1", "", 200, "hello"},
		{"POST", "/orders", `{"a":1}`, 201, ""},
		{"DELETE", "/orders/7", "", 404, "not found"},
	}
	for i, r := range reqs {
		th.spend(event.CatEpoll, 5*ms) // idle between requests
		raw := req(r.method, r.target, fmt.Sprintf("Content-Length: %d\r\n", len(r.body))) + r.body
		h.feed(th.read(5, raw))
		if c := h.a.Counters().ConnsActive; c != 1 {
			t.Fatalf("request %d in flight: %d connections tracked, want 1", i, c)
		}
		start := th.ts
		startCnt := th.cnt
		th.spend(event.CatCPU, 300*us).
			spend(event.CatLock, uint64(i+1)*ms).
			spend(event.CatRunq, 40*us).
			spend(event.CatFile, 2*ms).
			spend(event.CatNet, 3*ms).
			spend(event.CatSleep, 7*us).
			spend(event.CatOther, 1*us).
			spend(event.CatCPU, 100*us)
		h.wantN(i)
		out := resp(r.status, r.respBody)
		h.feed(th.write(5, out))
		b := bd{}
		for c := range th.cnt {
			if d := th.cnt[c] - startCnt[c]; d != 0 {
				b[kernelCategory[c]] = int64(d)
			}
		}
		path, _, _ := strings.Cut(r.target, "?")
		wants = append(wants, want{r.method, path, r.status, start, th.ts - start, b, int64(len(raw)), int64(len(out))})
		h.wantN(i + 1)
		// Between requests the keep-alive connection has no state.
		if c := h.a.Counters().ConnsActive; c != 0 {
			t.Fatalf("after response %d: %d connections tracked, want 0", i, c)
		}
	}
	for i, w := range wants {
		p := h.out[i]
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			if p.Method != w.method || p.Path != w.path || p.Host != "svc.local" || p.StatusCode != w.status {
				t.Errorf("got %s %s host %q status %d, want %s %s %d", p.Method, p.Path, p.Host, p.StatusCode, w.method, w.path, w.status)
			}
			if p.DurationNS != int64(w.dur) {
				t.Errorf("duration %d, want %d", p.DurationNS, w.dur)
			}
			if !p.StartTime.Equal(time.Unix(0, int64(w.start))) {
				t.Errorf("start time %v, want mono %d", p.StartTime, w.start)
			}
			if !reflect.DeepEqual(p.Breakdown, w.breakdown) {
				t.Errorf("breakdown %v, want %v", p.Breakdown, w.breakdown)
			}
			checkExact(t, p)
			if e := p.Breakdown[profile.Epoll]; e != 0 {
				t.Errorf("idle time before the request counted as epoll: %d", e)
			}
			if p.RequestBytes != w.reqBytes || p.ResponseBytes != w.respBytes {
				t.Errorf("bytes req %d resp %d, want %d %d", p.RequestBytes, p.ResponseBytes, w.reqBytes, w.respBytes)
			}
			if p.PID != pid || p.TID != 101 || p.ThreadName != "worker" {
				t.Errorf("pid/tid/name %d/%d/%q", p.PID, p.TID, p.ThreadName)
			}
			if p.Pod != "web-1" || p.Namespace != "prod" || p.Container != "app" {
				t.Errorf("pod/ns/container %q/%q/%q", p.Pod, p.Namespace, p.Container)
			}
			if p.Client != "10.0.0.9:50005" || p.Server != "10.0.0.2:8080" {
				t.Errorf("client %q server %q", p.Client, p.Server)
			}
			if p.Partial {
				t.Errorf("partial: %s", p.PartialReason)
			}
			if len(p.SpanID) != 16 {
				t.Errorf("span id %q", p.SpanID)
			}
			if p.Diagnosis.Cause != "" {
				t.Error("assembler diagnosed: that is left to whoever hands the profile out")
			}
		})
	}
	c := h.a.Counters()
	if c.Profiles != 3 || c.Partial != 0 || c.Events != 6 || c.ConnsActive != 0 || c.ParseErrors != 0 {
		t.Errorf("counters %+v", c)
	}
	if h.out[0].SpanID == h.out[1].SpanID {
		t.Error("two requests share a span id")
	}
}

func TestTraceContext(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name      string
		headers   []string
		generated bool
		traceID   string
		parent    string
		source    string
	}{
		{"traceparent", []string{"traceparent: " + tp + "\r\n"}, false, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "traceparent"},
		{"Traceparent mixed case header name", []string{"TraceParent: " + tp + "\r\n"}, false, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "traceparent"},
		{"b3", []string{"b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1\r\n"}, false, "80f198ee56343ba864fe8b2a57d3eff7", "e457b5a2e4d86bd1", "b3"},
		{"none", nil, true, "", "", "generated"},
		{"invalid traceparent", []string{"traceparent: 00-zz-00\r\n"}, true, "", "", "generated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			th := newThr(101, "w")
			h.feed(th.read(5, req("GET", "/", tc.headers...)))
			th.spend(event.CatCPU, ms)
			h.feed(th.write(5, resp(200, "ok")))
			h.wantN(1)
			p := h.out[0]
			if p.TraceIDGenerated != tc.generated || p.TraceSource != tc.source {
				t.Errorf("generated %v source %q, want %v %q", p.TraceIDGenerated, p.TraceSource, tc.generated, tc.source)
			}
			if tc.generated {
				if len(p.TraceID) != 32 || strings.Trim(p.TraceID, "0123456789abcdef") != "" || p.ParentSpanID != "" {
					t.Errorf("generated trace id %q parent %q", p.TraceID, p.ParentSpanID)
				}
				if h.a.Counters().Generated != 1 {
					t.Errorf("Generated counter %d", h.a.Counters().Generated)
				}
			} else if p.TraceID != tc.traceID || p.ParentSpanID != tc.parent {
				t.Errorf("trace %q parent %q, want %q %q", p.TraceID, p.ParentSpanID, tc.traceID, tc.parent)
			}
			if p.SpanID == p.ParentSpanID || len(p.SpanID) != 16 {
				t.Errorf("span id %q (parent %q)", p.SpanID, p.ParentSpanID)
			}
		})
	}
}

// TestResponseEnd checks where a response ends for each framing.
func TestResponseEnd(t *testing.T) {
	type step struct {
		ev func(th *thr) any
		// wantN is the number of profiles expected after this step.
		wantN int
		// endsHere marks the step whose timestamp is the profile's end.
		endsHere bool
	}
	w := func(s string) func(*thr) any { return func(th *thr) any { return th.write(5, s) } }
	tests := []struct {
		name    string
		method  string
		steps   []step
		flushAt func(lastWrite uint64) uint64 // optional Flush after the steps
		want    int                           // profiles at the end
		status  int
		partial bool
	}{
		{
			name: "head then body in two writes",
			steps: []step{
				{w("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"), 0, false},
				{w("hello"), 0, false},
				{w("world"), 1, true},
			},
			want: 1, status: 200,
		},
		{
			name: "head with part of body, then rest",
			steps: []step{
				{w("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhell"), 0, false},
				{w("oworld"), 1, true},
			},
			want: 1, status: 200,
		},
		{
			name: "head split before the blank line",
			steps: []step{
				{w("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"), 0, false},
				{w("\r\nabc"), 0, true},
			},
			flushAt: func(last uint64) uint64 { return last + uint64(2*time.Second) + 1 },
			want:    1, status: 200,
		},
		{
			name: "chunked",
			steps: []step{
				{w("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 0, false},
				{w("5\r\nhello\r\n"), 0, false},
				{w("5\r\nworld\r\n"), 0, false},
				{w("0\r\n\r\n"), 1, true},
			},
			want: 1, status: 200,
		},
		{
			name: "chunked, terminator in the same write as the head",
			steps: []step{
				{w("HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbad\r\n0\r\n\r\n"), 1, true},
			},
			want: 1, status: 500,
		},
		{
			name: "204 has no body",
			steps: []step{
				{w("HTTP/1.1 204 No Content\r\n\r\n"), 1, true},
			},
			want: 1, status: 204,
		},
		{
			name:   "HEAD has no body despite Content-Length",
			method: "HEAD",
			steps: []step{
				{w("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"), 1, true},
			},
			want: 1, status: 200,
		},
		{
			name: "no length, Connection: close, two writes: ends on EOF read",
			steps: []step{
				{w("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsome"), 0, true},
				{w("more"), 0, true},
				{func(th *thr) any { th.spend(event.CatCPU, ms); return th.eof(5) }, 1, false},
			},
			want: 1, status: 200,
		},
		{
			name: "no length: EOF on another socket ends nothing",
			steps: []step{
				{w("HTTP/1.1 200 OK\r\n\r\nstream"), 0, true},
				{func(th *thr) any { return th.eof(6) }, 0, false},
				{func(th *thr) any { th.gen[5]++; return th.eof(5) }, 0, false}, // fd 5 reused: another socket
			},
			flushAt: func(last uint64) uint64 { return last + uint64(2*time.Second) + 1 },
			want:    1, status: 200,
		},
		{
			name: "no length: ends on EOF read",
			steps: []step{
				{w("HTTP/1.1 200 OK\r\n\r\nstream"), 0, true},
				{func(th *thr) any { th.spend(event.CatEpoll, ms); return th.eof(5) }, 1, false},
			},
			want: 1, status: 200,
		},
		{
			name: "no length: Flush before IdleEnd keeps it",
			steps: []step{
				{w("HTTP/1.1 200 OK\r\n\r\nstream"), 0, true},
			},
			flushAt: func(last uint64) uint64 { return last + uint64(2*time.Second) },
			want:    0,
		},
		{
			name: "no length: Flush after IdleEnd ends it",
			steps: []step{
				{w("HTTP/1.1 200 OK\r\n\r\nstream"), 0, true},
			},
			flushAt: func(last uint64) uint64 { return last + uint64(2*time.Second) + 1 },
			want:    1, status: 200,
		},
		{
			name: "not an HTTP response: ends on EOF read, partial",
			steps: []step{
				{w("\x00\x01binary"), 0, true},
				{func(th *thr) any { return th.eof(5) }, 1, false},
			},
			want: 1, status: 0, partial: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			th := newThr(101, "w")
			m := tc.method
			if m == "" {
				m = "GET"
			}
			h.feed(th.read(5, req(m, "/x")))
			start := th.ts
			var end uint64
			for i, s := range tc.steps {
				th.spend(event.CatCPU, 100*us)
				h.feed(s.ev(th))
				if s.endsHere {
					end = th.ts
				}
				if len(h.out) != s.wantN {
					t.Fatalf("after step %d: %d profiles, want %d", i, len(h.out), s.wantN)
				}
			}
			if tc.flushAt != nil {
				h.a.Flush(tc.flushAt(end))
			}
			h.wantN(tc.want)
			if tc.want == 0 {
				return
			}
			p := h.out[0]
			if p.StatusCode != tc.status {
				t.Errorf("status %d, want %d", p.StatusCode, tc.status)
			}
			if p.DurationNS != int64(end-start) {
				t.Errorf("duration %d, want %d (end at the last response write)", p.DurationNS, end-start)
			}
			if p.Partial != tc.partial {
				t.Errorf("partial %v (%q), want %v", p.Partial, p.PartialReason, tc.partial)
			}
			checkExact(t, p)
		})
	}
}

// A client that hangs up (EOF) before the response leaves no profile: the
// request counts as incomplete and its connection is forgotten.
func TestEOFBeforeResponse(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	db := event.Sock{Family: 2, Proto: 6, Local: netip.MustParseAddrPort("10.0.0.2:41000"), Remote: netip.MustParseAddrPort("10.1.2.3:5432")}
	th.socks[20] = db
	h.feed(th.read(5, req("GET", "/gone")))
	th.spend(event.CatCPU, ms)
	h.feed(th.eof(5))
	h.wantN(0)
	if c := h.a.Counters(); c.Incomplete != 1 || c.ConnsActive != 0 || c.Profiles != 0 {
		t.Fatalf("counters %+v", c)
	}
	// The thread no longer serves it: its later traffic goes nowhere, and
	// a late response on the socket makes no profile.
	h.feed(th.write(20, "Q"), th.read(20, "R"), th.write(5, resp(200, "")))
	h.wantN(0)
	// The next connection on the same thread is unaffected.
	h.feed(th.read(6, req("GET", "/next")))
	th.spend(event.CatCPU, ms)
	h.feed(th.write(20, "Q"), th.read(20, "R"))
	h.feed(th.write(6, resp(200, "")))
	h.wantN(1)
	if p := h.out[0]; p.Path != "/next" || len(p.Network) != 1 || p.Network[0].BytesSent != 1 || p.Network[0].BytesReceived != 1 {
		t.Errorf("profile %s network %+v", p.Path, p.Network)
	}
	if c := h.a.Counters(); c.Incomplete != 1 || c.ConnsActive != 0 {
		t.Errorf("counters %+v", c)
	}
}

// Connections are keyed by socket, not fd: an fd number reused for another
// socket is another connection, and bytes moved without an fd (io_uring,
// sendfile, splice: FD -1) or through a dup'ed fd belong to the socket's.
func TestConnKeyedBySocket(t *testing.T) {
	t.Run("response without an fd", func(t *testing.T) {
		h := newHarness(t, Config{})
		th := newThr(101, "w")
		h.feed(th.read(5, req("GET", "/f")))
		th.spend(event.CatCPU, ms)
		head := th.write(5, "HTTP/1.1 200 OK\r\nContent-Length: 612\r\n\r\n")
		th.spend(event.CatFile, ms)
		body := th.write(5, "")
		body.FD, body.Ret = -1, 612 // sendfile: no bytes captured
		h.feed(head, body)
		h.wantN(1)
		if p := h.out[0]; p.ResponseBytes != int64(len("HTTP/1.1 200 OK\r\nContent-Length: 612\r\n\r\n"))+612 || p.DurationNS != int64(2*ms) {
			t.Errorf("response bytes %d duration %d", p.ResponseBytes, p.DurationNS)
		}
		checkExact(t, h.out[0])
	})
	t.Run("dup'ed fd", func(t *testing.T) {
		h := newHarness(t, Config{})
		th := newThr(101, "w")
		h.feed(th.read(5, req("GET", "/d")))
		th.spend(event.CatCPU, ms)
		w := th.write(5, resp(200, "x"))
		w.FD = 9 // dup(5): same socket
		h.feed(w)
		h.wantN(1)
	})
	t.Run("fd reused for another socket", func(t *testing.T) {
		h := newHarness(t, Config{})
		th := newThr(101, "w")
		h.feed(th.read(5, req("GET", "/old")))
		th.spend(event.CatCPU, ms)
		h.feed(th.write(5, "HTTP/1.1 200 OK\r\n\r\nunframed"))
		// fd 5 is closed without an EOF being read, and reused.
		th.gen[5]++
		th.spend(event.CatEpoll, ms)
		h.feed(th.read(5, req("GET", "/new")))
		if c := h.a.Counters(); c.ConnsActive != 2 || len(h.out) != 0 {
			t.Fatalf("%d profiles, counters %+v: the new socket must not end the old one's response", len(h.out), h.a.Counters())
		}
		th.spend(event.CatCPU, ms)
		h.feed(th.write(5, resp(201, "")))
		h.wantN(1)
		if p := h.out[0]; p.Path != "/new" || p.StatusCode != 201 || p.DurationNS != int64(ms) {
			t.Errorf("profile %s %d %d", p.Path, p.StatusCode, p.DurationNS)
		}
		// The old socket's response ends at IdleEnd.
		h.a.Flush(th.ts + uint64(3*time.Second))
		h.wantN(2)
		if p := h.out[1]; p.Path != "/old" || p.StatusCode != 200 {
			t.Errorf("profile %s %d", p.Path, p.StatusCode)
		}
		if c := h.a.Counters(); c.ConnsActive != 0 {
			t.Errorf("counters %+v", c)
		}
	})
	t.Run("same socket in two processes", func(t *testing.T) {
		// A socket inherited over fork is keyed per process.
		h := newHarness(t, Config{})
		a, b := newThr(101, "a"), newThr(201, "b")
		b.pid = 200
		h.feed(a.read(5, req("GET", "/a")))
		h.feed(b.read(5, req("GET", "/b")))
		if c := h.a.Counters(); c.ConnsActive != 2 {
			t.Fatalf("counters %+v", c)
		}
		b.spend(event.CatCPU, ms)
		h.feed(b.write(5, resp(200, "")))
		h.wantN(1)
		if p := h.out[0]; p.Path != "/b" || p.PID != 200 {
			t.Errorf("profile %s pid %d", p.Path, p.PID)
		}
	})
}

// TestKeepAliveUnknownLengthEndsAtNextRequest: a response without framing on
// a keep-alive connection ends when the next request arrives.
func TestKeepAliveUnknownLengthEndsAtNextRequest(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	h.feed(th.read(5, req("GET", "/a")))
	start := th.ts
	th.spend(event.CatCPU, ms)
	h.feed(th.write(5, "HTTP/1.1 200 OK\r\n\r\nbody"))
	end := th.ts
	th.spend(event.CatEpoll, 10*ms)
	h.feed(th.read(5, req("GET", "/b")))
	h.wantN(1)
	if p := h.out[0]; p.Path != "/a" || p.DurationNS != int64(end-start) {
		t.Errorf("path %q duration %d, want /a %d", p.Path, p.DurationNS, end-start)
	}
	th.spend(event.CatCPU, ms)
	h.feed(th.write(5, resp(200, "")))
	h.wantN(2)
	if p := h.out[1]; p.Path != "/b" || p.DurationNS != int64(ms) {
		t.Errorf("second: path %q duration %d", p.Path, p.DurationNS)
	}
	checkExact(t, h.out[0])
	checkExact(t, h.out[1])
}

func TestPipelined(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	r1, r2 := req("GET", "/one"), req("GET", "/two")
	h.feed(th.read(5, r1+r2))
	start := th.ts
	th.spend(event.CatCPU, 1*ms)
	h.feed(th.write(5, resp(200, "1")))
	h.wantN(1)
	if c := h.a.Counters().ConnsActive; c != 1 {
		t.Errorf("%d connections with the pipelined request waiting, want 1", c)
	}
	end1 := th.ts
	th.spend(event.CatCPU, 2*ms).spend(event.CatLock, 500*us)
	h.feed(th.write(5, resp(202, "2")))
	h.wantN(2)
	if c := h.a.Counters().ConnsActive; c != 0 {
		t.Errorf("%d connections after both responses, want 0", c)
	}
	p1, p2 := h.out[0], h.out[1]
	if p1.Path != "/one" || p2.Path != "/two" || p1.StatusCode != 200 || p2.StatusCode != 202 {
		t.Fatalf("paths %q %q statuses %d %d", p1.Path, p2.Path, p1.StatusCode, p2.StatusCode)
	}
	if p1.DurationNS != int64(end1-start) || p1.Breakdown[profile.Queue] != 0 {
		t.Errorf("first: duration %d queue %d", p1.DurationNS, p1.Breakdown[profile.Queue])
	}
	if want := (bd{profile.Queue: int64(end1 - start), profile.CPU: int64(2 * ms), profile.Lock: int64(500 * us)}); !reflect.DeepEqual(p2.Breakdown, want) {
		t.Errorf("second breakdown %v, want %v", p2.Breakdown, want)
	}
	if p2.DurationNS != int64(th.ts-start) {
		t.Errorf("second duration %d, want %d (from the shared read)", p2.DurationNS, th.ts-start)
	}
	checkExact(t, p1)
	checkExact(t, p2)
	if p2.RequestBytes != int64(len(r2)) {
		t.Errorf("second request bytes %d, want %d", p2.RequestBytes, len(r2))
	}
}

// The first of two pipelined requests read together is credited with the
// whole read.
func TestPipelinedRequestBytes(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	r1, r2 := req("GET", "/one"), req("GET", "/two")
	h.feed(th.read(5, r1+r2))
	th.spend(event.CatCPU, ms)
	h.feed(th.write(5, resp(200, "1")))
	th.spend(event.CatCPU, ms)
	h.feed(th.write(5, resp(200, "2")))
	h.wantN(2)
	if got := h.out[0].RequestBytes + h.out[1].RequestBytes; got != int64(len(r1+r2)) {
		t.Fatalf("regression: pipelined requests' RequestBytes sum to %d (%d + %d) for a %d-byte read: startRequest sets the first part's reqBytes to d.Ret (the whole read) and each later part's to its own length, counting the later parts twice",
			got, h.out[0].RequestBytes, h.out[1].RequestBytes, len(r1+r2))
	}
}

// A request pipelined in a later read, while the previous response is not
// yet written, waits in the queue too.
func TestPipelinedSeparateReads(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	h.feed(th.read(5, req("GET", "/one")))
	th.spend(event.CatCPU, ms)
	h.feed(th.read(5, req("GET", "/two")))
	start2 := th.ts
	th.spend(event.CatCPU, ms)
	h.feed(th.write(5, resp(200, "")))
	end1 := th.ts
	th.spend(event.CatCPU, 3*ms)
	h.feed(th.write(5, resp(200, "")))
	h.wantN(2)
	p2 := h.out[1]
	if p2.Path != "/two" || p2.Breakdown[profile.Queue] != int64(end1-start2) || p2.Breakdown[profile.CPU] != int64(3*ms) {
		t.Errorf("second: %s breakdown %v", p2.Path, p2.Breakdown)
	}
	checkExact(t, h.out[0])
	checkExact(t, p2)
}

func TestSegments(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	// A wait entirely before the request: not in its timeline.
	before := th.wait(event.CatEpoll, 3*ms, 10*us, func(s *event.Segment) { s.Syscall = 232 })
	h.feed(before)
	th.spend(event.CatCPU, 50*us)
	h.feed(th.read(5, req("GET", "/lock")))
	start := th.ts
	th.spend(event.CatCPU, 200*us)
	lock := th.wait(event.CatLock, 4*ms, 30*us, func(s *event.Segment) {
		s.Syscall, s.Arg0 = 202, 0xc000123
		s.WakerTID, s.WakerComm = 202, "holder"
	})
	h.feed(lock)
	th.spend(event.CatCPU, 100*us)
	preempt := th.wait(event.CatRunq, 0, 2*ms, nil)
	h.feed(preempt)
	th.spend(event.CatCPU, 100*us)
	h.feed(th.write(5, resp(200, "")))
	h.wantN(1)
	p := h.out[0]
	checkExact(t, p)
	want := []profile.Segment{
		{Category: profile.Lock, StartOffsetNS: int64(200 * us), DurationNS: int64(4 * ms), RunqNS: int64(30 * us),
			Syscall: "futex", WakerTID: 202, WakerName: "holder", Detail: "futex 0xc000123"},
		{Category: profile.Runq, StartOffsetNS: int64(lock.Run - start + 100*us), DurationNS: int64(2 * ms)},
	}
	if !reflect.DeepEqual(p.Timeline, want) {
		t.Errorf("timeline\n %+v\nwant\n %+v", p.Timeline, want)
	}
	if p.Breakdown[profile.Lock] != int64(4*ms) {
		t.Errorf("lock %d", p.Breakdown[profile.Lock])
	}
}

func TestSegmentClippedToWindow(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	h.feed(th.read(5, req("GET", "/x")))
	start := th.ts
	// A wait that (as far as the kernel reported) began before the request
	// read returned: only the part inside the window counts.
	seg := &event.Segment{
		Header: th.hdr(event.TypeSegment),
		Start:  start - 5*ms, Wake: start + 1*ms, Run: start + 1*ms + 20*us,
		BlockedNS: 6 * ms, RunqNS: 20 * us, Count: 1, Bytes: -1,
		Category: event.CatLock, WakerTID: 7, WakerComm: "gc", Syscall: 202, FD: -1,
	}
	h.feed(seg)
	th.spend(event.CatCPU, 3*ms)
	h.feed(th.write(5, resp(200, "")))
	h.wantN(1)
	tl := h.out[0].Timeline
	if len(tl) != 1 {
		t.Fatalf("timeline %+v", tl)
	}
	s := tl[0]
	if s.StartOffsetNS != 0 || s.WakerTID != 7 || s.WakerName != "gc" || s.Category != profile.Lock {
		t.Errorf("clipped segment %+v", s)
	}
	// Exactly 1 ms was blocked inside the window; the assembler apportions
	// a (possibly coalesced) segment's blocked time by the share of
	// [Start, Run] inside the window, so allow up to that span.
	if s.DurationNS < int64(ms) || s.DurationNS > int64(seg.Run-start) || s.RunqNS > int64(seg.Run-start) {
		t.Errorf("clipped segment duration %d runq %d, want ~1ms blocked within the %d ns in the window", s.DurationNS, s.RunqNS, seg.Run-start)
	}
}

// A wait of the reading thread that is still blocked when another thread
// writes the response: the segment must be clipped at the end with a
// non-negative runq tail.
func TestSegmentClippedAtEndCrossThread(t *testing.T) {
	h := newHarness(t, Config{})
	rd, wr := newThr(101, "reader"), newThr(102, "writer")
	h.feed(rd.read(5, req("GET", "/x")))
	start := rd.ts
	wr.ts = start
	rd.spend(event.CatCPU, ms)
	seg := rd.wait(event.CatLock, 10*ms, 500*us, func(s *event.Segment) { s.Syscall = 202; s.WakerTID = 102 })
	wr.spend(event.CatCPU, 5*ms)
	end := wr.ts
	h.feed(wr.write(5, "HTTP/1.1 200 OK\r\n\r\nstreaming")) // unknown length
	h.feed(seg)                                             // reader wakes after the write
	h.a.Flush(seg.Run + uint64(3*time.Second))
	h.wantN(1)
	p := h.out[0]
	if !p.Partial || !strings.Contains(p.PartialReason, "thread 102") {
		t.Errorf("partial %v %q", p.Partial, p.PartialReason)
	}
	if p.DurationNS != int64(end-start) {
		t.Errorf("duration %d want %d", p.DurationNS, end-start)
	}
	if len(p.Timeline) != 1 {
		t.Fatalf("timeline %+v", p.Timeline)
	}
	s := p.Timeline[0]
	if s.StartOffsetNS != int64(ms) {
		t.Errorf("segment %+v, want offset 1ms", s)
	}
	if s.RunqNS < 0 || s.DurationNS < 0 || s.StartOffsetNS+s.DurationNS+s.RunqNS > p.DurationNS {
		t.Fatalf("regression: a wait still blocked when the request ends is not clipped at the window end: segment offset %d duration %d runq %d in a %d ns request (want duration 4ms, runq 0)",
			s.StartOffsetNS, s.DurationNS, s.RunqNS, p.DurationNS)
	}
	if s.DurationNS != int64(4*ms) {
		t.Errorf("segment %+v, want duration 4ms", s)
	}
}

func TestNetworkPeer(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	db := event.Sock{Family: 2, Proto: 6, Local: netip.MustParseAddrPort("10.0.0.2:41000"), Remote: netip.MustParseAddrPort("10.1.2.3:5432")}
	th.socks[20] = db
	h.feed(th.read(5, req("GET", "/q")))
	start := th.ts
	th.spend(event.CatCPU, 100*us)
	h.feed(th.write(20, strings.Repeat("Q", 100)))
	offset := th.ts - start
	if c := h.a.Counters().ConnsActive; c != 1 {
		t.Errorf("%d connections tracked, want 1: outbound traffic makes no connection state", c)
	}
	s1 := th.wait(event.CatNet, 3*ms, 10*us, func(s *event.Segment) {
		s.Syscall, s.FD, s.FDKind, s.Sock, s.Bytes = 45, 20, event.FDSocket, db, 300
	})
	h.feed(s1)
	h.feed(th.read(20, strings.Repeat("R", 300)))
	th.spend(event.CatCPU, 100*us)
	h.feed(th.write(20, strings.Repeat("q", 50)))
	s2 := th.wait(event.CatNet, 2*ms, 0, func(s *event.Segment) {
		s.Syscall, s.FD, s.FDKind, s.Sock = 0, 20, event.FDSocket, db
	})
	h.feed(s2)
	h.feed(th.read(20, strings.Repeat("r", 70)))
	th.spend(event.CatCPU, 100*us)
	h.feed(th.write(5, resp(200, "done")))
	h.wantN(1)
	p := h.out[0]
	checkExact(t, p)
	want := []profile.NetworkPeer{{Peer: "10.1.2.3:5432", Protocol: "tcp", BytesSent: 150, BytesReceived: 370,
		WaitNS: int64(5 * ms), StartOffsetNS: int64(offset), Calls: 2}}
	if !reflect.DeepEqual(p.Network, want) {
		t.Errorf("network %+v, want %+v", p.Network, want)
	}
	if len(p.Timeline) != 2 || p.Timeline[0].Peer != "10.1.2.3:5432" || p.Timeline[0].FD != 20 || p.Timeline[0].Bytes != 300 ||
		p.Timeline[0].Syscall != "recvfrom" || p.Timeline[0].FDKind != "socket" {
		t.Errorf("timeline %+v", p.Timeline)
	}
	if p.Breakdown[profile.Net] != int64(5*ms) {
		t.Errorf("net %d", p.Breakdown[profile.Net])
	}
	// Traffic after the request is not attributed to it, nor to anything.
	h.feed(th.write(20, "late"), th.read(20, "reply"), th.eof(20))
	h.wantN(1)
	if c := h.a.Counters(); c.ConnsActive != 0 || c.Incomplete != 0 {
		t.Errorf("counters %+v: outbound traffic makes no connection state", c)
	}
}

// ---- DNS ----

func dnsName(name string) []byte {
	var b []byte
	for _, l := range strings.Split(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func buildDNSQuery(id uint16, name string, qtype uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(b[4:], 1)
	b = append(b, dnsName(name)...)
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, qtype), 1)
}

func buildDNSResponse(id uint16, name string, qtype uint16, rcode int, ip []byte) []byte {
	b := buildDNSQuery(id, name, qtype)
	binary.BigEndian.PutUint16(b[2:], 0x8180|uint16(rcode))
	if ip != nil {
		binary.BigEndian.PutUint16(b[6:], 1)
		b = append(b, 0xc0, 12) // pointer to the question name
		b = binary.BigEndian.AppendUint16(b, qtype)
		b = binary.BigEndian.AppendUint16(b, 1)
		b = binary.BigEndian.AppendUint32(b, 60)
		b = binary.BigEndian.AppendUint16(b, uint16(len(ip)))
		b = append(b, ip...)
	}
	return b
}

func TestDNS(t *testing.T) {
	udp := event.Sock{Family: 2, Proto: 17, Local: netip.MustParseAddrPort("10.0.0.2:40001"), Remote: netip.MustParseAddrPort("0.0.0.0:0")}
	server := netip.MustParseAddrPort("10.96.0.10:53")
	tests := []struct {
		name     string
		answer   bool
		rcode    int
		qtype    uint16
		wantType string
		wantRc   string
		viaConn  bool // connected socket: the server is the socket's remote
	}{
		{"A answered", true, 0, 1, "A", "NOERROR", false},
		{"AAAA nxdomain", true, 3, 28, "AAAA", "NXDOMAIN", false},
		{"AAAA answered", true, 0, 28, "AAAA", "NOERROR", false},
		{"connected socket", true, 2, 1, "A", "SERVFAIL", true},
		{"no answer", false, 0, 1, "A", "NO_ANSWER", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			th := newThr(101, "w")
			sock := udp
			if tc.viaConn {
				sock.Remote = server
			}
			th.socks[30] = sock
			// The kernel records an unconnected datagram's address on
			// sends only: replies carry none.
			dg := func(d *event.Data) *event.Data {
				if !tc.viaConn && d.Out {
					d.Datagram = server
				}
				return d
			}
			h.feed(th.read(5, req("GET", "/resolve")))
			start := th.ts
			th.spend(event.CatCPU, 100*us)
			q := buildDNSQuery(0xbeef, "api.example.com", tc.qtype)
			h.feed(dg(th.write(30, string(q))))
			qts := th.ts
			th.spend(event.CatNet, 2*ms)
			if tc.answer {
				// An unrelated response (other id) first: ignored for matching.
				h.feed(dg(th.read(30, string(buildDNSResponse(0x1111, "other.example.com", 1, 0, []byte{1, 2, 3, 4})))))
				var ip []byte
				switch {
				case tc.rcode != 0:
				case tc.qtype == 28:
					ip = netip.MustParseAddr("fd00::1").AsSlice()
				default:
					ip = []byte{10, 0, 0, 1}
				}
				h.feed(dg(th.read(30, string(buildDNSResponse(0xbeef, "api.example.com", tc.qtype, tc.rcode, ip)))))
			}
			ats := th.ts
			th.spend(event.CatCPU, 100*us)
			h.feed(th.write(5, resp(200, "")))
			h.wantN(1)
			p := h.out[0]
			checkExact(t, p)
			if len(p.DNS) == 0 {
				t.Fatal("no DNS queries")
			}
			got := p.DNS[0]
			want := profile.DNSQuery{Name: "api.example.com", Type: tc.wantType, Rcode: tc.wantRc, Server: "10.96.0.10:53",
				StartOffsetNS: int64(qts - start), LatencyNS: int64(ats - qts), Answered: tc.answer, Attempt: 1}
			if !tc.answer {
				want.LatencyNS = int64(th.ts - qts) // until the request ended
			}
			if got != want {
				t.Errorf("dns %+v\nwant %+v", got, want)
			}
			if h.a.Counters().DNSQueries != 1 {
				t.Errorf("DNSQueries %d", h.a.Counters().DNSQueries)
			}
			if len(p.Network) != 1 || p.Network[0].Peer != "10.96.0.10:53" || p.Network[0].Protocol != "udp" || p.Network[0].BytesSent != int64(len(q)) {
				t.Errorf("network %+v", p.Network)
			}
		})
	}
}

// A reply on an unconnected UDP socket carries no peer address: it is
// matched to the server the socket sent its query to.
func TestDNSReplyOnUnconnectedSocket(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	unconnected := event.Sock{Family: 2, Proto: 17, Local: netip.MustParseAddrPort("10.0.0.2:40003"), Remote: netip.MustParseAddrPort("0.0.0.0:0")}
	other := unconnected
	other.Local = netip.MustParseAddrPort("10.0.0.2:40004")
	th.socks[30], th.socks[31] = unconnected, other
	h.feed(th.read(5, req("GET", "/")))
	start := th.ts
	// Before any query, a DNS-looking reply on an unconnected socket is
	// no lookup.
	h.feed(th.read(30, string(buildDNSResponse(9, "early.example", 1, 0, []byte{9, 9, 9, 9}))))
	th.spend(event.CatCPU, 100*us)
	q := buildDNSQuery(0x5353, "svc.example", 1)
	send := th.write(30, string(q))
	send.Datagram = netip.MustParseAddrPort("10.0.0.53:53")
	h.feed(send)
	qts := th.ts
	th.spend(event.CatNet, 3*ms)
	a := buildDNSResponse(0x5353, "svc.example", 1, 0, []byte{10, 0, 0, 7})
	// The same reply on another socket, which sent no query: not an answer.
	h.feed(th.read(31, string(a)))
	h.feed(th.read(30, string(a))) // no Datagram, Sock.Remote zero
	ats := th.ts
	th.spend(event.CatCPU, 100*us)
	h.feed(th.write(5, resp(200, "")))
	h.wantN(1)
	p := h.out[0]
	checkExact(t, p)
	want := []profile.DNSQuery{{Name: "svc.example", Type: "A", Rcode: "NOERROR", Server: "10.0.0.53:53",
		StartOffsetNS: int64(qts - start), LatencyNS: int64(ats - qts), Answered: true, Attempt: 1}}
	if !reflect.DeepEqual(p.DNS, want) {
		t.Errorf("dns %+v\nwant %+v", p.DNS, want)
	}
	if c := h.a.Counters(); c.DNSQueries != 1 {
		t.Errorf("DNSQueries %d", c.DNSQueries)
	}
	var srv *profile.NetworkPeer
	for i := range p.Network {
		if p.Network[i].Peer == "10.0.0.53:53" {
			srv = &p.Network[i]
		}
	}
	if srv == nil || srv.Protocol != "udp" || srv.BytesSent != int64(len(q)) || srv.BytesReceived != int64(len(a)) || srv.Calls != 1 {
		t.Errorf("network %+v, want 10.0.0.53:53 udp sent %d received %d", p.Network, len(q), len(a))
	}
}

// The socket a query went out on is remembered per request: the next
// request's reads on that socket are not DNS replies of the earlier server.
func TestDNSSocketForgottenWithRequest(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	th.socks[30] = event.Sock{Family: 2, Proto: 17, Local: netip.MustParseAddrPort("10.0.0.2:40003"), Remote: netip.MustParseAddrPort("0.0.0.0:0")}
	h.feed(th.read(5, req("GET", "/1")))
	send := th.write(30, string(buildDNSQuery(1, "a.example", 1)))
	send.Datagram = netip.MustParseAddrPort("10.0.0.53:53")
	h.feed(send)
	th.spend(event.CatNet, ms)
	h.feed(th.write(5, resp(200, "")))
	h.feed(th.read(5, req("GET", "/2")))
	th.spend(event.CatNet, ms)
	h.feed(th.read(30, string(buildDNSResponse(1, "a.example", 1, 0, []byte{1, 2, 3, 4}))))
	h.feed(th.write(5, resp(200, "")))
	h.wantN(2)
	if d := h.out[0].DNS; len(d) != 1 || d[0].Answered {
		t.Errorf("first request dns %+v, want one unanswered query", d)
	}
	if d := h.out[1].DNS; len(d) != 0 {
		t.Errorf("second request dns %+v, want none", d)
	}
}

func TestDNSOverTCP(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	th.socks[31] = event.Sock{Family: 2, Proto: 6, Local: netip.MustParseAddrPort("10.0.0.2:40002"), Remote: netip.MustParseAddrPort("10.96.0.10:53")}
	h.feed(th.read(5, req("GET", "/")))
	q := buildDNSQuery(7, "db.internal", 1)
	h.feed(th.write(31, string(binary.BigEndian.AppendUint16(nil, uint16(len(q))))+string(q)))
	th.spend(event.CatNet, ms)
	a := buildDNSResponse(7, "db.internal", 1, 0, []byte{1, 1, 1, 1})
	h.feed(th.read(31, string(binary.BigEndian.AppendUint16(nil, uint16(len(a))))+string(a)))
	h.feed(th.write(5, resp(200, "")))
	h.wantN(1)
	if d := h.out[0].DNS; len(d) != 1 || d[0].Name != "db.internal" || !d[0].Answered || d[0].LatencyNS != int64(ms) {
		t.Errorf("dns %+v", d)
	}
}

// ---- partial ----

func TestPartial(t *testing.T) {
	t.Run("events lost", func(t *testing.T) {
		h := newHarness(t, Config{})
		th := newThr(101, "w")
		th.lost = 5
		h.feed(th.read(5, req("GET", "/")))
		th.spend(event.CatCPU, ms)
		th.lost = 8
		h.feed(th.write(5, resp(200, "")))
		h.wantN(1)
		p := h.out[0]
		if !p.Partial || !strings.Contains(p.PartialReason, "3 kernel events lost") {
			t.Errorf("partial %v %q", p.Partial, p.PartialReason)
		}
		checkExact(t, p)
		if h.a.Counters().Partial != 1 {
			t.Errorf("Partial counter %d", h.a.Counters().Partial)
		}
	})
	t.Run("same lost count is complete", func(t *testing.T) {
		h := newHarness(t, Config{})
		th := newThr(101, "w")
		th.lost = 9
		h.feed(th.read(5, req("GET", "/")))
		th.spend(event.CatCPU, ms)
		h.feed(th.write(5, resp(200, "")))
		h.wantN(1)
		if h.out[0].Partial {
			t.Errorf("partial: %q", h.out[0].PartialReason)
		}
	})
	t.Run("response by another thread", func(t *testing.T) {
		h := newHarness(t, Config{})
		rd, wr := newThr(101, "reader"), newThr(102, "writer")
		h.feed(rd.read(5, req("GET", "/")))
		start := rd.ts
		wr.ts = start
		wr.spend(event.CatCPU, 2*ms)
		h.feed(wr.write(5, resp(200, "")))
		h.wantN(1)
		p := h.out[0]
		if !p.Partial || !strings.Contains(p.PartialReason, "response written by thread 102, request read by thread 101") {
			t.Errorf("partial %v %q", p.Partial, p.PartialReason)
		}
		if p.DurationNS != int64(2*ms) || !reflect.DeepEqual(p.Breakdown, bd{profile.Other: int64(2 * ms)}) {
			t.Errorf("duration %d breakdown %v", p.DurationNS, p.Breakdown)
		}
		if h.a.Counters().CrossThread != 1 {
			t.Errorf("CrossThread %d", h.a.Counters().CrossThread)
		}
	})
	t.Run("unparsable request head", func(t *testing.T) {
		h := newHarness(t, Config{})
		th := newThr(101, "w")
		h.feed(th.read(5, "GET /\x01bad HTTP/1.1\r\n\r\n"))
		th.spend(event.CatCPU, ms)
		h.feed(th.write(5, resp(400, "")))
		h.wantN(1)
		p := h.out[0]
		if !p.Partial || p.Method != "?" || p.Path != "?" || h.a.Counters().ParseErrors == 0 {
			t.Errorf("partial %v %q method %q path %q", p.Partial, p.PartialReason, p.Method, p.Path)
		}
	})
}

// ---- bounds ----

func TestMaxConnsEviction(t *testing.T) {
	h := newHarness(t, Config{MaxConns: 2})
	th := newThr(101, "w")
	h.feed(th.read(1, req("GET", "/1")))
	th.spend(event.CatCPU, ms)
	h.feed(th.write(1, "HTTP/1.1 200 OK\r\n\r\nunframed")) // response started, unknown length
	th.spend(event.CatCPU, ms)
	h.feed(th.read(2, req("GET", "/2")))
	th.spend(event.CatCPU, ms)
	h.feed(th.read(3, req("GET", "/3"))) // evicts fd 1: its response is emitted
	c := h.a.Counters()
	if c.DroppedConns != 1 || c.ConnsActive != 2 {
		t.Errorf("after 3 conns: %+v", c)
	}
	h.wantN(1)
	if h.out[0].Path != "/1" {
		t.Errorf("evicted profile %q", h.out[0].Path)
	}
	th.spend(event.CatCPU, ms)
	h.feed(th.read(4, req("GET", "/4"))) // evicts fd 2: no response yet
	c = h.a.Counters()
	if c.DroppedConns != 2 || c.ConnsActive != 2 || c.Incomplete != 1 {
		t.Errorf("after 4 conns: %+v", c)
	}
	h.wantN(1)
	// fd 3 and fd 4 still work.
	h.feed(th.write(3, resp(200, "")), th.write(4, resp(200, "")))
	h.wantN(3)
	if c := h.a.Counters(); c.ConnsActive != 0 || c.DroppedConns != 2 {
		t.Errorf("after the responses: %+v", c)
	}
}

// Only connections with a request in flight count against MaxConns:
// finished keep-alive connections and outbound sockets take no slot.
func TestMaxConnsCountsOnlyInFlight(t *testing.T) {
	h := newHarness(t, Config{MaxConns: 2})
	th := newThr(101, "w")
	db := event.Sock{Family: 2, Proto: 6, Local: netip.MustParseAddrPort("10.0.0.2:41000"), Remote: netip.MustParseAddrPort("10.1.2.3:5432")}
	for fd := int32(10); fd < 20; fd++ {
		th.socks[fd+100] = db
		h.feed(th.read(fd, req("GET", fmt.Sprint("/", fd))))
		th.spend(event.CatCPU, ms)
		h.feed(th.write(fd+100, "Q"), th.read(fd+100, "R")) // a downstream call
		th.spend(event.CatCPU, ms)
		h.feed(th.write(fd, resp(200, "")))
	}
	h.wantN(10)
	if c := h.a.Counters(); c.ConnsActive != 0 || c.DroppedConns != 0 {
		t.Fatalf("after 10 finished requests: %+v", c)
	}
	h.feed(th.read(1, req("GET", "/a")), th.read(2, req("GET", "/b")))
	if c := h.a.Counters(); c.ConnsActive != 2 || c.DroppedConns != 0 {
		t.Fatalf("two in flight: %+v", c)
	}
	h.feed(th.write(1, resp(200, "")), th.write(2, resp(200, "")))
	h.wantN(12)
	for _, p := range h.out {
		if p.Partial {
			t.Errorf("%s partial: %s", p.Path, p.PartialReason)
		}
	}
}

func TestMaxSegmentsEviction(t *testing.T) {
	h := newHarness(t, Config{MaxSegments: 3})
	th := newThr(101, "w")
	h.feed(th.read(5, req("GET", "/")))
	for i := 0; i < 5; i++ {
		th.spend(event.CatCPU, 10*us)
		h.feed(th.wait(event.CatFile, uint64(i+1)*ms, 0, func(s *event.Segment) {
			s.Syscall, s.FD, s.FDKind, s.Path = 74, 9, event.FDFile, ".../lib/data.db"
		}))
	}
	h.feed(th.write(5, resp(200, "")))
	h.wantN(1)
	if c := h.a.Counters(); c.DroppedSegs != 2 {
		t.Errorf("DroppedSegs %d", c.DroppedSegs)
	}
	tl := h.out[0].Timeline
	if len(tl) != 3 {
		t.Fatalf("timeline has %d segments, want the newest 3", len(tl))
	}
	for i, s := range tl {
		if s.DurationNS != int64(uint64(i+3)*ms) || s.File != ".../lib/data.db" || s.Syscall != "fsync" {
			t.Errorf("segment %d: %+v", i, s)
		}
	}
	// Breakdown still has all file time: counters are not bounded.
	if got := h.out[0].Breakdown[profile.File]; got != int64(15*ms) {
		t.Errorf("file %d", got)
	}
}

func TestFileNameResolver(t *testing.T) {
	var calls int
	h := newHarness(t, Config{FileName: func(p uint32, fd int32, ino uint64) string {
		calls++
		if p == pid && fd == 9 && ino == 77 {
			return "/var/lib/app/data.db"
		}
		return ""
	}})
	th := newThr(101, "w")
	h.feed(th.read(5, req("GET", "/")))
	h.feed(th.wait(event.CatFile, ms, 0, func(s *event.Segment) {
		s.FD, s.FDKind, s.Inode, s.Path = 9, event.FDFile, 77, ".../app/data.db"
	}))
	h.feed(th.wait(event.CatFile, ms, 0, func(s *event.Segment) {
		s.Syscall, s.FD, s.FDKind, s.Inode, s.Path = 0, 10, event.FDFile, 78, "/x.log"
	}))
	h.feed(th.write(5, resp(200, "")))
	h.wantN(1)
	tl := h.out[0].Timeline
	// /proc is asked only when the kernel's walk was cut short.
	if calls != 1 || len(tl) != 2 || tl[0].File != "/var/lib/app/data.db" || tl[1].File != "/x.log" {
		t.Errorf("calls %d timeline %+v", calls, tl)
	}
	if tl[0].Detail != "page fault / I/O wait" || tl[1].Detail != "" {
		t.Errorf("details %q %q", tl[0].Detail, tl[1].Detail)
	}
}

func TestExit(t *testing.T) {
	h := newHarness(t, Config{})
	main := newThr(pid, "main")
	wk := newThr(101, "w")
	h.feed(main.read(5, req("GET", "/a")))
	main.spend(event.CatCPU, ms)
	h.feed(main.write(5, "HTTP/1.1 200 OK\r\n\r\nunframed"))
	h.feed(wk.read(6, req("GET", "/b"))) // no response yet
	// A non-main thread exiting ends nothing.
	h.feed(&event.Exit{Header: event.Header{Type: event.TypeExit, PID: pid, TID: 102, TS: main.ts}})
	h.wantN(0)
	if c := h.a.Counters(); c.ConnsActive != 2 {
		t.Fatalf("conns %d", c.ConnsActive)
	}
	// Another process's exit ends nothing of ours.
	h.feed(&event.Exit{Header: event.Header{Type: event.TypeExit, PID: 999, TID: 999, TS: main.ts}})
	h.wantN(0)
	main.spend(event.CatCPU, ms)
	h.feed(&event.Exit{Header: main.hdr(event.TypeExit)})
	h.wantN(1)
	if p := h.out[0]; p.Path != "/a" || p.DurationNS != int64(ms) {
		t.Errorf("profile %s %d", p.Path, p.DurationNS)
	}
	c := h.a.Counters()
	if c.ConnsActive != 0 || c.Incomplete != 1 {
		t.Errorf("counters %+v", c)
	}
}

// The main thread exiting while serving: its timeline should survive.
func TestExitKeepsTimeline(t *testing.T) {
	h := newHarness(t, Config{})
	main := newThr(pid, "main")
	h.feed(main.read(5, req("GET", "/a")))
	h.feed(main.wait(event.CatLock, 3*ms, 0, func(s *event.Segment) { s.Syscall = 202; s.WakerTID = 101 }))
	h.feed(main.write(5, "HTTP/1.1 200 OK\r\n\r\nunframed"))
	h.feed(&event.Exit{Header: main.hdr(event.TypeExit)})
	h.wantN(1)
	if len(h.out[0].Timeline) != 1 {
		t.Fatalf("regression: profile ended by the main thread's exit has %d timeline segments, want 1: onExit deletes a.threads[e.TID] before endConn builds the profiles, so addTimeline finds no segments", len(h.out[0].Timeline))
	}
}

func TestStaleRequest(t *testing.T) {
	h := newHarness(t, Config{StaleRequest: time.Minute})
	th := newThr(101, "w")
	h.feed(th.read(5, req("GET", "/slow")))
	start := th.ts
	h.a.Flush(start + uint64(time.Minute))
	if c := h.a.Counters(); c.DroppedStale != 0 || c.ConnsActive != 1 {
		t.Fatalf("dropped too early: %+v", c)
	}
	h.a.Flush(start + uint64(time.Minute) + 1)
	c := h.a.Counters()
	if c.DroppedStale != 1 || c.ConnsActive != 0 || c.Profiles != 0 {
		t.Errorf("counters %+v", c)
	}
	h.wantN(0)
	// A late response after the drop makes no profile.
	h.feed(th.write(5, resp(200, "")))
	h.wantN(0)
}

// An idle connection is forgotten as soon as its response ends (there is no
// close record to wait for); Flush drops segments too old for any request.
func TestIdleConnForgottenAndFlushDropsOldSegments(t *testing.T) {
	h := newHarness(t, Config{StaleRequest: time.Minute, MaxSegments: 10})
	th := newThr(101, "w")
	h.feed(th.wait(event.CatEpoll, ms, 0, nil))
	h.feed(th.read(5, req("GET", "/")))
	h.feed(th.write(5, resp(200, "")))
	h.wantN(1)
	if c := h.a.Counters(); c.ConnsActive != 0 {
		t.Errorf("idle conn kept after its response: %+v", c)
	}
	h.a.Flush(th.ts + uint64(time.Minute) - 1)
	if n := len(h.a.threads[101].segs); n != 1 {
		t.Errorf("%d segments kept before they are stale, want 1", n)
	}
	h.a.Flush(th.ts + uint64(2*time.Minute))
	if c := h.a.Counters(); c.ConnsActive != 0 {
		t.Errorf("idle conn kept: %+v", c)
	}
	if n := len(h.a.threads[101].segs); n != 0 {
		t.Errorf("%d old segments kept", n)
	}
}

// The 100 Continue interim response must not end the request: the final
// response does.
func TestInterimResponse(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	h.feed(th.read(5, req("POST", "/upload", "Expect: 100-continue\r\n", "Content-Length: 4\r\n")))
	start := th.ts
	th.spend(event.CatCPU, 100*us)
	h.feed(th.write(5, "HTTP/1.1 100 Continue\r\n\r\n"))
	th.spend(event.CatNet, ms)
	h.feed(th.read(5, "body"))
	th.spend(event.CatCPU, ms)
	h.feed(th.write(5, resp(201, "")))
	if len(h.out) != 1 || h.out[0].StatusCode != 201 || h.out[0].DurationNS != int64(th.ts-start) {
		var got []string
		for _, p := range h.out {
			got = append(got, fmt.Sprintf("status %d dur %d", p.StatusCode, p.DurationNS))
		}
		t.Fatalf("regression: Expect: 100-continue request gave %v, want one profile status 201 duration %d: onResponseWrite finishes the request at the interim 100 response (httpparse.NoBody is true for 1xx), and the final response write then finds no current request", got, th.ts-start)
	}
}

// ---- garbage ----

func TestGarbage(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		b := make([]byte, rng.Intn(600))
		rng.Read(b)
		th.spend(rng.Intn(event.NumCategories), uint64(rng.Intn(1000)))
		d := th.data(int32(rng.Intn(8)), rng.Intn(2) == 0, string(b))
		d.Ret = int64(rng.Intn(2000)) + 1
		h.feed(d)
	}
	// Responses without a request.
	h.feed(th.write(9, resp(200, "x")), th.write(9, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	// EOF before any request, on sockets seen and unseen.
	h.feed(th.eof(10), th.eof(11), th.eof(9))
	// Values the assembler does not know, and zero values.
	h.feed(nil, "string", 42, &event.Exit{}, &event.Header{}, &event.Data{}, &event.Segment{})
	h.a.Flush(th.ts + uint64(time.Hour))
	h.wantN(0)
	if c := h.a.Counters(); c.Events == 0 {
		t.Errorf("counters %+v", c)
	}
}

func TestCountDecodeError(t *testing.T) {
	a := New(Config{}, func(*profile.Profile) {})
	a.CountDecodeError()
	a.CountDecodeError()
	if c := a.Counters(); c.DecodeErrors != 2 || c.Events != 0 {
		t.Errorf("counters %+v", c)
	}
}

// ---- fuzz ----

// FuzzAssembler turns the input into a short sequence of synthetic events
// (three threads of one process with consistent counters, a few fds) and
// checks that no input panics or produces an impossible profile, that
// connection state stays bounded, and that none is left once every request
// has ended.
func FuzzAssembler(f *testing.F) {
	f.Add([]byte{0, 0, 0, 10, 2, 0, 1, 5, 3, 0, 2, 5})
	f.Add([]byte{0, 0, 3, 1, 2, 0, 7, 5, 2, 0, 8, 5, 2, 0, 9, 1, 9, 0, 0, 0})
	f.Add([]byte{0, 1, 0, 10, 2, 2, 1, 5, 5, 1, 0, 1, 6, 0, 0, 200})
	f.Add([]byte{0, 0, 0, 1, 4, 0, 0, 1, 2, 0, 4, 1, 7, 0, 0, 3, 8, 0, 0, 255})
	f.Add([]byte{0, 0, 2, 1, 2, 0, 3, 1, 2, 0, 1, 1, 1, 0, 0, 1, 9, 0, 0, 100})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out []*profile.Profile
		a := New(Config{IdleEnd: time.Millisecond, StaleRequest: 50 * time.Millisecond, MaxConns: 3, MaxSegments: 4},
			func(p *profile.Profile) { out = append(out, p) })
		ths := []*thr{newThr(pid, "main"), newThr(101, "w1"), newThr(102, "w2")}
		now := t0
		payloads := []string{
			req("GET", "/a"),
			req("POST", "/b", "Content-Length: 3\r\n") + "abc",
			resp(200, "hello"),
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
			"5\r\nhello\r\n",
			"0\r\n\r\n",
			"HTTP/1.1 200 OK\r\n\r\nunframed",
			req("GET", "/c") + req("GET", "/d"),
			string(buildDNSQuery(1, "x.example", 1)),
			string(buildDNSResponse(1, "x.example", 1, 0, []byte{1, 2, 3, 4})),
			"HTTP/1.1 100 Continue\r\n\r\n",
			"HTTP/1.1 204 No Content\r\n\r\n",
		}
		consistent := true
		for i := 0; i+4 <= len(in) && i < 4*64; i += 4 {
			op, who, arg, dt := in[i], in[i+1], in[i+2], uint64(in[i+3])
			th := ths[int(who)%len(ths)]
			fd := int32(who>>2) % 4
			// fd 3 is a UDP socket to a DNS server: connected, or (who bit
			// 0x40) unconnected, its sends naming the server, its replies not.
			unconnected := fd == 3 && who&0x40 != 0
			if fd == 3 {
				th.socks[3] = event.Sock{Family: 2, Proto: 17, Remote: netip.MustParseAddrPort("10.96.0.10:53")}
				if unconnected {
					th.socks[3] = event.Sock{Family: 2, Proto: 17, Remote: netip.MustParseAddrPort("0.0.0.0:0")}
				}
			}
			// Time moves forward for everyone; the thread spends it in a category.
			if th.ts < now {
				th.spend(event.CatEpoll, now-th.ts)
			}
			th.spend(int(arg)%event.NumCategories, dt*us)
			now = th.ts
			var ev any
			switch op % 10 {
			case 0, 1:
				ev = th.read(fd, payloads[int(arg)%len(payloads)])
			case 2, 3:
				d := th.write(fd, payloads[int(arg)%len(payloads)])
				if unconnected {
					d.Datagram = netip.MustParseAddrPort("10.96.0.10:53")
				}
				ev = d
			case 4:
				// Raw fuzz bytes as a payload.
				end := min(len(in), i+4+int(arg)%32)
				d := th.data(fd, op&0x10 != 0, string(in[i+4:end]))
				d.Ret = int64(arg) - 8 // may be 0 or negative
				ev = d
			case 5:
				ev = th.wait(int(arg)%event.NumCategories, dt*us, uint64(arg)*us/4, func(s *event.Segment) {
					s.Syscall, s.FD, s.FDKind, s.WakerTID = int32(arg)-1, fd, event.FDKind(arg%8), uint32(arg)
					if arg&1 == 0 {
						s.Wake = 0
					}
				})
				now = th.ts
			case 6:
				ev = th.eof(fd)
			case 7:
				// The fd is closed and reused: a new socket behind the same
				// number, for every thread. Its first bytes move without an
				// fd (io_uring, splice).
				for _, o := range ths {
					o.gen[fd]++
				}
				d := th.data(fd, op&0x10 != 0, payloads[int(arg)%len(payloads)])
				d.FD = -1
				ev = d
			case 8:
				ev = &event.Exit{Header: th.hdr(event.TypeExit)}
			case 9:
				if arg&1 == 1 {
					th.lost++
				}
				if arg&2 == 2 {
					// Inconsistent counters: a category goes backwards.
					consistent = false
					th.cnt[int(dt)%event.NumCategories] /= 2
				}
				a.Flush(now + uint64(arg)*uint64(time.Millisecond)/8)
				continue
			}
			a.Handle(ev)
			if c := a.Counters(); c.ConnsActive > 3 {
				t.Fatalf("%d connections tracked, MaxConns is 3", c.ConnsActive)
			}
		}
		// Each Flush ends or drops the current request of every connection;
		// a pipelined one behind it takes another.
		for i := 0; i < 100 && a.Counters().ConnsActive > 0; i++ {
			a.Flush(now + uint64(time.Hour))
		}
		if c := a.Counters(); c.ConnsActive != 0 {
			t.Fatalf("%d connections left after every request ended: %+v", c.ConnsActive, c)
		}
		for _, p := range out {
			if p.DurationNS < 0 {
				t.Fatalf("negative duration %d", p.DurationNS)
			}
			for c, v := range p.Breakdown {
				if v < 0 {
					t.Fatalf("breakdown[%s] = %d", c, v)
				}
			}
			if consistent && !strings.Contains(p.PartialReason, "response written by thread") {
				if s := sum(p.Breakdown); s != p.DurationNS {
					t.Fatalf("%s %s: breakdown sums to %d, duration %d: %v", p.Method, p.Path, s, p.DurationNS, p.Breakdown)
				}
			}
			for _, s := range p.Timeline {
				if s.DurationNS < 0 || s.StartOffsetNS < 0 || s.StartOffsetNS > p.DurationNS {
					t.Fatalf("segment %+v outside the %d ns window", s, p.DurationNS)
				}
			}
			for _, n := range p.Network {
				if n.BytesSent < 0 || n.BytesReceived < 0 {
					t.Fatalf("network %+v", n)
				}
			}
		}
	})
}

// Coalesced waits keep their count; a timed futex wait that expired is a
// sleep, with no waker.
func TestCoalescedAndTimedSegments(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	h.feed(th.read(5, req("GET", "/")))
	h.feed(th.wait(event.CatFile, 8*ms, 100*us, func(s *event.Segment) {
		s.Count, s.Syscall, s.FD, s.FDKind, s.Path = 20, 74, 9, event.FDFile, "/wal"
	}))
	h.feed(th.wait(event.CatSleep, 5*ms, 0, func(s *event.Segment) {
		s.Syscall, s.Arg0, s.Timed, s.WakerTID, s.WakerComm = 202, 0x10, true, 55, "irq"
	}))
	h.feed(th.write(5, resp(200, "")))
	h.wantN(1)
	tl := h.out[0].Timeline
	if len(tl) != 2 {
		t.Fatalf("timeline %+v", tl)
	}
	if tl[0].Count != 20 || tl[0].DurationNS != int64(8*ms) || tl[0].RunqNS != int64(100*us) || tl[0].File != "/wal" {
		t.Errorf("coalesced segment %+v", tl[0])
	}
	if tl[1].Category != profile.Sleep || tl[1].Count != 0 || tl[1].WakerTID != 0 || !strings.Contains(tl[1].Detail, "timed futex") {
		t.Errorf("timed futex segment %+v", tl[1])
	}
	checkExact(t, h.out[0])
}

// A request head split across reads (a slow client, a small buffer) is
// reassembled: the trace header in the second part is not lost.
func TestSplitRequestHead(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	full := req("GET", "/split?x=1", "traceparent: 00-"+id+"-00f067aa0ba902b7-01\r\n")
	for _, cut := range []int{5, 20, len("GET /split?x=1 HTTP/1.1\r\nHost: svc.local\r\ntracep"), len(full) - 1} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			h := newHarness(t, Config{})
			th := newThr(101, "w")
			h.feed(th.read(5, full[:cut]))
			th.spend(event.CatNet, 3*ms)
			h.feed(th.read(5, full[cut:]))
			th.spend(event.CatCPU, 2*ms)
			h.feed(th.write(5, resp(200, "ok")))
			h.wantN(1)
			p := h.out[0]
			if cut < 5 {
				return
			}
			if p.TraceID != id || p.Path != "/split" || p.Method != "GET" || p.Partial {
				t.Errorf("got trace %s %s %s partial %v (%s)", p.TraceID, p.Method, p.Path, p.Partial, p.PartialReason)
			}
			if p.RequestBytes != int64(len(full)) {
				t.Errorf("request_bytes %d, want %d", p.RequestBytes, len(full))
			}
			if c := h.a.Counters(); c.ParseErrors != 0 {
				t.Errorf("parse errors %d", c.ParseErrors)
			}
		})
	}
}

// A capture gap (the kernel copies at most 512 bytes per read) ends the
// reassembly: what was parsed stays, nothing is invented.
func TestSplitRequestHeadWithGap(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	first := th.read(5, "GET /gap HTTP/1.1\r\nHost: a\r\n")
	h.feed(first)
	second := th.read(5, "X-Long: "+strings.Repeat("y", 100))
	second.Ret = 5000 // only the first bytes were captured
	h.feed(second)
	h.feed(th.read(5, "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"))
	h.feed(th.write(5, resp(200, "ok")))
	h.wantN(1)
	if p := h.out[0]; p.Path != "/gap" || !p.TraceIDGenerated {
		t.Errorf("path %q generated %v: a header after a gap must not be trusted", p.Path, p.TraceIDGenerated)
	}
}

// Lost events can leave a request without its response; when another
// thread then reads a new request on that connection, the new one is
// served on its own, not queued behind one that will never finish.
func TestStaleRequestDoesNotSwallowTheNext(t *testing.T) {
	h := newHarness(t, Config{})
	a, b := newThr(101, "a"), newThr(102, "b")
	h.feed(a.read(5, req("GET", "/lost")))
	// (the response to /lost was lost with the ring buffer full)
	b.ts = a.ts + uint64(ms)
	h.feed(b.read(5, req("GET", "/next", "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n")))
	b.spend(event.CatCPU, ms)
	h.feed(b.write(5, resp(200, "ok")))
	h.wantN(1)
	if p := h.out[0]; p.Path != "/next" || p.TID != 102 || p.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("got %s tid %d trace %s", p.Path, p.TID, p.TraceID)
	}
	if c := h.a.Counters(); c.Incomplete != 1 || c.ConnsActive != 0 {
		t.Errorf("counters %+v", c)
	}
}

// A worker of a saturated pool reads a request whose bytes arrived while it
// was serving another: the request starts at the arrival, the wait is queue
// (a timeline segment naming the thread), and the worker's waits before the
// read (the previous request's) stay out of its timeline.
func TestQueuedInReceiveBuffer(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "worker-1")
	h.feed(th.read(5, req("GET", "/first")))
	arrival := th.ts + 1*ms // the second request's bytes come meanwhile
	h.feed(th.wait(event.CatSleep, 150*ms, 20*us, nil))
	h.feed(th.write(5, resp(200, "one")))
	th.spend(event.CatCPU, 40*us)
	rd := th.read(6, req("GET", "/second"))
	rd.Arrival = arrival
	readTS := th.ts
	h.feed(rd)
	th.spend(event.CatCPU, 3*ms)
	h.feed(th.write(6, resp(200, "two")))
	h.wantN(2)
	p := h.out[1]
	if p.Path != "/second" {
		t.Fatalf("last profile is %s", p.Path)
	}
	checkExact(t, p)
	queue := int64(readTS - arrival)
	if want := (bd{profile.Queue: queue, profile.CPU: int64(3 * ms)}); !reflect.DeepEqual(p.Breakdown, want) {
		t.Errorf("breakdown %v, want %v", p.Breakdown, want)
	}
	if p.DurationNS != queue+int64(3*ms) || p.StartTime != time.Unix(0, int64(arrival)) {
		t.Errorf("duration %d start %v: want from the arrival", p.DurationNS, p.StartTime)
	}
	want := []profile.Segment{{Category: profile.Queue, DurationNS: queue,
		Detail: "request waited in the socket receive buffer until thread 101 (worker-1) read it"}}
	if !reflect.DeepEqual(p.Timeline, want) {
		t.Errorf("timeline %+v, want only the queue (the sleep was the first request's)", p.Timeline)
	}

	// Bytes that came while the thread waited for them carry no arrival
	// (the kernel drops it): nothing changes.
	h2 := newHarness(t, Config{})
	h2.wantN(0)
	th2 := newThr(102, "w")
	h2.feed(th2.read(5, req("GET", "/x")))
	th2.spend(event.CatCPU, ms)
	h2.feed(th2.write(5, resp(200, "")))
	h2.wantN(1)
	if q := h2.out[0].Breakdown[profile.Queue]; q != 0 {
		t.Errorf("queue %d without an arrival", q)
	}
}

// glibc's resolver sends A and AAAA together; when one is lost it waits its
// timeout and sends the same queries again, with the same IDs. The answer
// belongs to the retry; the lost copy timed out when it was sent again.
func TestDNSRetrySameID(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	th.socks[30] = event.Sock{Family: 2, Proto: 17, Local: netip.MustParseAddrPort("10.0.0.2:40005"), Remote: netip.MustParseAddrPort("10.96.0.10:53")}
	const name = "backend.shop.svc.cluster.local"
	h.feed(th.read(5, req("GET", "/checkout")))
	start := th.ts
	h.feed(th.write(30, string(buildDNSQuery(7, name, 1)))) // A: lost
	a1 := th.ts
	h.feed(th.write(30, string(buildDNSQuery(8, name, 28)))) // AAAA
	aaaa1 := th.ts
	th.spend(event.CatNet, ms)
	h.feed(th.read(30, string(buildDNSResponse(8, name, 28, 0, nil))))
	aaaa1done := th.ts
	th.spend(event.CatNet, 5000*ms)                         // the timeout
	h.feed(th.write(30, string(buildDNSQuery(7, name, 1)))) // A again, same ID
	a2 := th.ts
	th.spend(event.CatNet, ms)
	h.feed(th.read(30, string(buildDNSResponse(7, name, 1, 0, []byte{10, 77, 0, 3}))))
	a2done := th.ts
	h.feed(th.write(30, string(buildDNSQuery(8, name, 28)))) // AAAA again
	aaaa2 := th.ts
	th.spend(event.CatNet, ms)
	h.feed(th.read(30, string(buildDNSResponse(8, name, 28, 0, nil))))
	aaaa2done := th.ts
	th.spend(event.CatCPU, 100*us)
	h.feed(th.write(5, resp(200, "")))
	h.wantN(1)
	p := h.out[0]
	checkExact(t, p)
	srv := "10.96.0.10:53"
	off := func(ts uint64) int64 { return int64(ts - start) }
	want := []profile.DNSQuery{
		{Name: name, Type: "A", Rcode: "NO_ANSWER", Server: srv, StartOffsetNS: off(a1), LatencyNS: int64(a2 - a1), Attempt: 1},
		{Name: name, Type: "AAAA", Rcode: "NOERROR", Server: srv, StartOffsetNS: off(aaaa1), LatencyNS: int64(aaaa1done - aaaa1), Answered: true, Attempt: 1},
		{Name: name, Type: "A", Rcode: "NOERROR", Server: srv, StartOffsetNS: off(a2), LatencyNS: int64(a2done - a2), Answered: true, Attempt: 2},
		{Name: name, Type: "AAAA", Rcode: "NOERROR", Server: srv, StartOffsetNS: off(aaaa2), LatencyNS: int64(aaaa2done - aaaa2), Answered: true, Attempt: 2},
	}
	if !reflect.DeepEqual(p.DNS, want) {
		t.Errorf("dns\n%+v\nwant\n%+v", p.DNS, want)
	}

	// A slow first copy answered after the retry went out: the first answer
	// goes to the retry, a second one to the earlier copy.
	h2 := newHarness(t, Config{})
	th2 := newThr(102, "w")
	th2.socks[30] = th.socks[30]
	h2.feed(th2.read(5, req("GET", "/checkout")))
	h2.feed(th2.write(30, string(buildDNSQuery(9, name, 1))))
	th2.spend(event.CatNet, 1000*ms)
	h2.feed(th2.write(30, string(buildDNSQuery(9, name, 1))))
	th2.spend(event.CatNet, ms)
	h2.feed(th2.read(30, string(buildDNSResponse(9, name, 1, 0, []byte{1, 2, 3, 4}))))
	h2.feed(th2.read(30, string(buildDNSResponse(9, name, 1, 0, []byte{1, 2, 3, 4}))))
	h2.feed(th2.write(5, resp(200, "")))
	h2.wantN(1)
	if d := h2.out[0].DNS; len(d) != 2 || !d[0].Answered || !d[1].Answered || d[1].LatencyNS != int64(ms) {
		t.Errorf("dns %+v, want both answered, the retry in 1 ms", d)
	}
}

// A response still unacknowledged at its last write is held until the
// client acknowledges it: the profile gets the delivery time and the
// window-limited time up to then.
func TestDeliveryAwaitsAck(t *testing.T) {
	h := newHarness(t, Config{})
	th := newThr(101, "w")
	rd := th.read(5, req("GET", "/big"))
	rd.RwndLimitedNS = 1000
	h.feed(rd)
	th.spend(event.CatNet, 200*ms)
	wr := th.write(5, resp(200, "body"))
	wr.Unacked, wr.RwndLimitedNS, wr.PeerWindow, wr.PeerWindowMin, wr.PeerWindowSeen = 600<<10, 1000+20*ms, 90_000, 85_000, true
	h.feed(wr)
	h.wantN(0)
	ack := &event.Acked{Header: event.Header{Type: event.TypeAcked, PID: pid, TS: th.ts + 370*ms}, Socket: th.socket(5),
		RwndLimitedNS: 1000 + 380*ms, PeerWindow: 104_810, PeerWindowMin: 84_564, PeerWindowSeen: true}
	h.feed(ack)
	h.wantN(1)
	p := h.out[0]
	want := &profile.TCPSend{WindowLimitedNS: int64(380 * ms), PeerWindowMinBytes: 84_564, PeerWindowBytes: 104_810, DeliveryNS: int64(370 * ms)}
	if !reflect.DeepEqual(p.TCP, want) {
		t.Errorf("tcp %+v, want %+v", p.TCP, want)
	}
	checkExact(t, p)
}
