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
	evicted uint64
	added   uint64
}

// NewRing keeps at most size profiles (at least 1).
func NewRing(size int) *Ring {
	if size < 1 {
		size = 1
	}
	return &Ring{buf: make([]*profile.Profile, size)}
}

// Add stores p, evicting the oldest profile when full.
func (r *Ring) Add(p *profile.Profile) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.buf[r.next] != nil {
		r.evicted++
	}
	r.buf[r.next] = p
	r.added++
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

// Trace returns the stored profiles of a trace, oldest first. It scans the
// ring rather than keeping an index: Add is on the capture path and runs for
// every request, lookups run when a person asks (10,000 profiles scan in
// tens of microseconds).
func (r *Ring) Trace(traceID string) []*profile.Profile {
	id := strings.ToLower(traceID)
	r.mu.RLock()
	var out []*profile.Profile
	for _, p := range r.buf {
		if p != nil && p.TraceID == id {
			out = append(out, p)
		}
	}
	r.mu.RUnlock()
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
