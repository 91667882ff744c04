package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/cgroup"
	"github.com/tracecam/tracecam/sidecar/profile"
)

var sidecarBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Println("e2e: skipping, needs root (eBPF, cgroups)")
		return 0
	}
	dir, err := os.MkdirTemp("", "tracecam-e2e-bin")
	if err != nil {
		fmt.Println("e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	sidecarBin = filepath.Join(dir, "tracecam-sidecar")
	args := []string{"build", "-o", sidecarBin}
	if os.Getenv("TRACECAM_E2E_RACE") != "" {
		// The sidecar's goroutines (reader, servers, streams, Redis writer)
		// under the race detector; a race stops it, which fails the test.
		args = append(args, "-race")
		os.Setenv("GORACE", "halt_on_error=1")
	}
	out, err := exec.Command("go", append(args, "github.com/tracecam/tracecam/cmd/tracecam-sidecar")...).CombinedOutput()
	if err != nil {
		fmt.Printf("e2e: building sidecar: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// newCgroup makes a fresh cgroup2 directory (a simulated pod) and removes it
// when the test ends, after its processes are gone.
func newCgroup(t *testing.T, name string) cgroup.Target {
	t.Helper()
	root, err := cgroup.Resolve("/")
	if err != nil {
		t.Skipf("no cgroup2: %v", err)
	}
	cg, err := cgroup.Create(root, fmt.Sprintf("tracecam-e2e-%s-%d", name, time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroup(t, cg) })
	return cg
}

// childCgroup makes a cgroup below parent (removed with it).
func childCgroup(t *testing.T, parent cgroup.Target, name string) cgroup.Target {
	t.Helper()
	cg, err := cgroup.Create(parent, name)
	if err != nil {
		t.Fatal(err)
	}
	return cg
}

func removeCgroup(t *testing.T, cg cgroup.Target) {
	// Children first; give exiting processes a moment to leave.
	entries, _ := os.ReadDir(cg.Path)
	for _, e := range entries {
		if e.IsDir() {
			if child, err := cgroup.Resolve(filepath.Join(cg.Path, e.Name())); err == nil {
				removeCgroup(t, child)
			}
		}
	}
	for i := 0; i < 50; i++ {
		if err := cgroup.Remove(cg); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("could not remove cgroup %s", cg.Path)
}

// proc is a started child process with its stdout lines.
type proc struct {
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	log   strings.Builder // stderr
	// truths holds the workload's TRUTH lines (workloads/truth.py), by
	// trace ID; they never reach lines.
	truths      map[string]truth
	truthSignal chan struct{}
}

// start runs a command, inside cg when cg.ID != 0 (it is born there, via
// clone3 CLONE_INTO_CGROUP, so no thread ever runs outside), and kills it
// when the test ends.
func start(t *testing.T, cg *cgroup.Target, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if cg != nil {
		fd, err := syscall.Open(cg.Path, syscall.O_DIRECTORY|syscall.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Close(fd)
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	p := &proc{cmd: cmd, lines: make(chan string, 10000), truths: map[string]truth{}, truthSignal: make(chan struct{}, 1)}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.log.Write(b)
	})
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		for sc.Scan() {
			if tr, ok := parseTruth(sc.Text()); ok {
				p.mu.Lock()
				p.truths[tr.Trace] = tr
				p.mu.Unlock()
				select {
				case p.truthSignal <- struct{}{}:
				default:
				}
				continue
			}
			select {
			case p.lines <- sc.Text():
			default: // a test that stops reading must not block the child
			}
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr())
		}
	})
	return p
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// truth is a workload's own account of one request (workloads/truth.py):
// the serving thread's CPU clock, its run delay (schedstat) and the wall
// time from reading the request line to writing the last byte of the
// response; Extra holds any other key=value the workload added.
type truth struct {
	Trace           string
	TID             int
	CPU, Runq, Wall int64 // ns; Runq -1 when schedstat was unreadable
	Extra           map[string]string
}

func parseTruth(line string) (truth, bool) {
	rest, ok := strings.CutPrefix(line, "TRUTH ")
	if !ok {
		return truth{}, false
	}
	tr := truth{Extra: map[string]string{}}
	for _, f := range strings.Fields(rest) {
		k, v, _ := strings.Cut(f, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case k == "trace":
			tr.Trace = v
		case k == "tid" && err == nil:
			tr.TID = int(n)
		case k == "cpu_ns" && err == nil:
			tr.CPU = n
		case k == "runq_ns" && err == nil:
			tr.Runq = n
		case k == "wall_ns" && err == nil:
			tr.Wall = n
		default:
			tr.Extra[k] = v
		}
	}
	return tr, tr.Trace != ""
}

// truth waits for the workload's TRUTH line of traceID.
func (p *proc) truth(t *testing.T, traceID string, timeout time.Duration) truth {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		tr, ok := p.truths[traceID]
		p.mu.Unlock()
		if ok {
			return tr
		}
		select {
		case <-p.truthSignal:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("the workload printed no TRUTH line for trace %s in %v", traceID, timeout)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

var readyRe = regexp.MustCompile(`^READY port=(\d+) pid=(\d+)`)

// waitReady reads the workload's READY line and returns its port.
func (p *proc) waitReady(t *testing.T, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("workload exited before READY: %s", p.stderr())
			}
			if m := readyRe.FindStringSubmatch(l); m != nil {
				return m[1]
			}
		case <-deadline:
			t.Fatalf("workload not READY after %v: %s", timeout, p.stderr())
		}
	}
}

// sidecar is a running tracecam-sidecar with --output json.
type sidecar struct {
	*proc
	httpAddr string
	grpcAddr string
	mu       sync.Mutex
	profiles []*profile.Profile
	changed  chan struct{}
}

var (
	listenRe     = regexp.MustCompile(`msg="http listening" addr=(\S+)`)
	grpcListenRe = regexp.MustCompile(`msg="grpc listening" addr=(\S+)`)
)

func startSidecar(t *testing.T, cg *cgroup.Target, own *cgroup.Target, args ...string) *sidecar {
	t.Helper()
	all := append([]string{"--output", "json", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"}, args...)
	if cg != nil {
		all = append(all, "--cgroup", cg.Path)
	}
	s := &sidecar{proc: start(t, own, sidecarBin, all...), changed: make(chan struct{}, 1)}
	deadline := time.Now().Add(20 * time.Second)
	for s.httpAddr == "" {
		if time.Now().After(deadline) {
			t.Fatalf("sidecar did not start: %s", s.stderr())
		}
		if m := listenRe.FindStringSubmatch(s.stderr()); m != nil {
			s.httpAddr = m[1]
		}
		if m := grpcListenRe.FindStringSubmatch(s.stderr()); m != nil {
			s.grpcAddr = m[1]
		}
		if s.cmd.ProcessState != nil {
			t.Fatalf("sidecar exited: %s", s.stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	go s.collect(t)
	return s
}

// collect reads the sidecar's JSON lines into profiles.
func (s *sidecar) collect(t *testing.T) {
	for l := range s.lines {
		var p profile.Profile
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Errorf("sidecar printed a line that is not a profile: %q: %v", l, err)
			continue
		}
		s.mu.Lock()
		s.profiles = append(s.profiles, &p)
		s.mu.Unlock()
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
}

// waitProfile returns the profile of traceID, waiting up to timeout.
func (s *sidecar) waitProfile(t *testing.T, traceID string, timeout time.Duration) *profile.Profile {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if p := s.find(traceID); p != nil {
			return p
		}
		select {
		case <-s.changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no profile for trace %s after %v; sidecar stderr:\n%s", traceID, timeout, s.stderr())
		}
	}
}

func (s *sidecar) find(traceID string) *profile.Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.profiles {
		if p.TraceID == traceID {
			return p
		}
	}
	return nil
}

func (s *sidecar) all() []*profile.Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*profile.Profile(nil), s.profiles...)
}

func (s *sidecar) status(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + s.httpAddr + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// newTraceID returns a random W3C trace id.
func newTraceID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// get sends one traced request with a real curl process (a client outside
// every watched cgroup) and returns the body.
func get(t *testing.T, url, traceID string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", "-sS", "--fail-with-body",
		"-H", fmt.Sprintf("traceparent: 00-%s-00f067aa0ba902b7-01", traceID), url).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v: %s", url, err, out)
	}
	return string(out)
}

func sumBreakdown(p *profile.Profile) int64 {
	var s int64
	for _, v := range p.Breakdown {
		s += v
	}
	return s
}

func share(p *profile.Profile, c profile.Category) float64 {
	if p.DurationNS == 0 {
		return 0
	}
	return float64(p.Breakdown[c]) / float64(p.DurationNS)
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// dump is a compact description of a profile for failure messages.
func dump(p *profile.Profile) string {
	b, _ := json.MarshalIndent(p, "", " ")
	return string(b)
}
