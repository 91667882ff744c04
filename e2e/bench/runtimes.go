package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tracecam/tracecam/internal/gobuild"
	"github.com/tracecam/tracecam/sidecar/cgroup"
)

// The Go and Node.js servers of the runtime benchmarks: e2e's own
// workloads (goserver, nodeserver.js), on their /fast endpoint, so the
// per-request cost of following goroutines or an event loop dominates.

// buildGoServer builds e2e/workloads/goserver with the machine's Go.
func buildGoServer(ctx context.Context, root, work string) (string, error) {
	bin := filepath.Join(work, "goserver")
	logf("building goserver")
	if err := gobuild.Build(ctx, filepath.Join(root, "e2e", "workloads", "goserver"), bin, gobuild.Options{}); err != nil {
		return "", err
	}
	return bin, nil
}

func startGoServer(ctx context.Context, cl *cleaner, bin string, cg cgroup.Target, name, path string) (*server, error) {
	s, err := startRuntimeServer(ctx, cl, name, cg, bin, "--port")
	if err != nil {
		return nil, err
	}
	s.url = strings.TrimSuffix(s.url, "/fast") + path
	return s, nil
}

func startNodeServer(ctx context.Context, cl *cleaner, script string, cg cgroup.Target) (*server, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		if node, err = exec.LookPath("nodejs"); err != nil {
			return nil, fmt.Errorf("node not found (Debian package nodejs; make bench installs it): %w", err)
		}
	}
	return startRuntimeServer(ctx, cl, "node", cg, node, script, "--port")
}

// startRuntimeServer starts argv plus a free port in cg and waits until
// /fast answers.
func startRuntimeServer(ctx context.Context, cl *cleaner, name string, cg cgroup.Target, argv ...string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	argv = append(argv, strconv.Itoa(port))
	proc, err := startChild(name, &cg, argv...)
	if err != nil {
		return nil, err
	}
	cl.add(func() { proc.stop(5 * time.Second) })
	s := &server{name: name, proc: proc, url: fmt.Sprintf("http://127.0.0.1:%d/fast", port)}
	if err := s.waitReady(ctx); err != nil {
		return nil, err
	}
	return s, nil
}
