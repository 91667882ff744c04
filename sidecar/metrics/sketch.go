package metrics

import "math/bits"

// The quantile sketch: a fixed log-linear histogram of microseconds, 16
// buckets per power of two (each at most 6.25% wide), exact below 16 µs,
// up to 2^30 µs (18 minutes; longer values count in the last bucket): 448
// buckets. A quantile is interpolated within its bucket, so its relative
// error is at most one bucket width and in practice well under 1%. It is an
// array of counters: adding is O(1), memory is fixed (1.8 KiB).
const (
	subBits    = 4
	subBuckets = 1 << subBits // per power of two
	maxExp     = 30           // values up to 2^maxExp µs
	// NumBuckets is the size of a sketch.
	NumBuckets = (maxExp-subBits+1)*subBuckets + subBuckets
)

// bucketOf returns the bucket of v microseconds.
func bucketOf(us uint64) int {
	if us < subBuckets {
		return int(us)
	}
	e := bits.Len64(us) - 1 // us in [2^e, 2^(e+1))
	if e > maxExp {
		return NumBuckets - 1
	}
	sub := int(us>>(e-subBits)) - subBuckets
	return (e-subBits+1)*subBuckets + sub
}

// bucketBounds returns the first value of bucket i and its width, in µs.
func bucketBounds(i int) (lo, width uint64) {
	if i < subBuckets {
		return uint64(i), 1
	}
	e := i/subBuckets + subBits - 1
	sub := uint64(i % subBuckets)
	return (subBuckets + sub) << (e - subBits), 1 << (e - subBits)
}

// sketch is one histogram: counts per bucket and the highest bucket used,
// so reading it scans only what is filled.
type sketch struct {
	n      uint32
	top    uint16 // highest bucket with a count, +1
	counts [NumBuckets]uint32
}

func (s *sketch) add(ns int64) {
	us := uint64(0)
	if ns > 0 {
		us = uint64(ns) / 1000
	}
	b := bucketOf(us)
	s.counts[b]++
	s.n++
	if uint16(b) >= s.top {
		s.top = uint16(b) + 1
	}
}

func (s *sketch) reset() { *s = sketch{} }

// quantiles reads the quantiles qs (ascending, in [0, 1]) of the union of
// a and b (the two halves of a window) into out, in nanoseconds. The
// count is returned; with none, out is left alone.
func quantiles(a, b *sketch, qs []float64, out []int64) uint32 {
	n := a.n + b.n
	if n == 0 {
		return 0
	}
	top := max(a.top, b.top)
	var cum uint64
	qi := 0
	for i := 0; i < int(top) && qi < len(qs); i++ {
		c := uint64(a.counts[i]) + uint64(b.counts[i])
		if c == 0 {
			continue
		}
		for qi < len(qs) {
			// The rank of the quantile, counted from 0: the median of 4
			// values sits between the 2nd and 3rd (rank 1.5).
			rank := qs[qi] * float64(n-1)
			if rank >= float64(cum+c) {
				break
			}
			lo, w := bucketBounds(i)
			// Spread the bucket's values evenly over its width.
			pos := (rank - float64(cum) + 0.5) / float64(c)
			v := float64(lo) + pos*float64(w)
			if w == 1 {
				v = float64(lo)
			}
			out[qi] = int64(v * 1000)
			qi++
		}
		cum += c
	}
	return n
}
