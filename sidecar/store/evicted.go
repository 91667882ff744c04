package store

// evictedSet remembers, approximately, the traces whose profiles the store
// dropped to bound its memory, so a lookup can say "evicted" rather than
// "never seen here". Two Bloom filter generations: the newer takes inserts,
// and when it has taken perGeneration it becomes the older and the older is
// cleared. It remembers the last perGeneration to 2×perGeneration evicted
// traces; a trace this pod never served answers "evicted" with a
// probability of about 2% (12 bits per trace, 5 set in one 64-bit
// word: one cache miss per insert, which runs once per request on a busy
// pod).
type evictedSet struct {
	gens          [2][]uint64 // bit sets; gens[cur] takes inserts
	cur           int
	inserted      int
	perGeneration int
}

func newEvictedSet(perGeneration int) *evictedSet {
	words := max(perGeneration*12/64, 64)
	return &evictedSet{
		gens:          [2][]uint64{make([]uint64, words), make([]uint64, words)},
		perGeneration: max(perGeneration, 1),
	}
}

// word and mask: the filter's word for h and the 5 bits set in it (bit
// positions from five 6-bit slices of the hash's upper half).
func (s *evictedSet) word(h uint64) (int, uint64) {
	// A finalizer (splitmix64's) spreads FNV's bits over the whole word.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	w := int((h & 0xffffffff) % uint64(len(s.gens[0])))
	var mask uint64
	for i := range 5 {
		mask |= 1 << ((h >> (32 + 6*i)) & 63)
	}
	return w, mask
}

func (s *evictedSet) add(h uint64) {
	if s.inserted >= s.perGeneration {
		s.cur ^= 1
		clear(s.gens[s.cur])
		s.inserted = 0
	}
	w, mask := s.word(h)
	s.gens[s.cur][w] |= mask
	s.inserted++
}

func (s *evictedSet) has(h uint64) bool {
	w, mask := s.word(h)
	return s.gens[0][w]&mask == mask || s.gens[1][w]&mask == mask
}
