package webhook

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/*.out.yaml from the current output")

// testConfig is the configuration golden cases start from.
func testConfig() Config {
	c := DefaultConfig()
	c.Image = "registry.example/tracecam/sidecar:v0.0.0-test"
	c.Version = "v0.0.0-test"
	c.ClusterName = "test"
	return c
}

// goldenCases names every testdata/NAME.in.yaml and the config it is
// injected with (testConfig, changed by cfg when set).
var goldenCases = []struct {
	name string
	cfg  func(*Config)
}{
	{name: "plain"},
	{name: "existing-volumes"},
	{name: "legacy", cfg: func(c *Config) { c.NativeSidecar = false }},
	{name: "legacy-job", cfg: func(c *Config) { c.NativeSidecar = false }},
	{name: "overrides-valid"},
	{name: "overrides-invalid"},
	{name: "not-annotated"},
	{name: "inject-not-true"},
	{name: "annotation-capital-true"},
	{name: "host-network"},
	{name: "host-pid"},
	{name: "privileged"},
	{name: "conflicts"},
	{name: "redis-password", cfg: func(c *Config) {
		c.RedisAddr = "redis.tracecam:6379"
		c.RedisPasswordSecret = "tracecam-redis"
	}},
	{name: "already-injected"},
	{name: "container-named-tracecam"},
}

func goldenConfig(t testing.TB, name string) Config {
	t.Helper()
	for _, c := range goldenCases {
		if c.name == name {
			cfg := testConfig()
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			return cfg
		}
	}
	t.Fatalf("no golden case %q", name)
	return Config{}
}

// readPod reads a YAML pod, returning its JSON as written (the raw object
// an API server would send, without the zero fields Go would add) and the
// decoded pod.
func readPod(t testing.TB, path string) ([]byte, *corev1.Pod) {
	t.Helper()
	y, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.YAMLToJSON(y)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return raw, &pod
}

// applyPatch applies an RFC 6902 patch to doc (nil patch: doc unchanged).
func applyPatch(t testing.TB, doc, patch []byte) []byte {
	t.Helper()
	if len(patch) == 0 {
		return doc
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("decoding patch %s: %v", patch, err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("applying patch %s: %v", patch, err)
	}
	return out
}

// samePod reports whether two JSON documents decode to the same pod.
func samePod(t testing.TB, a, b []byte) bool {
	t.Helper()
	var pa, pb corev1.Pod
	if err := json.Unmarshal(a, &pa); err != nil {
		t.Fatalf("decoding %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &pb); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	ja, _ := json.Marshal(&pa)
	jb, _ := json.Marshal(&pb)
	return bytes.Equal(ja, jb)
}

// golden renders what the golden file holds: the report as comments, then
// the patched pod.
func golden(t testing.TB, name string, rep Report, patched []byte) []byte {
	t.Helper()
	y, err := yaml.JSONToYAML(patched)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Generated from %s.in.yaml by TestGolden; go test ./webhook -run TestGolden -update rewrites it.\n", name)
	fmt.Fprintf(&b, "# injected: %v\n# reason: %s\n", rep.Injected, rep.Reason)
	for _, w := range rep.Warnings {
		fmt.Fprintf(&b, "# warning: %s\n", w)
	}
	b.Write(y)
	return b.Bytes()
}

// TestGolden injects every testdata/*.in.yaml, applies the patch to the
// pod's JSON as written, and compares with testdata/*.out.yaml. The same
// pod sent through Review must give the same result.
func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			cfg := goldenConfig(t, c.name)
			raw, pod := readPod(t, filepath.Join("testdata", c.name+".in.yaml"))
			before, _ := json.Marshal(pod)

			mutated, rep := Inject(pod, pod.Namespace, cfg)
			if after, _ := json.Marshal(pod); !bytes.Equal(before, after) {
				t.Fatal("Inject modified its input")
			}
			var patch []byte
			if rep.Injected {
				var err error
				if patch, err = Patch(pod, mutated); err != nil {
					t.Fatal(err)
				}
			} else {
				mb, _ := json.Marshal(mutated)
				if !bytes.Equal(before, mb) {
					t.Fatalf("skipped (%s) but the returned pod differs", rep.Reason)
				}
			}
			patched := applyPatch(t, raw, patch)
			mj, _ := json.Marshal(mutated)
			if !samePod(t, patched, mj) {
				t.Fatalf("patched pod differs from Inject's result:\npatched: %s\ninject:  %s", patched, mj)
			}

			got := golden(t, c.name, rep, patched)
			outPath := filepath.Join("testdata", c.name+".out.yaml")
			if *update {
				if err := os.WriteFile(outPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs (run with -update to accept):\n%s", outPath, lineDiff(string(want), string(got)))
			}

			// Through the admission path: same patch result, same warnings.
			status, resp := Review(reviewJSON(t, "CREATE", "Pod", raw), cfg)
			if status != 200 {
				t.Fatalf("Review: %d %s", status, resp)
			}
			r := decodeResponse(t, resp)
			if !r.Allowed {
				t.Fatal("Review did not allow the pod")
			}
			if rep.Injected != (r.Patch != nil) {
				t.Fatalf("Review patch %s, Inject injected=%v", r.Patch, rep.Injected)
			}
			if viaReview := applyPatch(t, raw, r.Patch); !samePod(t, viaReview, patched) {
				t.Errorf("Review's patch gives\n%s\nInject's gives\n%s", viaReview, patched)
			}
			if strings.Join(r.Warnings, "\n") != strings.Join(rep.Warnings, "\n") {
				t.Errorf("Review warnings %q, Inject warnings %q", r.Warnings, rep.Warnings)
			}
		})
	}
}

// TestGoldenFiles checks that every .in.yaml is a golden case with an
// .out.yaml, and that no .out.yaml is left without its .in.yaml.
func TestGoldenFiles(t *testing.T) {
	ins, _ := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	outs, _ := filepath.Glob(filepath.Join("testdata", "*.out.yaml"))
	names := map[string]bool{}
	for _, c := range goldenCases {
		names[c.name] = true
	}
	inSet := map[string]bool{}
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		inSet[name] = true
		if !names[name] {
			t.Errorf("%s is not listed in goldenCases", in)
		}
		if _, err := os.Stat(filepath.Join("testdata", name+".out.yaml")); err != nil {
			t.Errorf("%s has no .out.yaml (run go test -run TestGolden -update)", in)
		}
	}
	for name := range names {
		if !inSet[name] {
			t.Errorf("golden case %q has no testdata/%s.in.yaml", name, name)
		}
	}
	for _, out := range outs {
		name := strings.TrimSuffix(filepath.Base(out), ".out.yaml")
		if !inSet[name] {
			t.Errorf("stale %s: no %s.in.yaml", out, name)
		}
	}
	if len(ins) < 10 {
		t.Errorf("only %d golden inputs", len(ins))
	}
}

// TestReinjectGolden: injecting any golden output again changes nothing.
func TestReinjectGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			_, pod := readPod(t, filepath.Join("testdata", c.name+".out.yaml"))
			cfg := goldenConfig(t, c.name)
			again, rep := Inject(pod, pod.Namespace, cfg)
			if rep.Injected {
				t.Fatalf("re-injected: %+v", rep)
			}
			if _, opted := pod.Annotations[AnnotationStatus]; opted && !strings.Contains(rep.Reason, "already injected") {
				t.Errorf("reason %q does not say already injected", rep.Reason)
			}
			p, err := Patch(pod, again)
			if err != nil || string(p) != "[]" {
				t.Errorf("re-injection patch %s, %v", p, err)
			}
		})
	}
}

// lineDiff shows the lines that differ, enough to see what changed.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n- %s\n+ %s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// reviewJSON wraps a raw object in an AdmissionReview request for kind
// (Pod, or Deployment) and operation.
func reviewJSON(t testing.TB, op, kind string, object []byte) []byte {
	t.Helper()
	group, version, resource := "", "v1", "pods"
	if kind == "Deployment" {
		group, version, resource = "apps", "v1", "deployments"
	}
	req := map[string]any{
		"uid":       "705ab4f5-6393-11e8-b7cc-42010a800002",
		"kind":      map[string]string{"group": group, "version": version, "kind": kind},
		"resource":  map[string]string{"group": group, "version": version, "resource": resource},
		"namespace": "shop",
		"operation": op,
		"userInfo":  map[string]any{"username": "system:serviceaccount:kube-system:replicaset-controller"},
		"options":   map[string]any{"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
		"dryRun":    false,
	}
	if op == "DELETE" {
		req["oldObject"] = json.RawMessage(object)
		req["object"] = nil
	} else {
		req["object"] = json.RawMessage(object)
	}
	if op == "UPDATE" {
		req["oldObject"] = json.RawMessage(object)
	}
	b, err := json.Marshal(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": req})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeResponse decodes a 200 answer and checks its envelope.
func decodeResponse(t testing.TB, body []byte) *admissionv1.AdmissionResponse {
	t.Helper()
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &ar); err != nil {
		t.Fatalf("response %s: %v", body, err)
	}
	if ar.APIVersion != "admission.k8s.io/v1" || ar.Kind != "AdmissionReview" || ar.Response == nil {
		t.Fatalf("bad response envelope: %s", body)
	}
	if ar.Request != nil {
		t.Fatalf("response echoes the request")
	}
	if ar.Response.Patch != nil && (ar.Response.PatchType == nil || *ar.Response.PatchType != admissionv1.PatchTypeJSONPatch) {
		t.Fatalf("patch without patchType JSONPatch: %s", body)
	}
	return ar.Response
}
