package rediscache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// fullProfile sets every field of a profile, collections non-empty and the
// start time in UTC without a monotonic reading, so that it survives the
// trip through Redis deep-equal.
func fullProfile(trace, pod, span string, start time.Time) *profile.Profile {
	start = start.UTC().Round(0)
	return &profile.Profile{
		TraceID: trace, SpanID: span, ParentSpanID: "00f067aa0ba902b7", TraceIDGenerated: true, TraceSource: "traceparent",
		Pod: pod, Namespace: "shop", Container: "app",
		PID: 4242, TID: 4243, ThreadName: "gunicorn: worker",
		Method: "POST", Path: "/api/orders?id=7", Host: "shop.example", StatusCode: 503,
		Client: "10.0.0.9:40000", Server: "10.0.0.2:8080",
		StartTime: start, DurationNS: 12_345_678, RequestBytes: 321, ResponseBytes: 4567,
		Breakdown: map[profile.Category]int64{profile.CPU: 2_000_000, profile.Net: 8_000_000, profile.Lock: 2_345_678},
		Timeline: []profile.Segment{
			{Category: profile.Net, StartOffsetNS: 100_000, DurationNS: 8_000_000, RunqNS: 12_000, Count: 3, Syscall: "recvfrom",
				FDKind: "socket", FD: 7, Peer: "10.0.0.7:5432", Bytes: 512, Detail: "postgres"},
			{Category: profile.Lock, StartOffsetNS: 8_200_000, DurationNS: 2_345_678, Syscall: "futex", FD: -1, File: "/var/lib/x",
				WakerTID: 4250, WakerName: "flusher"},
		},
		DNS: []profile.DNSQuery{{Name: "db.shop.svc", Type: "A", Rcode: "NOERROR", Server: "10.96.0.10:53",
			StartOffsetNS: 50_000, LatencyNS: 900_000, Answered: true}},
		Network: []profile.NetworkPeer{{Peer: "10.0.0.7:5432", Protocol: "tcp", BytesSent: 100, BytesReceived: 512,
			WaitNS: 8_000_000, StartOffsetNS: 100_000, Calls: 3}},
		Diagnosis: profile.Diagnosis{Cause: profile.CauseNet, Summary: "waited 8 ms on 10.0.0.7:5432",
			Evidence: []string{"net 65%", "peer 10.0.0.7:5432"}},
		Partial: true, PartialReason: "lost events",
	}
}

// smallProfile is a cheap realistic profile for volume tests.
func smallProfile(i int, pod string) *profile.Profile {
	return &profile.Profile{
		TraceID: fmt.Sprintf("%032x", i), SpanID: fmt.Sprintf("%016x", i+1), Pod: pod, Namespace: "shop",
		Method: "GET", Path: "/api/cart", StatusCode: 200, StartTime: time.Unix(1_700_000_000, int64(i)).UTC(),
		DurationNS: 5_000_000, Breakdown: map[profile.Category]int64{profile.CPU: 1_000_000, profile.Net: 4_000_000},
		Timeline: []profile.Segment{{Category: profile.Net, StartOffsetNS: 1000, DurationNS: 4_000_000, Syscall: "recvfrom", FDKind: "socket", Peer: "10.0.0.7:5432"}},
	}
}

// startCache creates a cache and runs its writer until the test ends.
func startCache(t *testing.T, cfg Config) *Cache {
	t.Helper()
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 5 * time.Millisecond
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(3*c.cfg.WriteTimeout + time.Second):
			t.Errorf("Run did not return after cancel")
		}
		c.Close()
	})
	return c
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// quiesce waits until nothing is pending and returns the stats.
func quiesce(t *testing.T, c *Cache, d time.Duration) Stats {
	t.Helper()
	waitFor(t, d, "the queue to drain", func() bool { return c.Stats().Pending == 0 })
	return c.Stats()
}

// checkBalance asserts the accounting identity on quiescent stats.
func checkBalance(t *testing.T, st Stats) {
	t.Helper()
	if sum := st.Written + st.DroppedQueueFull + st.DroppedWriteErrors + uint64(st.Pending); st.Enqueued != sum {
		t.Fatalf("Enqueued %d != Written %d + DroppedQueueFull %d + DroppedWriteErrors %d + Pending %d = %d",
			st.Enqueued, st.Written, st.DroppedQueueFull, st.DroppedWriteErrors, st.Pending, sum)
	}
}
