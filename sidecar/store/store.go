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
	// Match, when set, must accept a profile too; it is called last, only
	// for profiles that pass the other conditions.
	Match func(*profile.Profile) bool
}

// List returns the matching profiles, slowest first. With a limit it keeps
// only the slowest limit in a small heap while scanning, instead of sorting
// every match: a list of 20 out of 10,000 stays well under a millisecond.
func (r *Ring) List(q Query) []*profile.Profile {
	minNS := q.MinDuration.Nanoseconds()
	var out []*profile.Profile
	r.mu.RLock()
	for _, p := range r.buf {
		if p == nil || p.DurationNS < minNS || !strings.HasPrefix(p.Path, q.PathPrefix) ||
			(!q.Since.IsZero() && p.StartTime.Before(q.Since)) || (q.Match != nil && !q.Match(p)) {
			continue
		}
		switch {
		case q.Limit <= 0 || len(out) < q.Limit:
			out = append(out, p)
			if q.Limit > 0 && len(out) == q.Limit {
				heapify(out)
			}
		case p.DurationNS > out[0].DurationNS:
			out[0] = p // replace the fastest kept one
			siftDown(out, 0)
		}
	}
	r.mu.RUnlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].DurationNS > out[j].DurationNS })
	return out
}

// heapify and siftDown keep h a min-heap by duration: h[0] is the fastest
// of the slowest seen so far, the one to drop next.
func heapify(h []*profile.Profile) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
}

func siftDown(h []*profile.Profile, i int) {
	for {
		l, small := 2*i+1, i
		if l < len(h) && h[l].DurationNS < h[small].DurationNS {
			small = l
		}
		if r := l + 1; r < len(h) && h[r].DurationNS < h[small].DurationNS {
			small = r
		}
		if small == i {
			return
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
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
