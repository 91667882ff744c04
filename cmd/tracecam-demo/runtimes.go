package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
	"github.com/tracecam/tracecam/sidecar/render"
)

// serveGo is the demo's Go service: this very binary, re-executed with
// -serve-go inside the demo's cgroup. A real Go program, so the sidecar
// follows its goroutines (uprobes on its runtime) like any Go service's.
var serveGo = flag.Bool("serve-go", false, "internal: run the demo's Go HTTP service (in the demo's cgroup)")

func runGoService() error {
	var mu sync.Mutex
	http.HandleFunc("/fast", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "fast") })
	// /lock?ms=N: another goroutine takes the mutex and holds it N ms; the
	// handler waits for it.
	http.HandleFunc("/lock", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		held := make(chan struct{})
		go func() {
			mu.Lock()
			close(held)
			time.Sleep(time.Duration(ms) * time.Millisecond)
			mu.Unlock()
		}()
		<-held
		mu.Lock()
		mu.Unlock() //nolint:staticcheck // the wait is the point
		fmt.Fprintf(w, "lock ms=%d\n", ms)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("READY port=%d pid=%d\n", ln.Addr().(*net.TCPAddr).Port, os.Getpid())
	return http.Serve(ln, nil)
}

// runtimeScenarios show the Go service's goroutine accounting and the
// Node.js event loop's: the runtimes where a thread is not a request.
func (d *demo) runtimeScenarios(ctx context.Context, dir string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	goPort, err := d.startWorkload(&d.cg, self, "-serve-go")
	if err != nil {
		return fmt.Errorf("starting the Go service: %w", err)
	}
	base := "http://127.0.0.1:" + goPort
	fmt.Printf("  Go service   net/http (this binary, -serve-go) on 127.0.0.1:%s, same cgroup\n", goPort)
	// The sidecar attaches its goroutine probes when it first sees the
	// process: wait for a request it follows.
	if !d.warmUp(ctx, base+"/fast", profile.AccountingGoroutine) {
		fmt.Println("  (the sidecar did not follow the Go service's goroutines within 10 s; its profile below says why)")
	}
	if err := d.show(ctx, base, "/lock?ms=200", "Go: waits for a sync.Mutex another goroutine holds for 200 ms"); err != nil {
		return err
	}

	node, err := exec.LookPath("node")
	if err != nil {
		if node, err = exec.LookPath("nodejs"); err != nil {
			fmt.Println("(no Node.js scenario: node not found; make deps installs the nodejs package)")
			return nil
		}
	}
	nodePort, err := d.startWorkload(&d.cg, node, filepath.Join(dir, "nodeserver.js"), "--port", "0")
	if err != nil {
		return fmt.Errorf("starting the Node.js service: %w", err)
	}
	nbase := "http://127.0.0.1:" + nodePort
	fmt.Printf("  Node.js service   http on 127.0.0.1:%s, same cgroup: one event loop serves every request\n\n", nodePort)
	d.warmUp(ctx, nbase+"/fast", "")
	// A 100 ms timer, and 20 ms later a 200 ms CPU hog on the same loop:
	// the timer's request is ready at 100 ms but the loop is busy.
	sleepID, hogID := newTraceID(), newTraceID()
	fmt.Printf("▶ GET /sleep?ms=100 — Node.js: a 100 ms timer; 20 ms later GET /cpu?ms=200 burns the event loop's CPU\n")
	errc := make(chan error, 1)
	go func() { errc <- get(ctx, nbase+"/sleep?ms=100", sleepID) }()
	time.Sleep(20 * time.Millisecond)
	if err := get(ctx, nbase+"/cpu?ms=200", hogID); err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	return d.printProfile(ctx, sleepID)
}

// warmUp sends requests until one is profiled with the accounting wanted
// (any, when ""; at most 10 s).
func (d *demo) warmUp(ctx context.Context, url string, want profile.Accounting) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		id := newTraceID()
		if get(ctx, url, id) == nil {
			if p := d.wait(ctx, id, 5*time.Second); p != nil && (want == "" || p.Accounting == want) {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// show sends one request and prints its camera view.
func (d *demo) show(ctx context.Context, base, path, why string) error {
	id := newTraceID()
	fmt.Printf("▶ GET %s — %s\n", path, why)
	if err := get(ctx, base+path, id); err != nil {
		return err
	}
	return d.printProfile(ctx, id)
}

// printProfile waits for the profile of trace id and prints its camera view.
func (d *demo) printProfile(ctx context.Context, id string) error {
	p := d.wait(ctx, id, 10*time.Second)
	if p == nil {
		return fmt.Errorf("no profile for trace %s", id)
	}
	if err := render.Text(os.Stdout, p); err != nil {
		return err
	}
	fmt.Println()
	return nil
}
