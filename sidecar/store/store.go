package store

import (
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// Config sizes the store.
type Config struct {
	// KeptProfiles bounds the kept exemplars (--store-size, default
	// DefaultKeptProfiles).
	KeptProfiles int
	// RecentBytes is the recent log's arena (--store-bytes, default
	// DefaultRecentBytes): every profile, oldest overwritten first.
	RecentBytes int
	// PerBucket and BucketSpan: the kept set holds, per endpoint and per
	// BucketSpan, the PerBucket requests most worth keeping (defaults 16
	// and 10 s).
	PerBucket  int
	BucketSpan time.Duration
	// EvictedTraces is how many evicted traces a lookup can still name as
	// evicted (at least; default 1 Mi, 3 MiB of memory).
	EvictedTraces int
}

// Defaults: ~100,000 recent profiles in 16 MiB and 10,000 exemplars in ~3
// MiB, within the sidecar's 50 MiB.
const (
	DefaultKeptProfiles = 10000
	DefaultRecentBytes  = 16 << 20
	DefaultPerBucket    = 16
	DefaultBucketSpan   = 10 * time.Second
	DefaultEvicted      = 1 << 20
)

// Store keeps profiles in memory in two tiers (the retention policy,
// docs/architecture.md "How long profiles stay"):
//
//   - recent: every profile, in its compact stored form, in a byte arena
//     of fixed size — on a quiet pod hours of traffic, on a pod at 100,000
//     requests a second about one second;
//   - kept: per endpoint and per 10 s, the 16 requests most worth keeping
//     (errors, partial profiles and requests with long waits first, then
//     the slowest; fewer per endpoint when many are busy, so it reaches
//     back KeptReach), 10,000 at most — what the drill looks for, kept
//     longer than the baseline window even on a busy pod.
//
// Profiles are decoded when read; the diagnosis is computed again then.
type Store struct {
	mu      sync.RWMutex
	recent  *recentLog
	kept    *keptSet
	evicted *evictedSet
	scratch []byte
	added   uint64
	dropped uint64 // profiles too large for the recent log and not kept
}

// New returns an empty store.
func New(cfg Config) *Store {
	if cfg.KeptProfiles <= 0 {
		cfg.KeptProfiles = DefaultKeptProfiles
	}
	if cfg.RecentBytes <= 0 {
		cfg.RecentBytes = DefaultRecentBytes
	}
	if cfg.PerBucket <= 0 {
		cfg.PerBucket = DefaultPerBucket
	}
	if cfg.BucketSpan <= 0 {
		cfg.BucketSpan = DefaultBucketSpan
	}
	if cfg.EvictedTraces <= 0 {
		cfg.EvictedTraces = DefaultEvicted
	}
	return &Store{
		recent:  newRecentLog(cfg.RecentBytes),
		kept:    newKeptSet(cfg.KeptProfiles, cfg.PerBucket, cfg.BucketSpan),
		evicted: newEvictedSet(cfg.EvictedTraces),
	}
}

// hashTrace is FNV-1a of the trace ID: no allocation on the capture path.
func hashTrace(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}

// endpointKey groups the kept set: the baseline's normalised route when the
// endpoint is tracked, else the method alone.
type endpointKey struct{ method, route string }

func endpointOf(p *profile.Profile) endpointKey {
	if b := p.Baseline; b != nil {
		return endpointKey{b.Method, b.Route}
	}
	return endpointKey{method: p.Method}
}

// notable profiles rank before any other in the kept set.
func notable(p *profile.Profile) bool {
	if p.Partial || p.StatusCode >= 500 || len(p.DNS) > 0 {
		return true
	}
	for i := range p.Timeline {
		// Waits of a millisecond or more (the default segment threshold;
		// a busy server's requests all have a short queue segment).
		if p.Timeline[i].DurationNS >= 1e6 {
			return true
		}
	}
	d := p.Diagnosis.Deviation
	return d != nil && d.Verdict == profile.VerdictDeviates
}

// Add stores p. The store keeps its own copy: p may be reused after.
func (s *Store) Add(p *profile.Profile) {
	h := hashTrace(p.TraceID)
	startNS := p.StartTime.UnixNano()
	doneNS := startNS + p.DurationNS
	ep := endpointOf(p)
	rank := rankOf(notable(p), p.DurationNS)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.added++
	s.scratch = encode(s.scratch[:0], p)
	rec := s.scratch
	inRecent := s.recent.add(rec, recentEntry{trace: h, startNS: startNS, duration: p.DurationNS}, s.evicted.add)
	if s.kept.admits(ep, doneNS, rank) {
		s.kept.add(ep, doneNS, keptEntry{
			rec: append([]byte(nil), rec...), rank: rank, trace: h, startNS: startNS, duration: p.DurationNS,
		}, s.evicted.add)
	} else if !inRecent {
		s.dropped++
		s.evicted.add(h)
	}
}

// seenKey identifies one stored profile across the two tiers.
type seenKey struct {
	trace           uint64
	start, duration int64
}

// Trace returns the stored profiles of a trace, oldest first. When there
// are none, evicted says whether this store held some and dropped them
// (a Bloom filter: a trace never seen here says so with a small
// probability, docs/architecture.md).
func (s *Store) Trace(traceID string) (list []*profile.Profile, evicted bool) {
	id := strings.ToLower(traceID)
	h := hashTrace(id)
	s.mu.RLock()
	var seen map[seenKey]bool
	take := func(rec []byte, key seenKey) {
		if seen[key] {
			return
		}
		p, err := decode(rec)
		if err != nil {
			slog.Error("stored profile does not decode", "err", err)
			return
		}
		if p.TraceID != id {
			return // a hash collision
		}
		if seen == nil {
			seen = make(map[seenKey]bool)
		}
		seen[key] = true
		list = append(list, p)
	}
	s.kept.each(func(e *keptEntry) bool {
		if e.trace == h {
			take(e.rec, seenKey{h, e.startNS, e.duration})
		}
		return true
	})
	s.recent.each(func(e *recentEntry) bool {
		if e.trace == h {
			take(s.recent.record(e), seenKey{h, e.startNS, e.duration})
		}
		return true
	})
	if len(list) == 0 {
		evicted = s.evicted.has(h)
	}
	s.mu.RUnlock()
	sort.SliceStable(list, func(i, j int) bool { return list[i].StartTime.Before(list[j].StartTime) })
	return list, evicted
}

// Query selects stored profiles.
type Query struct {
	MinDuration time.Duration
	PathPrefix  string
	Since       time.Time // zero: no bound
	Limit       int       // <= 0: all
	// Match, when set, must accept a profile too; it is called last, only
	// for profiles that pass the other conditions, slowest first.
	Match func(*profile.Profile) bool
}

// candidate is a stored record that passed the cheap conditions.
type candidate struct {
	rec      []byte
	duration int64
}

// List returns the matching profiles, slowest first. The cheap conditions
// (duration, start, path) are checked on the index and the record's path
// without decoding; with a limit and no Match only the slowest limit are
// kept while scanning, in a small heap, and only they are decoded.
func (s *Store) List(q Query) []*profile.Profile {
	minNS := q.MinDuration.Nanoseconds()
	var sinceNS int64
	if !q.Since.IsZero() {
		sinceNS = q.Since.UnixNano()
	}
	bounded := q.Limit > 0 && q.Match == nil
	var cands []candidate
	consider := func(rec []byte, startNS, dur int64) {
		if dur < minNS || (sinceNS != 0 && startNS < sinceNS) {
			return
		}
		if q.PathPrefix != "" {
			path, ok := recordPath(rec)
			if !ok || !strings.HasPrefix(string(path), q.PathPrefix) {
				return
			}
		}
		c := candidate{rec, dur}
		switch {
		case !bounded || len(cands) < q.Limit:
			cands = append(cands, c)
			if bounded && len(cands) == q.Limit {
				heapify(cands)
			}
		case dur > cands[0].duration:
			cands[0] = c
			siftDown(cands, 0)
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	kept := make(map[seenKey]bool, s.kept.count)
	s.kept.each(func(e *keptEntry) bool {
		kept[seenKey{e.trace, e.startNS, e.duration}] = true
		consider(e.rec, e.startNS, e.duration)
		return true
	})
	s.recent.each(func(e *recentEntry) bool {
		if !kept[seenKey{e.trace, e.startNS, e.duration}] {
			consider(s.recent.record(e), e.startNS, e.duration)
		}
		return true
	})
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].duration > cands[j].duration })
	var out []*profile.Profile
	for _, c := range cands {
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
		p, err := decode(c.rec)
		if err != nil {
			slog.Error("stored profile does not decode", "err", err)
			continue
		}
		if q.Match != nil && !q.Match(p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// heapify and siftDown keep h a min-heap by duration: h[0] is the fastest
// of the slowest seen so far, the one to drop next.
func heapify(h []candidate) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
}

func siftDown(h []candidate, i int) {
	siftDownBy(h, i, func(a, b *candidate) bool { return a.duration < b.duration })
}

// siftDownBy restores a min-heap (by less) below i: the one sift-down both
// the list's top-N and the kept set's endpoint heaps use.
func siftDownBy[T any](h []T, i int, less func(a, b *T) bool) {
	for {
		l, small := 2*i+1, i
		if l < len(h) && less(&h[l], &h[small]) {
			small = l
		}
		if r := l + 1; r < len(h) && less(&h[r], &h[small]) {
			small = r
		}
		if small == i {
			return
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
}

// TierStats describe one tier of the store.
type TierStats struct {
	Profiles int
	// Capacity: profiles (kept) or bytes (recent).
	Capacity int
	Bytes    uint64 // bytes of stored forms held
	// Oldest is the start of the oldest profile held (zero when empty):
	// how far back the tier reaches.
	Oldest  time.Time
	Evicted uint64
}

// Stats are the store's counters.
type Stats struct {
	Recent, Kept TierStats
	Added        uint64
	// Dropped counts profiles neither tier could hold (a stored form
	// larger than a quarter of the recent arena, and not kept).
	Dropped uint64
}

// Stats reports how full the store is and how far back it reaches.
func (s *Store) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Stats{Added: s.added, Dropped: s.dropped}
	st.Recent = TierStats{Profiles: s.recent.size, Capacity: len(s.recent.arena), Bytes: s.recent.used(), Evicted: s.recent.evicted}
	if e, ok := s.recent.oldest(); ok {
		st.Recent.Oldest = time.Unix(0, e.startNS)
	}
	st.Kept = TierStats{Profiles: s.kept.count, Capacity: s.kept.capacity, Evicted: s.kept.evicted}
	s.kept.each(func(e *keptEntry) bool { st.Kept.Bytes += uint64(len(e.rec)); return true })
	if ns, ok := s.kept.oldestStart(); ok {
		st.Kept.Oldest = time.Unix(0, ns)
	}
	return st
}
