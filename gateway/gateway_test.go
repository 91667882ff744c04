package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/profile"
	"github.com/tracecam/tracecam/sidecar/profilepb"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	traceSlow  = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceTwo   = "0af7651916cd43dd8448eb211c80319c"
	us         = int64(time.Microsecond)
	ms         = int64(time.Millisecond)
	openAPIDoc = `{"swagger":"2.0","info":{"title":"tracecam"}}`
)

var start = time.Date(2026, 11, 27, 6, 40, 1, 123_000_000, time.UTC)

func slowProfile() *profile.Profile {
	return &profile.Profile{
		TraceID: traceSlow, SpanID: "00f067aa0ba902b7", ParentSpanID: "b7ad6b7169203331", TraceSource: "traceparent",
		Namespace: "default", Pod: "demo-7f9", Container: "app",
		PID: 1234, TID: 1240, ThreadName: "node",
		Method: "GET", Path: "/downstream?id=7&full=1", Host: "demo.default.svc", StatusCode: 502,
		Client: "10.0.0.9:41000", Server: "10.0.0.5:8080",
		StartTime: start, DurationNS: 214 * ms, RequestBytes: 84, ResponseBytes: 312,
		Breakdown: map[profile.Category]int64{profile.Net: 205 * ms, profile.CPU: 6 * ms, profile.Runq: 3 * ms},
		Timeline: []profile.Segment{{
			Category: profile.Net, StartOffsetNS: 14 * ms, DurationNS: 192_100 * us, Syscall: "recvfrom",
			FDKind: "socket", FD: 11, Peer: "10.96.14.2:9000", Bytes: 2300,
		}},
		DNS: []profile.DNSQuery{{
			Name: "backend.default.svc.cluster.local", Type: "A", Rcode: "NOERROR", Server: "127.0.0.53:53",
			StartOffsetNS: 1_100 * us, LatencyNS: 12_300 * us, Answered: true,
		}},
		Network: []profile.NetworkPeer{{
			Peer: "10.96.14.2:9000", Protocol: "tcp", BytesSent: 120, BytesReceived: 2300,
			WaitNS: 192_700 * us, StartOffsetNS: 13_800 * us, Calls: 1,
		}},
		Diagnosis: profile.Diagnosis{
			Cause:    profile.CauseNet,
			Summary:  "waited 192.1ms on 10.96.14.2:9000",
			Evidence: []string{"net is 96% of the request"},
			Deviation: &profile.Deviation{
				Verdict: profile.VerdictDeviates, Category: profile.Net,
				ActualNS: 205 * ms, TypicalNS: 8 * ms, ExcessNS: 197 * ms, TotalExcessNS: 199 * ms,
			},
		},
		Baseline: &profile.Baseline{
			Method: "GET", Route: "/downstream", Samples: 240, Warm: true, DurationNS: 15 * ms, DurationP90NS: 19 * ms,
			Breakdown: map[profile.Category]int64{profile.Net: 8 * ms, profile.CPU: 5 * ms, profile.Runq: 1 * ms}, DNSNS: 900 * us,
		},
	}
}

func fastProfile() *profile.Profile {
	return &profile.Profile{
		TraceID: traceTwo, SpanID: "b9c7c989f97918e1", TraceIDGenerated: true,
		PID: 88, TID: 88, ThreadName: "java", Method: "PUT", Path: "/items/42", StatusCode: 204,
		StartTime: start.Add(time.Second), DurationNS: 640 * us,
		Breakdown: map[profile.Category]int64{profile.CPU: 640 * us},
		Diagnosis: profile.Diagnosis{Cause: profile.CauseCPU, Summary: "on CPU"},
	}
}

// fakeServer is a canned ProfilerServer: the gateway tests check the HTTP
// shell, not the profiler.
type fakeServer struct {
	tracecamv1.UnimplementedProfilerServer
	// got records the last ListProfiles request, gotBaselines the last
	// ListBaselines one.
	got          *tracecamv1.ListProfilesRequest
	gotBaselines *tracecamv1.ListBaselinesRequest
}

var traceIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (f *fakeServer) GetTrace(_ context.Context, req *tracecamv1.GetTraceRequest) (*tracecamv1.GetTraceResponse, error) {
	if !traceIDRe.MatchString(req.GetTraceId()) {
		return nil, status.Errorf(codes.InvalidArgument, "trace_id: want 32 hex digits, got %q", req.GetTraceId())
	}
	if req.GetTraceId() != traceSlow {
		return nil, status.Errorf(codes.NotFound, "no profiles for trace %s", req.GetTraceId())
	}
	return &tracecamv1.GetTraceResponse{
		Profiles: []*tracecamv1.Profile{profilepb.ToProto(slowProfile())},
		Sources:  map[string]string{"redis": "unavailable", "local": "ok"},
	}, nil
}

func (f *fakeServer) ListProfiles(_ context.Context, req *tracecamv1.ListProfilesRequest) (*tracecamv1.ListProfilesResponse, error) {
	f.got = req
	if s := req.GetSince(); s != "" {
		if _, err := time.ParseDuration(s); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "since: %q is not a duration", s)
		}
	}
	if req.GetPath() == "/none" {
		return &tracecamv1.ListProfilesResponse{}, nil
	}
	if req.GetPath() == "/slow" {
		return nil, status.Error(codes.DeadlineExceeded, "store timed out")
	}
	return &tracecamv1.ListProfilesResponse{Profiles: []*tracecamv1.Profile{
		profilepb.ToProto(slowProfile()), profilepb.ToProto(fastProfile()),
	}}, nil
}

func (f *fakeServer) ListBaselines(_ context.Context, req *tracecamv1.ListBaselinesRequest) (*tracecamv1.ListBaselinesResponse, error) {
	f.gotBaselines = req
	return &tracecamv1.ListBaselinesResponse{Window: "10m0s", MinSamples: 20, Baselines: []*tracecamv1.Baseline{
		profilepb.BaselineToProto(slowProfile().Baseline),
		{Method: "POST", Route: "/users/{id}/orders", Samples: 7, DurationNs: 3 * ms, DurationP90Ns: 4 * ms, Breakdown: map[string]int64{"cpu": 2 * ms}},
	}}, nil
}

func (f *fakeServer) GetStatus(context.Context, *tracecamv1.GetStatusRequest) (*tracecamv1.Status, error) {
	return &tracecamv1.Status{
		Version: "v0.1.0", Cgroup: "/kubepods/pod1\x1b[2J", CgroupId: 1 << 60, Pod: "demo-7f9", Namespace: "default",
		Probes:     []string{"sched_switch", "sys_enter"},
		EventsSeen: map[string]uint64{"switch": 10, "enter": 20},
		Assembler:  &tracecamv1.AssemblerCounters{Events: 30, ThreadsActive: 2},
		Ready:      true,
	}, nil
}

func newTestHandler(t *testing.T) (http.Handler, *fakeServer) {
	t.Helper()
	srv := &fakeServer{}
	mux, err := NewMux(t.Context(), srv, Options{OpenAPI: []byte(openAPIDoc)})
	if err != nil {
		t.Fatal(err)
	}
	extra := map[string]http.Handler{
		"/healthz":      http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }),
		"/debug/":       http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "debug\n") }),
		"/debug/pprof/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pprof "+r.URL.Path+"\n") }),
	}
	return Handler(mux, extra), srv
}

func do(t *testing.T, h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decodeJSON(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != JSONContentType {
		t.Errorf("Content-Type = %q, want %q", ct, JSONContentType)
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, rec.Body)
	}
	return v
}

func TestGetTraceJSON(t *testing.T) {
	h, _ := newTestHandler(t)
	for _, accept := range []string{"", "application/json", "*/*", "text/html,application/xhtml+xml,*/*;q=0.8"} {
		rec := do(t, h, "GET", "/v1/traces/"+traceSlow, "Accept", accept)
		if rec.Code != http.StatusOK {
			t.Fatalf("Accept %q: status %d: %s", accept, rec.Code, rec.Body)
		}
		body := decodeJSON(t, rec)
		p := body["profiles"].([]any)[0].(map[string]any)
		if _, ok := p["duration_ns"].(json.Number); !ok {
			t.Errorf("duration_ns = %#v, want a JSON number", p["duration_ns"])
		}
		if p["duration_ns"] != json.Number("214000000") {
			t.Errorf("duration_ns = %v", p["duration_ns"])
		}
		if p["start_time"] != "2026-11-27T06:40:01.123Z" {
			t.Errorf("start_time = %v", p["start_time"])
		}
		if _, err := time.Parse(time.RFC3339Nano, p["start_time"].(string)); err != nil {
			t.Errorf("start_time is not RFC 3339: %v", err)
		}
		if b, ok := p["breakdown"].(map[string]any); !ok || b["net"] != json.Number("205000000") {
			t.Errorf("breakdown = %#v", p["breakdown"])
		}
		for _, k := range []string{"trace_id", "span_id", "thread_name", "status_code", "timeline", "dns", "network", "diagnosis", "partial", "partial_reason", "trace_id_generated"} {
			if _, ok := p[k]; !ok {
				t.Errorf("key %q missing", k)
			}
		}
		for k := range p {
			if strings.ContainsAny(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
				t.Errorf("key %q is not snake_case", k)
			}
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Error("no X-Content-Type-Options: nosniff")
		}
	}
}

func TestGetTraceGolden(t *testing.T) {
	h, _ := newTestHandler(t)
	rec := do(t, h, "GET", "/v1/traces/"+traceSlow)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	golden(t, "get_trace.json", rec.Body.Bytes())
	// The golden file is also the contract in readable form: check it is
	// what encoding/json makes of the same profile (numbers, names, time).
	var got struct {
		Profiles []profile.Profile `json:"profiles"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Profiles) != 1 {
		t.Fatalf("%d profiles", len(got.Profiles))
	}
	want := slowProfile()
	gotJSON, _ := json.Marshal(got.Profiles[0])
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("REST JSON does not decode to the profile:\n got %s\nwant %s", gotJSON, wantJSON)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update to accept):\n got %s\nwant %s", path, got, want)
	}
}

func TestText(t *testing.T) {
	h, _ := newTestHandler(t)
	tests := []struct {
		name, target string
		header       []string
		want         []string
	}{
		{"trace format=text", "/v1/traces/" + traceSlow + "?format=text", nil, []string{traceSlow, "net"}},
		{"trace Accept", "/v1/traces/" + traceSlow, []string{"Accept", "text/plain"}, []string{traceSlow, "net"}},
		{"trace Accept list", "/v1/traces/" + traceSlow, []string{"Accept", "text/plain;q=0.9, application/json;q=0.5"}, []string{traceSlow}},
		{"list", "/v1/profiles?format=text", nil, []string{traceSlow, traceTwo, "\n\n"}},
		{"empty list", "/v1/profiles?format=text&path=/none", nil, []string{"no profiles\n"}},
		{"status", "/v1/status?format=text", nil, []string{"version: v0.1.0\n", "ready: true\n", "cgroup_id: 1152921504606846976\n", "events_seen.enter: 20\n", "assembler.events: 30\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, h, "GET", tt.target, tt.header...)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != TextContentType {
				t.Errorf("Content-Type = %q", ct)
			}
			body := rec.Body.String()
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			if strings.Contains(body, "\x1b") {
				t.Errorf("body holds a raw escape: %q", body)
			}
		})
	}
	// Two profiles: the first view, a blank line, the second view.
	rec := do(t, h, "GET", "/v1/profiles?format=text")
	views := strings.Split(rec.Body.String(), "\n\n")
	if len(views) < 2 || !strings.Contains(views[0], traceSlow) || !strings.Contains(views[len(views)-1], traceTwo) {
		t.Errorf("views not separated by a blank line:\n%s", rec.Body)
	}
	// format=json wins over Accept: text/plain.
	rec = do(t, h, "GET", "/v1/traces/"+traceSlow+"?format=json", "Accept", "text/plain")
	decodeJSON(t, rec)
	// text/plain ranked below JSON stays JSON.
	rec = do(t, h, "GET", "/v1/traces/"+traceSlow, "Accept", "text/plain;q=0.2, application/json")
	decodeJSON(t, rec)
}

func TestQueryParameters(t *testing.T) {
	h, srv := newTestHandler(t)
	rec := do(t, h, "GET", "/v1/profiles?min_duration_ms=100&path=/api&limit=5&since=5m&cause=lock&unknown=1")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := srv.got
	if got.GetMinDurationMs() != 100 || got.GetPath() != "/api" || got.GetLimit() != 5 || got.GetSince() != "5m" || got.GetCause() != "lock" {
		t.Errorf("server got %v", got)
	}
	rec = do(t, h, "GET", "/v1/baselines?method=GET&route=/users")
	if rec.Code != http.StatusOK || srv.gotBaselines.GetMethod() != "GET" || srv.gotBaselines.GetRoute() != "/users" {
		t.Errorf("baselines: %d, server got %v", rec.Code, srv.gotBaselines)
	}
}

func TestBaselines(t *testing.T) {
	h, _ := newTestHandler(t)
	rec := do(t, h, "GET", "/v1/baselines")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	body := decodeJSON(t, rec)
	b := body["baselines"].([]any)[0].(map[string]any)
	if b["route"] != "/downstream" || b["duration_ns"] != json.Number("15000000") || b["warm"] != true ||
		b["breakdown"].(map[string]any)["net"] != json.Number("8000000") || body["min_samples"] != json.Number("20") {
		t.Errorf("baselines JSON: %s", rec.Body)
	}
	rec = do(t, h, "GET", "/v1/baselines?format=text")
	want := "baselines over the last 10m0s (medians; judged from 20 requests on)\n" +
		"GET /downstream          240 requests  median 15.0 ms  p90 19.0 ms  net 8.0 ms, cpu 5.0 ms, runq 1.0 ms  (dns 0.9 ms)\n" +
		"POST /users/{id}/orders  7 requests, warming up  median 3.0 ms  p90 4.0 ms  cpu 2.0 ms\n"
	if rec.Code != http.StatusOK || rec.Body.String() != want {
		t.Errorf("baselines text: %d\n%s\nwant\n%s", rec.Code, rec.Body, want)
	}
}

func TestErrors(t *testing.T) {
	h, _ := newTestHandler(t)
	tests := []struct {
		name, method, target string
		status               int
		code                 codes.Code
		errContains          string
	}{
		{"unknown trace", "GET", "/v1/traces/ffffffffffffffffffffffffffffffff", 404, codes.NotFound, "ffffffffffffffffffffffffffffffff"},
		{"bad trace id", "GET", "/v1/traces/nothex", 400, codes.InvalidArgument, "trace_id"},
		{"bad since", "GET", "/v1/profiles?since=yesterday", 400, codes.InvalidArgument, "since"},
		{"limit not a number", "GET", "/v1/profiles?limit=many", 400, codes.InvalidArgument, "limit"},
		{"deadline", "GET", "/v1/profiles?path=/slow", 504, codes.DeadlineExceeded, "timed out"},
		{"unknown path", "GET", "/v2/nothing", 404, codes.NotFound, "/v2/nothing"},
		{"wrong method", "POST", "/v1/profiles", 405, codes.Unimplemented, "POST"},
		{"too long", "GET", "/v1/profiles?path=" + strings.Repeat("a", MaxURLBytes), 414, codes.InvalidArgument, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, h, tt.method, tt.target)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			var body ErrorBody
			dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				t.Fatalf("error body: %v: %s", err, rec.Body)
			}
			if body.Code != tt.code || body.Status != tt.status || !strings.Contains(body.Error, tt.errContains) {
				t.Errorf("body %+v, want code %d, status %d, error containing %q", body, tt.code, tt.status, tt.errContains)
			}
			if ct := rec.Header().Get("Content-Type"); ct != JSONContentType {
				t.Errorf("Content-Type = %q", ct)
			}
			// The code is a number on the wire, not a name.
			if !strings.Contains(rec.Body.String(), `"code":`+jsonInt(int(tt.code))) {
				t.Errorf("code is not a number: %s", rec.Body)
			}
		})
	}
	if rec := do(t, h, "POST", "/v1/profiles"); rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("405 without Allow: %v", rec.Header())
	}
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestErrorsText(t *testing.T) {
	h, _ := newTestHandler(t)
	tests := []struct {
		target string
		header []string
		want   string
	}{
		{"/v1/traces/ffffffffffffffffffffffffffffffff?format=text", nil, "404 Not Found: no profiles for trace ffffffffffffffffffffffffffffffff\n"},
		{"/v1/profiles?since=x", []string{"Accept", "text/plain"}, "400 Bad Request: since: \"x\" is not a duration\n"},
		{"/nothing?format=text", nil, "404 Not Found: no such endpoint: \"/nothing\"\n"},
		// A crafted trace ID cannot reach the terminal raw.
		{"/v1/traces/%1b%5b2J?format=text", nil, "400 Bad Request: trace_id: want 32 hex digits, got \"\\x1b[2J\"\n"},
	}
	for _, tt := range tests {
		rec := do(t, h, "GET", tt.target, tt.header...)
		if got := rec.Body.String(); got != tt.want {
			t.Errorf("%s: body %q, want %q", tt.target, got, tt.want)
		}
		if ct := rec.Header().Get("Content-Type"); ct != TextContentType {
			t.Errorf("%s: Content-Type = %q", tt.target, ct)
		}
	}
}

func TestHTTPStatus(t *testing.T) {
	for c, want := range map[codes.Code]int{
		codes.NotFound: 404, codes.InvalidArgument: 400, codes.Unavailable: 503, codes.DeadlineExceeded: 504,
		codes.Internal: 500, codes.Unimplemented: 501, codes.ResourceExhausted: 429, codes.Canceled: 499,
	} {
		if got := HTTPStatus(c); got != want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", c, got, want)
		}
	}
	// Unavailable from the server reaches the client as 503.
	mux, err := NewMux(t.Context(), unavailable{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := do(t, Handler(mux, nil), "GET", "/v1/status")
	if rec.Code != 503 || !strings.Contains(rec.Body.String(), `"code":14`) {
		t.Errorf("got %d %s", rec.Code, rec.Body)
	}
	// No OpenAPI document: 404.
	if rec := do(t, Handler(mux, nil), "GET", OpenAPIPath); rec.Code != 404 {
		t.Errorf("openapi without a document: %d", rec.Code)
	}
}

type unavailable struct {
	tracecamv1.UnimplementedProfilerServer
}

func (unavailable) GetStatus(context.Context, *tracecamv1.GetStatusRequest) (*tracecamv1.Status, error) {
	return nil, status.Error(codes.Unavailable, "capture not running")
}

func TestOpenAPIAndExtra(t *testing.T) {
	h, _ := newTestHandler(t)
	rec := do(t, h, "GET", OpenAPIPath)
	if rec.Code != 200 || rec.Body.String() != openAPIDoc {
		t.Errorf("openapi: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != JSONContentType {
		t.Errorf("openapi Content-Type = %q", ct)
	}
	if rec := do(t, h, "GET", "/healthz"); rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Errorf("healthz: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, "GET", "/healthz/x"); rec.Code != 404 {
		t.Errorf("extra paths must match exactly: %d", rec.Code)
	}
	if rec := do(t, h, "GET", "/debug/pprof/heap"); rec.Body.String() != "pprof /debug/pprof/heap\n" {
		t.Errorf("prefix key: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, "GET", "/debug/vars"); rec.Body.String() != "debug\n" {
		t.Errorf("shorter prefix key: %d %s", rec.Code, rec.Body)
	}
}

func TestStatusJSON(t *testing.T) {
	h, _ := newTestHandler(t)
	body := decodeJSON(t, do(t, h, "GET", "/v1/status"))
	if body["cgroup_id"] != json.Number("1152921504606846976") {
		t.Errorf("cgroup_id = %#v, want a JSON number", body["cgroup_id"])
	}
	if body["events_lost"] == nil || len(body["events_lost"].(map[string]any)) != 0 {
		t.Errorf("events_lost = %#v, want {}", body["events_lost"])
	}
	if a := body["assembler"].(map[string]any); a["dropped_stale"] != json.Number("0") {
		t.Errorf("assembler = %#v", a)
	}
}

func TestHeadOverServer(t *testing.T) {
	h, _ := newTestHandler(t)
	ts := httptest.NewServer(h)
	defer ts.Close()
	resp, err := ts.Client().Head(ts.URL + "/v1/traces/" + traceSlow)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != JSONContentType {
		t.Errorf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestNewServer(t *testing.T) {
	s := NewServer(":0", http.NotFoundHandler())
	if s.MaxHeaderBytes != MaxHeaderBytes || s.ReadHeaderTimeout == 0 || s.Handler == nil {
		t.Errorf("server %+v", s)
	}
}
