package e2e

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

// A ring buffer too small for a burst: events are lost, counted and
// exposed; profiles that overlap a loss are marked partial; nothing
// crashes, and once the burst is over requests are profiled whole again.
func TestRingBufferFullIsCountedNotFatal(t *testing.T) {
	cg := newCgroup(t, "loss")
	side := startSidecar(t, &cg, nil, "--ring-buffer-size", "4096")
	srv := start(t, &cg, "python3", "workloads/pyserver.py", "--port", "0")
	base := "http://127.0.0.1:" + srv.waitReady(t, 20*time.Second)

	// 8 keep-alive clients × 150 requests, as fast as they go.
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for i := 0; i < 150; i++ {
				resp, err := client.Get(base + "/fast")
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()

	st := side.status(t)
	lost := st["events_lost_total"].(float64)
	if lost == 0 {
		t.Fatalf("a 4 KiB ring absorbed a burst of 1,200 requests: nothing to test (status %v)", st)
	}
	metrics := get(t, "http://"+side.httpAddr+"/metrics", newTraceID())
	var fromMetrics float64
	for _, m := range regexp.MustCompile(`tracecam_events_lost_total\{type="\w+"\} (\d+)`).FindAllStringSubmatch(metrics, -1) {
		n, _ := strconv.ParseFloat(m[1], 64)
		fromMetrics += n
	}
	if fromMetrics < lost {
		t.Errorf("/metrics reports %v lost events, /v1/status %v", fromMetrics, lost)
	}
	time.Sleep(300 * time.Millisecond) // let the reader drain what made it
	var partial int
	for _, p := range side.all() {
		if p.Partial {
			partial++
		}
	}
	if partial == 0 {
		t.Errorf("%v events lost but no profile marked partial (%d profiles)", lost, len(side.all()))
	}

	// After the burst: whole, exact profiles again.
	for i := 0; i < 3; i++ {
		id := newTraceID()
		get(t, base+"/sleep?ms=20", id)
		p := side.waitProfile(t, id, 10*time.Second)
		if p.Partial || sumBreakdown(p) != p.DurationNS {
			t.Errorf("after the burst: partial %v (%s), breakdown %d of %d", p.Partial, p.PartialReason, sumBreakdown(p), p.DurationNS)
		}
	}
	t.Logf("burst: %v events lost, %d of %d profiles partial", lost, partial, len(side.all()))
}
