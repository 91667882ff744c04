package store

// evictedSet remembers, approximately, the traces whose profiles the store
// dropped to bound its memory, so a lookup can say "evicted" rather than
// "never seen here". Two Bloom filter generations: the newer takes inserts,
// and when it has taken perGeneration it becomes the older and the older is
// cleared. It remembers the last perGeneration to 2×perGeneration evicted
// traces; a trace this pod never served answers "evicted" with a
// probability under 3% (5 hashes, 8 bits per trace).
type evictedSet struct {
	gens          [2][]uint64 // bit sets; gens[cur] takes inserts
	cur           int
	inserted      int
	perGeneration int
}

const evictedHashes = 5

func newEvictedSet(perGeneration int) *evictedSet {
	words := max(perGeneration*8/64, 64)
	return &evictedSet{
		gens:          [2][]uint64{make([]uint64, words), make([]uint64, words)},
		perGeneration: max(perGeneration, 1),
	}
}

// probes derives the filter's bit positions from one 64-bit hash (double
// hashing: h1 + i·h2).
func (s *evictedSet) probes(h uint64, f func(bit uint64)) {
	bits := uint64(len(s.gens[0]) * 64)
	h1, h2 := h, (h>>33|h<<31)|1
	for i := range uint64(evictedHashes) {
		f((h1 + i*h2) % bits)
	}
}

func (s *evictedSet) add(h uint64) {
	if s.inserted >= s.perGeneration {
		s.cur ^= 1
		clear(s.gens[s.cur])
		s.inserted = 0
	}
	g := s.gens[s.cur]
	s.probes(h, func(bit uint64) { g[bit/64] |= 1 << (bit % 64) })
	s.inserted++
}

func (s *evictedSet) has(h uint64) bool {
	for _, g := range s.gens {
		all := true
		s.probes(h, func(bit uint64) {
			if g[bit/64]&(1<<(bit%64)) == 0 {
				all = false
			}
		})
		if all {
			return true
		}
	}
	return false
}
