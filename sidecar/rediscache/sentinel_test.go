package rediscache

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracecam/tracecam/internal/redistest"
)

// Sentinel: the cache finds the master through the sentinels (Addrs are
// the sentinels, MasterName the monitored name). When the master is
// killed the sentinels promote the replica and writes resume on it by
// themselves; what was written and replicated before survives, and every
// profile enqueued is accounted for exactly once.
func TestSentinelFailover(t *testing.T) {
	t0 := time.Now()
	st := redistest.StartSentinel(t, redistest.SentinelOptions{Replicas: 1, Sentinels: 3})
	setup := time.Since(t0)
	old := st.Master()
	c := startCache(t, Config{Addrs: st.Addrs(), MasterName: st.MasterName(), TTL: time.Minute,
		QueueSize: 2000, BatchSize: 64, WriteTimeout: 500 * time.Millisecond, LookupTimeout: 300 * time.Millisecond})

	// Before the failover: writes and lookups go to the master the
	// sentinels name.
	const before = 100
	base := time.Unix(1_700_000_000, 0).UTC()
	first := fullProfile("4bf92f3577b34da6a3ce929d0e0e4736", "web-1", "00f067aa0ba902b7", base)
	c.Enqueue(first)
	for i := 1; i < before; i++ {
		id := strconv.Itoa(1_000_000 + i)
		c.Enqueue(fullProfile(id, "web-1", "a"+id, base.Add(time.Duration(i)*time.Second)))
	}
	waitFor(t, 10*time.Second, "the first writes", func() bool { return c.Stats().Written == before })
	got, err := c.Lookup(context.Background(), first.TraceID)
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], first) {
		t.Fatalf("round trip through sentinel differs (%v):\ngot  %+v\nwant %+v", err, got, first)
	}
	if n, err := old.Do("DBSIZE"); err != nil || n != strconv.Itoa(before) {
		t.Fatalf("master %s holds %q keys (%v), want %d", old.Addr(), n, err, before)
	}
	// Make sure the replica has them all before the master dies.
	if n, err := old.Do("WAIT", "1", "5000"); err != nil || n != "1" {
		t.Fatalf("WAIT for the replica: %q %v", n, err)
	}

	// Producer: 10 profiles every 10 ms (about 1,000/s) through the
	// failover.
	stopProducer := make(chan struct{})
	producerDone := make(chan struct{})
	last := 0
	go func(stopProducer <-chan struct{}) {
		defer close(producerDone)
		for i := 0; ; {
			for range 10 {
				c.Enqueue(smallProfile(i, "web-2"))
				last = i
				i++
			}
			select {
			case <-stopProducer:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}(stopProducer)
	stop := func() {
		if stopProducer != nil {
			close(stopProducer)
			<-producerDone
			stopProducer = nil
		}
	}
	defer stop()

	waitFor(t, 10*time.Second, "the producer's writes", func() bool { return c.Stats().Written >= before+200 })
	tKill := time.Now()
	old.Kill()
	waitFor(t, 5*time.Second, "write errors after the master died", func() bool {
		st := c.Stats()
		return st.DroppedWriteErrors > 0 && strings.HasPrefix(st.State, "unavailable")
	})
	faultState := c.Stats().State

	promoted := st.WaitForFailover(old.Addr(), 20*time.Second)
	failover := time.Since(tKill)
	if promoted != st.Replicas()[0] {
		t.Fatalf("sentinels promoted %v, want the replica %s", promoted, st.Replicas()[0].Addr())
	}
	atFailover := c.Stats().Written
	waitFor(t, 15*time.Second, "writes to resume on the new master and State ok", func() bool {
		st := c.Stats()
		return st.Written >= atFailover+200 && st.State == "ok"
	})
	resumed := time.Since(tKill)
	stop()
	stats := quiesce(t, c, 10*time.Second)
	checkBalance(t, stats)
	t.Logf("%v: setup %v, failover %v after the kill, writes resumed %v after the kill; fault state %q; stats %+v",
		st, setup.Round(time.Millisecond), failover.Round(time.Millisecond), resumed.Round(time.Millisecond), faultState, stats)
	if stats.Pending != 0 || stats.DroppedWriteErrors == 0 || stats.Written <= before+200 || stats.State != "ok" {
		t.Errorf("stats %+v: want writes before and after the failover, write errors in between, nothing pending", stats)
	}

	// A profile written now, after the failover, lands on the new master
	// and is readable through the cache. (The producer's very last one may
	// have been dropped by a transient error while the client re-resolved
	// the master: that is counted above, not lost silently.)
	lastP := smallProfile(last+1, "web-2")
	written := stats.Written
	c.Enqueue(lastP)
	waitFor(t, 10*time.Second, "the profile written after the failover", func() bool { return c.Stats().Written > written })
	if n, err := promoted.Do("HLEN", Key(DefaultCluster, lastP.TraceID)); err != nil || n != "1" {
		t.Errorf("new master %s: HLEN of the last trace %q %v, want 1", promoted.Addr(), n, err)
	}
	got, err = c.Lookup(context.Background(), lastP.TraceID)
	if err != nil || len(got) != 1 || got[0].SpanID != lastP.SpanID {
		t.Errorf("lookup of the last profile: %v %v", got, err)
	}
	// What was replicated before the kill survived the failover.
	got, err = c.Lookup(context.Background(), first.TraceID)
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], first) {
		t.Errorf("first profile after the failover (%v): %+v", err, got)
	}
	for i := 1; i < before; i++ {
		id := strconv.Itoa(1_000_000 + i)
		if got, err := c.Lookup(context.Background(), id); err != nil || len(got) != 1 || got[0].SpanID != "a"+id {
			t.Fatalf("trace %s after the failover: %v %v", id, got, err)
		}
	}
	if s := c.Stats(); s.LookupErrors != 0 || s.Undecodable != 0 {
		t.Errorf("stats %+v: want no lookup errors", s)
	}
}
