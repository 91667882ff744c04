package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracecam/tracecam/e2e/fusefs"
	"github.com/tracecam/tracecam/sidecar/cgroup"
	"github.com/tracecam/tracecam/sidecar/profile"
)

// world is one simulated pod: a server in its own cgroup watched by a
// sidecar, plus dependencies outside the pod (a slow TCP service and a DNS
// server) that requests call.
type world struct {
	cg       cgroup.Target
	server   *proc
	base     string // http://127.0.0.1:PORT
	slowAddr string
	dnsAddr  string
	dataDir  string
	storage  *fusefs.FS
	side     *sidecar
}

// fsyncLatency is how long each fsync of the world's data directory takes:
// /fsync?n=10 then blocks 200 ms in fsync, more than ten times the CPU the
// handler needs to write its 10 × 16 KiB, on any machine.
const fsyncLatency = 20 * time.Millisecond

func startWorld(t *testing.T, kind string) *world {
	t.Helper()
	w := &world{cg: newCgroup(t, kind)}
	// Dependencies live outside the pod; the sidecar must not profile them.
	slow := start(t, nil, "python3", "workloads/slowserver.py", "--port", "0")
	w.slowAddr = "127.0.0.1:" + slow.waitReady(t, 20*time.Second)
	// DNS is recognised by port 53; a loopback address of its own keeps it
	// clear of any resolver on the host.
	dns := start(t, nil, "python3", "workloads/dnsserver.py", "--bind", "127.0.53.53", "--port", "53", "--delay-ms", "120")
	dns.waitReady(t, 20*time.Second)
	w.dnsAddr = "127.0.53.53:53"

	w.side = startSidecar(t, &w.cg, nil)
	// The data directory is storage slow by construction: an in-memory
	// FUSE filesystem whose fsync takes fsyncLatency, and which counts the
	// time it took to serve each file (the ground truth of the file waits).
	// A real disk is fast on one machine and slow on another.
	w.dataDir, w.storage = slowDataDir(t)
	args := []string{"--port", "0", "--data-dir", w.dataDir, "--downstream", w.slowAddr, "--dns-server", w.dnsAddr}
	switch kind {
	case "python":
		w.server = start(t, &w.cg, "python3", append([]string{"workloads/pyserver.py"}, args...)...)
	case "java":
		w.server = start(t, &w.cg, "java", append([]string{"-XX:+UseSerialGC", "-Xshare:auto", "workloads/JavaServer.java"}, args...)...)
	default:
		t.Fatalf("unknown server kind %s", kind)
	}
	w.base = "http://127.0.0.1:" + w.server.waitReady(t, 60*time.Second)
	return w
}

// slowDataDir mounts a data directory on the test's FUSE filesystem, whose
// every fsync takes fsyncLatency (unmounted when the test ends).
func slowDataDir(t *testing.T) (string, *fusefs.FS) {
	t.Helper()
	dir := t.TempDir()
	storage, err := fusefs.Mount(dir, fusefs.Config{Default: fusefs.Latency{Fsync: fsyncLatency}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := storage.Unmount(); err != nil {
			t.Errorf("unmounting the data directory: %v", err)
		}
	})
	return dir, storage
}

// checkInvariants holds for every profile, whatever the workload.
func checkInvariants(t *testing.T, p *profile.Profile, pid int) {
	t.Helper()
	if int(p.PID) != pid {
		t.Errorf("pid = %d, want the server's %d", p.PID, pid)
	}
	if p.TID == 0 || p.ThreadName == "" {
		t.Errorf("serving thread not identified: tid %d name %q", p.TID, p.ThreadName)
	}
	if p.StatusCode != 200 || p.Method != "GET" {
		t.Errorf("method %q status %d, want GET 200", p.Method, p.StatusCode)
	}
	if p.StartTime.IsZero() || time.Since(p.StartTime) > 5*time.Minute || time.Until(p.StartTime) > time.Second {
		t.Errorf("start_time %v is not now", p.StartTime)
	}
	checkSums(t, p)
	if p.Diagnosis.Cause == "" || p.Diagnosis.Summary == "" {
		t.Errorf("no diagnosis")
	}
}

// within says got is within frac of want.
func within(got, want, frac float64) bool {
	return got >= want*(1-frac) && got <= want*(1+frac)
}

// expectCause checks the diagnosis against the truth: want, whose
// category the truth says took wantNS — or runq, when the thread's own run
// delay (schedstat) was about as long or longer (within 20%: a tie the
// figures, checked separately, decide): on a machine that busy, waiting for
// a CPU really was a larger part, and saying so is right.
// It returns whether the cause was want itself (false, with an error, when
// it was neither).
func expectCause(t *testing.T, p *profile.Profile, tr truth, want profile.Cause, wantNS int64) bool {
	t.Helper()
	switch cause := p.Diagnosis.Cause; {
	case cause == want:
		return true
	case cause == profile.CauseRunq && tr.Runq*5 >= wantNS*4:
		t.Logf("busy machine: the thread waited %.1f ms for a CPU (schedstat), about as long as or longer than the %.1f ms of %s, and the cause says runq", ms(tr.Runq), ms(wantNS), want)
	default:
		t.Errorf("want cause %s (the truth: %s %.1f ms, run delay %.1f ms), got:\n%s", want, want, ms(wantNS), ms(tr.Runq), dump(p))
	}
	return false
}

// checkRunq compares the profile's runq (time waiting for a CPU) with the
// thread's own run delay (schedstat): within 20% + 2 ms. The slack is for
// the wake-up before the request's first read, which the workload's clock
// sees and the profile does not, and a tick of schedstat granularity.
//
// The workload reads its clocks after its response is written, and the
// write wakes the client: on a busy machine the client takes the CPU right
// there, and the server thread waits for it — after the request the camera
// sees has ended. That wait is no more than the time the workload's window
// outlasts the profile (its wall clock minus the profile's duration), so
// the lower bound leaves it out.
func checkRunq(t *testing.T, p *profile.Profile, tr truth) {
	t.Helper()
	if tr.Runq < 0 {
		return
	}
	got, want := p.Breakdown[profile.Runq]-p.StealNS, tr.Runq
	after := min(max(tr.Wall-p.DurationNS, 0), want)
	if got < (want-after)*8/10-2e6 || got > want*12/10+2e6 {
		t.Errorf("runq = %.1f ms (%.1f ms of it steal), the thread's schedstat run delay says %.1f ms (%.1f ms of its window is after the profile's end)",
			ms(p.Breakdown[profile.Runq]), ms(p.StealNS), ms(want), ms(tr.Wall-p.DurationNS))
	}
}

func dominant(p *profile.Profile) profile.Category {
	var best profile.Category
	for _, c := range profile.Categories {
		if p.Breakdown[c] > p.Breakdown[best] || best == "" {
			best = c
		}
	}
	return best
}

func segmentsOf(p *profile.Profile, c profile.Category) []profile.Segment {
	var out []profile.Segment
	for _, s := range p.Timeline {
		if s.Category == c {
			out = append(out, s)
		}
	}
	return out
}

func serverPID(t *testing.T, w *world) int {
	// The READY line's pid is the server process (for java: the JVM).
	return w.server.cmd.Process.Pid
}

// The seed scenarios of a slow request, for one server implementation.
func runScenarios(t *testing.T, kind string) {
	w := startWorld(t, kind)
	pid := serverPID(t, w)
	if kind == "java" {
		// Let the JIT and the pool threads settle; these are profiled too.
		for i := 0; i < 5; i++ {
			get(t, w.base+"/cpu?ms=20", newTraceID())
			get(t, w.base+"/fast", newTraceID())
			get(t, w.base+"/fsync?n=2&kb=16", newTraceID())
		}
	}

	t.Run("cpu", func(t *testing.T) {
		id := newTraceID()
		get(t, w.base+"/cpu?ms=200", id)
		p := w.side.waitProfile(t, id, 10*time.Second)
		checkInvariants(t, p, pid)
		// The serving thread's own CPU clock, from its read of the request
		// to its last write of the response (the workload's TRUTH line).
		tr := w.server.truth(t, id, 10*time.Second)
		if p.Path != "/cpu" {
			t.Fatalf("want /cpu, got:\n%s", dump(p))
		}
		if !expectCause(t, p, tr, profile.CauseCPU, tr.CPU) && t.Failed() {
			t.FailNow()
		}
		if got, want := ms(p.Breakdown[profile.CPU]), ms(tr.CPU); !within(got, want, 0.10) {
			t.Errorf("cpu = %.1f ms, the thread's CPU clock says %.1f ms (want within 10%%)", got, want)
		}
		checkRunq(t, p, tr)
	})

	t.Run("sleep", func(t *testing.T) {
		id := newTraceID()
		get(t, w.base+"/sleep?ms=150", id)
		p := w.side.waitProfile(t, id, 10*time.Second)
		checkInvariants(t, p, pid)
		if dominant(p) != profile.Sleep || p.Diagnosis.Cause != profile.CauseSleep {
			t.Fatalf("want sleep, got:\n%s", dump(p))
		}
		if got := ms(p.Breakdown[profile.Sleep]); got < 145 || got > 200 {
			t.Errorf("sleep = %.1f ms, want ~150", got)
		}
		if len(segmentsOf(p, profile.Sleep)) == 0 {
			t.Errorf("no sleep segment in the timeline")
		}
	})

	t.Run("fsync", func(t *testing.T) {
		id := newTraceID()
		w.storage.ResetStats()
		get(t, w.base+"/fsync?n=10&kb=16", id)
		p := w.side.waitProfile(t, id, 10*time.Second)
		checkInvariants(t, p, pid)
		tr := w.server.truth(t, id, 10*time.Second)
		// The filesystem's own account: the time it took to serve this
		// request's writes and fsyncs of fsync.log.
		fs := w.storage.Stats()["fsync.log"]
		served := fs.Time()
		file := p.Breakdown[profile.File]
		t.Logf("fsync: file %.1f ms, the filesystem served %d writes + %d fsyncs in %.1f ms; cpu %.1f ms (thread clock %.1f); runq %.1f ms (schedstat %.1f)",
			ms(file), fs.Write.Count, fs.Fsync.Count, ms(served.Nanoseconds()), ms(p.Breakdown[profile.CPU]), ms(tr.CPU),
			ms(p.Breakdown[profile.Runq]), ms(tr.Runq))
		if fs.Fsync.Count != 10 {
			t.Fatalf("the filesystem served %d fsyncs, want 10", fs.Fsync.Count)
		}
		// Blocked in the filesystem from the thread's side is a little more
		// than serving (the FUSE round trip): within 10% + 2 ms.
		if file < served.Nanoseconds()*9/10 || file > served.Nanoseconds()*11/10+2e6 {
			t.Errorf("file = %.1f ms, the filesystem served the request's I/O in %.1f ms:\n%s", ms(file), ms(served.Nanoseconds()), dump(p))
		}
		// By construction file time (≥ 200 ms) is over ten times the CPU
		// the handler needs; only a machine so busy that the thread waited
		// longer for a CPU than for the disk (its schedstat says so) may
		// make runq the cause instead.
		expectCause(t, p, tr, profile.CauseFile, served.Nanoseconds())
		checkRunq(t, p, tr)
		var named bool
		for _, s := range segmentsOf(p, profile.File) {
			if s.File == w.dataDir+"/fsync.log" && (s.Syscall == "fsync" || s.Syscall == "fdatasync") && s.DurationNS >= fsyncLatency.Nanoseconds() {
				named = true
			}
		}
		if !named {
			t.Errorf("no fsync segment of ≥ %v names %s/fsync.log:\n%s", fsyncLatency, w.dataDir, dump(p))
		}
	})

	t.Run("lock", func(t *testing.T) {
		id := newTraceID()
		get(t, w.base+"/lock?ms=200", id)
		p := w.side.waitProfile(t, id, 10*time.Second)
		checkInvariants(t, p, pid)
		if dominant(p) != profile.Lock || p.Diagnosis.Cause != profile.CauseLock {
			t.Fatalf("want lock-bound, got:\n%s", dump(p))
		}
		if got := ms(p.Breakdown[profile.Lock]); got < 150 {
			t.Errorf("lock = %.1f ms, want ≥ 150 (held 200 ms, taken after 20)", got)
		}
		segs := segmentsOf(p, profile.Lock)
		var holder bool
		for _, s := range segs {
			if s.WakerName == "lock-holder" && s.WakerTID != 0 && s.WakerTID != p.TID {
				holder = true
			}
		}
		if !holder {
			t.Errorf("no lock segment woken by the lock-holder thread:\n%s", dump(p))
		}
		if !strings.Contains(p.Diagnosis.Summary, "lock-holder") {
			t.Errorf("diagnosis does not name the holder: %q", p.Diagnosis.Summary)
		}
	})

	t.Run("downstream", func(t *testing.T) {
		id := newTraceID()
		get(t, w.base+"/downstream?ms=200", id)
		p := w.side.waitProfile(t, id, 10*time.Second)
		checkInvariants(t, p, pid)
		if dominant(p) != profile.Net || p.Diagnosis.Cause != profile.CauseNet {
			t.Fatalf("want net-bound, got:\n%s", dump(p))
		}
		var peer bool
		for _, s := range segmentsOf(p, profile.Net) {
			if s.Peer == w.slowAddr && s.DurationNS > 150e6 && s.Bytes > 0 {
				peer = true
			}
		}
		if !peer {
			t.Errorf("no ≥150 ms net segment with peer %s and the bytes it brought:\n%s", w.slowAddr, dump(p))
		}
		var np bool
		for _, n := range p.Network {
			if n.Peer == w.slowAddr && n.BytesSent > 0 && n.BytesReceived > 0 && n.Protocol == "tcp" {
				np = true
			}
		}
		if !np {
			t.Errorf("downstream %s missing from network:\n%s", w.slowAddr, dump(p))
		}
		if !strings.Contains(p.Diagnosis.Summary, w.slowAddr) {
			t.Errorf("diagnosis does not name the peer: %q", p.Diagnosis.Summary)
		}
	})

	t.Run("dns", func(t *testing.T) {
		id := newTraceID()
		get(t, w.base+"/dns?name=slow.backend.example", id)
		p := w.side.waitProfile(t, id, 10*time.Second)
		checkInvariants(t, p, pid)
		var found bool
		for _, q := range p.DNS {
			if q.Name == "slow.backend.example" && q.Type == "A" && q.Answered && q.Server == w.dnsAddr && q.LatencyNS > 100e6 {
				found = true
			}
		}
		if !found {
			t.Fatalf("dns lookup of slow.backend.example (120 ms) missing:\n%s", dump(p))
		}
		if kind == "python" && p.Diagnosis.Cause != profile.CauseDNS {
			t.Errorf("cause = %s, want dns: %s", p.Diagnosis.Cause, p.Diagnosis.Summary)
		}
	})
}

func TestPythonServer(t *testing.T) { runScenarios(t, "python") }

func TestJavaServer(t *testing.T) {
	if _, err := os.Stat("/usr/bin/java"); err != nil {
		t.Skip("java not installed (make deps installs it)")
	}
	runScenarios(t, "java")
}

// A keep-alive connection carries several requests; each is its own profile.
func TestKeepAliveAndPipelining(t *testing.T) {
	w := startWorld(t, "python")
	pid := serverPID(t, w)
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	var ids []string
	for i := 0; i < 5; i++ {
		id := newTraceID()
		ids = append(ids, id)
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/sleep?ms=%d", w.base, 10+i*10), nil)
		req.Header.Set("traceparent", "00-"+id+"-00f067aa0ba902b7-01")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body) // a drained body lets the connection be reused
		resp.Body.Close()
	}
	var conn uint32
	for i, id := range ids {
		p := w.side.waitProfile(t, id, 10*time.Second)
		checkInvariants(t, p, pid)
		if i == 0 {
			conn = p.TID
		} else if p.TID != conn {
			t.Errorf("request %d served by thread %d, want the connection's thread %d", i, p.TID, conn)
		}
		want := float64(10 + i*10)
		if got := ms(p.Breakdown[profile.Sleep]); got < want*0.9 || got > want+30 {
			t.Errorf("request %d: sleep %.1f ms, want ~%v", i, got, want)
		}
	}

	// Two requests in one write: the second waits for the first (queue).
	id1, id2 := newTraceID(), newTraceID()
	c, err := net.Dial("tcp", strings.TrimPrefix(w.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reqs := ""
	for _, r := range []struct{ id, path string }{{id1, "/sleep?ms=100"}, {id2, "/fast"}} {
		reqs += "GET " + r.path + " HTTP/1.1\r\nHost: x\r\ntraceparent: 00-" + r.id + "-00f067aa0ba902b7-01\r\n\r\n"
	}
	if _, err := c.Write([]byte(reqs)); err != nil {
		t.Fatal(err)
	}
	p1 := w.side.waitProfile(t, id1, 10*time.Second)
	p2 := w.side.waitProfile(t, id2, 10*time.Second)
	checkInvariants(t, p1, pid)
	checkInvariants(t, p2, pid)
	if p2.Path != "/fast" || ms(p2.Breakdown[profile.Queue]) < 90 {
		t.Errorf("pipelined /fast should show ~100 ms queue behind /sleep:\n%s", dump(p2))
	}

	// A head that arrives in two parts (the trace header in the second) is
	// reassembled; the profile starts at the first part's read.
	id3 := newTraceID()
	c2, err := net.Dial("tcp", strings.TrimPrefix(w.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write([]byte("GET /sleep?ms=10 HTTP/1.1\r\nHost: x\r\n"))
	time.Sleep(50 * time.Millisecond)
	c2.Write([]byte("traceparent: 00-" + id3 + "-00f067aa0ba902b7-01\r\n\r\n"))
	p3 := w.side.waitProfile(t, id3, 10*time.Second)
	checkInvariants(t, p3, pid)
	if p3.Path != "/sleep" || ms(p3.DurationNS) < 55 || ms(p3.Breakdown[profile.Net]) < 40 {
		t.Errorf("split head: want /sleep lasting ≥ 60 ms with the ~50 ms wait for the rest of the head as net:\n%s", dump(p3))
	}
}

// Processes outside the watched cgroup are never profiled, and the sidecar
// does not profile itself.
func TestOnlyTheWatchedCgroup(t *testing.T) {
	pod := newCgroup(t, "scope")
	side := startSidecar(t, &pod, nil)
	outside := start(t, nil, "python3", "workloads/pyserver.py", "--port", "0")
	base := "http://127.0.0.1:" + outside.waitReady(t, 20*time.Second)
	ids := map[string]bool{}
	for i := 0; i < 5; i++ {
		id := newTraceID()
		ids[id] = true
		get(t, base+"/sleep?ms=5", id)
	}
	// Poke the sidecar's own HTTP server too: it must not see itself.
	for i := 0; i < 3; i++ {
		side.status(t)
	}
	// A request inside proves the sidecar is live, so absence means something.
	inside := start(t, &pod, "python3", "workloads/pyserver.py", "--port", "0")
	in := newTraceID()
	get(t, "http://127.0.0.1:"+inside.waitReady(t, 20*time.Second)+"/fast", in)
	side.waitProfile(t, in, 10*time.Second)
	for _, p := range side.all() {
		if ids[p.TraceID] || p.Path == "/v1/status" {
			t.Errorf("profiled a request outside the cgroup: %s %s (pid %d)", p.Method, p.Path, p.PID)
		}
	}
	if n := len(side.all()); n != 1 {
		t.Errorf("%d profiles, want exactly the 1 inside", n)
	}
	// The same profile from the store, diagnosed on the way out.
	resp, err := http.Get("http://" + side.httpAddr + "/v1/profiles?limit=5")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Profiles []profile.Profile }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if len(list.Profiles) != 1 || list.Profiles[0].TraceID != in || list.Profiles[0].Diagnosis.Cause == "" {
		t.Errorf("/v1/profiles = %+v, want the one diagnosed profile of %s", list.Profiles, in)
	}
}

// With no --cgroup the sidecar watches its parent cgroup (the pod) and
// excludes its own (the sidecar container).
func TestDefaultCgroupIsThePod(t *testing.T) {
	pod := newCgroup(t, "pod")
	own := childCgroup(t, pod, "tracecam")
	app := childCgroup(t, pod, "app")
	side := startSidecar(t, nil, &own)
	if !strings.Contains(side.stderr(), "path="+pod.Path+" ") {
		t.Fatalf("sidecar does not say it watches the pod %s:\n%s", pod.Path, side.stderr())
	}
	srv := start(t, &app, "python3", "workloads/pyserver.py", "--port", "0")
	id := newTraceID()
	get(t, "http://127.0.0.1:"+srv.waitReady(t, 20*time.Second)+"/fast", id)
	side.waitProfile(t, id, 10*time.Second)
	side.expectOnly(t, id)
}

// Threads that start after the sidecar are picked up, exited threads are
// forgotten, and the loss counters are exposed.
func TestThreadsComeAndGo(t *testing.T) {
	w := startWorld(t, "python")
	pid := serverPID(t, w)
	// Each connection gets a new thread in ThreadingHTTPServer.
	for i := 0; i < 20; i++ {
		id := newTraceID()
		get(t, w.base+"/fast", id)
		checkInvariants(t, w.side.waitProfile(t, id, 10*time.Second), pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := w.side.status(t)
		asm := st["assembler"].(map[string]any)
		seen := st["events_seen"].(map[string]any)
		if _, ok := st["events_lost_total"]; !ok {
			t.Fatal("status lacks events_lost_total")
		}
		threads := int(asm["threads_active"].(float64))
		if seen["exit"].(float64) >= 20 && threads <= 25 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads not cleaned up: %d active, exits seen %v", threads, seen["exit"])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A cgroup that does not exist fails at start with one clear line.
func TestBadCgroupFailsClearly(t *testing.T) {
	out, err := runSidecarOnce("--cgroup", "/nonexistent-cgroup-"+strconv.Itoa(os.Getpid()), "--http-addr", "", "--grpc-addr", "")
	if err == nil {
		t.Fatalf("sidecar started on a missing cgroup: %s", out)
	}
	if !strings.Contains(out, "tracecam-sidecar:") || !strings.Contains(out, "nonexistent-cgroup") {
		t.Errorf("unclear error: %q", out)
	}
	out, err = runSidecarOnce("--output", "yaml")
	if err == nil || !strings.Contains(out, "--output") {
		t.Errorf("bad --output not rejected clearly: %v %q", err, out)
	}
}

// Without the capabilities to load eBPF the sidecar says so in one line.
func TestMissingCapabilityFailsClearly(t *testing.T) {
	if _, err := exec.LookPath("capsh"); err != nil {
		t.Skip("capsh not installed (make deps installs libcap2-bin)")
	}
	out, err := exec.Command("capsh", "--drop=cap_sys_admin,cap_bpf,cap_perfmon", "--",
		"-c", sidecarBin+" --cgroup / --http-addr '' --grpc-addr ''").CombinedOutput()
	if err == nil {
		t.Fatalf("sidecar ran without CAP_BPF: %s", out)
	}
	if !strings.Contains(string(out), "tracecam-sidecar: missing capabilities: tracecam needs CAP_BPF and CAP_PERFMON") {
		t.Errorf("unclear failure: %s", out)
	}
}

// A sidecar started in the very cgroup it watches still never sees itself.
func TestSidecarInsideItsOwnTarget(t *testing.T) {
	pod := newCgroup(t, "same")
	side := startSidecar(t, &pod, &pod)
	srv := start(t, &pod, "python3", "workloads/pyserver.py", "--port", "0")
	id := newTraceID()
	get(t, "http://127.0.0.1:"+srv.waitReady(t, 20*time.Second)+"/fast", id)
	side.waitProfile(t, id, 10*time.Second)
	side.expectOnly(t, id)
}

// As a Kubernetes sidecar on cgroup v2: the container runs in a private
// cgroup namespace, so its own cgroup reads as "/"; it finds the pod's
// cgroup by the pod UID (from the downward API) and watches the app next to
// it, never itself.
func TestPrivateCgroupNamespaceFindsPodByUID(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	const uid = "0f3c8e2a-9b1d-4e5f-8a7b-6c5d4e3f2a1b"
	top := newCgroup(t, "kubepods")
	qos := childCgroup(t, top, "burstable")
	pod := childCgroup(t, qos, "pod"+uid)
	app := childCgroup(t, pod, "app")
	own := childCgroup(t, pod, "tracecam")
	// unshare --cgroup: the sidecar's cgroup namespace is rooted at its own
	// container cgroup, exactly as a container runtime sets it up.
	side := &sidecar{proc: start(t, &own, "unshare", "--cgroup", "--", "env", "POD_UID="+uid, sidecarBin,
		"--output", "json", "--http-addr", "127.0.0.1:0", "--grpc-addr", ""), changed: make(chan struct{}, 1)}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(side.stderr(), "http listening") {
		if time.Now().After(deadline) {
			t.Fatalf("sidecar did not start: %s", side.stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(side.stderr(), "path="+pod.Path+" ") {
		t.Fatalf("sidecar does not watch the pod %s:\n%s", pod.Path, side.stderr())
	}
	side.httpAddr = listenRe.FindStringSubmatch(side.stderr())[1]
	go side.collect(t)
	srv := start(t, &app, "python3", "workloads/pyserver.py", "--port", "0")
	id := newTraceID()
	get(t, "http://127.0.0.1:"+srv.waitReady(t, 20*time.Second)+"/fast", id)
	side.waitProfile(t, id, 10*time.Second)
	side.expectOnly(t, id)
}

// expectOnly asks the sidecar for its status a few times (requests its own
// HTTP server serves, inside the watched cgroup in these tests) and checks
// that the only profile it ever produced is the one of trace id.
func (s *sidecar) expectOnly(t *testing.T, id string) {
	t.Helper()
	for i := 0; i < 3; i++ {
		s.status(t)
	}
	time.Sleep(300 * time.Millisecond)
	for _, p := range s.all() {
		if p.TraceID != id {
			t.Errorf("unexpected profile %s %s pid %d (the sidecar's own?)", p.Method, p.Path, p.PID)
		}
	}
}
