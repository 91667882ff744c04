package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// nginx with two pre-forked worker processes: an event-driven C server
// (epoll, writev + sendfile), several processes in one cgroup.
func TestNginxPreforkWorkers(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx not installed (make deps installs it)")
	}
	cg := newCgroup(t, "nginx")
	side := startSidecar(t, &cg, nil)

	prefix := t.TempDir()
	root := filepath.Join(prefix, "www")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("tracecam ", 70) // ~630 B
	if err := os.WriteFile(filepath.Join(root, "index.html"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	tmpl, err := os.ReadFile("workloads/nginx.conf.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("{{PREFIX}}", prefix, "{{PORT}}", port, "{{ROOT}}", root,
		"worker_processes 1;", "worker_processes 2;").Replace(string(tmpl))
	if err := os.WriteFile(filepath.Join(prefix, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	master := start(t, &cg, "nginx", "-p", prefix, "-e", filepath.Join(prefix, "error.log"), "-c", filepath.Join(prefix, "nginx.conf"))
	waitListening(t, "127.0.0.1:"+port)

	var ids []string
	for i := 0; i < 10; i++ {
		id := newTraceID()
		ids = append(ids, id)
		if got := get(t, "http://127.0.0.1:"+port+"/index.html", id); got != body {
			t.Fatalf("nginx served %d bytes, want %d", len(got), len(body))
		}
	}
	for _, id := range ids {
		p := side.waitProfile(t, id, 10*time.Second)
		if int(p.PID) == master.cmd.Process.Pid {
			t.Errorf("request attributed to the master process, not a worker")
		}
		if p.Path != "/index.html" || p.StatusCode != 200 || p.ThreadName != "nginx" {
			t.Errorf("got %s %s %d thread %q", p.Method, p.Path, p.StatusCode, p.ThreadName)
		}
		if p.ResponseBytes < int64(len(body)) {
			t.Errorf("response_bytes %d < body %d: sendfile bytes not counted", p.ResponseBytes, len(body))
		}
		if sum := sumBreakdown(p); sum != p.DurationNS {
			t.Errorf("breakdown sums to %d, duration %d", sum, p.DurationNS)
		}
		if p.Breakdown[profile.CPU] == 0 {
			t.Errorf("no cpu time in %s", dump(p))
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listening on %s", addr)
}
