package store

import "time"

// keptSet is the store of exemplars that outlives the recent log on a busy
// pod: for every endpoint and every BucketSpan of time, the PerBucket
// (fewer when many endpoints share a bucket, so that it still reaches back
// KeptReach) slowest requests (errors, partial profiles and requests that waited
// longer than the segment threshold rank before any that did not). It is
// bounded by a count; the oldest buckets go first. On a quiet pod every
// request fits; on a pod serving 100,000 requests a second one endpoint's
// slowest still stay for hours.
type keptSet struct {
	capacity  int
	perBucket int
	// retain is how many buckets the set aims to reach back (15 min):
	// with many busy endpoints each keeps fewer per bucket (down to one)
	// so that capacity still covers that long.
	retain  int
	span    time.Duration
	buckets []*keptBucket // oldest first
	count   int
	evicted uint64
}

type keptBucket struct {
	start     int64 // bucket start, Unix ns (by completion time)
	endpoints map[endpointKey][]keptEntry
	count     int
}

// keptEntry is a kept profile: its stored form and what ranks it.
type keptEntry struct {
	rec      []byte
	rank     uint64 // class << 56 | duration (µs), larger = more worth keeping
	trace    uint64
	startNS  int64
	duration int64
}

// KeptReach is how far back the kept set aims to reach however many
// endpoints are busy (as long as capacity / endpoints leaves one per
// bucket).
const KeptReach = 15 * time.Minute

func newKeptSet(capacity, perBucket int, span time.Duration) *keptSet {
	return &keptSet{capacity: max(capacity, 1), perBucket: max(perBucket, 1), span: span,
		retain: max(int(KeptReach/span), 1)}
}

// limit is how many profiles each endpoint keeps in bucket b, given how
// many endpoints share it (endpoint new to b: counted).
func (k *keptSet) limit(b *keptBucket, endpoint endpointKey) int {
	n := len(b.endpoints)
	if _, ok := b.endpoints[endpoint]; !ok {
		n++
	}
	return min(k.perBucket, max(1, k.capacity/(n*k.retain)))
}

// rankOf orders profiles by what a person looking for the cause of an
// incident needs most: notable ones first, then the slowest.
func rankOf(notable bool, durationNS int64) uint64 {
	r := uint64(max(durationNS, 0)) / 1000
	r = min(r, 1<<56-1)
	if notable {
		r |= 1 << 56
	}
	return r
}

// admits says whether a profile of this rank would be kept: the cheap
// test run for every request before its stored form is built.
func (k *keptSet) admits(endpoint endpointKey, nowNS int64, rank uint64) bool {
	b := k.current(nowNS, false)
	if b == nil {
		return true
	}
	h := b.endpoints[endpoint]
	return len(h) < k.limit(b, endpoint) || rank > h[0].rank
}

// add keeps e unless its bucket already holds perBucket better ones; it
// reports the trace hashes it drops to onEvict.
func (k *keptSet) add(endpoint endpointKey, nowNS int64, e keptEntry, onEvict func(uint64)) {
	b := k.current(nowNS, true)
	h := b.endpoints[endpoint]
	switch {
	case len(h) < k.limit(b, endpoint):
		h = append(h, e)
		siftUpKept(h, len(h)-1)
		b.count++
		k.count++
	case e.rank > h[0].rank:
		if onEvict != nil {
			onEvict(h[0].trace)
		}
		k.evicted++
		h[0] = e
		siftDownKept(h, 0)
	default:
		return
	}
	b.endpoints[endpoint] = h
	for k.count > k.capacity && len(k.buckets) > 0 {
		k.dropOne(onEvict)
	}
}

// dropOne removes the least worth keeping entry of the oldest bucket.
func (k *keptSet) dropOne(onEvict func(uint64)) {
	b := k.buckets[0]
	var worstEp endpointKey
	var worst *keptEntry
	for ep, h := range b.endpoints {
		if len(h) > 0 && (worst == nil || h[0].rank < worst.rank) {
			worstEp, worst = ep, &h[0]
		}
	}
	if worst == nil {
		k.buckets = k.buckets[1:]
		return
	}
	if onEvict != nil {
		onEvict(worst.trace)
	}
	h := b.endpoints[worstEp]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = keptEntry{}
	h = h[:last]
	siftDownKept(h, 0)
	if len(h) == 0 {
		delete(b.endpoints, worstEp)
	} else {
		b.endpoints[worstEp] = h
	}
	b.count--
	k.count--
	k.evicted++
	if b.count == 0 {
		k.buckets[0] = nil
		k.buckets = k.buckets[1:]
	}
}

// current is the bucket nowNS falls in; with create, a new one is opened
// when time has moved past the newest.
func (k *keptSet) current(nowNS int64, create bool) *keptBucket {
	start := nowNS - nowNS%k.span.Nanoseconds()
	if n := len(k.buckets); n > 0 && k.buckets[n-1].start >= start {
		return k.buckets[n-1]
	}
	if !create {
		return nil
	}
	b := &keptBucket{start: start, endpoints: make(map[endpointKey][]keptEntry)}
	k.buckets = append(k.buckets, b)
	return b
}

func (k *keptSet) each(f func(e *keptEntry) bool) {
	for _, b := range k.buckets {
		for _, h := range b.endpoints {
			for i := range h {
				if !f(&h[i]) {
					return
				}
			}
		}
	}
}

// oldestStart is the earliest start among the kept profiles.
func (k *keptSet) oldestStart() (int64, bool) {
	var oldest int64
	found := false
	for _, b := range k.buckets[:min(len(k.buckets), 2)] {
		for _, h := range b.endpoints {
			for i := range h {
				if !found || h[i].startNS < oldest {
					oldest, found = h[i].startNS, true
				}
			}
		}
	}
	return oldest, found
}

// The endpoint heaps are min-heaps by rank: [0] is dropped first.
func siftUpKept(h []keptEntry, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].rank <= h[i].rank {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func siftDownKept(h []keptEntry, i int) {
	siftDownBy(h, i, func(a, b *keptEntry) bool { return a.rank < b.rank })
}
