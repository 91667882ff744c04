package metrics

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBuckets(t *testing.T) {
	// Every bucket's bounds map back to it, and buckets tile the range.
	next := uint64(0)
	for i := range NumBuckets {
		lo, w := bucketBounds(i)
		if lo != next {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, next)
		}
		if bucketOf(lo) != i || bucketOf(lo+w-1) != i {
			t.Fatalf("bucket %d [%d, %d): bucketOf gives %d and %d", i, lo, lo+w, bucketOf(lo), bucketOf(lo+w-1))
		}
		if i >= subBuckets && float64(w)/float64(lo) > 1.0/subBuckets+1e-9 {
			t.Fatalf("bucket %d is %.1f%% wide", i, 100*float64(w)/float64(lo))
		}
		next = lo + w
	}
	if bucketOf(math.MaxUint64) != NumBuckets-1 || bucketOf(1<<40) != NumBuckets-1 {
		t.Error("values past the range do not land in the last bucket")
	}
}

// exact is the quantile the sketch estimates: linear interpolation
// between the order statistics.
func exact(sorted []int64, q float64) float64 {
	r := q * float64(len(sorted)-1)
	i := int(r)
	if i+1 >= len(sorted) {
		return float64(sorted[len(sorted)-1])
	}
	return float64(sorted[i]) + (r-float64(i))*float64(sorted[i+1]-sorted[i])
}

func TestSketchAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const msNS = 1e6
	dists := map[string]func() int64{
		"lognormal around 30 ms": func() int64 { return int64(30 * msNS * math.Exp(0.5*rng.NormFloat64())) },
		"uniform 1–500 ms":       func() int64 { return int64((1 + 499*rng.Float64()) * msNS) },
		"exponential, mean 2 ms": func() int64 { return int64(rng.ExpFloat64() * 2 * msNS) },
		"bimodal 5 ms / 400 ms": func() int64 {
			if rng.IntN(10) < 7 {
				return int64((5 + rng.NormFloat64()*0.3) * msNS)
			}
			return int64((400 + rng.NormFloat64()*20) * msNS)
		},
		"microseconds": func() int64 { return int64(rng.IntN(40_000)) },
		"mostly zero": func() int64 {
			if rng.IntN(10) < 8 {
				return 0
			}
			return int64(rng.Float64() * 10 * msNS)
		},
	}
	qs := []float64{0.1, 0.5, 0.9, 0.99}
	for name, gen := range dists {
		for _, n := range []int{20, 1000, 100000} {
			var a, b sketch
			vals := make([]int64, n)
			for i := range vals {
				vals[i] = gen()
				if i%2 == 0 { // spread over both halves
					a.add(vals[i])
				} else {
					b.add(vals[i])
				}
			}
			slices.Sort(vals)
			got := make([]int64, len(qs))
			if c := quantiles(&a, &b, qs, got); c != uint32(n) {
				t.Fatalf("count %d, want %d", c, n)
			}
			for i, q := range qs {
				want := exact(vals, q)
				// Between the order statistics around the quantile's rank,
				// give or take one bucket (6.25%) and the microsecond the
				// sketch rounds to: with few values, that is all one can
				// ask (the exact value interpolates across a gap the
				// sketch cannot see).
				r := int(q * float64(n-1))
				lo := float64(vals[r])*(1-1.0/subBuckets) - 1000
				hi := float64(vals[min(r+1, n-1)])*(1+1.0/subBuckets) + 1000
				if g := float64(got[i]); g < lo || g > hi {
					t.Errorf("%s, n=%d: q%.2f = %d, outside [%.0f, %.0f] (exact %.0f)", name, n, q, got[i], lo, hi, want)
				}
				// With dense buckets, within a few percent.
				if n >= 1000 && math.Abs(float64(got[i])-want) > want*0.04+1000 {
					t.Errorf("%s, n=%d: q%.2f = %d, exact %.0f (error %.1f%%)", name, n, q, got[i], want, 100*math.Abs(float64(got[i])-want)/max(want, 1))
				}
			}
		}
	}
}

func TestSketchEmptyAndReset(t *testing.T) {
	var a, b sketch
	out := []int64{-1}
	if quantiles(&a, &b, qMedian, out) != 0 || out[0] != -1 {
		t.Error("an empty sketch answered")
	}
	a.add(5_000_000)
	b.add(7_000_000)
	var h half
	h[0] = a
	h.reset()
	if h[0] != (sketch{}) {
		t.Error("reset left counts behind")
	}
}
