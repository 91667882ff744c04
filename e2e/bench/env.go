package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// tools are the binaries and files one run uses.
type tools struct {
	sidecar     string // tracecam-sidecar binary
	syscallLoop string // compiled e2e/workloads/syscall_loop.c
	nginxTmpl   string // e2e/workloads/nginx.conf.tmpl
	// nginxFastTmpl is e2e/workloads/nginx-fast.conf.tmpl (no sendfile).
	nginxFastTmpl string
	goServer      string // built e2e/workloads/goserver
	nodeServer    string // e2e/workloads/nodeserver.js
	clkTck        int    // clock ticks per second of /proc/PID/stat times
}

// hostInfo is the report's header.
type hostInfo struct {
	kernel    string
	cpus      int
	date      time.Time
	loadStart string // 1/5/15-minute load averages when the run began
}

func (h hostInfo) String() string {
	return fmt.Sprintf("kernel %s, %d CPUs, %s", h.kernel, h.cpus, h.date.Format("2006-01-02 15:04 MST"))
}

// checkPrereqs fails early, before any child or cgroup exists.
func checkPrereqs(cfg config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("must run as root (the sidecar loads eBPF programs and we create cgroups)")
	}
	need := []string{"nginx", "wrk", "getconf"}
	if !cfg.skipExtra {
		need = append(need, "cc") // syscall_loop of the syscall tax
	}
	if cfg.sidecar == "" {
		need = append(need, "go")
	}
	var missing []string
	for _, bin := range need {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s in PATH: run make deps", strings.Join(missing, ", "))
	}
	return nil
}

func describeHost(ctx context.Context) (hostInfo, error) {
	kernel, err := output(ctx, "uname", "-r")
	if err != nil {
		return hostInfo{}, err
	}
	return hostInfo{kernel: kernel, cpus: runtime.NumCPU(), date: time.Now(), loadStart: loadAvg()}, nil
}

// loadAvg is the 1/5/15-minute load average: other work on a 2-CPU box
// skews results, so the report shows how busy the machine was.
func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// buildTools compiles the loop benchmark, the Go server (each only when a
// section that runs needs it) and (unless given) the sidecar into work, so
// a stale bin/ never gets measured.
func buildTools(ctx context.Context, cfg config, work string) (tools, error) {
	root, err := moduleRoot()
	if err != nil {
		return tools{}, err
	}
	t := tools{
		sidecar:     cfg.sidecar,
		syscallLoop: filepath.Join(work, "syscall_loop"),
		nginxTmpl:   filepath.Join(root, "e2e", "workloads", "nginx.conf.tmpl"),
	}
	t.nginxFastTmpl = filepath.Join(root, "e2e", "workloads", "nginx-fast.conf.tmpl")
	for _, tmpl := range []string{t.nginxTmpl, t.nginxFastTmpl} {
		if _, err := os.Stat(tmpl); err != nil {
			return t, fmt.Errorf("nginx config template: %w", err)
		}
	}
	t.nodeServer = filepath.Join(root, "e2e", "workloads", "nodeserver.js")
	if cfg.wants("go") || cfg.wants("go-work") {
		if t.goServer, err = buildGoServer(ctx, root, work); err != nil {
			return t, fmt.Errorf("building goserver: %w", err)
		}
	}
	if !cfg.skipExtra {
		src := filepath.Join(root, "e2e", "workloads", "syscall_loop.c")
		if _, err := output(ctx, "cc", "-O2", "-o", t.syscallLoop, src); err != nil {
			return t, fmt.Errorf("compiling syscall_loop: %w", err)
		}
	}
	if t.sidecar == "" {
		t.sidecar = filepath.Join(work, "tracecam-sidecar")
		logf("building sidecar")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.sidecar, "./cmd/tracecam-sidecar")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return t, fmt.Errorf("building sidecar: %w\n%s", err, out)
		}
	} else if _, err := os.Stat(t.sidecar); err != nil {
		return t, fmt.Errorf("-sidecar: %w", err)
	}
	// /proc/PID/stat reports CPU time in clock ticks; ask rather than assume 100.
	tck, err := output(ctx, "getconf", "CLK_TCK")
	if err != nil {
		return t, err
	}
	if t.clkTck, err = strconv.Atoi(tck); err != nil || t.clkTck <= 0 {
		return t, fmt.Errorf("getconf CLK_TCK printed %q", tck)
	}
	return t, nil
}

// moduleRoot walks up from the working directory to tracecam's go.mod, so
// the benchmark runs from anywhere inside the module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding module root: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(data), "module github.com/tracecam/tracecam\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("not inside the tracecam Go module: run from /work/main (make bench)")
		}
		dir = parent
	}
}

// output runs a short command and returns its trimmed stdout.
func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
