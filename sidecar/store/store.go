package store

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// Ring is a bounded, concurrency-safe store of recent profiles.
type Ring struct {
	mu      sync.RWMutex
	buf     []*profile.Profile
	next    int
	full    bool
	byTrace map[string][]*profile.Profile
	evicted uint64
	added   uint64
}

// NewRing keeps at most size profiles (at least 1).
func NewRing(size int) *Ring {
	if size < 1 {
		size = 1
	}
	return &Ring{buf: make([]*profile.Profile, size), byTrace: map[string][]*profile.Profile{}}
}

// Add stores p, evicting the oldest profile when full.
func (r *Ring) Add(p *profile.Profile) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.buf[r.next]; old != nil {
		r.unindex(old)
		r.evicted++
	}
	r.buf[r.next] = p
	r.byTrace[p.TraceID] = append(r.byTrace[p.TraceID], p)
	r.added++
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

func (r *Ring) unindex(p *profile.Profile) {
	list := r.byTrace[p.TraceID]
	for i, q := range list {
		if q == p {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.byTrace, p.TraceID)
	} else {
		r.byTrace[p.TraceID] = list
	}
}

// Trace returns the stored profiles of a trace, oldest first.
func (r *Ring) Trace(traceID string) []*profile.Profile {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := append([]*profile.Profile(nil), r.byTrace[strings.ToLower(traceID)]...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartTime.Before(out[j].StartTime) })
	return out
}

// Query selects recent profiles.
type Query struct {
	MinDuration time.Duration
	PathPrefix  string
	Since       time.Time // zero: no bound
	Limit       int       // <= 0: all
}

// List returns the matching profiles, slowest first.
func (r *Ring) List(q Query) []*profile.Profile {
	r.mu.RLock()
	var out []*profile.Profile
	for _, p := range r.buf {
		if p == nil || p.DurationNS < q.MinDuration.Nanoseconds() ||
			!strings.HasPrefix(p.Path, q.PathPrefix) ||
			(!q.Since.IsZero() && p.StartTime.Before(q.Since)) {
			continue
		}
		out = append(out, p)
	}
	r.mu.RUnlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].DurationNS > out[j].DurationNS })
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// Stats are the ring's counters.
type Stats struct {
	Stored, Capacity int
	Added, Evicted   uint64
}

// Stats reports how full the ring is.
func (r *Ring) Stats() Stats {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	return Stats{Stored: n, Capacity: len(r.buf), Added: r.added, Evicted: r.evicted}
}
