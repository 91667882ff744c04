package fusefs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Contains(string(b), " "+dir+" ")
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
	// reaches the filesystem and waits.
	fh, err := os.OpenFile(filepath.Join(dir, "slow.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < 3; i++ {
		if _, err := fh.Write([]byte("record\n")); err != nil {
			t.Fatal(err)
		}
		if err := fh.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	fh.Close()
	if took < 3*70*time.Millisecond {
		t.Errorf("3 × (write + fsync) took %v, want ≥ 210 ms", took)
	}

	// Reading it back: default latency (none), the data written.
	f.SetLatency("slow.log", Latency{Read: 20 * time.Millisecond})
	start = time.Now()
	got, err = os.ReadFile(filepath.Join(dir, "slow.log"))
	if err != nil || string(got) != strings.Repeat("record\n", 3) {
		t.Fatalf("slow.log = %q, %v", got, err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
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
