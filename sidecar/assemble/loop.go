package assemble

import (
	"fmt"
	"sort"

	"github.com/tracecam/tracecam/sidecar/event"
	"github.com/tracecam/tracecam/sidecar/httpparse"
	"github.com/tracecam/tracecam/sidecar/profile"
)

// The event-loop accounting model (profile.AccountingEventLoop).
//
// One thread serves many requests at once (Node.js, Python asyncio, nginx):
// the difference of its counters between a request's read and its response
// is not the request's time. So the loop thread's time is cut into
// intervals at its socket events and at its idle waits in epoll/poll/select
// (the kernel reports the last such wait with every socket event), and each
// interval is given to whom it belongs:
//
//   - work after a socket event belongs to the request that owns the socket
//     (its client connection, or a downstream connection it opened), until
//     the next socket event or idle wait;
//   - work after an idle wait belongs to the request whose socket the loop
//     touches first (what woke it: a reply, a timer callback's write);
//   - an idle wait belongs to nobody: a request in flight during it was
//     waiting for what it had asked for — a reply from a downstream peer
//     (net), a timer (sleep, when the wait ended by its timeout) — or, when
//     the camera cannot tell, epoll (idle, cause unknown).
//
// A request in flight while the loop works for another request waited for
// its own event until that event happened (its reply's bytes reached the
// socket, its timer was due, its request's bytes arrived), and from then on
// it waited for the loop: category loop, with the requests that held it.

// maxLoopIntervals bounds the history kept per loop thread; a request that
// outlives it is marked partial.
const maxLoopIntervals = 8192

// loopTrack follows one thread's time as an event loop.
type loopTrack struct {
	last      uint64 // the thread's last socket event (0: none yet)
	lastSleep uint64 // the last idle wait already cut into intervals
	lastCnt   [event.NumCategories]uint64
	lastOwner *request
	ivs       []loopInterval
	// dropped is the end of the newest interval dropped for space: a
	// request that started before it lost part of its history.
	dropped uint64
	// owners maps a downstream socket to the request that last wrote to it.
	owners map[uint64]*request
	// inflight holds the requests this thread read and has not answered.
	inflight map[*request]struct{}
	// oldest is the earliest start of a request in flight (0: none, or
	// to be recomputed after the request that had it left).
	oldest uint64
}

// begin and end keep the requests in flight, and the earliest start among
// them, up to date.
func (lt *loopTrack) begin(r *request) {
	lt.inflight[r] = struct{}{}
	if lt.oldest == 0 || r.start < lt.oldest {
		lt.oldest = r.start
	}
}

func (lt *loopTrack) end(r *request) {
	if _, ok := lt.inflight[r]; !ok {
		return
	}
	delete(lt.inflight, r)
	if r.start == lt.oldest {
		lt.oldest = 0 // recomputed when next needed
	}
}

func (lt *loopTrack) oldestStart() uint64 {
	if lt.oldest == 0 && len(lt.inflight) > 0 {
		lt.oldest = ^uint64(0)
		for r := range lt.inflight {
			lt.oldest = min(lt.oldest, r.start)
		}
	}
	if lt.oldest == 0 {
		return ^uint64(0)
	}
	return lt.oldest
}

// loopInterval is a stretch of a loop thread's time.
type loopInterval struct {
	start, end uint64
	owner      *request // nil: idle, or work for no request in flight
	idle       bool     // waiting in epoll/poll/select
	// idle only: the wait's timeout (the loop's next timer; 0 none), and
	// the part at its end spent runnable after the wake-up.
	deadline, wakeRunq uint64
	cnt                [event.NumCategories]uint64 // time by category (work intervals)
}

// exchange is one call a request made to a downstream peer from a loop:
// sent, its reply's bytes reached the socket, the loop read them.
type exchange struct {
	socket             uint64
	peer               string
	sent, reply, taken uint64
}

func (a *Assembler) loopOf(tid uint32) *loopTrack {
	t := a.thread(tid)
	if t.loop == nil {
		t.loop = &loopTrack{owners: map[uint64]*request{}, inflight: map[*request]struct{}{}}
	}
	return t.loop
}

// loopOwner is the request in flight that owns the socket of d (nil for
// the read that starts a new request), and whether the socket is a client
// connection the assembler tracks.
func (a *Assembler) loopOwner(lt *loopTrack, d *event.Data) (owner *request, client bool) {
	c := a.conns[connKey{d.PID, d.Socket}]
	if c != nil && c.cur != nil {
		if !d.Out && !c.cur.respStarted && c.cur.tid != d.TID {
			return nil, true
		}
		if _, ok := lt.inflight[c.cur]; ok {
			return c.cur, true
		}
	}
	if r := lt.owners[d.Socket]; r != nil {
		if _, ok := lt.inflight[r]; ok {
			return r, c != nil
		}
		delete(lt.owners, d.Socket)
	}
	return nil, c != nil
}

// loopStep records the thread's time up to d, before d is handled, and
// returns the request d works for as far as the loop knows: the owner of
// its socket, or, for a socket no request owns yet (a downstream call
// starting), the request the thread was working for — which it then owns.
func (a *Assembler) loopStep(d *event.Data) *request {
	lt := a.loopOf(d.TID)
	owner, client := a.loopOwner(lt, d)
	// A client socket, or the read of a new request: never a downstream
	// call to adopt.
	client = client || (!d.Out && httpparse.LooksLikeRequest(d.Bytes))
	ctx := lt.lastOwner
	if _, ok := lt.inflight[ctx]; !ok {
		// The request the last event worked for is answered: what the
		// thread did since is for whatever it touches next (a timer
		// callback's write, a reply's read).
		ctx = nil
	}
	if lt.last == 0 || d.TS < lt.last {
		lt.last, lt.lastCnt, lt.lastSleep = d.TS, d.Counters, d.Loop.Sleep
		return lt.adopt(d, client, owner, ctx)
	}
	w := d.Loop
	if w.Sleep != lt.lastSleep && w.Sleep >= lt.last && w.Sleep <= d.TS && w.Wake >= w.Sleep && w.Wake <= d.TS {
		lt.lastSleep = w.Sleep
		// An idle wait since the last event: work before it, the wait,
		// work after it.
		lt.add(loopInterval{start: lt.last, end: w.Sleep, owner: ctx, cnt: sub(w.Counters, lt.lastCnt)})
		idle := loopInterval{start: w.Sleep, end: w.Wake, idle: true, deadline: w.Deadline, wakeRunq: min(w.Runq, w.Wake-w.Sleep)}
		lt.add(idle)
		after := w.Counters
		after[event.CatEpoll] += w.Wake - w.Sleep - idle.wakeRunq
		after[event.CatRunq] += idle.wakeRunq
		lt.add(loopInterval{start: w.Wake, end: d.TS, owner: owner, cnt: sub(d.Counters, after)})
		ctx = nil // the context is whatever woke the loop
	} else {
		work := ctx
		if work == nil {
			work = owner
		}
		lt.add(loopInterval{start: lt.last, end: d.TS, owner: work, cnt: sub(d.Counters, lt.lastCnt)})
	}
	lt.last, lt.lastCnt = d.TS, d.Counters
	return lt.adopt(d, client, owner, ctx)
}

// adopt gives a socket no request owns (neither a client connection
// nor a known downstream one) to ctx, and keeps the timing of the owner's
// downstream calls.
func (lt *loopTrack) adopt(d *event.Data, client bool, owner, ctx *request) *request {
	if client {
		return owner
	}
	if owner == nil && ctx != nil {
		if _, ok := lt.inflight[ctx]; ok {
			lt.owners[d.Socket] = ctx
			owner = ctx
		}
	}
	if owner != nil && !d.Connect {
		owner.noteExchange(d)
	}
	return owner
}

// loopAfter sets the thread's context once d is handled: the request that
// owns d's socket now (the read of a request makes it the context).
func (a *Assembler) loopAfter(d *event.Data) {
	lt := a.loopOf(d.TID)
	lt.lastOwner, _ = a.loopOwner(lt, d)
	lt.prune()
}

// noteExchange keeps the timing of a request's downstream calls.
func (r *request) noteExchange(d *event.Data) {
	peer := d.Sock.Remote
	if d.Datagram.IsValid() && d.Datagram.Port() != 0 {
		peer = d.Datagram
	}
	var x *exchange
	for i := len(r.exchanges) - 1; i >= 0; i-- {
		if r.exchanges[i].socket == d.Socket {
			x = &r.exchanges[i]
			break
		}
	}
	if d.Out {
		if x == nil || x.taken != 0 {
			r.exchanges = append(r.exchanges, exchange{socket: d.Socket, peer: peer.String(), sent: d.TS})
		}
		return
	}
	if x != nil && x.taken == 0 {
		x.taken = d.TS
		x.reply = d.TS
		if d.ArrivalAny != 0 && d.ArrivalAny >= x.sent && d.ArrivalAny < d.TS {
			x.reply = d.ArrivalAny
		}
	}
}

func (lt *loopTrack) add(iv loopInterval) {
	if iv.end <= iv.start {
		return
	}
	if len(lt.ivs) >= maxLoopIntervals {
		lt.dropped = lt.ivs[0].end
		n := copy(lt.ivs, lt.ivs[1:])
		lt.ivs = lt.ivs[:n]
	}
	lt.ivs = append(lt.ivs, iv)
}

// prune forgets intervals no request in flight can need. It runs per
// socket event: the oldest start in flight is kept up to date as requests
// come and go (oldestStart), not searched for here.
func (lt *loopTrack) prune() {
	oldest := min(lt.last, lt.oldestStart())
	i := sort.Search(len(lt.ivs), func(i int) bool { return lt.ivs[i].end > oldest })
	if i > 0 {
		n := copy(lt.ivs, lt.ivs[i:])
		lt.ivs = lt.ivs[:n]
	}
}

func sub(a, b [event.NumCategories]uint64) [event.NumCategories]uint64 {
	var d [event.NumCategories]uint64
	for i := range a {
		if a[i] > b[i] {
			d[i] = a[i] - b[i]
		}
	}
	return d
}

// isLoopRequest says whether r, served by a thread that worked for other
// connections' requests or idled in epoll while r was in flight, needs the
// event-loop model: the thread's counters alone would mix those in.
func (lt *loopTrack) isLoopRequest(r *request, end uint64) bool {
	for _, iv := range lt.ivs {
		if iv.end <= r.start || iv.start >= end {
			continue
		}
		if iv.idle || (iv.owner != nil && iv.owner != r && iv.owner.key != r.key) {
			return true
		}
	}
	return false
}

// loopWait is a stretch of a loop request's time spent waiting.
type loopWait struct {
	cat    profile.Category
	start  uint64
	ns     int64
	peer   string
	holder *request // loop: the request the loop was busy with
	detail string
}

// loopBreakdown attributes r's time [r.start, end] on the loop lt. It
// returns the breakdown, the waits worth a timeline segment, and a reason
// when part of the time could not be attributed.
func (lt *loopTrack) loopBreakdown(r *request, end uint64) (map[profile.Category]int64, []loopWait, string) {
	bd := map[profile.Category]int64{}
	var waits []loopWait
	var why string
	covered := r.start
	if lt.dropped > r.start {
		why = "the event loop's history of this request was cut short (too many events)"
	}
	wait := func(cat profile.Category, from, to uint64, peer string, holder *request, detail string) {
		if to <= from {
			return
		}
		ns := int64(to - from)
		bd[cat] += ns
		if n := len(waits); n > 0 && waits[n-1].cat == cat && waits[n-1].peer == peer && waits[n-1].holder == holder &&
			waits[n-1].start+uint64(waits[n-1].ns) == from {
			waits[n-1].ns += ns
			return
		}
		waits = append(waits, loopWait{cat: cat, start: from, ns: ns, peer: peer, holder: holder, detail: detail})
	}
	for i, iv := range lt.ivs {
		lo, hi := max(iv.start, r.start), min(iv.end, end)
		if hi <= lo {
			continue
		}
		if lo > covered {
			// No interval covers this stretch: the request's bytes waited
			// before the thread's first event the camera saw (a sidecar
			// just started). Until its read that is a wait to be read,
			// known from its bytes' arrival: queue, as for any thread;
			// after it, history was lost.
			if q := min(lo, r.served); q > covered {
				bd[profile.Queue] += int64(q - covered)
				covered = q
			}
			if lo > covered {
				bd[profile.Other] += int64(lo - covered)
				why = join(why, "part of the request happened before the camera followed its event loop")
			}
		}
		covered = hi
		switch {
		case iv.owner == r:
			span := iv.end - iv.start
			for c, ns := range iv.cnt {
				if ns == 0 {
					continue
				}
				part := ns
				if hi-lo < span {
					part = uint64(float64(ns) * float64(hi-lo) / float64(span))
				}
				if c == event.CatEpoll {
					// An idle wait inside r's own stretch (the kernel reports
					// only the last one before each socket event): r waited
					// in it as in any idle wait of its loop.
					cat, peer, detail := r.idleWait(loopInterval{deadline: lt.deadlineAfter(i)}, nil, lo)
					wait(cat, lo, lo+part, peer, nil, detail)
					continue
				}
				bd[kernelCategory[c]] += int64(part)
			}
		case iv.idle:
			next := (*request)(nil)
			if i+1 < len(lt.ivs) {
				next = lt.ivs[i+1].owner
			}
			blockedEnd := iv.end - iv.wakeRunq
			for _, part := range [][2]uint64{{lo, min(hi, blockedEnd)}, {max(lo, blockedEnd), hi}} {
				if part[1] <= part[0] {
					continue
				}
				if part[0] >= blockedEnd && next == r {
					wait(profile.Runq, part[0], part[1], "", nil, "")
					continue
				}
				cat, peer, detail := r.idleWait(iv, next, part[0])
				wait(cat, part[0], part[1], peer, nil, detail)
			}
		default:
			// The loop worked for another request (or for none): r waited
			// for its own event until it happened, then for the loop.
			ready, cat, peer, detail := r.readyAt(lt, i, lo)
			if iv.owner == nil && cat == profile.Sleep {
				// Housekeeping of the loop's own (a server's periodic tick),
				// not another request: a timer's due time, estimated from
				// the loop's next timeout, which may well be that tick's, is
				// no reason to call r ready — it waited for its timer.
				ready = hi
			}
			if ready > lo {
				wait(cat, lo, min(ready, hi), peer, nil, detail)
			}
			if ready < hi {
				wait(profile.Loop, max(ready, lo), hi, "", iv.owner, "")
			}
		}
	}
	if end > covered {
		bd[profile.Other] += int64(end - covered)
		why = join(why, "part of the request happened after the camera's last view of its event loop")
	}
	for c, ns := range bd {
		if ns <= 0 {
			delete(bd, c)
		}
	}
	return bd, waits, why
}

// deadlineAfter is the timeout of the first idle wait from interval i on
// (the loop's next timer as it knew it then), 0 if none.
func (lt *loopTrack) deadlineAfter(i int) uint64 {
	for j := i; j < len(lt.ivs); j++ {
		if lt.ivs[j].idle {
			return lt.ivs[j].deadline
		}
	}
	return 0
}

// outstanding is r's downstream call in flight at t, if any.
func (r *request) outstanding(t uint64) *exchange {
	for i := len(r.exchanges) - 1; i >= 0; i-- {
		x := &r.exchanges[i]
		if x.sent <= t && (x.taken == 0 || t < x.taken) {
			return x
		}
	}
	return nil
}

// idleWait says what r was waiting for at t while its loop idled in the
// wait iv (followed by work for next).
func (r *request) idleWait(iv loopInterval, next *request, t uint64) (profile.Category, string, string) {
	if t < r.served {
		// Its bytes had arrived, the loop had not read them yet: the
		// wake-up.
		return profile.Runq, "", ""
	}
	if x := r.outstanding(t); x != nil {
		return profile.Net, x.peer, ""
	}
	if iv.deadline != 0 {
		// Nothing asked of the network and the loop had a timer pending:
		// a timer (setTimeout, asyncio.sleep) is what a request waits for.
		return profile.Sleep, "", "timer: the event loop waited for its next timer"
	}
	if next == r {
		// Woken by r's own socket: more of its request (a slow client).
		return profile.Net, "", ""
	}
	return profile.Epoll, "", "the event loop was idle and the camera cannot tell what this request waited for"
}

// readyAt says from when r could have run while the loop, at lt.ivs[i]
// (from lo), worked for something else: before that, r waited for its own
// event (cat, peer).
func (r *request) readyAt(lt *loopTrack, i int, lo uint64) (uint64, profile.Category, string, string) {
	if lo < r.served {
		// Its bytes arrived at r.start; the loop read them at r.served.
		return r.start, profile.Queue, "", ""
	}
	if x := r.outstanding(lo); x != nil {
		if x.reply != 0 && x.reply < x.taken {
			return x.reply, profile.Net, x.peer, ""
		}
		return x.taken, profile.Net, x.peer, ""
	}
	// Nothing asked of the network: a timer. The loop's last idle wait
	// before this work said when its next timer was due — which may be
	// another timer than this request's (a server's periodic tick): when r
	// became ready is then an estimate, and the segment says so.
	for j := i - 1; j >= 0; j-- {
		if iv := lt.ivs[j]; iv.idle {
			if iv.deadline != 0 {
				return iv.deadline, profile.Sleep, "", "timer: the event loop waited for its next timer (when this request's was due is estimated from the loop's next timeout)"
			}
			break
		}
	}
	// No timer known: ready as far as the camera can tell.
	return 0, profile.Other, "", ""
}

// loopSegments turns the waits of a loop request into timeline segments.
func loopSegments(r *request, waits []loopWait, threshold uint64) []profile.Segment {
	var out []profile.Segment
	for _, w := range waits {
		if uint64(w.ns) < threshold && w.cat != profile.Loop {
			continue
		}
		s := profile.Segment{Category: w.cat, StartOffsetNS: int64(w.start - r.start), DurationNS: w.ns, Peer: w.peer, Detail: w.detail}
		if w.cat == profile.Net && w.peer != "" {
			s.FDKind = "socket"
		}
		if w.cat == profile.Loop {
			s.Detail = "the event loop was busy with another request's work"
			if h := w.holder; h != nil && h.tcSet {
				s.Detail = fmt.Sprintf("the event loop was busy with %s", h.describe())
				s.HolderTraceID = h.tc.TraceID
			} else if h != nil {
				s.Detail = fmt.Sprintf("the event loop was busy with %s", h.describe())
			}
		}
		out = append(out, s)
	}
	return boundLoopSegments(out)
}

// maxLoopSegments bounds a request's loop segments. Under load a request
// on a busy event loop waits behind hundreds of short turns of other
// requests (measured: 670 in a 56 ms nginx request); the longest are the
// ones to read, the rest are one segment that says how many.
const maxLoopSegments = 16

func boundLoopSegments(segs []profile.Segment) []profile.Segment {
	var loops []int
	for i := range segs {
		if segs[i].Category == profile.Loop {
			loops = append(loops, i)
		}
	}
	if len(loops) <= maxLoopSegments {
		return segs
	}
	sort.SliceStable(loops, func(a, b int) bool { return segs[loops[a]].DurationNS > segs[loops[b]].DurationNS })
	drop := make(map[int]bool, len(loops)-maxLoopSegments+1)
	merged := profile.Segment{Category: profile.Loop, StartOffsetNS: -1}
	for _, i := range loops[maxLoopSegments-1:] {
		drop[i] = true
		s := segs[i]
		if merged.StartOffsetNS < 0 || s.StartOffsetNS < merged.StartOffsetNS {
			merged.StartOffsetNS = s.StartOffsetNS
		}
		merged.DurationNS += s.DurationNS
		merged.Count++
	}
	merged.Detail = fmt.Sprintf("the event loop was busy with other requests' work in %d shorter turns", merged.Count)
	out := make([]profile.Segment, 0, len(segs)-len(drop)+1)
	for i, s := range segs {
		if !drop[i] {
			out = append(out, s)
		}
	}
	return append(out, merged)
}

// describe names a request for another request's evidence.
func (r *request) describe() string {
	m, p := r.head.Method, r.head.Path
	if m == "" {
		m, p = "?", "?"
	}
	if r.tcSet {
		return fmt.Sprintf("%s %s (trace %s)", m, p, r.tc.TraceID)
	}
	return m + " " + p
}
