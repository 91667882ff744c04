package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tracecam/tracecam/sidecar/cgroup"
)

// indexSize is the static file's size: a typical small API/HTML response,
// so per-request overhead (not bandwidth) dominates.
const indexSize = 600

// fastIndexSize is the nginx-fast section's file: nginx at its fastest,
// where the sidecar's per-request cost weighs the most.
const fastIndexSize = 512

// server is an HTTP server under load, running inside its own cgroup:
// nginx (1 worker), a Go net/http server or a Node.js http server.
type server struct {
	name string
	proc *child
	url  string // what wrk fetches
}

// startNginx renders the config template tmpl into work/name, writes an
// index.html of size bytes and starts nginx inside cg as server name. The
// caller's cleaner stops it.
func startNginx(ctx context.Context, cl *cleaner, name, tmpl string, size int, cg cgroup.Target, work string) (*server, error) {
	prefix := filepath.Join(work, name)
	docroot := filepath.Join(prefix, "root")
	if err := os.MkdirAll(docroot, 0o755); err != nil {
		return nil, fmt.Errorf("creating nginx prefix: %w", err)
	}
	if err := os.WriteFile(filepath.Join(docroot, "index.html"), indexHTML(size), 0o644); err != nil {
		return nil, fmt.Errorf("writing index.html: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	conf, err := renderNginxConf(tmpl, prefix, docroot, port)
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, conf, 0o644); err != nil {
		return nil, fmt.Errorf("writing nginx.conf: %w", err)
	}
	proc, err := startChild(name, &cg, "nginx", "-p", prefix, "-e", filepath.Join(prefix, "error.log"), "-c", confPath)
	if err != nil {
		return nil, err
	}
	cl.add(func() { proc.stop(5 * time.Second) })
	n := &server{name: name, proc: proc, url: fmt.Sprintf("http://127.0.0.1:%d/index.html", port)}
	if err := n.waitReady(ctx); err != nil {
		return nil, err
	}
	// Master + worker must both be in the cgroup, or the sidecar would
	// watch the wrong process.
	pids, err := cgroupProcs(cg)
	if err != nil {
		return nil, err
	}
	if len(pids) != 2 {
		return nil, fmt.Errorf("expected nginx master+worker in %s, found pids %v", cg.Path, pids)
	}
	return n, nil
}

// indexHTML is a valid HTML page of exactly size bytes.
func indexHTML(size int) []byte {
	head, tail := "<html><body><p>", "</p></body></html>\n"
	return []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
}

func renderNginxConf(tmpl, prefix, docroot string, port int) ([]byte, error) {
	data, err := os.ReadFile(tmpl)
	if err != nil {
		return nil, fmt.Errorf("reading nginx template: %w", err)
	}
	r := strings.NewReplacer("{{PREFIX}}", prefix, "{{PORT}}", strconv.Itoa(port), "{{ROOT}}", docroot)
	return []byte(r.Replace(string(data))), nil
}

// waitReady polls until the server answers its URL.
func (n *server) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if n.proc.exited() {
			return n.proc.describeExit()
		}
		if err := getOK(ctx, client, n.url); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s not serving %s after 15s: %w", n.name, n.url, err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// getOK fetches url and fails unless it answers 200.
func getOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// freePort asks the kernel for an unused loopback port. Another process
// could take it before we bind it again, but on a test box that is rare
// and shows up as a clear start-up error.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
