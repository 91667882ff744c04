package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// TestCase6Queue is field case 6: concurrency is too high and the thread
// pool is exhausted. A Java server with a fixed pool of 2 workers gets 10
// concurrent 200 ms requests: they are served two at a time, so the later
// ones wait in their sockets' receive buffers until a worker is free. The
// client knows the ground truth of each wait: its own latency minus the
// handler's time (X-Handled-Us), less the connection's few hundred µs.
func TestCase6Queue(t *testing.T) {
	cg := newCgroup(t, "case6-queue")
	side := startSidecar(t, &cg, nil)
	srv := start(t, &cg, "java", "-XX:+UseSerialGC", "-Xshare:auto", "workloads/JavaServer.java", "--port", "0", "--workers", "2")
	base := "http://127.0.0.1:" + srv.waitReady(t, 90*time.Second)
	for i := 0; i < 6; i++ { // warm up (JIT, class loading), two at a time: no queue
		var wg sync.WaitGroup
		for j := 0; j < 2; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := caseGet(base + "/sleep?ms=20"); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}

	const n, sleepMS = 10, 200
	type result struct {
		trace          string
		latency, handl time.Duration
		prof           *profile.Profile
	}
	res := make([]*result, n)
	var wg sync.WaitGroup
	for i := range res {
		res[i] = &result{}
		wg.Add(1)
		go func(r *result) {
			defer wg.Done()
			cr, err := caseGet(fmt.Sprintf("%s/sleep?ms=%d", base, sleepMS))
			if err != nil {
				t.Error(err)
				return
			}
			us, _ := strconv.ParseInt(cr.Header.Get("X-Handled-Us"), 10, 64)
			r.trace, r.latency, r.handl = cr.TraceID, cr.Elapsed, time.Duration(us)*time.Microsecond
		}(res[i])
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	sort.Slice(res, func(i, j int) bool { return res[i].latency < res[j].latency })

	var slowest *result
	queued := 0
	for _, r := range res {
		r.prof = side.waitProfile(t, r.trace, 20*time.Second)
		p := r.prof
		truth := r.latency - r.handl
		got := time.Duration(p.Breakdown[profile.Queue])
		t.Logf("client %6.1f ms  handler %5.1f ms  waited (truth) %6.1f ms | profile %6.1f ms  queue %6.1f ms  cause %-5s %s",
			ms(int64(r.latency)), ms(int64(r.handl)), ms(int64(truth)), ms(p.DurationNS), ms(int64(got)), p.Diagnosis.Cause, p.Diagnosis.Summary)
		if truth < 50*time.Millisecond {
			// Picked up at once (the first two): not blamed on queue.
			if p.Diagnosis.Cause == profile.CauseQueue {
				t.Errorf("a request served at once is blamed on queue: %s", p.Diagnosis.Summary)
			}
			continue
		}
		queued++
		if p.Diagnosis.Cause != profile.CauseQueue {
			t.Errorf("request that waited %.0f ms for a worker: cause %s, want queue: %s\n%s", ms(int64(truth)), p.Diagnosis.Cause, p.Diagnosis.Summary, dump(p))
		}
		// The wait against the ground truth, within 10% (plus 2 ms for
		// the connection set-up and request transfer the client counts).
		if diff := got - truth; diff < -truth/10-2*time.Millisecond || diff > truth/10+2*time.Millisecond {
			t.Errorf("queue %.1f ms, the client saw %.1f ms of waiting: off by more than 10%%", ms(int64(got)), ms(int64(truth)))
		}
		if sum := sumBreakdown(p); sum != p.DurationNS {
			t.Errorf("breakdown sums to %d, duration %d", sum, p.DurationNS)
		}
		if slowest == nil || p.DurationNS > slowest.prof.DurationNS {
			slowest = r
		}
	}
	if queued < n/2 {
		t.Errorf("only %d of %d requests waited for a worker: the pool did not saturate", queued, n)
	}
	if slowest != nil {
		casePublish(t, "6-queue", side.caseTraceText(t, slowest.trace, 1))
	}
}
