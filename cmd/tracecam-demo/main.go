// Command tracecam-demo shows tracecam at work on one machine, no cluster:
// it starts a small HTTP service in a fresh cgroup v2 (a stand-in for an
// app container in a pod), runs the real tracecam-sidecar watching that
// cgroup, sends requests that are slow for different reasons, and prints
// each request's camera view as the sidecar reports it.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tracecam/tracecam/e2e/workloads"
	"github.com/tracecam/tracecam/sidecar/cgroup"
	"github.com/tracecam/tracecam/sidecar/profile"
	"github.com/tracecam/tracecam/sidecar/render"
)

type scenario struct {
	path, why string
}

var scenarios = []scenario{
	{"/fast", "a fast request: the baseline"},
	{"/cpu?ms=200", "burns 200 ms of CPU in Python"},
	{"/sleep?ms=150", "sleeps 150 ms"},
	{"/fsync?n=30&kb=64", "appends 30 × 64 KiB to a file, fsync after each"},
	{"/lock?ms=200", "waits for a lock another thread (lock-holder) holds for 200 ms"},
	{"/downstream?ms=200", "calls a slow downstream TCP service (200 ms)"},
	{"/dns?name=slow.backend.example", "resolves a name on a slow DNS server (300 ms)"},
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tracecam-demo:", err)
		os.Exit(1)
	}
}

func run() error {
	sidecarPath := flag.String("sidecar", "", "tracecam-sidecar binary (default: next to this one)")
	flag.Parse()
	if *serveGo {
		return runGoService()
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if os.Geteuid() != 0 {
		return errors.New("needs root (eBPF and cgroups): run with sudo")
	}
	if *sidecarPath == "" {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		*sidecarPath = filepath.Join(filepath.Dir(self), "tracecam-sidecar")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		return errors.New("python3 not found: the demo service is a Python ThreadingHTTPServer (make deps installs it)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	d := &demo{}
	defer d.cleanup()
	return d.run(ctx, *sidecarPath)
}

type demo struct {
	procs   []*exec.Cmd
	cg      cgroup.Target
	haveCg  bool
	dirs    []string
	mu      sync.Mutex
	byTrace map[string]*profile.Profile
	arrived chan struct{}
}

func (d *demo) run(ctx context.Context, sidecarPath string) error {
	dir, err := os.MkdirTemp("", "tracecam-demo")
	if err != nil {
		return err
	}
	d.dirs = append(d.dirs, dir)
	if err := writeWorkloads(dir); err != nil {
		return err
	}
	// fsync on tmpfs returns at once; keep the data on a disk.
	data, err := os.MkdirTemp("/var/tmp", "tracecam-demo-data")
	if err != nil {
		return err
	}
	d.dirs = append(d.dirs, data)

	root, err := cgroup.Resolve("/")
	if err != nil {
		return err
	}
	d.cg, err = cgroup.Create(root, fmt.Sprintf("tracecam-demo-%d", os.Getpid()))
	if err != nil {
		return err
	}
	d.haveCg = true

	// The downstream dependencies run outside the "pod".
	slowPort, err := d.startWorkload(nil, "python3", filepath.Join(dir, "slowserver.py"), "--port", "0")
	if err != nil {
		return fmt.Errorf("starting the slow downstream: %w", err)
	}
	dnsAddr := "127.0.53.53:53"
	dnsOK := true
	if _, err := d.startWorkload(nil, "python3", filepath.Join(dir, "dnsserver.py"), "--bind", "127.0.53.53", "--port", "53"); err != nil {
		fmt.Printf("(no DNS scenario: %v)\n", err)
		dnsOK = false
	}

	side := exec.Command(sidecarPath, "--cgroup", d.cg.Path, "--output", "json", "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0")
	side.Stderr = os.Stderr
	side.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := side.StdoutPipe()
	if err != nil {
		return err
	}
	var sideLog strings.Builder
	side.Stderr = &lockedWriter{w: &sideLog}
	if err := side.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", sidecarPath, err)
	}
	d.procs = append(d.procs, side)
	d.byTrace = map[string]*profile.Profile{}
	d.arrived = make(chan struct{}, 1)
	go d.readProfiles(out)
	statusAddr, err := waitLog(side, &sideLog, `msg="http listening" addr=(\S+)`, 20*time.Second)
	if err != nil {
		return err
	}

	port, err := d.startWorkload(&d.cg, "python3", filepath.Join(dir, "pyserver.py"), "--port", "0",
		"--data-dir", data, "--downstream", "127.0.0.1:"+slowPort, "--dns-server", dnsAddr)
	if err != nil {
		return fmt.Errorf("starting the demo service: %w", err)
	}

	fmt.Printf("tracecam demo\n  service   python3 ThreadingHTTPServer on 127.0.0.1:%s, in cgroup %s\n", port, d.cg.Path)
	fmt.Printf("  sidecar   %s --cgroup %s (status: http://%s/v1/status)\n", sidecarPath, d.cg.Path, statusAddr)
	fmt.Printf("  each request carries a W3C traceparent; the sidecar joins its profile to that trace ID\n\n")

	for _, sc := range scenarios {
		if strings.HasPrefix(sc.path, "/dns") && !dnsOK {
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		id := newTraceID()
		fmt.Printf("▶ GET %s — %s\n", sc.path, sc.why)
		if err := get(ctx, "http://127.0.0.1:"+port+sc.path, id); err != nil {
			return err
		}
		p := d.wait(ctx, id, 10*time.Second)
		if p == nil {
			return fmt.Errorf("no profile for trace %s; sidecar log:\n%s", id, sideLog.String())
		}
		if err := render.Text(os.Stdout, p); err != nil {
			return err
		}
		fmt.Println()
	}
	if err := d.runtimeScenarios(ctx, dir); err != nil {
		return err
	}
	return printStatus(statusAddr)
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.w)
}

func writeWorkloads(dir string) error {
	entries, err := workloads.Files.ReadDir(".")
	if err != nil {
		return err
	}
	for _, e := range entries {
		b, err := workloads.Files.ReadFile(e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

var readyRe = regexp.MustCompile(`READY port=(\d+)`)

// startWorkload starts a process (born inside cg when given) and waits for
// its READY line.
func (d *demo) startWorkload(cg *cgroup.Target, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if cg != nil {
		fd, err := syscall.Open(cg.Path, syscall.O_DIRECTORY|syscall.O_RDONLY, 0)
		if err != nil {
			return "", err
		}
		defer syscall.Close(fd)
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	}
	var stderr strings.Builder
	cmd.Stderr = &lockedWriter{w: &stderr}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	d.procs = append(d.procs, cmd)
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := readyRe.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
		close(ready)
	}()
	select {
	case port, ok := <-ready:
		if !ok {
			return "", fmt.Errorf("%s exited: %s", name, stderr.String())
		}
		return port, nil
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("%s not ready after 30 s", name)
	}
}

func waitLog(cmd *exec.Cmd, log *strings.Builder, pattern string, timeout time.Duration) (string, error) {
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(fmt.Sprint(log)); m != nil {
			return m[1], nil
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "", fmt.Errorf("sidecar did not start:\n%s", fmt.Sprint(log))
}

func (d *demo) readProfiles(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		var p profile.Profile
		if json.Unmarshal(sc.Bytes(), &p) != nil {
			continue
		}
		d.mu.Lock()
		d.byTrace[p.TraceID] = &p
		d.mu.Unlock()
		select {
		case d.arrived <- struct{}{}:
		default:
		}
	}
}

func (d *demo) wait(ctx context.Context, id string, timeout time.Duration) *profile.Profile {
	deadline := time.After(timeout)
	for {
		d.mu.Lock()
		p := d.byTrace[id]
		d.mu.Unlock()
		if p != nil {
			return p
		}
		select {
		case <-d.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

func get(ctx context.Context, url, traceID string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

func printStatus(addr string) error {
	resp, err := http.Get("http://" + addr + "/v1/status")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var st struct {
		Probes    []string          `json:"probes"`
		Events    map[string]uint64 `json:"events_seen"`
		LostTotal uint64            `json:"events_lost_total"`
		Assembler struct {
			Profiles uint64 `json:"profiles"`
		} `json:"assembler"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return err
	}
	fmt.Printf("sidecar: %d probes attached; kernel events seen data=%d segment=%d exit=%d, lost %d; %d profiles\n",
		len(st.Probes), st.Events["data"], st.Events["segment"], st.Events["exit"], st.LostTotal, st.Assembler.Profiles)
	return nil
}

func (d *demo) cleanup() {
	for i := len(d.procs) - 1; i >= 0; i-- {
		c := d.procs[i]
		if c.Process != nil {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			c.Process.Kill()
			c.Wait()
		}
	}
	if d.haveCg {
		// Killed processes leave the cgroup once the kernel has reaped
		// them; give that a moment, and say so if it does not happen.
		var err error
		for i := 0; i < 100; i++ {
			if err = cgroup.Remove(d.cg); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "tracecam-demo: could not remove %s: %v\n", d.cg.Path, err)
		}
	}
	for _, dir := range d.dirs {
		os.RemoveAll(dir)
	}
}

func newTraceID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
