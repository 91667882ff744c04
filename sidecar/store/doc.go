// Package store keeps recent profiles in memory, bounded however long the
// traffic lasts, in two tiers: a recent log holding every profile in a
// compact binary form in a fixed byte arena (oldest overwritten first), and
// a kept set of exemplars — per endpoint and per 10 s, the requests most
// worth keeping (errors, partial ones, long waits, then the slowest) — that
// reaches back far longer on a busy pod. A Bloom filter of evicted traces
// lets a lookup say "evicted" rather than "not found". The Redis cache (for
// cross-pod lookups) is a separate layer.
package store
