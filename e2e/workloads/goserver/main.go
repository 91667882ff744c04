// Command goserver is a tracecam e2e workload: a Go net/http server whose
// endpoints spend their time in one known way each. Goroutines move between
// threads, which is what makes a Go server hard for a thread-based camera.
//
//	goserver --port 0 [--bind 127.0.0.1] [--downstream HOST:PORT]
//
// Prints `READY port=<port> pid=<pid>` once listening.
//
//	GET /cpu?ms=200         burn ~ms of CPU in the handler's goroutine
//	GET /sleep?ms=200       time.Sleep
//	GET /downstream?ms=200  TCP round trip to --downstream (slowserver.py)
//	GET /lock?ms=200        wait for a sync.Mutex another goroutine holds ~ms
//	GET /fast               immediate reply
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

var (
	mu   sync.Mutex
	sink uint64
)

func qint(r *http.Request, k string, def int) int {
	if v, err := strconv.Atoi(r.URL.Query().Get(k)); err == nil {
		return v
	}
	return def
}

func main() {
	port := flag.Int("port", 0, "0 = pick a free port")
	bind := flag.String("bind", "127.0.0.1", "")
	downstream := flag.String("downstream", "", "HOST:PORT of slowserver.py")
	flag.Parse()

	http.HandleFunc("/cpu", func(w http.ResponseWriter, r *http.Request) {
		ms := qint(r, "ms", 200)
		end := time.Now().Add(time.Duration(ms) * time.Millisecond)
		x := uint64(1)
		for time.Now().Before(end) {
			for i := 0; i < 10000; i++ {
				x = x*31 + uint64(i)
			}
		}
		sink += x
		fmt.Fprintf(w, "cpu ms=%d\n", ms)
	})
	http.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms := qint(r, "ms", 200)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "sleep ms=%d\n", ms)
	})
	http.HandleFunc("/downstream", func(w http.ResponseWriter, r *http.Request) {
		ms := qint(r, "ms", 200)
		c, err := net.Dial("tcp", *downstream)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "%d\n", ms)
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(w, "downstream ms=%d reply=%s", ms, line)
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
		time.Sleep(20 * time.Millisecond)
		t0 := time.Now()
		mu.Lock()
		waited := time.Since(t0)
		mu.Unlock()
		fmt.Fprintf(w, "lock ms=%d waited_ms=%.1f\n", ms, float64(waited.Microseconds())/1000)
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
