// Command httpserver is the program gobin's tests build with several Go
// toolchains and link modes: it must pull in net/http's server (so the
// functions the profiler probes are linked) and park goroutines for the
// usual reasons (network, sleep, mutex, channel).
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

var (
	mu    sync.Mutex
	ready = make(chan struct{})
)

func handler(w http.ResponseWriter, r *http.Request) {
	mu.Lock()
	time.Sleep(time.Millisecond)
	mu.Unlock()
	select {
	case <-ready:
	case <-time.After(time.Millisecond):
	}
	fmt.Fprintf(w, "ok %d\n", cValue())
}

func main() {
	addr := "127.0.0.1:0"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr())
	http.HandleFunc("/", handler)
	if err := http.Serve(ln, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
