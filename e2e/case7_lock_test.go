package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// Case 7, lock contention: an inventory service (Java, JDK HttpServer, 8
// worker threads) where every request enters one monitor, synchronized
// (STOCK), and /restock holds it for 300 ms while it waits for a supplier.
// The /stock requests that arrive meanwhile queue on the monitor.
//
// tracecam must say: cause lock on those /stock requests, the time waited
// (within 10% of what the workload measured around its synchronized block),
// and the thread that released the monitor (the waker, which the workload
// also knows: the monitor's previous owner); the /stock requests that found
// the monitor free, and /restock itself, are not blamed on the lock.
func TestCase7LockContention(t *testing.T) {
	caseRequireTools(t, "java")
	cg := newCgroup(t, "case7")
	side := startSidecar(t, &cg, nil, "--pod", "inventory-7d9f", "--namespace", "shop")
	srv := start(t, &cg, "java", "-XX:+UseSerialGC", "-Xshare:auto", "workloads/cases/Inventory.java", "--port", "0", "--workers", "8")
	base := "http://127.0.0.1:" + srv.waitReady(t, 90*time.Second)

	// Warm up the JIT and the pool (these are profiled too; not judged).
	for i := 0; i < 40; i++ {
		caseMustGet(t, fmt.Sprintf("%s/stock?sku=%d", base, i))
	}

	// Mixed traffic: 4 clients read stock continuously, one restocks now and then.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var n int
	var mu sync.Mutex
	readers := caseRunFor(ctx, 4, func(i int) (caseResp, bool) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		path := fmt.Sprintf("/stock?sku=%d", k%1000)
		if k%10 == 0 {
			path = "/health"
		}
		r, err := caseGet(base + path)
		time.Sleep(15 * time.Millisecond)
		return r, err == nil
	})
	var restocks []caseResp
	time.Sleep(300 * time.Millisecond)
	for i := 0; i < 3; i++ {
		restocks = append(restocks, caseMustGet(t, base+"/restock?ms=300"))
		time.Sleep(400 * time.Millisecond)
	}
	cancel()
	var reads []caseResp
	for r := range readers {
		reads = append(reads, r)
	}

	var ids []string
	for _, r := range append(append([]caseResp(nil), restocks...), reads...) {
		ids = append(ids, r.TraceID)
	}
	profiles := side.waitCaseProfiles(t, ids, 20*time.Second)
	pid := srv.cmd.Process.Pid

	// The holders: /restock is slow too, but not because of the lock.
	holders := map[string]string{} // tid -> thread name
	for _, r := range restocks {
		p := profiles[r.TraceID]
		holders[r.Header.Get("X-Tid")] = r.Header.Get("X-Thread")
		held := caseHeaderMS(t, r, "X-Held-Us")
		t.Logf("restock %s held %.1f ms: %s %s: %s", r.Header.Get("X-Thread"), held, profile.FormatDuration(p.DurationNS), p.Diagnosis.Cause, caseOneLine(p.Diagnosis.Summary))
		if p.Diagnosis.Cause == profile.CauseLock {
			t.Errorf("the holder /restock is blamed on the lock it held:\n%s", dump(p))
		}
	}

	// The /stock requests that queued on the monitor (ground truth ≥ 20 ms).
	type victim struct {
		r       caseResp
		p       *profile.Profile
		waitMS  float64
		lockMS  float64
		prevTid string
	}
	var victims []victim
	var free []caseResp
	for _, r := range reads {
		if r.Path != "/stock" {
			free = append(free, r)
			continue
		}
		w := caseHeaderMS(t, r, "X-Lock-Wait-Us")
		switch {
		case w >= 20:
			p := profiles[r.TraceID]
			victims = append(victims, victim{r, p, w, lockWaitMS(p), r.Header.Get("X-Prev-Owner-Tid")})
		case w < 1:
			free = append(free, r)
		}
	}
	if len(victims) < 3 {
		t.Fatalf("only %d /stock requests waited on the monitor: the fault did not happen", len(victims))
	}

	// Every victim: cause lock, and the time it waited for the monitor as
	// the timeline tells it (its lock waits, each with the delay from the
	// wake-up to running again) within 10% of what the workload measured.
	var key *victim
	wakerOK := 0
	for i := range victims {
		v := &victims[i]
		checkInvariants(t, v.p, pid)
		woke := caseWakers(v.p)
		t.Logf("victim %s waited %.1f ms (after %s): lock waits %.1f ms (lock %.1f ms) of %s, cause %s, wakers %v: %s",
			v.r.Header.Get("X-Thread"), v.waitMS, v.r.Header.Get("X-Prev-Owner-Name"), v.lockMS, ms(v.p.Breakdown[profile.Lock]),
			profile.FormatDuration(v.p.DurationNS), v.p.Diagnosis.Cause, woke, caseOneLine(v.p.Diagnosis.Summary))
		if v.p.Diagnosis.Cause != profile.CauseLock {
			t.Errorf("/stock waited %.1f ms on the monitor, diagnosed %s:\n%s", v.waitMS, v.p.Diagnosis.Cause, dump(v.p))
			continue
		}
		if !caseWithin(v.lockMS, v.waitMS, 0.10) {
			t.Errorf("/stock lock waits %.1f ms, the workload measured %.1f ms waiting for the monitor (want within 10%%):\n%s", v.lockMS, v.waitMS, dump(v.p))
		}
		if woke[v.prevTid] {
			wakerOK++
		}
		if _, byHolder := holders[v.prevTid]; byHolder && (key == nil || v.waitMS > key.waitMS) {
			key = v
		}
	}
	// The waker is the thread whose monitor exit let the request in: the
	// monitor's previous owner. (A thread the JVM wakes and that then loses
	// the race for the monitor parks again, woken later by someone else:
	// so most, not necessarily all.)
	if wakerOK*10 < len(victims)*8 {
		t.Errorf("the waker is the monitor's previous owner for %d of %d victims, want ≥ 80%%", wakerOK, len(victims))
	}

	// The key trace: the /stock that waited longest straight behind a /restock.
	if key == nil {
		t.Fatalf("no /stock request entered the monitor right after a /restock")
	}
	holderName := holders[key.prevTid]
	if !caseWakers(key.p)[key.prevTid] {
		t.Errorf("key /stock: no lock segment woken by the holder %s (tid %s):\n%s", holderName, key.prevTid, dump(key.p))
	}
	if !strings.Contains(key.p.Diagnosis.Summary, "thread "+key.prevTid+" ("+holderName+")") {
		t.Errorf("key /stock: the diagnosis does not name the holder thread %s (%s): %q", key.prevTid, holderName, key.p.Diagnosis.Summary)
	}

	// Not blamed: requests that found the monitor free (or took none) have
	// no lock wait of 5 ms or more released by a thread that uses the
	// monitor (the workers: every thread that served a request). They may
	// wait on another lock — now and then one inside the JDK's HTTP server,
	// released by its HTTP-Dispatcher thread — and tracecam is right to say
	// so: that is not the monitor.
	users := map[uint32]bool{}
	for _, r := range append(append([]caseResp(nil), restocks...), reads...) {
		tid, _ := strconv.Atoi(r.Header.Get("X-Tid"))
		users[uint32(tid)] = true
	}
	blamed, other := 0, 0
	for _, r := range free {
		p := profiles[r.TraceID]
		for _, s := range segmentsOf(p, profile.Lock) {
			switch {
			case s.DurationNS < 5e6:
			case users[s.WakerTID]:
				blamed++
				t.Errorf("%s %s did not wait for the monitor (X-Lock-Wait-Us %s) but waited %.1f ms on a lock released by %d (%s), a thread that uses it:\n%s",
					r.Path, r.TraceID, r.Header.Get("X-Lock-Wait-Us"), ms(s.DurationNS), s.WakerTID, s.WakerName, dump(p))
			default:
				other++
				t.Logf("%s %s: %.1f ms on another lock, released by %d (%s): %s", r.Path, r.TraceID[:8],
					ms(s.DurationNS), s.WakerTID, s.WakerName, caseOneLine(p.Diagnosis.Summary))
			}
		}
	}
	t.Logf("%d victims (waker = previous owner for %d), %d requests found the monitor free, %d of them blamed on it (%d waits on other locks)",
		len(victims), wakerOK, len(free), blamed, other)

	_, list := side.caseDrillList(t, 100, 8)
	casePublish(t, "7-lock.drill", list)
	casePublish(t, "7-lock", side.caseTraceText(t, key.r.TraceID, 1))
}

// lockWaitMS is the time the profile's timeline says the thread waited for
// locks: its lock segments, each with its wake-up-to-running delay.
func lockWaitMS(p *profile.Profile) float64 {
	var ns int64
	for _, s := range p.Timeline {
		if s.Category == profile.Lock {
			ns += s.DurationNS + s.RunqNS
		}
	}
	return ms(ns)
}

// caseWakers is the set of thread ids (as decimal strings) that woke the
// profile's lock waits.
func caseWakers(p *profile.Profile) map[string]bool {
	out := map[string]bool{}
	for _, s := range p.Timeline {
		if s.Category == profile.Lock && s.WakerTID != 0 {
			out[strconv.Itoa(int(s.WakerTID))] = true
		}
	}
	return out
}
