package e2e

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// As a pod's sidecar (the webhook sets TRACECAM_ON_ERROR=idle) a sidecar
// that cannot watch stays up and ready — its readiness counts toward the
// pod's, so crash-looping would take the app out of service — and says why.
func TestIdleWhenItCannotWatch(t *testing.T) {
	p := start(t, nil, sidecarBin, "--cgroup", "/nonexistent-cgroup-"+strconv.Itoa(os.Getpid()),
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "", "--on-error", "idle")
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if m := listenRe.FindStringSubmatch(p.stderr()); m != nil {
			addr = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle sidecar did not listen:\n%s", p.stderr())
		}
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/readyz", "/healthz"} {
		if code, body := get(path); code != 200 || !strings.Contains(body, "idle") || !strings.Contains(body, "nonexistent-cgroup") {
			t.Errorf("%s = %d %q, want 200 saying it is idle and why", path, code, body)
		}
	}
	if code, body := get("/v1/status"); code != 503 || !strings.Contains(body, "nonexistent-cgroup") {
		t.Errorf("/v1/status = %d %q, want 503 with the reason", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "tracecam_up 0") {
		t.Errorf("/metrics = %d %q", code, body)
	}
	if !strings.Contains(p.stderr(), "level=ERROR") {
		t.Errorf("the reason was not logged as an error:\n%s", p.stderr())
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("idle sidecar exited with %v on SIGTERM", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("idle sidecar did not stop on SIGTERM")
	}
}
