package api

import (
	"sync"
	"sync/atomic"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// Hub fans completed profiles out to live watchers. Publishing never blocks
// the capture path: a watcher that falls behind loses profiles, and the
// loss is counted.
type Hub struct {
	mu      sync.RWMutex
	subs    map[*Subscription]struct{}
	dropped atomic.Uint64
}

// Subscription is one watcher's queue.
type Subscription struct {
	C       chan *profile.Profile
	dropped atomic.Uint64
}

// Dropped counts profiles this watcher missed because it was too slow.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// NewHub makes an empty hub.
func NewHub() *Hub { return &Hub{subs: map[*Subscription]struct{}{}} }

// Subscribe registers a watcher with a queue of size buffered profiles.
func (h *Hub) Subscribe(buffer int) *Subscription {
	s := &Subscription{C: make(chan *profile.Profile, buffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Unsubscribe removes a watcher; its channel is not closed (a concurrent
// Publish may still hold it), the watcher simply stops reading.
func (h *Hub) Unsubscribe(s *Subscription) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// Watching says whether anyone is subscribed, so the caller can skip work
// (diagnosing) that only watchers need.
func (h *Hub) Watching() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs) > 0
}

// Publish offers p to every watcher without blocking.
func (h *Hub) Publish(p *profile.Profile) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		select {
		case s.C <- p:
		default:
			s.dropped.Add(1)
			h.dropped.Add(1)
		}
	}
}

// Dropped counts profiles any watcher missed.
func (h *Hub) Dropped() uint64 { return h.dropped.Load() }
