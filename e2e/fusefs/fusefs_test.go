package fusefs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Contains(string(b), " "+dir+" ")
}

// client runs a Python script (with args) as the filesystem's client and
// returns its output.
func client(t *testing.T, script string, args ...string) string {
	t.Helper()
	out, err := exec.Command("python3", append([]string{"-c", script}, args...)...).Output()
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return strings.TrimSuffix(string(out), "\n")
}

func parseNS(t *testing.T, s string) time.Duration {
	t.Helper()
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("client printed %q: %v", s, err)
	}
	return time.Duration(n)
}

func TestLatencyAndStats(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	dir := t.TempDir()
	f, err := Mount(dir, Config{
		Files:   map[string][]byte{"seed.db": bytes.Repeat([]byte("x"), 10000)},
		Latency: map[string]Latency{"slow.log": {Write: 30 * time.Millisecond, Fsync: 40 * time.Millisecond}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := f.Unmount(); err != nil {
			t.Error(err)
		}
		if mounted(dir) {
			t.Errorf("%s still mounted", dir)
		}
	}()
	if !mounted(dir) {
		t.Fatalf("%s not in mountinfo", dir)
	}

	// A pre-populated file, no latency.
	got, err := os.ReadFile(filepath.Join(dir, "seed.db"))
	if err != nil || len(got) != 10000 {
		t.Fatalf("seed.db: %d bytes, %v", len(got), err)
	}

	// A new file with slow writes and fsyncs: every write(2) and fsync(2)
	// reaches the filesystem and waits. The client is another process: this
	// test's own threads get the Go runtime's preemption signals, and a
	// signal to a thread blocked in a FUSE request interrupts it (the
	// filesystem then rightly answers at once).
	out := client(t, `
import os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
t0 = time.monotonic()
for _ in range(3):
    os.write(fd, b"record\n")
    os.fsync(fd)
print(int((time.monotonic() - t0) * 1e9))
`, filepath.Join(dir, "slow.log"))
	took := parseNS(t, out)
	if took < 3*70*time.Millisecond {
		t.Errorf("3 × (write + fsync) took %v, want ≥ 210 ms", took)
	}

	// Reading it back: default latency (none), the data written.
	f.SetLatency("slow.log", Latency{Read: 20 * time.Millisecond})
	out = client(t, `
import sys, time
t0 = time.monotonic()
data = open(sys.argv[1], "rb").read()
print(int((time.monotonic() - t0) * 1e9), data.decode())
`, filepath.Join(dir, "slow.log"))
	ns, content, _ := strings.Cut(out, " ")
	if content != strings.Repeat("record\n", 3) {
		t.Fatalf("slow.log = %q", content)
	}
	if d := parseNS(t, ns); d < 20*time.Millisecond {
		t.Errorf("read took %v, want ≥ 20 ms", d)
	}

	st := f.Stats()["slow.log"]
	if st.Write.Count != 3 || st.Fsync.Count != 3 || st.Write.Bytes != 21 || st.Read.Count < 1 {
		t.Errorf("stats %+v", st)
	}
	if st.Write.Time < 90*time.Millisecond || st.Fsync.Time < 120*time.Millisecond || st.Time() > took+time.Second {
		t.Errorf("stats times %+v (writes+fsyncs took %v)", st, took)
	}
	if names := f.Names(); len(names) != 2 || names[0] != "seed.db" || names[1] != "slow.log" {
		t.Errorf("names %v", names)
	}
}
