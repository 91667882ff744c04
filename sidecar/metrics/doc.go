// Package metrics turns completed profiles into the north-star metrics —
// the per-request breakdown summed per endpoint, for Prometheus — and
// learns each endpoint's baseline, the typical request a slow one is
// compared with (step 3 of the drill).
//
// An endpoint is a method and a normalised route ([NormalizeRoute]:
// /users/42?x=1 is /users/{id}). A [Recorder] keeps, per endpoint:
//
//   - cumulative counters exported by its Collect method: a duration
//     histogram, a histogram per category (cpu … other, plus dns and gc), requests
//     by status class, by diagnosed cause, and by deviating category;
//   - a sliding window of two halves, each a set of fixed log-linear
//     histograms (duration and every category, 448 buckets of at most 6.25%
//     width), from which the baseline's medians and the duration's 90th
//     percentile are read. When a half is over, the older one is dropped,
//     so a baseline reflects the last Window/2 to Window of requests.
//
// Everything is fixed-size: at most MaxRoutes endpoints (then one "other"
// route per method), about 40 KiB each. [Recorder.Observe] runs on the
// capture path once per profile: a route normalisation into a scratch
// buffer, one map lookup, a few dozen counter increments; the baseline
// snapshot a profile points to is recomputed every sample while the
// endpoint is young and every n/16 samples after (n = samples in the
// window), so its cost is O(1) amortised and the snapshot is always from
// before the profile.
//
// Baselines are medians, so the slow outliers they are meant to reveal
// barely move them; a baseline is "warm" from profile.BaselineMinSamples
// (20) samples, and no request is judged against a cold one. Partial
// profiles and 5xx responses are counted but not learned from.
package metrics
