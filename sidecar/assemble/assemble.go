package assemble

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tracecam/tracecam/sidecar/dnsmsg"
	"github.com/tracecam/tracecam/sidecar/event"
	"github.com/tracecam/tracecam/sidecar/httpparse"
	"github.com/tracecam/tracecam/sidecar/profile"
	"github.com/tracecam/tracecam/sidecar/tracectx"
)

// Config tunes the assembler.
type Config struct {
	Pod, Namespace, Container string
	// ContainerOf names the container of a process (nil or "": Container).
	ContainerOf func(pid uint32) string
	// WallClock converts a CLOCK_MONOTONIC ns timestamp to wall time.
	WallClock func(mono uint64) time.Time
	// IdleEnd ends a response of unknown length this long after its last
	// write (default 2 s).
	IdleEnd time.Duration
	// StaleRequest drops a request with no response after this long
	// (default 5 min).
	StaleRequest time.Duration
	// MaxConns bounds tracked connections (default 65536); MaxSegments
	// bounds the waits kept per thread (default 256).
	MaxConns, MaxSegments int
	// FileName resolves a file segment's full path (pid, fd, inode); nil or
	// "" falls back to the kernel's parent/name.
	FileName func(pid uint32, fd int32, ino uint64) string
	// Runtime names the language runtime of a process ("go", or "" when
	// nothing special is known); nil = none known. Go schedules goroutines
	// on threads itself, so a Go request's thread counters are not its time.
	Runtime func(pid uint32) string
	// GoWaitReason names Go's wait reason value of a process's goroutine
	// park ("sync.Mutex.Lock"); nil or "" shows the number.
	GoWaitReason func(pid uint32, reason int64) string
	// GoUnfollowed says why a Go process's goroutines are not followed
	// (its probes are not attached, or not yet): the reason an estimated
	// profile gives. nil or "" gives a generic one.
	GoUnfollowed func(pid uint32) string
	// SegmentThreshold is the shortest wait an event-loop request's
	// timeline shows (default 1 ms; the kernel applies the same to the
	// thread's own waits).
	SegmentThreshold time.Duration
}

// Counters are the assembler's own tallies, exposed on /v1/status.
type Counters struct {
	Events        uint64 `json:"events"`
	Profiles      uint64 `json:"profiles"`
	Partial       uint64 `json:"partial"`
	DroppedStale  uint64 `json:"dropped_stale"`       // requests dropped for having no response
	DroppedConns  uint64 `json:"dropped_conns"`       // connections evicted past MaxConns
	DroppedSegs   uint64 `json:"dropped_segments"`    // segments evicted past MaxSegments
	ParseErrors   uint64 `json:"parse_errors"`        // request/response heads that did not parse
	Incomplete    uint64 `json:"incomplete"`          // connections that ended before a response
	DecodeErrors  uint64 `json:"decode_errors"`       // set by the caller
	CrossThread   uint64 `json:"cross_thread"`        // responses written by another thread than the reader
	Generated     uint64 `json:"trace_ids_generated"` // requests without a trace header
	DNSQueries    uint64 `json:"dns_queries"`
	ThreadsActive int    `json:"threads_active"`
	ConnsActive   int    `json:"conns_active"`
}

// connKey names a connection: the socket's cookie within a process (an fd
// can be dup'ed, reused after close, or absent: io_uring; a cookie is never
// reused).
type connKey struct {
	pid    uint32
	socket uint64
}

type request struct {
	key      connKey // the connection it came on
	tid      uint32
	comm     string
	start    uint64
	startCnt [event.NumCategories]uint64
	// startSteal/lastSteal: the thread's steal clock (part of runq).
	startSteal uint64
	lostSeq    uint64
	head       httpparse.RequestHead
	parseErr   bool
	// headBuf holds the request's bytes while its head is incomplete (split
	// across reads), so the next read can complete it.
	headBuf  []byte
	reqBytes int64
	// queueNS is time the request waited before its thread served it:
	// behind the previous request of a pipelined connection, or, from the
	// arrival of its bytes (bufferedNS of it), in the socket's receive
	// buffer until a thread read it.
	queueNS    int64
	bufferedNS int64
	// served is when the serving thread started on it: its counters and
	// waits count from here (start may be earlier: when its bytes came).
	served uint64
	// The client socket's window-limited time when the request was read and
	// at the last response write, and the peer's windows seen while the
	// response went out (-1: none).
	rwndStart, rwndLast uint64
	wndMin, wndLast     int64
	lastUnacked         uint32

	respStarted bool
	resp        httpparse.ResponseHead
	respHeadOK  bool
	respBody    int64
	respBytes   int64
	lastTS      uint64
	lastCnt     [event.NumCategories]uint64
	lastSteal   uint64
	lastTID     uint32
	lastLost    uint64
	// goid/lastGoid: the goroutine that read the request and the one that
	// wrote its last response bytes (Go programs; 0 when not known).
	goid, lastGoid uint64

	// exchanges are its downstream calls, when served by an event loop.
	exchanges []exchange
	// tc is its trace context, decided once (traceContext): other
	// requests' evidence names its trace.
	tc    tracectx.Context
	tcSet bool

	dns []*dnsQuery
	// dnsSockets remembers the server each socket sent a query to: a reply
	// on an unconnected UDP socket carries no peer address.
	dnsSockets map[uint64]netip.AddrPort
	peers      map[string]*profile.NetworkPeer
}

type dnsQuery struct {
	id     uint16
	name   string
	qtype  string
	server string
	ts     uint64
	rcode  string
	done   uint64
	// resent is when the same query (ID, name, type, server) was sent
	// again, unanswered: a resolver's retry after its timeout. The retry
	// reuses the ID, so an answer goes to the latest copy, and this one
	// timed out then.
	resent uint64
	// attempt is the resolver's try of this name and type (1 = first).
	attempt int32
}

type conn struct {
	key     connKey
	sock    event.Sock
	cur     *request
	pending []*request // pipelined requests read before cur was answered
	lastTS  uint64
}

// goKey names a goroutine: Go's goroutine id within a process.
type goKey struct {
	pid  uint32
	goid uint64
}

type thread struct {
	segs []*event.Segment
	// serving is the request this thread is working on, for attributing its
	// outbound traffic and DNS lookups.
	serving *request
	// loop follows the thread as an event loop (loop.go).
	loop *loopTrack
}

// Assembler holds per-connection and per-thread state.
type Assembler struct {
	cfg     Config
	emit    func(*profile.Profile)
	spare   []*profile.Profile // recycled profiles (Recycle)
	conns   map[connKey]*conn
	threads map[uint32]*thread
	// goroutines keep the waits of Go programs' goroutines (segments the
	// kernel tagged with one), whichever threads they ran on.
	goroutines map[goKey]*thread
	// goServing is the request each goroutine serves (Go programs): whose
	// downstream traffic its socket events are, whatever thread ran it.
	goServing map[goKey]*request
	// goTraffic keeps each goroutine's last outbound socket events: the
	// peer a parked request waited for when another goroutine (net/http's
	// client reader, gRPC's) did the network I/O and woke it.
	goTraffic map[goKey]*goTraffic
	// carried holds a read too short to tell whether a request starts
	// ("G"), per connection, to be joined with the connection's next read.
	carried map[connKey][]byte
	// awaiting holds profiles whose response was still on its way to the
	// client at its last write (TCP): they are emitted when the client
	// acknowledges it (event.Acked), with the delivery time.
	awaiting map[connKey]*awaitingProfile
	now      uint64
	c        Counters
}

// New makes an assembler that hands each completed profile to emit.
func New(cfg Config, emit func(*profile.Profile)) *Assembler {
	if cfg.IdleEnd <= 0 {
		cfg.IdleEnd = 2 * time.Second
	}
	if cfg.StaleRequest <= 0 {
		cfg.StaleRequest = 5 * time.Minute
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 65536
	}
	if cfg.MaxSegments <= 0 {
		cfg.MaxSegments = 256
	}
	if cfg.SegmentThreshold <= 0 {
		cfg.SegmentThreshold = time.Millisecond
	}
	if cfg.WallClock == nil {
		cfg.WallClock = func(uint64) time.Time { return time.Time{} }
	}
	return &Assembler{cfg: cfg, emit: emit, conns: map[connKey]*conn{}, threads: map[uint32]*thread{}, goroutines: map[goKey]*thread{},
		goServing: map[goKey]*request{}, goTraffic: map[goKey]*goTraffic{}, carried: map[connKey][]byte{},
		awaiting: map[connKey]*awaitingProfile{}}
}

// Counters returns the tallies so far.
func (a *Assembler) Counters() Counters {
	c := a.c
	c.ThreadsActive = len(a.threads)
	c.ConnsActive = len(a.conns)
	return c
}

// CountDecodeError records a record that could not be decoded.
func (a *Assembler) CountDecodeError() { a.c.DecodeErrors++ }

// Handle consumes one decoded event.
func (a *Assembler) Handle(ev any) {
	a.c.Events++
	switch e := ev.(type) {
	case *event.Data:
		a.advance(e.TS)
		a.onData(e)
	case *event.Segment:
		a.advance(e.TS)
		a.onSegment(e)
	case *event.Exit:
		a.advance(e.TS)
		a.onExit(e)
	case *event.Acked:
		a.advance(e.TS)
		a.onAcked(e)
	}
}

type awaitingProfile struct {
	p         *profile.Profile
	lastWrite uint64
	rwndStart uint64
	wndMin    int64
}

// onAcked completes a profile waiting for its response's delivery.
func (a *Assembler) onAcked(e *event.Acked) {
	key := connKey{e.PID, e.Socket}
	w := a.awaiting[key]
	if w == nil {
		return
	}
	delete(a.awaiting, key)
	p := w.p
	if p.TCP == nil {
		p.TCP = &profile.TCPSend{}
	}
	if e.TS > w.lastWrite {
		p.TCP.DeliveryNS = int64(e.TS - w.lastWrite)
	}
	if e.RwndLimitedNS > w.rwndStart {
		p.TCP.WindowLimitedNS = min(int64(e.RwndLimitedNS-w.rwndStart), p.DurationNS+p.TCP.DeliveryNS)
	}
	if e.PeerWindowSeen {
		if w.wndMin < 0 || e.PeerWindowMin < w.wndMin {
			w.wndMin = e.PeerWindowMin
		}
		p.TCP.PeerWindowBytes = e.PeerWindow
	}
	p.TCP.PeerWindowMinBytes = max(w.wndMin, 0)
	a.emit(p)
}

// emitOrAwait emits p, or holds it until the client acknowledges the
// response when bytes of it were still unacknowledged at its last write.
func (a *Assembler) emitOrAwait(c *conn, r *request, p *profile.Profile) {
	if r.lastUnacked == 0 || c.sock.Proto != 6 || len(a.awaiting) >= a.cfg.MaxConns {
		a.emit(p)
		return
	}
	if old := a.awaiting[c.key]; old != nil {
		a.emit(old.p) // its acknowledgement was missed
	}
	a.awaiting[c.key] = &awaitingProfile{p: p, lastWrite: r.lastTS, rwndStart: r.rwndStart, wndMin: r.wndMin}
}

// flushAwaiting emits the profile held for key, if any, without delivery.
func (a *Assembler) flushAwaiting(key connKey) {
	if w := a.awaiting[key]; w != nil {
		delete(a.awaiting, key)
		a.emit(w.p)
	}
}

func (a *Assembler) advance(ts uint64) {
	if ts > a.now {
		a.now = ts
	}
}

func (a *Assembler) thread(tid uint32) *thread {
	t := a.threads[tid]
	if t == nil {
		t = &thread{}
		a.threads[tid] = t
	}
	return t
}

func (a *Assembler) onSegment(s *event.Segment) {
	if (s.FDKind == event.FDFile || s.FDKind == event.FDBlock) && (s.Path == "" || strings.HasPrefix(s.Path, "...")) &&
		a.cfg.FileName != nil && s.FD >= 0 {
		// The kernel's walk was cut short: try /proc while the fd may
		// still be open.
		if full := a.cfg.FileName(s.PID, s.FD, s.Inode); full != "" {
			s.Path = full
		}
	}
	t := a.thread(s.TID)
	if s.Goid != 0 {
		k := goKey{s.PID, s.Goid}
		if t = a.goroutines[k]; t == nil {
			t = &thread{}
			a.goroutines[k] = t
		}
	}
	if len(t.segs) >= a.cfg.MaxSegments {
		// Oldest first out: a request only needs waits since it started.
		n := copy(t.segs, t.segs[1:])
		t.segs = t.segs[:n]
		a.c.DroppedSegs++
	}
	t.segs = append(t.segs, s)
}

func (a *Assembler) onExit(e *event.Exit) {
	// End the process's connections first: their profiles still need the
	// exiting threads' segments.
	if e.TID == e.PID {
		for k := range a.conns {
			if k.pid == e.PID {
				a.endConn(k, "process exited before the response")
			}
		}
	}
	delete(a.threads, e.TID)
}

func (a *Assembler) onData(d *event.Data) {
	ctx := a.loopStep(d)
	if !d.Connect { // a connect only tells the loop who opened the socket
		a.handleData(d, ctx)
	}
	a.loopAfter(d)
}

// handleData gives a socket event to its request; ctx is the request the
// thread works for at d as its event loop knows it (nil: unknown).
func (a *Assembler) handleData(d *event.Data, ctx *request) {
	key := connKey{d.PID, d.Socket}
	// More traffic on a connection whose last response was never seen
	// acknowledged: emit that profile as it is.
	a.flushAwaiting(key)
	// Only connections with a request in flight have state: a finished
	// exchange leaves nothing behind, so closed connections cost nothing.
	c := a.conns[key]
	if !d.Out {
		if pre, ok := a.carried[key]; ok {
			// The rest of a request line whose first bytes came alone.
			delete(a.carried, key)
			if joined := append(pre, d.Bytes...); httpparse.LooksLikeRequest(joined) {
				d.Bytes, d.Ret = joined, d.Ret+int64(len(pre))
			}
		}
		if len(d.Bytes) < 8 && int64(len(d.Bytes)) == d.Ret && httpparse.MayStartRequest(d.Bytes) &&
			(c == nil || c.cur == nil || c.cur.respStarted) {
			if len(a.carried) >= a.cfg.MaxConns { // bounded like connections
				clear(a.carried)
			}
			a.carried[key] = append([]byte(nil), d.Bytes...)
			return
		}
		if httpparse.LooksLikeRequest(d.Bytes) {
			if c == nil {
				if len(a.conns) >= a.cfg.MaxConns {
					a.evictOldestConn()
				}
				c = &conn{key: key}
				a.conns[key] = c
			}
			c.sock, c.lastTS = d.Sock, d.TS
			parts := [][]byte{d.Bytes}
			if i := bytes.Index(d.Bytes, headEnd); i >= 0 && i+len(headEnd) < len(d.Bytes) {
				// More bytes after the first head: a body or pipelined requests.
				parts = httpparse.SplitPipelined(d.Bytes)
			}
			rest := d.Ret // bytes not yet given to a request; the last takes what is left
			for i, b := range parts {
				n := int64(len(b))
				if i == len(parts)-1 {
					n = rest
				}
				rest -= n
				a.startRequest(c, d, b, n, i > 0)
			}
			return
		}
		if c != nil {
			c.lastTS = d.TS
			if d.Ret == 0 { // EOF from the client
				a.endConn(key, "client closed before the response")
				return
			}
			if c.cur != nil && !c.cur.respStarted && sameServer(c.cur, d) {
				c.cur.reqBytes += d.Ret // request body, or the rest of a split head
				if c.cur.headBuf != nil {
					a.continueHead(c.cur, d)
				}
				return
			}
		}
	} else if c != nil && c.cur != nil {
		c.lastTS = d.TS
		a.onResponseWrite(c, d)
		return
	}
	a.onOutbound(d, ctx)
}

var headEnd = []byte("\r\n\r\n")

// noHeaders keeps no response header beyond the framing ones.
var noHeaders = []string{}

func (a *Assembler) startRequest(c *conn, d *event.Data, b []byte, n int64, pipelined bool) {
	r := &request{tid: d.TID, comm: d.Comm, start: d.TS, served: d.TS, startCnt: d.Counters, startSteal: d.Steal, lostSeq: d.LostSeq,
		goid: d.Goid, lastGoid: d.Goid,
		rwndStart: d.RwndLimitedNS, rwndLast: d.RwndLimitedNS, wndMin: -1, wndLast: -1}
	r.reqBytes = n
	r.key = c.key
	if !pipelined && d.Arrival != 0 && d.Arrival < d.TS {
		// The bytes waited in the socket's receive buffer until this thread,
		// busy elsewhere, read them (a saturated worker pool): the request
		// started when they came, and that wait is queue.
		r.start = d.Arrival
		r.bufferedNS = int64(d.TS - d.Arrival)
		r.queueNS = r.bufferedNS
	}
	a.loopOf(d.TID).begin(r)
	a.parseHead(r, b, int64(len(b)) == n)
	if c.cur == nil {
		c.cur = r
		a.setServing(d.TID, r)
		return
	}
	if !c.cur.respStarted && !pipelined && !sameServer(c.cur, d) {
		// Another thread reads a new request while the previous one never
		// saw a response: its events were lost. Pipelined requests are read
		// by one thread; do not queue this one behind a request that will
		// never finish.
		a.c.Incomplete++
		a.release(c.cur)
		c.cur, c.pending = r, nil
		a.setServing(d.TID, r)
		return
	}
	if c.cur.respStarted && !pipelined {
		// A new request on a keep-alive connection ends the previous response.
		a.finish(c, "")
		a.conns[c.key] = c // finish forgets an idle connection; this one goes on
		if c.cur == nil {
			c.cur = r
			a.setServing(d.TID, r)
			return
		}
	}
	c.pending = append(c.pending, r)
}

// maxHead bounds what is buffered to reassemble a request head split across
// reads.
const maxHead = 8 << 10

// parseHead parses what is known of r's head; whole says b holds every byte
// read so far (no capture gap), so later reads may complete it.
func (a *Assembler) parseHead(r *request, b []byte, whole bool) {
	head, err := httpparse.ParseRequestHeadKeep(b, tracectx.HeaderNames)
	complete := err == nil && head.HeadComplete
	if !complete && whole && len(b) < maxHead && (err == nil || errors.Is(err, httpparse.ErrTruncated)) {
		r.headBuf = append(r.headBuf[:0], b...)
		if err != nil {
			return // not even a request line yet: wait for more
		}
	} else {
		r.headBuf = nil
	}
	r.parseErr = err != nil
	if err != nil {
		a.c.ParseErrors++
		return
	}
	r.head = head
}

// continueHead appends a read to a split request head and parses again.
func (a *Assembler) continueHead(r *request, d *event.Data) {
	whole := int64(len(d.Bytes)) == d.Ret
	a.parseHead(r, append(r.headBuf, d.Bytes...), whole)
}

func (a *Assembler) onResponseWrite(c *conn, d *event.Data) {
	r := c.cur
	if !r.respStarted {
		if !httpparse.LooksLikeResponse(d.Bytes) {
			// Bytes before a status line: not an HTTP response we understand
			// (e.g. a protocol upgrade); treat as response bytes regardless.
			r.respStarted = true
		} else {
			resp, err := httpparse.ParseResponseHeadKeep(d.Bytes, noHeaders)
			if err != nil {
				a.c.ParseErrors++
			}
			r.resp = resp
			r.respStarted = true
			r.respHeadOK = err == nil && resp.HeadComplete
			if r.respHeadOK {
				r.respBody = d.Ret - int64(resp.HeadLen)
			}
		}
	} else if r.respHeadOK {
		r.respBody += d.Ret
	}
	r.respBytes += d.Ret
	r.lastTS, r.lastCnt, r.lastSteal, r.lastTID, r.lastLost = d.TS, d.Counters, d.Steal, d.TID, d.LostSeq
	r.lastGoid = d.Goid
	r.lastUnacked = d.Unacked
	if d.RwndLimitedNS >= r.rwndStart {
		r.rwndLast = d.RwndLimitedNS
	}
	if d.PeerWindowSeen {
		if r.wndMin < 0 || d.PeerWindowMin < r.wndMin {
			r.wndMin = d.PeerWindowMin
		}
		r.wndLast = d.PeerWindow
	}
	if code := r.resp.StatusCode; r.respHeadOK && code >= 100 && code < 200 && code != 101 {
		// An interim response (100 Continue, 103 Early Hints): the final
		// head follows, in this write or a later one.
		rest := d.Bytes[min(r.resp.HeadLen, len(d.Bytes)):]
		r.respStarted, r.respHeadOK, r.resp, r.respBody = false, false, httpparse.ResponseHead{}, 0
		if httpparse.LooksLikeResponse(rest) {
			tail := *d
			tail.Bytes, tail.Ret = rest, d.Ret-int64(len(d.Bytes)-len(rest))
			r.respBytes -= tail.Ret // counted again below
			a.onResponseWrite(c, &tail)
		}
		return
	}
	if r.respHeadOK {
		cl, chunked := r.resp.ContentLength, r.resp.Chunked
		if httpparse.NoBody(r.head.Method, r.resp.StatusCode) {
			cl, chunked = 0, false
		}
		if (cl >= 0 && !chunked) || chunked {
			if httpparse.BodyComplete(cl, chunked, r.respBody, d.Bytes) {
				a.finish(c, "")
			}
		}
	}
}

// onOutbound attributes traffic that is not part of a served request's
// client connection to whatever request the thread is serving: downstream
// calls and DNS lookups.
func (a *Assembler) onOutbound(d *event.Data, ctx *request) {
	t := a.threads[d.TID]
	if t == nil {
		return
	}
	r := ctx
	if d.Goid != 0 {
		// A goroutine's: its own request's, whichever thread ran it.
		a.recordGoTraffic(d)
		if r = a.goServing[goKey{d.PID, d.Goid}]; r == nil {
			return
		}
	}
	if r == nil {
		// An event loop with several requests in flight: without a
		// context, whose call this is cannot be told.
		if t.serving == nil || (t.loop != nil && len(t.loop.inflight) > 1) {
			return
		}
		r = t.serving
	}
	peer := d.Sock.Remote
	if d.Datagram.IsValid() && d.Datagram.Port() != 0 {
		peer = d.Datagram
	}
	if srv, ok := r.dnsSockets[d.Socket]; ok && !d.Out {
		// A reply on an unconnected UDP socket names no peer: it comes
		// from the server this socket queried.
		peer = srv
		if len(d.Bytes) > 0 {
			a.onDNS(r, d, srv)
		}
	} else if peer.Port() == 53 && len(d.Bytes) > 0 && (d.Sock.Proto == 17 || d.Sock.Proto == 6) {
		a.onDNS(r, d, peer)
	}
	if !peer.IsValid() || peer.Port() == 0 || d.Ret <= 0 {
		return
	}
	addPeerTraffic(r, peer.String(), d.Sock.Protocol(), d.TS, d.Out, d.Ret)
}

// addPeerTraffic counts n bytes to or from peer at ts in r's network.
func addPeerTraffic(r *request, key, proto string, ts uint64, out bool, n int64) {
	p := r.peers[key]
	if p == nil {
		if r.peers == nil {
			r.peers = map[string]*profile.NetworkPeer{}
		}
		p = &profile.NetworkPeer{Peer: key, Protocol: proto, StartOffsetNS: int64(ts - r.start)}
		r.peers[key] = p
	}
	if out {
		if p.BytesReceived > 0 || p.Calls == 0 {
			p.Calls++ // a new exchange starts with a send after a receive
		}
		p.BytesSent += n
	} else {
		p.BytesReceived += n
	}
}

// goTraffic is a ring of a goroutine's last outbound socket transfers.
type goTraffic struct {
	ev   [16]goTransfer
	next int
	last uint64 // ts of the newest
}

type goTransfer struct {
	ts    uint64
	peer  string
	proto string
	out   bool
	n     int64
}

func (a *Assembler) recordGoTraffic(d *event.Data) {
	peer := d.Sock.Remote
	if !peer.IsValid() || peer.Port() == 0 || d.Ret <= 0 {
		return
	}
	k := goKey{d.PID, d.Goid}
	g := a.goTraffic[k]
	if g == nil {
		g = &goTraffic{}
		a.goTraffic[k] = g
	}
	g.ev[g.next] = goTransfer{ts: d.TS, peer: peer.String(), proto: d.Sock.Protocol(), out: d.Out, n: d.Ret}
	g.next = (g.next + 1) % len(g.ev)
	g.last = d.TS
}

// goTransfers are goroutine k's recorded transfers within [lo, hi].
func (a *Assembler) goTransfers(k goKey, lo, hi uint64) []goTransfer {
	g := a.goTraffic[k]
	if g == nil {
		return nil
	}
	var out []goTransfer
	for i := range g.ev {
		e := g.ev[(g.next+i)%len(g.ev)]
		if e.peer != "" && e.ts >= lo && e.ts <= hi {
			out = append(out, e)
		}
	}
	return out
}

func (a *Assembler) onDNS(r *request, d *event.Data, server netip.AddrPort) {
	parse := dnsmsg.Parse
	if d.Sock.Proto == 6 {
		parse = dnsmsg.ParseTCP
	}
	// A capture prefix may cut the answers off: the header and question
	// are what matter, so a parse error after them is not a reason to drop.
	m, _ := parse(d.Bytes)
	if len(m.Questions) == 0 {
		return
	}
	q := m.Questions[0]
	if d.Out && !m.Response {
		a.c.DNSQueries++
		if r.dnsSockets == nil {
			r.dnsSockets = map[uint64]netip.AddrPort{}
		}
		r.dnsSockets[d.Socket] = server
		qtype := dnsmsg.TypeString(q.Type)
		attempt := int32(1)
		for _, dq := range r.dns {
			if dq.id == m.ID && dq.done == 0 && dq.resent == 0 && dq.name == q.Name && dq.qtype == qtype && dq.server == server.String() {
				dq.resent = d.TS
			}
			// An earlier query of the same name and type: this one is the
			// resolver trying again (glibc resends the A and AAAA pair
			// when either went unanswered).
			if dq.name == q.Name && dq.qtype == qtype {
				attempt = max(attempt, dq.attempt+1)
			}
		}
		r.dns = append(r.dns, &dnsQuery{
			id: m.ID, name: q.Name, qtype: dnsmsg.TypeString(q.Type), server: server.String(), ts: d.TS, attempt: attempt,
		})
		return
	}
	if !m.Response {
		return
	}
	// The answer goes to the latest unanswered copy of its query (a retry
	// reuses the ID); to an earlier, timed-out one only if that is all
	// there is (the first copy was slow, not lost).
	qtype := dnsmsg.TypeString(q.Type)
	var match *dnsQuery
	for i := len(r.dns) - 1; i >= 0; i-- {
		dq := r.dns[i]
		if dq.id != m.ID || dq.done != 0 || dq.name != q.Name || (dq.qtype != qtype && dq.qtype != "") {
			continue
		}
		if dq.resent == 0 {
			match = dq
			break
		}
		if match == nil {
			match = dq
		}
	}
	if match != nil {
		match.done, match.rcode = d.TS, dnsmsg.RcodeString(m.Rcode)
		return
	}
	// A response whose query we did not see (e.g. the second message of a
	// sendmmsg): the lookup started no later than the first query.
	start := d.TS
	if len(r.dns) > 0 {
		start = r.dns[0].ts
	}
	r.dns = append(r.dns, &dnsQuery{id: m.ID, name: q.Name, qtype: dnsmsg.TypeString(q.Type),
		server: server.String(), ts: start, done: d.TS, rcode: dnsmsg.RcodeString(m.Rcode), attempt: 1})
}

// endConn finishes the connection's request (if its response started) and
// forgets the connection.
func (a *Assembler) endConn(k connKey, why string) {
	c := a.conns[k]
	if c == nil {
		return
	}
	for c.cur != nil {
		if !c.cur.respStarted {
			a.c.Incomplete++
			a.release(c.cur)
			break
		}
		a.finish(c, "")
	}
	delete(a.conns, k)
}

// sameServer says whether d comes from what serves r: its thread, or in a
// Go program its goroutine (on whatever thread).
func sameServer(r *request, d *event.Data) bool {
	if r.goid != 0 && d.Goid != 0 {
		return r.goid == d.Goid
	}
	return r.tid == d.TID
}

// setServing marks r as what thread tid (and r's goroutine, in a Go
// program) works for.
func (a *Assembler) setServing(tid uint32, r *request) {
	a.thread(tid).serving = r
	if r.goid != 0 {
		a.goServing[goKey{r.key.pid, r.goid}] = r
	}
}

func (a *Assembler) release(r *request) {
	t := a.threads[r.tid]
	if t != nil && t.serving == r {
		t.serving = nil
	}
	if k := (goKey{r.key.pid, r.goid}); r.goid != 0 && a.goServing[k] == r {
		delete(a.goServing, k)
	}
	if t != nil && t.loop != nil {
		t.loop.end(r)
	}
}

func (a *Assembler) evictOldestConn() {
	var oldest *conn
	for _, c := range a.conns {
		if oldest == nil || c.lastTS < oldest.lastTS {
			oldest = c
		}
	}
	if oldest != nil {
		a.c.DroppedConns++
		a.endConn(oldest.key, "evicted")
	}
}

// Flush ends responses idle past IdleEnd and drops stale requests, as of the
// monotonic time now. Call it periodically.
func (a *Assembler) Flush(now uint64) {
	a.advance(now)
	idle := uint64(a.cfg.IdleEnd.Nanoseconds())
	stale := uint64(a.cfg.StaleRequest.Nanoseconds())
	for k, c := range a.conns {
		if c.cur == nil { // not expected: finish forgets idle connections
			delete(a.conns, k)
			continue
		}
		switch {
		case c.cur.respStarted && a.now-c.cur.lastTS > idle:
			a.finish(c, "")
		case !c.cur.respStarted && a.now-c.cur.start > stale:
			a.c.DroppedStale++
			a.release(c.cur)
			c.cur = nil
			delete(a.conns, k)
		}
	}
	// Responses whose delivery was never seen acknowledged.
	for k, w := range a.awaiting {
		if a.now-w.lastWrite > idle {
			delete(a.awaiting, k)
			a.emit(w.p)
		}
	}
	// Segments older than any request that could still want them.
	for _, t := range a.threads {
		keep := t.segs[:0]
		for _, s := range t.segs {
			if a.now-s.Run < stale {
				keep = append(keep, s)
			}
		}
		t.segs = keep
	}
	for k, g := range a.goTraffic {
		if a.now-g.last >= stale {
			delete(a.goTraffic, k)
		}
	}
	for k, t := range a.goroutines {
		keep := t.segs[:0]
		for _, s := range t.segs {
			if a.now-s.Run < stale {
				keep = append(keep, s)
			}
		}
		if t.segs = keep; len(keep) == 0 {
			delete(a.goroutines, k)
		}
	}
}

// finish completes c.cur, emits its profile and promotes the next
// pipelined request.
func (a *Assembler) finish(c *conn, partialWhy string) {
	r := c.cur
	c.cur = nil
	a.release(r)
	p := a.build(c, r, partialWhy)
	a.c.Profiles++
	if p.Partial {
		a.c.Partial++
	}
	a.emitOrAwait(c, r, p)
	if len(c.pending) > 0 {
		next := c.pending[0]
		c.pending = c.pending[1:]
		// It was read together with r but could only be served after it:
		// that wait is queue time, and its breakdown starts where r's ended.
		if r.lastTS > next.start && r.lastTID == next.tid {
			next.queueNS = int64(r.lastTS - next.start)
			next.startCnt, next.startSteal = r.lastCnt, r.lastSteal
			next.served = r.lastTS
		}
		c.cur = next
		a.setServing(next.tid, next)
		return
	}
	delete(a.conns, c.key)
}

// containerOf is the container of process pid: Config.ContainerOf's
// answer, or Config.Container.
func (a *Assembler) containerOf(pid uint32) string {
	if a.cfg.ContainerOf != nil {
		if name := a.cfg.ContainerOf(pid); name != "" {
			return name
		}
	}
	return a.cfg.Container
}

// Recycle hands back a profile the caller no longer holds, nor anything
// it passed it to: the next one is built in it, its breakdown map and
// timeline array reused. Most profiles live for one call (the store keeps
// a compact copy), and allocating each anew was a sixth of the sidecar's
// garbage.
func (a *Assembler) Recycle(p *profile.Profile) {
	if len(a.spare) < maxSpareProfiles {
		a.spare = append(a.spare, p)
	}
}

const maxSpareProfiles = 16

func (a *Assembler) newProfile() *profile.Profile {
	n := len(a.spare)
	if n == 0 {
		return &profile.Profile{Breakdown: make(map[profile.Category]int64, 4)}
	}
	p := a.spare[n-1]
	a.spare[n-1] = nil
	a.spare = a.spare[:n-1]
	bd, tl := p.Breakdown, p.Timeline[:0]
	if bd == nil {
		bd = make(map[profile.Category]int64, 4)
	}
	clear(bd)
	*p = profile.Profile{Breakdown: bd, Timeline: tl}
	return p
}

func (a *Assembler) build(c *conn, r *request, partialWhy string) *profile.Profile {
	end := r.lastTS
	if end < r.start {
		end = r.start
	}
	// Timeline, DNS and Network stay empty (renderers print them as []):
	// most requests have none.
	p := a.newProfile()
	p.Pod, p.Namespace, p.Container = a.cfg.Pod, a.cfg.Namespace, a.containerOf(c.key.pid)
	p.PID, p.TID, p.ThreadName = c.key.pid, r.tid, r.comm
	p.Method, p.Path, p.Host = r.head.Method, r.head.Path, r.head.Host
	p.StatusCode = r.resp.StatusCode
	p.StartTime = a.cfg.WallClock(r.start)
	p.DurationNS = int64(end - r.start)
	p.RequestBytes, p.ResponseBytes = r.reqBytes, r.respBytes
	if c.sock.Remote.IsValid() {
		p.Client = c.sock.Remote.String()
	}
	if c.sock.Local.IsValid() {
		p.Server = c.sock.Local.String()
	}
	if r.parseErr || r.head.Method == "" {
		p.Method, p.Path = "?", "?"
		partialWhy = join(partialWhy, "request head did not parse")
	}

	tc := a.traceContext(r)
	p.TraceID, p.ParentSpanID, p.TraceSource, p.TraceIDGenerated = tc.TraceID, tc.SpanID, tc.Source, tc.Generated
	p.SpanID = tracectx.NewSpanID()

	var loopWaits []loopWait
	lt := a.loopTrack(r.tid)
	switch {
	case r.goid != 0 && r.lastGoid == r.goid:
		// Go, followed goroutine by goroutine (the kernel keeps counters
		// per goroutine: its time on any thread, and why it was off them).
		p.Accounting = profile.AccountingGoroutine
		p.GoroutineID = r.goid
		addExactCounters(p, r)
		if sum := breakdownSum(p); sum < p.DurationNS {
			// A goroutine run again by another thread before the thread
			// it left saw it go: the few µs between are nobody's.
			p.Breakdown[profile.Other] += p.DurationNS - sum
		}
	case r.goid != 0 || r.lastGoid != 0:
		a.c.CrossThread++
		p.Accounting = profile.AccountingEstimated
		p.Breakdown[profile.Other] = p.DurationNS
		partialWhy = join(partialWhy, fmt.Sprintf("response written by goroutine %d, request read by goroutine %d", r.lastGoid, r.goid))
	case a.cfg.Runtime != nil && a.cfg.Runtime(c.key.pid) == "go":
		// Goroutines hop between threads and share them: between the
		// request's read and its response this thread may have run other
		// goroutines while the request's ran elsewhere. Its counters are
		// an estimate at best; say so rather than blame them.
		p.Accounting = profile.AccountingEstimated
		if r.lastTID == r.tid {
			addThreadCounters(p, r)
		} else {
			a.c.CrossThread++
			p.Breakdown[profile.Other] = p.DurationNS
		}
		why := "the camera does not follow its goroutines"
		if a.cfg.GoUnfollowed != nil {
			if w := a.cfg.GoUnfollowed(c.key.pid); w != "" {
				why = w
			}
		}
		partialWhy = join(partialWhy, "a Go program: goroutines move between threads and share them, so the time of the thread that read the request is not the request's ("+why+")")
	case r.lastTID == r.tid && lt != nil && lt.isLoopRequest(r, end):
		// The thread is an event loop that worked for other requests or
		// idled while this one was in flight: its counters' difference
		// would mix those in (loop.go).
		p.Accounting = profile.AccountingEventLoop
		var why string
		p.Breakdown, loopWaits, why = lt.loopBreakdown(r, end)
		partialWhy = join(partialWhy, why)
	case r.lastTID == r.tid:
		// Breakdown: exact difference of the serving thread's counters.
		p.Accounting = profile.AccountingThread
		addExactCounters(p, r)
	default:
		a.c.CrossThread++
		p.Accounting = profile.AccountingEstimated
		p.Breakdown[profile.Other] = p.DurationNS
		partialWhy = join(partialWhy, fmt.Sprintf("response written by thread %d, request read by thread %d", r.lastTID, r.tid))
	}
	if r.lastLost != r.lostSeq {
		partialWhy = join(partialWhy, fmt.Sprintf("%d kernel events lost during the request", r.lastLost-r.lostSeq))
	}
	if !r.respHeadOK && r.respStarted && r.resp.StatusCode == 0 {
		partialWhy = join(partialWhy, "response head not seen")
	}

	if r.wndMin >= 0 || r.rwndLast > r.rwndStart {
		p.TCP = &profile.TCPSend{
			WindowLimitedNS:    min(int64(r.rwndLast-r.rwndStart), p.DurationNS),
			PeerWindowMinBytes: max(r.wndMin, 0), PeerWindowBytes: max(r.wndLast, 0),
		}
	}
	if p.Accounting == profile.AccountingEventLoop {
		a.addLoopTimeline(p, r, end, lt, loopWaits)
	} else {
		a.addTimeline(p, r, end)
	}
	a.addNetwork(p, r, end)
	if partialWhy != "" {
		p.Partial, p.PartialReason = true, partialWhy
	}
	// The diagnosis is left to whoever hands the profile out (diagnose is
	// pure and costs more than assembling): most profiles are never read.
	return p
}

// addExactCounters is the breakdown of a request whose serving thread (or
// goroutine) worked for it alone: its counter differences, the time it
// waited before being taken up, and the part of runq the hypervisor stole.
func addExactCounters(p *profile.Profile, r *request) {
	addThreadCounters(p, r)
	if r.queueNS > 0 {
		p.Breakdown[profile.Queue] += r.queueNS
	}
	if r.lastSteal > r.startSteal {
		p.StealNS = min(int64(r.lastSteal-r.startSteal), p.Breakdown[profile.Runq])
	}
}

// addThreadCounters adds the serving thread's counter differences over r
// to p's breakdown.
func addThreadCounters(p *profile.Profile, r *request) {
	for i := 0; i < event.NumCategories; i++ {
		if d := int64(r.lastCnt[i] - r.startCnt[i]); d > 0 && r.lastCnt[i] >= r.startCnt[i] {
			p.Breakdown[kernelCategory[i]] += d
		}
	}
}

// traceContext is r's trace context: from its headers, or made up (once).
func (a *Assembler) traceContext(r *request) tracectx.Context {
	if !r.tcSet {
		tc, ok := tracectx.FromHeaders(r.head.Headers)
		if !ok {
			tc = tracectx.Generate()
			a.c.Generated++
		}
		r.tc, r.tcSet = tc, true
	}
	return r.tc
}

var kernelCategory = [event.NumCategories]profile.Category{
	event.CatCPU: profile.CPU, event.CatRunq: profile.Runq, event.CatNet: profile.Net,
	event.CatFile: profile.File, event.CatLock: profile.Lock, event.CatEpoll: profile.Epoll,
	event.CatSleep: profile.Sleep, event.CatOther: profile.Other,
	event.CatGC: profile.GC, event.CatQueue: profile.Queue,
	10: profile.Other, 11: profile.Other, 12: profile.Other, 13: profile.Other, 14: profile.Other, 15: profile.Other,
}

func breakdownSum(p *profile.Profile) int64 {
	var s int64
	for _, v := range p.Breakdown {
		s += v
	}
	return s
}

// loopTrack is the event-loop view of thread tid, if it has one.
func (a *Assembler) loopTrack(tid uint32) *loopTrack {
	if t := a.threads[tid]; t != nil {
		return t.loop
	}
	return nil
}

// addLoopTimeline gives a loop request the thread's waits that happened in
// its own work (a blocking fsync on the loop), and its own waits: for a
// peer, a timer, the loop.
func (a *Assembler) addLoopTimeline(p *profile.Profile, r *request, end uint64, lt *loopTrack, waits []loopWait) {
	own := func(s *event.Segment) bool {
		if s.Category == event.CatEpoll {
			return false // its idle waits are told by what it waited for
		}
		for _, iv := range lt.ivs {
			if iv.owner == r && s.Start >= iv.start && s.Run <= iv.end {
				return true
			}
		}
		return false
	}
	a.addSegments(p, r, end, own)
	p.Timeline = append(p.Timeline, loopSegments(r, waits, uint64(a.cfg.SegmentThreshold.Nanoseconds()))...)
	sort.SliceStable(p.Timeline, func(i, j int) bool { return p.Timeline[i].StartOffsetNS < p.Timeline[j].StartOffsetNS })
}

// bufferedDetail says who read r after it waited in the receive buffer.
// Built without fmt: most requests under load have this segment, and
// Sprintf was a tenth of the sidecar's CPU.
func bufferedDetail(r *request) string {
	b := make([]byte, 0, 96)
	b = append(b, "request waited in the socket receive buffer until "...)
	if r.goid != 0 {
		b = append(b, "goroutine "...)
		b = strconv.AppendUint(b, r.goid, 10)
		b = append(b, " (on thread "...)
		b = strconv.AppendUint(b, uint64(r.tid), 10)
		b = append(b, ')')
	} else {
		b = append(b, "thread "...)
		b = strconv.AppendUint(b, uint64(r.tid), 10)
		b = append(b, " ("...)
		b = append(b, r.comm...)
		b = append(b, ')')
	}
	b = append(b, " read it"...)
	return string(b)
}

func (a *Assembler) addTimeline(p *profile.Profile, r *request, end uint64) {
	if r.bufferedNS > 0 {
		p.Timeline = append(p.Timeline, profile.Segment{
			Category: profile.Queue, DurationNS: r.bufferedNS,
			Detail: bufferedDetail(r),
		})
	}
	a.addSegments(p, r, end, nil)
	sort.SliceStable(p.Timeline, func(i, j int) bool { return p.Timeline[i].StartOffsetNS < p.Timeline[j].StartOffsetNS })
}

// segmentOrderMargin bounds how far out of order (by report time)
// segments of one thread or goroutine may reach the assembler: ring-buffer
// records of different CPUs interleave by reservation, microseconds apart.
const segmentOrderMargin = uint64(10 * time.Millisecond)

// addSegments adds the serving thread's waits during r (those keep
// accepts, when set) to its timeline.
func (a *Assembler) addSegments(p *profile.Profile, r *request, end uint64, keep func(*event.Segment) bool) {
	t := a.threads[r.tid]
	if p.Accounting == profile.AccountingGoroutine {
		t = a.goroutines[goKey{r.key.pid, r.goid}]
	}
	if t == nil {
		return
	}
	// The thread's waits count from when it took the request up; before
	// that it was serving something else.
	from := max(r.served, r.start)
	// Segments come in the order they were reported, and one reported
	// before the request began (TS) ended before it too: only the tail can
	// overlap the request. A busy thread or a long-lived goroutine (a
	// keep-alive connection's) keeps up to MaxSegments of them, and scanning
	// them all for every request was the sidecar's top cost under load. The
	// margin covers records of other CPUs interleaving in the ring.
	first := len(t.segs)
	for first > 0 && t.segs[first-1].TS+segmentOrderMargin > from {
		first--
	}
	for _, s := range t.segs[first:] {
		if s.Run <= from || s.Start >= end || (keep != nil && !keep(s)) {
			continue
		}
		cat := kernelCategory[s.Category&(event.NumCategories-1)]
		// The segment spans [Start, Run] and holds BlockedNS of waiting and
		// RunqNS of wake-up delay (plus, when coalesced, the CPU time between
		// its waits). One that straddles the window counts the overlapping
		// fraction of both, so the timeline never exceeds the request.
		blocked, runq := int64(s.BlockedNS), int64(s.RunqNS)
		lo, hi := max(s.Start, from), min(s.Run, end)
		switch span := s.Run - s.Start; {
		case hi-lo >= span:
		case s.Count <= 1 && s.Wake >= s.Start && s.Wake <= s.Run:
			// One wait: blocked until Wake, runnable after; clip each.
			blocked, runq = overlap(s.Start, s.Wake, lo, hi), overlap(s.Wake, s.Run, lo, hi)
		case s.Count <= 1: // preempted: runnable throughout
			blocked = overlap(s.Start, s.Run, lo, hi)
		default:
			f := float64(hi-lo) / float64(span)
			blocked, runq = int64(float64(blocked)*f), int64(float64(runq)*f)
		}
		seg := profile.Segment{
			Category:      cat,
			StartOffsetNS: int64(lo - r.start),
			DurationNS:    blocked,
			Syscall:       event.SyscallName(s.Syscall),
			FDKind:        s.FDKind.String(),
			Bytes:         max(s.Bytes, 0),
		}
		if s.Count > 1 {
			seg.Count = int(s.Count)
		}
		if cat != profile.Runq {
			seg.RunqNS = runq
		}
		if s.FD >= 0 && s.FDKind != event.FDUnknown {
			seg.FD = s.FD
		}
		switch s.FDKind {
		case event.FDSocket:
			if s.Sock.Remote.IsValid() && s.Sock.Remote.Port() != 0 {
				seg.Peer = s.Sock.Remote.String()
			}
		case event.FDFile, event.FDBlock:
			seg.File = s.Path
		}
		// Only a lock wait's waker is meaningful (the thread that released
		// it); I/O and timer wake-ups run in whatever task an interrupt hit.
		if cat == profile.Lock {
			seg.WakerTID, seg.WakerName = s.WakerTID, s.WakerComm
		}
		if seg.Syscall == "" && cat == profile.File {
			seg.Detail = "page fault / I/O wait"
		}
		if s.Syscall == event.SyscallGoPark {
			seg.Syscall = ""
			reason := ""
			if a.cfg.GoWaitReason != nil {
				reason = a.cfg.GoWaitReason(s.PID, s.Arg0)
			}
			if reason == "" {
				reason = fmt.Sprintf("wait reason %d", s.Arg0)
			}
			seg.Detail = "goroutine parked: " + reason
			if cat == profile.Net || cat == profile.Queue {
				seg.Peer = a.parkPeer(r, s)
			}
			if cat == profile.Lock && s.WakerGoid != 0 {
				// made runnable by the goroutine that released it
				// (sync.Mutex.Unlock, Cond.Signal, WaitGroup.Done)
				seg.WakerName = fmt.Sprintf("goroutine %d", s.WakerGoid)
			}
		}
		if s.Syscall == 202 {
			seg.Detail = fmt.Sprintf("futex 0x%x", uint64(s.Arg0))
			if cat == profile.Sleep {
				seg.Detail = "timed futex wait expired (a sleep, e.g. JVM Thread.sleep)"
				seg.WakerTID, seg.WakerName = 0, ""
			}
		}
		p.Timeline = append(p.Timeline, seg)
	}
}

// parkPeer names the peer a goroutine's park waited for: the traffic of
// the goroutine that woke it (net/http's client hands the response over a
// channel from its reader goroutine) during the park, which then counts in
// r's network; or, woken by the network poller, its own transfers around
// the park (the request it sent before, the reply it read after).
func (a *Assembler) parkPeer(r *request, s *event.Segment) string {
	var xs []goTransfer
	if s.WakerGoid != 0 {
		xs = a.goTransfers(goKey{s.PID, s.WakerGoid}, s.Start, max(s.Wake, s.Start))
		for _, x := range xs {
			addPeerTraffic(r, x.peer, x.proto, x.ts, x.out, x.n)
		}
	} else {
		const around = uint64(time.Millisecond)
		xs = a.goTransfers(goKey{s.PID, s.Goid}, s.Start-min(s.Start, around), s.Run+around)
	}
	if len(xs) == 0 {
		return ""
	}
	// the last one: the reply that ended the wait
	return xs[len(xs)-1].peer
}

func (a *Assembler) addNetwork(p *profile.Profile, r *request, end uint64) {
	for _, q := range r.dns {
		dq := profile.DNSQuery{Name: q.name, Type: q.qtype, Rcode: q.rcode, Server: q.server,
			StartOffsetNS: int64(q.ts - r.start), Answered: q.done != 0, Attempt: max(q.attempt, 1)}
		if q.done != 0 {
			dq.LatencyNS = int64(q.done - q.ts)
		} else if q.resent != 0 {
			dq.LatencyNS = int64(q.resent - q.ts) // timed out: sent again
			dq.Rcode = "NO_ANSWER"
		} else {
			dq.LatencyNS = int64(end - q.ts)
			dq.Rcode = "NO_ANSWER"
		}
		p.DNS = append(p.DNS, dq)
	}
	for _, peer := range r.peers {
		np := *peer
		for _, s := range p.Timeline {
			if s.Peer == np.Peer {
				np.WaitNS += s.DurationNS
			}
		}
		p.Network = append(p.Network, np)
	}
	sort.Slice(p.Network, func(i, j int) bool { return p.Network[i].StartOffsetNS < p.Network[j].StartOffsetNS })
}

// overlap is the length of [a, b] ∩ [lo, hi].
func overlap(a, b, lo, hi uint64) int64 {
	a, b = max(a, lo), min(b, hi)
	if b <= a {
		return 0
	}
	return int64(b - a)
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
