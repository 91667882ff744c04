package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracecam/tracecam/e2e/fusefs"
	"github.com/tracecam/tracecam/sidecar/profile"
)

// Case 3, slow storage: an orders service (Python, thread per connection)
// keeps its data in files on a volume whose storage is slow — a FUSE
// filesystem served by this test (e2e/fusefs), which makes every read,
// write and fsync wait, per file, and knows to the microsecond how long it
// took to serve each file's operations. Nothing in the app logs it.
//
// tracecam must say: cause file on the requests that touch the volume,
// naming the slowest file's path, and per file the time waited, within 10%
// of what the filesystem spent serving that file; the requests that never
// touch the volume (/catalog, /health) are not blamed on storage.
func TestCase3SlowStorage(t *testing.T) {
	caseRequireTools(t, "python3")
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("this case needs /dev/fuse (the kernel's FUSE support): %v", err)
	}
	// A kubelet-like path: what a pod's volume mount is backed by.
	pod, err := os.MkdirTemp("", "pod-orders-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pod) })
	vol := filepath.Join(pod, "volumes", "pvc-orders")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	storage, err := fusefs.Mount(vol, fusefs.Config{Files: map[string][]byte{
		"orders.db":    bytes.Repeat([]byte("order record "), 80000),
		"customers.db": bytes.Repeat([]byte("customer "), 40000),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := storage.Unmount(); err != nil {
			t.Errorf("unmounting the volume: %v", err)
		}
		if b, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(b), " "+vol+" ") {
			t.Errorf("%s is still mounted", vol)
		}
	})

	cg := newCgroup(t, "case3")
	side := startSidecar(t, &cg, nil, "--pod", "orders-6f7d", "--namespace", "shop")
	srv := start(t, &cg, "python3", "workloads/cases/orders.py", "--port", "0", "--data-dir", vol)
	base := "http://127.0.0.1:" + srv.waitReady(t, 30*time.Second)
	for _, p := range []string{"/order?id=1", "/order/new", "/catalog", "/health"} {
		caseMustGet(t, base+p) // storage still fast
	}

	// The storage turns slow.
	storage.SetLatency("orders.db", fusefs.Latency{Read: 25 * time.Millisecond})
	storage.SetLatency("customers.db", fusefs.Latency{Read: 40 * time.Millisecond})
	storage.SetLatency("journal.log", fusefs.Latency{Write: 15 * time.Millisecond, Fsync: 60 * time.Millisecond})

	// Mixed traffic: two clients on the endpoints that never touch the
	// volume, while orders are read and created one at a time (so the
	// filesystem's per-file figures belong to one request).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	otherC := caseRunFor(ctx, 2, func(i int) (caseResp, bool) {
		path := "/catalog"
		if i == 1 {
			path = "/health"
		}
		r, err := caseGet(base + path)
		time.Sleep(20 * time.Millisecond)
		return r, err == nil
	})
	type slow struct {
		r     caseResp
		files map[string]fusefs.FileStats
	}
	var slows []slow
	for i := 0; i < 4; i++ {
		for _, path := range []string{fmt.Sprintf("/order?id=%d", 10+i), "/order/new"} {
			storage.ResetStats()
			r := caseMustGet(t, base+path)
			slows = append(slows, slow{r, storage.Stats()})
			time.Sleep(100 * time.Millisecond)
		}
	}
	cancel()
	var others []caseResp
	for r := range otherC {
		others = append(others, r)
	}

	var ids []string
	for _, s := range slows {
		ids = append(ids, s.r.TraceID)
	}
	for _, r := range others {
		ids = append(ids, r.TraceID)
	}
	profiles := side.waitCaseProfiles(t, ids, 20*time.Second)
	pid := srv.cmd.Process.Pid

	var key *profile.Profile
	for _, s := range slows {
		p := profiles[s.r.TraceID]
		checkInvariants(t, p, pid)
		perFile := map[string]int64{} // path -> ns of file waits in the timeline
		for _, seg := range segmentsOf(p, profile.File) {
			perFile[seg.File] += seg.DurationNS
			if !strings.HasPrefix(seg.File, vol+"/") {
				t.Logf("%s: a file wait off the volume: %+v", s.r.Path, seg)
			}
		}
		var served time.Duration
		var top string
		for name, st := range s.files {
			served += st.Time()
			path := filepath.Join(vol, name)
			got := ms(perFile[path])
			t.Logf("%s %s: %s served in %.1f ms (%d reads, %d writes, %d fsyncs); profile %.1f ms; workload %s",
				s.r.Path, s.r.TraceID[:8], name, ms(int64(st.Time())), st.Read.Count, st.Write.Count, st.Fsync.Count, got, s.r.Header.Get("X-File-Us"))
			if !caseWithin(got, ms(int64(st.Time())), 0.10) {
				t.Errorf("%s: %.1f ms of file waits on %s, the filesystem served it in %.1f ms (want within 10%%):\n%s",
					s.r.Path, got, path, ms(int64(st.Time())), dump(p))
			}
			if top == "" || st.Time() > s.files[top].Time() {
				top = name
			}
		}
		t.Logf("%s: %s, file %.1f ms: %s", s.r.Path, profile.FormatDuration(p.DurationNS), ms(p.Breakdown[profile.File]), caseOneLine(p.Diagnosis.Summary))
		if len(s.files) == 0 {
			t.Fatalf("%s touched no file on the volume", s.r.Path)
		}
		if p.Diagnosis.Cause != profile.CauseFile {
			t.Errorf("%s diagnosed %s, want file:\n%s", s.r.Path, p.Diagnosis.Cause, dump(p))
			continue
		}
		if !strings.Contains(p.Diagnosis.Summary, filepath.Join(vol, top)) {
			t.Errorf("%s: the diagnosis does not name the slowest file %s: %q", s.r.Path, filepath.Join(vol, top), p.Diagnosis.Summary)
		}
		if got := ms(p.Breakdown[profile.File]); !caseWithin(got, ms(int64(served)), 0.10) {
			t.Errorf("%s: file %.1f ms, the filesystem served its files in %.1f ms", s.r.Path, got, ms(int64(served)))
		}
		if s.r.Path == "/order" && key == nil {
			key = p
		}
	}

	// Not blamed: the requests that never touch the volume.
	causes := map[profile.Cause]int{}
	for _, r := range others {
		p := profiles[r.TraceID]
		causes[p.Diagnosis.Cause]++
		if p.Diagnosis.Cause == profile.CauseFile || p.Breakdown[profile.File] >= 1e6 {
			t.Errorf("%s never touches the volume but has %.1f ms of file time, cause %s:\n%s",
				r.Path, ms(p.Breakdown[profile.File]), p.Diagnosis.Cause, dump(p))
		}
	}
	t.Logf("%d requests off the volume, causes %v", len(others), causes)

	if key == nil {
		t.Fatal("no /order profile to publish")
	}
	_, list := side.caseDrillList(t, 50, 10)
	casePublish(t, "3-storage.drill", list)
	casePublish(t, "3-storage", side.caseTraceText(t, key.TraceID, 1))
}
