// Command goserver is a tracecam e2e workload: a Go net/http server whose
// endpoints spend their time in one known way each. Goroutines move between
// threads, which is what makes a Go server hard for a thread-based camera.
//
//	goserver --port 0 [--bind 127.0.0.1] [--downstream HOST:PORT] [--data-dir DIR]
//	         [--http-downstream HOST:PORT]
//
// Prints `READY port=<port> pid=<pid>` once listening.
//
//	GET /cpu?ms=200         burn ~ms of CPU in the handler's goroutine
//	GET /sleep?ms=200       time.Sleep
//	GET /downstream?ms=200  TCP round trip to --downstream (slowserver.py)
//	GET /client?ms=200      GET /sleep?ms=200 of --http-downstream (another
//	                        goserver) through net/http's client: the response
//	                        comes over a channel from the client's reader goroutine
//	GET /lock?ms=200        wait for a sync.Mutex another goroutine holds ~ms
//	GET /fsync?n=10&kb=16   n x (write + fsync) in --data-dir
//	GET /work?us=100        burn ~us µs of CPU (a handler that does some work)
//	GET /fast               immediate reply
//
// After each request with a traceparent header it prints its own account:
//
//	TRUTH trace=<id> main_ns=<time the endpoint's one way took> [cpu_ns= runq_ns= tid=]
//
// main_ns is the handler's own clock around its sleep, round trip, lock
// wait or fsyncs. /cpu runs on a locked OS thread so that thread's CPU clock
// and schedstat run delay are the goroutine's (cpu_ns, runq_ns).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

var (
	mu   sync.Mutex
	sink uint64
	out  sync.Mutex // one TRUTH line at a time
)

func qint(r *http.Request, k string, def int) int {
	if v, err := strconv.Atoi(r.URL.Query().Get(k)); err == nil {
		return v
	}
	return def
}

// truth prints the request's TRUTH line (requests without a trace are
// warm-ups and print none).
func truth(r *http.Request, main time.Duration, extra string) {
	tp := r.Header.Get("traceparent")
	parts := strings.Split(tp, "-")
	if len(parts) < 3 {
		return
	}
	out.Lock()
	fmt.Printf("TRUTH trace=%s main_ns=%d%s\n", parts[1], main.Nanoseconds(), extra)
	out.Unlock()
}

func threadCPU() int64 {
	var ts syscall.Timespec
	// CLOCK_THREAD_CPUTIME_ID = 3
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

// runDelay is the thread's time spent runnable, waiting for a CPU
// (/proc/thread-self/schedstat, second field).
func runDelay() int64 {
	b, err := os.ReadFile("/proc/thread-self/schedstat")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1
	}
	n, _ := strconv.ParseInt(f[1], 10, 64)
	return n
}

// ctxSwitches reads one of the thread's context switch counts
// (/proc/thread-self/status).
func ctxSwitches(field string) int64 {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return -1
}

func main() {
	port := flag.Int("port", 0, "0 = pick a free port")
	bind := flag.String("bind", "127.0.0.1", "")
	downstream := flag.String("downstream", "", "HOST:PORT of slowserver.py")
	dataDir := flag.String("data-dir", os.TempDir(), "where /fsync writes")
	httpDownstream := flag.String("http-downstream", "", "HOST:PORT of another goserver, for /client")
	flag.Parse()

	http.HandleFunc("/cpu", func(w http.ResponseWriter, r *http.Request) {
		ms := qint(r, "ms", 200)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c0, q0, v0, n0 := threadCPU(), runDelay(), ctxSwitches("voluntary_ctxt_switches"), ctxSwitches("nonvoluntary_ctxt_switches")
		end := time.Now().Add(time.Duration(ms) * time.Millisecond)
		x := uint64(1)
		for time.Now().Before(end) {
			for i := 0; i < 10000; i++ {
				x = x*31 + uint64(i)
			}
		}
		sink += x
		cpu, runq := threadCPU()-c0, runDelay()-q0
		fmt.Fprintf(w, "cpu ms=%d\n", ms)
		truth(r, time.Duration(cpu), fmt.Sprintf(" cpu_ns=%d runq_ns=%d tid=%d voluntary=%d involuntary=%d", cpu, runq, syscall.Gettid(),
			ctxSwitches("voluntary_ctxt_switches")-v0, ctxSwitches("nonvoluntary_ctxt_switches")-n0))
	})
	http.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms := qint(r, "ms", 200)
		t0 := time.Now()
		time.Sleep(time.Duration(ms) * time.Millisecond)
		took := time.Since(t0)
		fmt.Fprintf(w, "sleep ms=%d\n", ms)
		truth(r, took, "")
	})
	http.HandleFunc("/downstream", func(w http.ResponseWriter, r *http.Request) {
		ms := qint(r, "ms", 200)
		t0 := time.Now()
		c, err := net.Dial("tcp", *downstream)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "%d\n", ms)
		line, _ := bufio.NewReader(c).ReadString('\n')
		took := time.Since(t0)
		fmt.Fprintf(w, "downstream ms=%d reply=%s", ms, line)
		truth(r, took, "")
	})
	client := &http.Client{Timeout: 10 * time.Second}
	http.HandleFunc("/client", func(w http.ResponseWriter, r *http.Request) {
		ms := qint(r, "ms", 200)
		t0 := time.Now()
		req, err := http.NewRequest("GET", fmt.Sprintf("http://%s/sleep?ms=%d", *httpDownstream, ms), nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// The trace goes on downstream, as an instrumented client's would.
		if tp := r.Header.Get("traceparent"); tp != "" {
			req.Header.Set("traceparent", tp)
		}
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(t0)
		fmt.Fprintf(w, "client ms=%d reply=%d bytes\n", ms, len(body))
		truth(r, took, "")
	})
	http.HandleFunc("/lock", func(w http.ResponseWriter, r *http.Request) {
		ms := qint(r, "ms", 200)
		held := make(chan struct{})
		go func() {
			mu.Lock()
			close(held)
			time.Sleep(time.Duration(ms) * time.Millisecond)
			mu.Unlock()
		}()
		<-held
		t0 := time.Now()
		mu.Lock()
		waited := time.Since(t0)
		mu.Unlock()
		fmt.Fprintf(w, "lock ms=%d waited_ms=%.1f\n", ms, float64(waited.Microseconds())/1000)
		truth(r, waited, "")
	})
	http.HandleFunc("/fsync", func(w http.ResponseWriter, r *http.Request) {
		n, kb := qint(r, "n", 10), qint(r, "kb", 16)
		f, err := os.OpenFile(filepath.Join(*dataDir, "fsync.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		buf := make([]byte, kb<<10)
		var synced time.Duration
		for i := 0; i < n; i++ {
			if _, err := f.Write(buf); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			t0 := time.Now()
			if err := f.Sync(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			synced += time.Since(t0)
		}
		fmt.Fprintf(w, "fsync n=%d kb=%d\n", n, kb)
		truth(r, synced, "")
	})
	http.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		end := time.Now().Add(time.Duration(qint(r, "us", 100)) * time.Microsecond)
		x := uint64(1)
		for time.Now().Before(end) {
			for i := 0; i < 100; i++ {
				x = x*31 + uint64(i)
			}
		}
		sink += x
		fmt.Fprintln(w, "work")
	})
	http.HandleFunc("/fast", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "fast") })

	ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", *bind, *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "goserver:", err)
		os.Exit(1)
	}
	fmt.Printf("READY port=%d pid=%d\n", ln.Addr().(*net.TCPAddr).Port, os.Getpid())
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, "goserver:", err)
		os.Exit(1)
	}
}
