package metrics

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/tracecam/tracecam/sidecar/diagnose"
	"github.com/tracecam/tracecam/sidecar/profile"
)

// Defaults of Config.
const (
	DefaultMaxRoutes = 100
	DefaultWindow    = 10 * time.Minute
)

// RouteOther is the route of requests counted after the endpoint table
// was full.
const RouteOther = "other"

// Config tunes a Recorder.
type Config struct {
	// MaxRoutes caps the endpoints (method and route) tracked one by one;
	// requests to further endpoints are counted under route "other" (one
	// per method), without a baseline. Default DefaultMaxRoutes.
	MaxRoutes int
	// Window is the span baselines are learned over: two halves, the older
	// dropped as a new one starts, so a baseline holds the last Window/2 to
	// Window of requests. Default DefaultWindow.
	Window time.Duration
	// Now is the clock for profiles without a start time (default
	// time.Now); profiles are otherwise placed in the window by their end.
	Now func() time.Time
}

// The categories counted per endpoint: the breakdown's, then dns (the
// time in DNS lookups, which is part of net or epoll time) and gc (the time
// stopped by the runtime's collector, which is part of lock time).
const (
	numCats = 12
	dnsCat  = 10
	gcCat   = 11
	// CategoryDNS is the label of the DNS time.
	CategoryDNS = "dns"
	// CategoryGC is the label of the stop-the-world GC time.
	CategoryGC = "gc"
)

var catNames = [numCats]string{"cpu", "runq", "net", "file", "lock", "epoll", "sleep", "queue", "other", "loop", CategoryDNS, CategoryGC}

func catIndex(c profile.Category) int {
	switch c {
	case profile.CPU:
		return 0
	case profile.Runq:
		return 1
	case profile.Net:
		return 2
	case profile.File:
		return 3
	case profile.Lock:
		return 4
	case profile.Epoll:
		return 5
	case profile.Sleep:
		return 6
	case profile.Queue:
		return 7
	case profile.Other:
		return 8
	case profile.Loop:
		return 9
	}
	return -1
}

var causeNames = [...]profile.Cause{
	profile.CauseCPU, profile.CauseRunq, profile.CauseNet, profile.CauseDNS, profile.CauseTCPWindow, profile.CauseFile,
	profile.CauseLock, profile.CauseGC, profile.CauseQueue, profile.CauseLoop, profile.CauseSleep, profile.CauseUnknown,
}

const numCauses = len(causeNames)

func causeIndex(c profile.Cause) int {
	for i, n := range causeNames {
		if n == c {
			return i
		}
	}
	return numCauses - 1 // unknown
}

var statusNames = [...]string{"unknown", "1xx", "2xx", "3xx", "4xx", "5xx"}

const numStatus = len(statusNames)

func statusIndex(code int) int {
	if c := code / 100; c >= 1 && c <= 5 {
		return c
	}
	return 0
}

// The Prometheus buckets, in seconds and in nanoseconds.
var (
	durationBounds   = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	categoryBounds   = []float64{0.0001, 0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10}
	durationBoundsNS = toNS(durationBounds)
	categoryBoundsNS = toNS(categoryBounds)
)

const (
	numDurBuckets = 13 + 1 // bounds, then +Inf
	numCatBuckets = 8 + 1
)

func toNS(s []float64) []int64 {
	out := make([]int64, len(s))
	for i, v := range s {
		out[i] = int64(v * 1e9)
	}
	return out
}

func bucketIndex(bounds []int64, ns int64) int {
	i := 0
	for i < len(bounds) && ns > bounds[i] {
		i++
	}
	return i
}

// counters are an endpoint's cumulative counts, exported as they are.
type counters struct {
	dur        [numDurBuckets]uint64 // per bucket (not cumulative)
	durSum     int64
	cat        [numCats][numCatBuckets]uint64
	catSum     [numCats]int64
	status     [numStatus]uint64
	causes     [numCauses]uint64
	deviations [numCats]uint64
}

// sketches of one half of a window: duration, then each category.
type half [1 + numCats]sketch

// window learns an endpoint's baseline.
type window struct {
	epoch  uint64 // the epoch of halves[cur]
	cur    int
	halves [2]half
	snap   *profile.Baseline
	fresh  int // samples added since snap was computed
}

type endpoint struct {
	method, route string
	lastEpoch     uint64
	c             counters
	win           *window // nil for the overflow endpoints
}

// Recorder sums completed profiles per endpoint (the north-star metrics)
// and learns each endpoint's baseline. Memory is bounded: at most
// MaxRoutes endpoints (about 40 KiB each) plus one overflow endpoint per
// method. Observe is O(1) in the traffic and the number of endpoints, and
// does not allocate except when a new endpoint appears or (every few
// requests of an endpoint, amortised) its baseline is recomputed. It is
// safe for concurrent use.
type Recorder struct {
	mu        sync.Mutex
	cfg       Config
	half      time.Duration
	epoch     uint64
	halfStart time.Time
	routes    map[string]*endpoint // by method + " " + route
	overflow  map[string]*endpoint // by method
	free      []*window
	key       []byte // scratch for the lookup key

	overflowed, evicted uint64
}

// New returns an empty Recorder.
func New(cfg Config) *Recorder {
	if cfg.MaxRoutes <= 0 {
		cfg.MaxRoutes = DefaultMaxRoutes
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Recorder{
		cfg: cfg, half: cfg.Window / 2,
		routes: make(map[string]*endpoint), overflow: make(map[string]*endpoint),
		key: make([]byte, 0, 64),
	}
}

// quantile sets read from the sketches.
var (
	qDuration = []float64{0.5, 0.9}
	qMedian   = []float64{0.5}
)

// Observe counts p under its endpoint and adds it to the endpoint's
// baseline. Before that it sets p.Baseline to the endpoint's baseline as
// it stood before p (nil for untracked endpoints), so the diagnosis can
// compare p with it; Observe must see p before anything else reads it.
// Requests that are partial or answered 5xx are counted but not learned
// from.
func (r *Recorder) Observe(p *profile.Profile) {
	now := r.cfg.Now
	var at time.Time
	if !p.StartTime.IsZero() {
		at = p.StartTime.Add(time.Duration(p.DurationNS))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if at.IsZero() {
		at = now()
	}
	r.advance(at)
	ep := r.endpoint(p.Method, p.Path)
	ep.lastEpoch = r.epoch
	w := ep.win
	p.Baseline = nil
	if w != nil {
		if w.sync(r.epoch) || w.snap == nil {
			w.refresh(ep)
		}
		p.Baseline = w.snap
	}

	var vals [numCats]int64
	for c, ns := range p.Breakdown {
		if i := catIndex(c); i >= 0 && ns > 0 {
			vals[i] += ns
		}
	}
	var dns int64
	for i := range p.DNS {
		dns += max(p.DNS[i].LatencyNS, 0)
	}
	dur := max(p.DurationNS, 0)
	vals[dnsCat] = min(dns, dur)
	vals[gcCat] = min(diagnose.GCTime(p), dur)

	c := &ep.c
	c.dur[bucketIndex(durationBoundsNS, dur)]++
	c.durSum += dur
	for i, v := range vals {
		c.cat[i][bucketIndex(categoryBoundsNS, v)]++
		c.catSum[i] += v
	}
	c.status[statusIndex(p.StatusCode)]++
	cause, d, ok := diagnose.CauseAndDeviation(p)
	if p.Diagnosis.Cause != "" {
		cause = p.Diagnosis.Cause
	}
	c.causes[causeIndex(cause)]++
	if ok && d.Verdict == profile.VerdictDeviates {
		if i := catIndex(d.Category); i >= 0 {
			c.deviations[i]++
		}
	}

	if w == nil || p.Partial || p.StatusCode >= 500 || dur == 0 {
		return
	}
	h := &w.halves[w.cur]
	h[0].add(dur)
	for i, v := range vals {
		h[1+i].add(v)
	}
	w.fresh++
	if w.fresh >= refreshEvery(w.halves[0][0].n+w.halves[1][0].n) {
		w.refresh(ep)
	}
}

// refreshEvery is how many samples a baseline may lag behind: none while
// it is young, then a sixteenth of the window (a median over n samples
// barely moves in n/16 of them), so recomputing costs O(1) amortised.
func refreshEvery(n uint32) int {
	if n < 64 {
		return 1
	}
	return int(min(max(n/16, 4), 256))
}

// advance moves the window on to the half that contains t.
func (r *Recorder) advance(t time.Time) {
	if r.halfStart.IsZero() {
		r.halfStart = t
		return
	}
	if d := t.Sub(r.halfStart); d >= r.half {
		k := d / r.half
		r.epoch += uint64(k)
		r.halfStart = r.halfStart.Add(k * r.half)
		r.sweep()
	}
}

// sweep frees the endpoints that saw no request for a whole window, once
// the table is full, so new endpoints can take their place. It runs once
// per half window.
func (r *Recorder) sweep() {
	if len(r.routes) < r.cfg.MaxRoutes {
		return
	}
	for k, ep := range r.routes {
		if r.epoch-ep.lastEpoch >= 2 {
			delete(r.routes, k)
			r.free = append(r.free, ep.win)
			r.evicted++
		}
	}
}

// endpoint finds or makes the endpoint of a request.
func (r *Recorder) endpoint(method, path string) *endpoint {
	m := NormalizeMethod(method)
	r.key = append(r.key[:0], m...)
	r.key = append(r.key, ' ')
	r.key = AppendRoute(r.key, path)
	if ep, ok := r.routes[string(r.key)]; ok {
		return ep
	}
	if len(r.routes) >= r.cfg.MaxRoutes {
		r.overflowed++
		ep, ok := r.overflow[m]
		if !ok {
			ep = &endpoint{method: m, route: RouteOther}
			r.overflow[m] = ep
		}
		return ep
	}
	key := string(r.key)
	ep := &endpoint{method: m, route: key[len(m)+1:], win: r.newWindow()}
	r.routes[key] = ep
	return ep
}

func (r *Recorder) newWindow() *window {
	if n := len(r.free); n > 0 {
		w := r.free[n-1]
		r.free = r.free[:n-1]
		*w = window{epoch: r.epoch}
		return w
	}
	return &window{epoch: r.epoch}
}

// sync rotates the window's halves up to epoch; it says whether anything
// was dropped.
func (w *window) sync(epoch uint64) bool {
	switch d := epoch - w.epoch; {
	case d == 0:
		return false
	case d == 1:
		w.cur ^= 1
		w.halves[w.cur].reset()
	default:
		w.halves[0].reset()
		w.halves[1].reset()
	}
	w.epoch = epoch
	return true
}

func (h *half) reset() {
	for i := range h {
		s := &h[i]
		clear(s.counts[:s.top])
		s.n, s.top = 0, 0
	}
}

// refresh recomputes the baseline snapshot. The old one is left alone:
// profiles point to it.
func (w *window) refresh(ep *endpoint) {
	a, b := &w.halves[0], &w.halves[1]
	snap := &profile.Baseline{Method: ep.method, Route: ep.route}
	var q [2]int64
	n := quantiles(&a[0], &b[0], qDuration, q[:])
	snap.Samples = int64(n)
	snap.Warm = n >= profile.BaselineMinSamples
	snap.DurationNS, snap.DurationP90NS = q[0], q[1]
	var med [numCats]int64
	nonzero := 0
	for i := range numCats {
		var m [1]int64
		quantiles(&a[1+i], &b[1+i], qMedian, m[:])
		med[i] = m[0]
		if m[0] > 0 && i != dnsCat {
			nonzero++
		}
	}
	snap.DNSNS = med[dnsCat]
	if nonzero > 0 {
		snap.Breakdown = make(map[profile.Category]int64, nonzero)
		for i, v := range med[:dnsCat] {
			if v > 0 {
				snap.Breakdown[profile.Category(catNames[i])] = v
			}
		}
	}
	w.snap = snap
	w.fresh = 0
}

// Baselines returns the current baseline of every tracked endpoint,
// ordered by route, then method: the snapshots the next profiles will
// carry (recomputed where the window moved on).
func (r *Recorder) Baselines() []*profile.Baseline {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.advance(r.cfg.Now())
	out := make([]*profile.Baseline, 0, len(r.routes))
	for _, ep := range r.routes {
		w := ep.win
		if w.sync(r.epoch) || w.snap == nil {
			w.refresh(ep)
		}
		out = append(out, w.snap)
	}
	slices.SortFunc(out, func(a, b *profile.Baseline) int {
		if c := cmp.Compare(a.Route, b.Route); c != 0 {
			return c
		}
		return cmp.Compare(a.Method, b.Method)
	})
	return out
}

// Stats are the Recorder's own counters.
type Stats struct {
	// Routes is the number of endpoints tracked one by one, MaxRoutes
	// their limit.
	Routes, MaxRoutes int
	// Overflowed counts requests counted under route "other" because the
	// table was full; Evicted, endpoints dropped after a window without
	// requests to make room.
	Overflowed, Evicted uint64
}

// Stats reports the endpoint table's state.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Routes: len(r.routes), MaxRoutes: r.cfg.MaxRoutes, Overflowed: r.overflowed, Evicted: r.evicted}
}

// endpointCounts is one endpoint's counters, copied for a scrape.
type endpointCounts struct {
	method, route string
	c             counters
}

// snapshot copies every endpoint's counters, so a scrape holds the lock
// only for the copy.
func (r *Recorder) snapshot() ([]endpointCounts, Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]endpointCounts, 0, len(r.routes)+len(r.overflow))
	for _, ep := range r.routes {
		out = append(out, endpointCounts{ep.method, ep.route, ep.c})
	}
	for _, ep := range r.overflow {
		out = append(out, endpointCounts{ep.method, ep.route, ep.c})
	}
	return out, Stats{Routes: len(r.routes), MaxRoutes: r.cfg.MaxRoutes, Overflowed: r.overflowed, Evicted: r.evicted}
}

// Window is the span baselines are learned over.
func (r *Recorder) Window() time.Duration { return r.cfg.Window }
