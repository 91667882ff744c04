package e2e

// The field cases of issue 6 (docs/cases/): each classic slow-request story
// reproduced with real programs, diagnosed by the real sidecar, and checked
// against the ground truth the workload (or the test's own fault injector)
// knows. This file is the harness they share; each case is in
// case<N>_<name>_test.go.
//
// With TRACECAM_CASES_OUT=DIR (`make cases` sets it to docs/cases/output),
// every case writes the camera view of its key trace to DIR/<page>.txt and
// rewrites the matching block of docs/cases/<page>.md, so the pages show
// real output, never output typed by hand.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// casesOutEnv names the directory the cases write their camera output to.
const casesOutEnv = "TRACECAM_CASES_OUT"

// caseRequireTools fails the case with one clear line for each program it needs
// that is not installed (make deps installs them).
func caseRequireTools(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("this case needs %s on PATH (make deps installs the Debian packages)", strings.Join(missing, ", "))
	}
}

// caseResp is one traced request as the client saw it.
type caseResp struct {
	TraceID string
	Path    string
	Status  int
	Header  http.Header
	Body    string
	Elapsed time.Duration
}

// caseClient sends real HTTP/1.1 requests from the test process (outside
// every watched cgroup), one connection per request, each with a W3C
// traceparent so its profile can be found.
var caseClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true},
	Timeout:   60 * time.Second,
}

func caseGet(url string) (caseResp, error) {
	id := newTraceID()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return caseResp{}, err
	}
	req.Header.Set("traceparent", "00-"+id+"-00f067aa0ba902b7-01")
	start := time.Now()
	resp, err := caseClient.Do(req)
	if err != nil {
		return caseResp{TraceID: id}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r := caseResp{TraceID: id, Path: req.URL.Path, Status: resp.StatusCode, Header: resp.Header,
		Body: string(body), Elapsed: time.Since(start)}
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return r, err
}

// caseMustGet is caseGet that fails the test on any error.
func caseMustGet(t *testing.T, url string) caseResp {
	t.Helper()
	r, err := caseGet(url)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// waitCaseProfiles returns the profile of every trace in ids, failing after
// timeout with the ones still missing.
func (s *sidecar) waitCaseProfiles(t *testing.T, ids []string, timeout time.Duration) map[string]*profile.Profile {
	t.Helper()
	out := map[string]*profile.Profile{}
	deadline := time.Now().Add(timeout)
	for {
		for _, id := range ids {
			if out[id] == nil {
				if p := s.find(id); p != nil {
					out[id] = p
				}
			}
		}
		if len(out) == len(ids) {
			return out
		}
		if time.Now().After(deadline) {
			var missing []string
			for _, id := range ids {
				if out[id] == nil {
					missing = append(missing, id)
				}
			}
			t.Fatalf("no profile for %d of %d traces after %v (first missing %s); sidecar stderr:\n%s",
				len(missing), len(ids), timeout, missing[0], s.stderr())
		}
		select {
		case <-s.changed:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// caseTraceText is the camera view of a trace as a person asks for it:
// GET /v1/traces/{id}?format=text, waiting until it holds want profiles
// (a cross-pod trace arrives through Redis).
func (s *sidecar) caseTraceText(t *testing.T, id string, want int) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, js := curl(t, "http://"+s.httpAddr+"/v1/traces/"+id)
		var resp struct{ Profiles []json.RawMessage }
		if code == 200 && json.Unmarshal([]byte(js), &resp) == nil && len(resp.Profiles) >= want {
			code, text := curl(t, "http://"+s.httpAddr+"/v1/traces/"+id+"?format=text")
			if code != 200 {
				t.Fatalf("GET /v1/traces/%s?format=text: %d %s", id, code, text)
			}
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/traces/%s never had %d profiles: %d %s", id, want, code, js)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// caseRepoRoot is the module root (the e2e tests run in e2e/).
func caseRepoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// casePublish records text as the camera output named name ("1-cpu", or
// "1-cpu.cheap" for a second block of page 1-cpu). It is always logged; with
// TRACECAM_CASES_OUT set it is also written to DIR/<name>.txt and into
// docs/cases/<page>.md between the markers
//
//	<!-- BEGIN output/<name>.txt -->
//	<!-- END output/<name>.txt -->
//
// which must be there: a page that lost its markers fails the run.
func casePublish(t *testing.T, name, text string) {
	t.Helper()
	t.Logf("camera output %s:\n%s", name, text)
	dir := os.Getenv(casesOutEnv)
	if dir == "" {
		return
	}
	root := caseRepoRoot(t)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(root, dir) // relative to the repository, not to e2e/
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := name + ".txt"
	if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	page := filepath.Join(root, "docs", "cases", strings.SplitN(name, ".", 2)[0]+".md")
	src, err := os.ReadFile(page)
	if err != nil {
		t.Errorf("case page for %s: %v", name, err)
		return
	}
	out, err := caseReplaceBlock(string(src), "output/"+file, text)
	if err != nil {
		t.Errorf("%s: %v", page, err)
		return
	}
	if out != string(src) {
		if err := os.WriteFile(page, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// caseReplaceBlock puts text, fenced, between the BEGIN and END markers of key.
func caseReplaceBlock(doc, key, text string) (string, error) {
	begin, end := "<!-- BEGIN "+key+" -->", "<!-- END "+key+" -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("no %q … %q markers", begin, end)
	}
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return doc[:i+len(begin)] + "\n```text\n" + text + "```\n" + doc[j:], nil
}

// caseDrillList is step 1 of the drill as the API answers it: the slowest
// recent profiles (GET /v1/profiles?min_duration_ms=&limit=), one line each
// with the fields a person scans: path, duration, serving thread, cause
// and summary.
func (s *sidecar) caseDrillList(t *testing.T, minMS, limit int) ([]*profile.Profile, string) {
	t.Helper()
	code, body := curl(t, fmt.Sprintf("http://%s/v1/profiles?min_duration_ms=%d&limit=%d", s.httpAddr, minMS, limit))
	if code != 200 {
		t.Fatalf("GET /v1/profiles: %d %s", code, body)
	}
	var resp struct{ Profiles []*profile.Profile }
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("GET /v1/profiles: %v", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "$ curl -s 'localhost:7071/v1/profiles?min_duration_ms=%d&limit=%d' \\\n"+
		"    | jq -r '.profiles[] | [.trace_id, .method, .path, .duration_ns, .thread_name, .diagnosis.cause, .diagnosis.summary] | @tsv'\n",
		minMS, limit)
	for _, p := range resp.Profiles {
		fmt.Fprintf(&b, "%s  %s %-12s %10s  %-9s %-5s  %s\n", p.TraceID[:8]+"…", p.Method, p.Path,
			profile.FormatDuration(p.DurationNS), p.ThreadName, p.Diagnosis.Cause, p.Diagnosis.Summary)
	}
	return resp.Profiles, b.String()
}

// caseWithin says whether got is within frac (0.10 = 10%) of want.
func caseWithin(got, want, frac float64) bool {
	d := got - want
	if d < 0 {
		d = -d
	}
	return d <= frac*want
}

// caseHeaderMS reads a header holding microseconds, as milliseconds.
func caseHeaderMS(t *testing.T, r caseResp, name string) float64 {
	t.Helper()
	var us float64
	if _, err := fmt.Sscan(r.Header.Get(name), &us); err != nil {
		t.Fatalf("%s of %s %s: %q: %v", name, r.Path, r.TraceID, r.Header.Get(name), err)
	}
	return us / 1000
}

var caseSpaceRe = regexp.MustCompile(`\s+`)

// caseOneLine squeezes a diagnosis into a single log line.
func caseOneLine(s string) string { return caseSpaceRe.ReplaceAllString(s, " ") }

// caseRunFor calls f in n goroutines until ctx ends, collecting what they return.
func caseRunFor(ctx context.Context, n int, f func(i int) (caseResp, bool)) <-chan caseResp {
	out := make(chan caseResp, 10000)
	done := make(chan struct{})
	for i := 0; i < n; i++ {
		go func(i int) {
			defer func() { done <- struct{}{} }()
			for ctx.Err() == nil {
				if r, ok := f(i); ok {
					select {
					case out <- r:
					default:
					}
				}
			}
		}(i)
	}
	go func() {
		for i := 0; i < n; i++ {
			<-done
		}
		close(out)
	}()
	return out
}
