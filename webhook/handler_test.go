package webhook

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

const plainPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-","namespace":"shop","annotations":{"tracecam.io/inject":"true"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}`

// edit decodes a review body into maps, lets f change it, and encodes it.
func edit(t testing.TB, body []byte, f func(review, req map[string]any)) []byte {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	req, _ := r["request"].(map[string]any)
	f(r, req)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func podJSON(t testing.TB, pod *corev1.Pod) []byte {
	t.Helper()
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReview(t *testing.T) {
	create := reviewJSON(t, "CREATE", "Pod", []byte(plainPod))
	badAnnotations := podJSON(t, annotated(map[string]string{AnnotationCPURequest: "lots", AnnotationLogLevel: "loud"}))
	huge := podJSON(t, hugePod(500, 1<<20))

	type want struct {
		status   int
		errText  string // 400/413: the body contains it
		patch    bool
		warnings []string // each must appear in one warning, in order
	}
	for _, tc := range []struct {
		name string
		body []byte
		want want
	}{
		{"create", create, want{status: 200, patch: true}},
		{"dry-run create", edit(t, create, func(_, req map[string]any) { req["dryRun"] = true }), want{status: 200, patch: true}},
		{"not annotated", reviewJSON(t, "CREATE", "Pod", []byte(`{"metadata":{"name":"x"},"spec":{"containers":[{"name":"a"}]}}`)), want{status: 200}},
		{"bad annotations", reviewJSON(t, "CREATE", "Pod", badAnnotations),
			want{status: 200, patch: true, warnings: []string{`tracecam.io/cpu-request: "lots"`, `tracecam.io/log-level: "loud"`}}},
		{"huge pod", reviewJSON(t, "CREATE", "Pod", huge), want{status: 200, patch: true, warnings: []string{"segment-threshold", "unknown annotation"}}},
		{"deployment", reviewJSON(t, "CREATE", "Deployment", []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","annotations":{"tracecam.io/inject":"true"}}}`)), want{status: 200}},
		{"update", reviewJSON(t, "UPDATE", "Pod", []byte(plainPod)), want{status: 200}},
		{"delete", reviewJSON(t, "DELETE", "Pod", []byte(plainPod)), want{status: 200}},
		{"connect", reviewJSON(t, "CONNECT", "Pod", []byte(`{"kind":"PodExecOptions"}`)), want{status: 200}},
		{"subresource", edit(t, create, func(_, req map[string]any) { req["subResource"] = "binding" }), want{status: 200}},
		{"pod with a weird kind", edit(t, create, func(_, req map[string]any) {
			req["kind"] = map[string]string{"group": "", "version": "v1", "kind": "Binding"}
		}), want{status: 200}},
		{"undecodable pod", reviewJSON(t, "CREATE", "Pod", []byte(`{"metadata":{"annotations":{"tracecam.io/inject":"true"}},"spec":"nope"}`)),
			want{status: 200, warnings: []string{"tracecam: cannot decode the pod"}}},
		{"pod with wrong types", reviewJSON(t, "CREATE", "Pod", []byte(`{"metadata":{"annotations":{"tracecam.io/inject":1}}}`)),
			want{status: 200, warnings: []string{"cannot decode the pod"}}},
		{"no object", edit(t, create, func(_, req map[string]any) { delete(req, "object") }), want{status: 200, warnings: []string{"carries no pod"}}},
		{"null object", edit(t, create, func(_, req map[string]any) { req["object"] = nil }), want{status: 200, warnings: []string{"carries no pod"}}},
		{"unknown fields", edit(t, create, func(r, req map[string]any) { r["future"] = 1; req["future"] = []int{1} }), want{status: 200, patch: true}},

		{"empty body", nil, want{status: 400, errText: "empty request body"}},
		{"blank body", []byte(" \n\t"), want{status: 400, errText: "empty request body"}},
		{"garbage", []byte("\x00\xffnot json{"), want{status: 400, errText: "not an AdmissionReview"}},
		{"truncated", create[:len(create)/2], want{status: 400, errText: "not an AdmissionReview"}},
		{"json array", []byte(`[1,2]`), want{status: 400, errText: "not an AdmissionReview"}},
		{"json null", []byte(`null`), want{status: 400, errText: "want apiVersion admission.k8s.io/v1"}},
		{"v1beta1", edit(t, create, func(r, _ map[string]any) { r["apiVersion"] = "admission.k8s.io/v1beta1" }),
			want{status: 400, errText: `got apiVersion "admission.k8s.io/v1beta1"`}},
		{"wrong kind", edit(t, create, func(r, _ map[string]any) { r["kind"] = "Pod" }), want{status: 400, errText: `kind "Pod"`}},
		{"no request", edit(t, create, func(r, _ map[string]any) { delete(r, "request") }), want{status: 400, errText: "no request"}},
		{"no uid", edit(t, create, func(_, req map[string]any) { delete(req, "uid") }), want{status: 400, errText: "no uid"}},
		{"oversized", append(create, bytes.Repeat([]byte(" "), MaxBodyBytes)...), want{status: 413, errText: "exceeds the limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, resp := Review(tc.body, testConfig())
			if status != tc.want.status {
				t.Fatalf("status %d, want %d: %.300s", status, tc.want.status, resp)
			}
			if status != 200 {
				if !strings.Contains(string(resp), tc.want.errText) {
					t.Fatalf("error %q does not contain %q", resp, tc.want.errText)
				}
				return
			}
			r := decodeResponse(t, resp)
			var in struct {
				Request struct {
					UID    string          `json:"uid"`
					Object json.RawMessage `json:"object"`
				} `json:"request"`
			}
			if err := json.Unmarshal(tc.body, &in); err != nil {
				t.Fatal(err)
			}
			if string(r.UID) != in.Request.UID || !r.Allowed || r.Result != nil {
				t.Fatalf("response uid %q allowed %v result %+v; request uid %q", r.UID, r.Allowed, r.Result, in.Request.UID)
			}
			if (r.Patch != nil) != tc.want.patch {
				t.Fatalf("patch %.200s, want patch=%v", r.Patch, tc.want.patch)
			}
			if len(r.Warnings) != len(tc.want.warnings) {
				t.Fatalf("warnings %q, want %q", r.Warnings, tc.want.warnings)
			}
			for i, w := range tc.want.warnings {
				if !strings.Contains(r.Warnings[i], w) {
					t.Errorf("warning %q does not contain %q", r.Warnings[i], w)
				}
			}
			if r.Patch == nil {
				return
			}
			// The patch applies to the object as the API server sent it and
			// gives the pod Inject makes.
			got := applyPatch(t, in.Request.Object, r.Patch)
			var pod corev1.Pod
			if err := json.Unmarshal(in.Request.Object, &pod); err != nil {
				t.Fatal(err)
			}
			want, _ := Inject(&pod, "shop", testConfig())
			if !samePod(t, got, podJSON(t, want)) {
				t.Fatalf("patched pod differs from Inject's")
			}
			var patched corev1.Pod
			json.Unmarshal(got, &patched)
			if sidecar(t, &patched).Image != testConfig().Image {
				t.Fatal("no sidecar after patching")
			}
		})
	}
}

// TestReviewMisconfigured: a config without image allows pods unchanged.
func TestReviewMisconfigured(t *testing.T) {
	status, resp := Review(reviewJSON(t, "CREATE", "Pod", []byte(plainPod)), Config{})
	if status != 200 {
		t.Fatal(status)
	}
	if r := decodeResponse(t, resp); !r.Allowed || r.Patch != nil {
		t.Fatalf("%+v", r)
	}
}

func TestHandler(t *testing.T) {
	var logs bytes.Buffer
	h := Handler(testConfig(), slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	srv := httptest.NewServer(h)
	defer srv.Close()

	post := func(contentType string, body io.Reader) *http.Response {
		t.Helper()
		resp, err := http.Post(srv.URL, contentType, body)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	create := reviewJSON(t, "CREATE", "Pod", []byte(plainPod))
	notAnnotated := reviewJSON(t, "CREATE", "Pod", []byte(`{"metadata":{"name":"x"}}`))

	for _, tc := range []struct {
		name        string
		do          func() *http.Response
		status      int
		contentType string
	}{
		{"inject", func() *http.Response { return post("application/json", bytes.NewReader(create)) }, 200, "application/json"},
		{"charset parameter", func() *http.Response {
			return post("application/json; charset=utf-8", bytes.NewReader(create))
		}, 200, "application/json"},
		{"skip", func() *http.Response { return post("application/json", bytes.NewReader(notAnnotated)) }, 200, "application/json"},
		{"ignore", func() *http.Response {
			return post("application/json", bytes.NewReader(reviewJSON(t, "DELETE", "Pod", []byte(plainPod))))
		}, 200, "application/json"},
		{"garbage", func() *http.Response { return post("application/json", strings.NewReader("garbage")) }, 400, "text/plain; charset=utf-8"},
		{"empty", func() *http.Response { return post("application/json", http.NoBody) }, 400, "text/plain; charset=utf-8"},
		{"GET", func() *http.Response {
			resp, err := http.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", resp.Header.Get("Allow"))
			}
			return resp
		}, 405, "text/plain; charset=utf-8"},
		{"yaml", func() *http.Response { return post("application/yaml", bytes.NewReader(create)) }, 415, "text/plain; charset=utf-8"},
		{"no content type", func() *http.Response { return post("", bytes.NewReader(create)) }, 415, "text/plain; charset=utf-8"},
		{"too large, length known", func() *http.Response {
			return post("application/json", bytes.NewReader(make([]byte, MaxBodyBytes+1)))
		}, 413, "text/plain; charset=utf-8"},
		{"too large, chunked", func() *http.Response {
			// A reader without a length: sent chunked, cut by MaxBytesReader.
			return post("application/json", io.MultiReader(bytes.NewReader(create), strings.NewReader(strings.Repeat(" ", MaxBodyBytes))))
		}, 413, "text/plain; charset=utf-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.do()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != tc.contentType {
				t.Fatalf("%d %q: %.200s; want %d %q", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status, tc.contentType)
			}
			if tc.status == 200 {
				decodeResponse(t, body)
			}
		})
	}

	want := Metrics{Injected: 2, Skipped: 1, Ignored: 1, Errors: 7}
	if got := h.Metrics(); got != want {
		t.Errorf("metrics %+v, want %+v", got, want)
	}
	var injected, skipped, failed int
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		switch rec["outcome"] {
		case "injected":
			injected++
			if rec["level"] != "INFO" || rec["pod"] != "web-*" || rec["namespace"] != "shop" || rec["uid"] == nil {
				t.Errorf("injection log %v", rec)
			}
		case "skipped":
			skipped++
			if rec["level"] != "DEBUG" { // not opted in
				t.Errorf("skip log %v", rec)
			}
		}
		if rec["level"] == "WARN" {
			failed++
		}
	}
	if injected != 2 || skipped != 1 || failed != 7 {
		t.Errorf("logged %d injected, %d skipped, %d failed:\n%s", injected, skipped, failed, logs.String())
	}
}

func TestHandlerNilLogger(t *testing.T) {
	h := Handler(testConfig(), nil)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(reviewJSON(t, "CREATE", "Pod", []byte(plainPod))))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || h.Metrics().Injected != 1 {
		t.Fatalf("%d %+v", rec.Code, h.Metrics())
	}
}
