// Command stress runs every end-to-end test many times, on a quiet machine
// and under a CPU load that keeps every core busy, and reports how often
// each passed: the check that a green `make test` means "the product is
// right", not "this machine's timings happened to fit".
//
// Under load the camera may rightly say runq (the serving thread waited for
// a CPU), and the tests accept that only where the thread's own schedstat
// agrees; a test that fails under load is a test or a product bug to look
// at, one that is not 10/10 on a quiet machine must be fixed.
//
// Run as root from the module root (make test-stress does):
//
//	go run ./e2e/stress -runs 10 -out docs/testing.md
//
// The report replaces the block between the STRESS BEGIN/END markers of
// -out (or is printed when -out is empty).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	runs := flag.Int("runs", 10, "runs of each test in each mode")
	out := flag.String("out", "", "markdown file whose STRESS block receives the report")
	only := flag.String("run", "", "regexp: only the tests it matches")
	modes := flag.String("modes", "quiet,loaded", "quiet, loaded, or both")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *runs, *out, *only, strings.Split(*modes, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "stress:", err)
		os.Exit(1)
	}
}

// result is what one test did in one mode.
type result struct {
	pass, fail int
	elapsed    time.Duration
	firstFail  string // the first failure's first lines
}

func run(ctx context.Context, runs int, out, only string, modes []string) error {
	dir, err := os.MkdirTemp("", "tracecam-stress")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "e2e.test")
	if b, err := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, "./e2e/").CombinedOutput(); err != nil {
		return fmt.Errorf("building the e2e tests: %v\n%s", err, b)
	}
	tests, err := listTests(ctx, bin, only)
	if err != nil {
		return err
	}
	results := map[string]map[string]*result{}
	started := time.Now()
	for _, mode := range modes {
		var load *exec.Cmd
		switch mode {
		case "quiet":
		case "loaded":
			if load, err = startLoad(ctx); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown mode %q (quiet, loaded)", mode)
		}
		results[mode] = map[string]*result{}
		for _, name := range tests {
			r := runTest(ctx, bin, name, runs)
			results[mode][name] = r
			fmt.Fprintf(os.Stderr, "%-7s %-45s %2d/%d  %s\n", mode, name, r.pass, r.pass+r.fail, r.elapsed.Round(time.Second))
			if ctx.Err() != nil {
				break
			}
		}
		if load != nil {
			load.Process.Kill()
			load.Wait()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	report := render(tests, modes, results, runs, time.Since(started))
	if out == "" {
		fmt.Print(report)
		return nil
	}
	return replaceBlock(out, report)
}

// listTests asks the test binary for its top-level tests.
func listTests(ctx context.Context, bin, only string) ([]string, error) {
	pat := "."
	if only != "" {
		pat = only
	}
	b, err := exec.CommandContext(ctx, bin, "-test.list", pat).Output()
	if err != nil {
		return nil, fmt.Errorf("listing tests: %w", err)
	}
	var tests []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Test") {
			tests = append(tests, strings.TrimSpace(l))
		}
	}
	if len(tests) == 0 {
		return nil, errors.New("no tests matched")
	}
	return tests, nil
}

// startLoad keeps every CPU busy: stress-ng's CPU stressors, one per CPU.
func startLoad(ctx context.Context) (*exec.Cmd, error) {
	if _, err := exec.LookPath("stress-ng"); err != nil {
		return nil, errors.New("stress-ng not found: make test-stress installs it (Debian package stress-ng)")
	}
	cmd := exec.CommandContext(ctx, "stress-ng", "--cpu", fmt.Sprint(runtime.NumCPU()), "--quiet")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting stress-ng: %w", err)
	}
	time.Sleep(time.Second) // let the stressors spin up
	return cmd, nil
}

var topLevel = regexp.MustCompile(`^--- (PASS|FAIL|SKIP): (\S+) `)

// runTest runs one test runs times in one process (-test.count), so the
// sidecar build in TestMain is paid once.
func runTest(ctx context.Context, bin, name string, runs int) *result {
	r := &result{}
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "-test.run", "^"+regexp.QuoteMeta(name)+"$", "-test.count", fmt.Sprint(runs),
		"-test.v", "-test.timeout", "60m")
	cmd.Dir = "e2e"
	cmd.Env = append(os.Environ(), "TRACECAM_REQUIRE_KUBE=1")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		r.fail = runs
		r.firstFail = err.Error()
		return r
	}
	var recent []string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		l := sc.Text()
		recent = append(recent, l)
		if len(recent) > 400 {
			recent = recent[1:]
		}
		m := topLevel.FindStringSubmatch(l)
		if m == nil || m[2] != name {
			continue
		}
		switch m[1] {
		case "PASS", "SKIP":
			r.pass++
		case "FAIL":
			r.fail++
			if r.firstFail == "" {
				r.firstFail = failureLines(recent)
				keepLog(name, recent)
			}
		}
		recent = recent[:0] // the next run's lines are its own
	}
	cmd.Wait()
	// A crash or a timeout ends the process before every run reported.
	if missing := runs - r.pass - r.fail; missing > 0 {
		r.fail += missing
		if r.firstFail == "" {
			r.firstFail = failureLines(recent)
			keepLog(name, recent)
		}
	}
	r.elapsed = time.Since(start)
	return r
}

// keepLog writes a failed run's whole output to .cache/stress/, for the
// reader of a report line that had to be short.
func keepLog(name string, lines []string) {
	dir := filepath.Join(".cache", "stress")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	f := filepath.Join(dir, name+"-"+time.Now().UTC().Format("150405")+".log")
	if err := os.WriteFile(f, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err == nil {
		fmt.Fprintf(os.Stderr, "        failed run's output: %s\n", f)
	}
}

// failureWords mark the test output lines that likely report a failure when
// the source line does not say (a helper marked t.Helper reports its caller's
// line).
var failureWords = []string{"want", "got", "diagnosed", "blamed", "charged", "differs", "no profile", "not ", "timeout", "exited"}

var logPosition = regexp.MustCompile(`^(\w+_test\.go):(\d+): `)

// failureLines keeps the error lines of a failure, short. t.Errorf and t.Logf
// lines look alike in the output, so the source line the output names decides.
func failureLines(lines []string) string {
	var keep []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "panic") {
			keep = append(keep, t)
			continue
		}
		m := logPosition.FindStringSubmatch(t)
		if m == nil || m[1] == "harness_test.go" {
			continue
		}
		switch sourceCall(m[1], m[2]) {
		case "fail":
			keep = append(keep, t)
		case "log":
		default:
			for _, w := range failureWords {
				if strings.Contains(t, w) {
					keep = append(keep, t)
					break
				}
			}
		}
	}
	if len(keep) == 0 && len(lines) > 0 {
		keep = lines[len(lines)-min(3, len(lines)):]
	}
	s := strings.Join(keep, " / ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// sourceCall says whether e2e/<file> line n (or the two before it: a call
// spread over lines) reports a failure ("fail"), logs ("log"), or neither
// (a helper: "").
func sourceCall(file, line string) string {
	b, err := os.ReadFile(filepath.Join("e2e", file))
	if err != nil {
		return ""
	}
	var n int
	fmt.Sscan(line, &n)
	src := strings.Split(string(b), "\n")
	for i := n - 1; i >= 0 && i >= n-3 && i < len(src); i-- {
		s := src[i]
		switch {
		case strings.Contains(s, ".Error") || strings.Contains(s, ".Fatal"):
			return "fail"
		case strings.Contains(s, ".Log"):
			return "log"
		}
	}
	return ""
}

func render(tests, modes []string, results map[string]map[string]*result, runs int, took time.Duration) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "Last run: %s on %s (%d CPUs), %d runs of each test per mode, %s in all. ",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), host, runtime.NumCPU(), runs, took.Round(time.Second))
	b.WriteString("Loaded = `stress-ng --cpu <CPUs>` running throughout.\n\n")
	b.WriteString("| test |")
	for _, m := range modes {
		fmt.Fprintf(&b, " %s |", m)
	}
	b.WriteString("\n|---|")
	for range modes {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	sort.Strings(tests)
	var notes []string
	for _, t := range tests {
		fmt.Fprintf(&b, "| %s |", t)
		for _, m := range modes {
			r := results[m][t]
			if r == nil {
				b.WriteString(" – |")
				continue
			}
			mark := ""
			if r.fail > 0 {
				mark = " ✗"
				notes = append(notes, fmt.Sprintf("* %s, %s: %s", t, m, r.firstFail))
			}
			fmt.Fprintf(&b, " %d/%d%s |", r.pass, r.pass+r.fail, mark)
		}
		b.WriteString("\n")
	}
	if len(notes) > 0 {
		b.WriteString("\nFirst failure of each:\n\n")
		b.WriteString(strings.Join(notes, "\n"))
		b.WriteString("\n")
	}
	return b.String()
}

const beginMark, endMark = "<!-- STRESS BEGIN -->", "<!-- STRESS END -->"

// replaceBlock writes report between the markers of file.
func replaceBlock(file, report string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s … %s block", file, beginMark, endMark)
	}
	s = s[:i+len(beginMark)] + "\n" + report + s[j:]
	return os.WriteFile(file, []byte(s), 0o644)
}
