// Package store keeps the most recent profiles in memory: a fixed-size ring,
// so the sidecar's memory stays flat under endless traffic, with an index by
// trace ID for lookups. The Redis cache (for cross-pod lookups) is a
// separate layer that reads from here.
package store
