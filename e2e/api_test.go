package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
)

// curl runs a real curl and returns status code and body.
func curl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-sS", "-w", "\n%{http_code}"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndexByte(s, '\n')
	var code int
	fmt.Sscan(s[i+1:], &code)
	return code, s[:max(i, 0)]
}

func dialGRPC(t *testing.T, addr string) tracecamv1.ProfilerClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return tracecamv1.NewProfilerClient(conn)
}

// normalize turns a JSON document into comparable values: numbers and
// numeric strings (proto3 JSON writes 64-bit integers as strings) alike.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case float64:
		return fmt.Sprintf("%.0f", x)
	case json.Number:
		return x.String()
	}
	return v
}

func TestAPIRestAndGRPCAgree(t *testing.T) {
	w := startWorld(t, "python")
	client := dialGRPC(t, w.side.grpcAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The live stream, filtered on the server, opened before the request.
	stream, err := client.WatchProfiles(ctx, &tracecamv1.WatchProfilesRequest{PathPrefix: "/downstream", Cause: "net"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *tracecamv1.Profile, 10)
	go func() {
		for {
			p, err := stream.Recv()
			if err != nil {
				close(got)
				return
			}
			got <- p
		}
	}()
	time.Sleep(200 * time.Millisecond) // the subscription is registered

	get(t, w.base+"/sleep?ms=30", newTraceID()) // filtered out: another path
	id := newTraceID()
	get(t, w.base+"/downstream?ms=100", id)
	answered := time.Now()
	select {
	case p := <-got:
		if p.GetTraceId() != id {
			t.Fatalf("stream delivered %s %s, want the /downstream trace %s", p.GetPath(), p.GetTraceId(), id)
		}
		if d := time.Since(answered); d > time.Second {
			t.Errorf("stream delivered the profile %v after the response, want < 1 s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no profile on the stream")
	}

	// REST (real curl) and gRPC return the same profile, field by field.
	code, body := curl(t, "http://"+w.side.httpAddr+"/v1/traces/"+id)
	if code != 200 {
		t.Fatalf("GET /v1/traces: %d %s", code, body)
	}
	var rest map[string]any
	if err := json.Unmarshal([]byte(body), &rest); err != nil {
		t.Fatal(err)
	}
	resp, err := client.GetTrace(ctx, &tracecamv1.GetTraceRequest{TraceId: id})
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(resp)
	var viaGRPC map[string]any
	json.Unmarshal(gb, &viaGRPC)
	if !reflect.DeepEqual(normalize(rest), normalize(viaGRPC)) {
		t.Errorf("REST and gRPC differ:\nREST %s\ngRPC %s", body, gb)
	}
	profiles := rest["profiles"].([]any)
	p0 := profiles[0].(map[string]any)
	if _, ok := p0["duration_ns"].(float64); !ok {
		t.Errorf("duration_ns is %T, want a JSON number", p0["duration_ns"])
	}
	if _, err := time.Parse(time.RFC3339Nano, p0["start_time"].(string)); err != nil {
		t.Errorf("start_time not RFC 3339: %v", err)
	}
	if p0["diagnosis"].(map[string]any)["cause"] != "net" {
		t.Errorf("diagnosis %v", p0["diagnosis"])
	}

	// The camera view for a terminal, by query or by Accept header.
	for _, args := range [][]string{
		{"http://" + w.side.httpAddr + "/v1/traces/" + id + "?format=text"},
		{"-H", "Accept: text/plain", "http://" + w.side.httpAddr + "/v1/traces/" + id},
	} {
		code, text := curl(t, args...)
		if code != 200 || !strings.Contains(text, id) || !strings.Contains(text, "breakdown") ||
			!strings.Contains(text, "cause  net") || !strings.Contains(text, w.slowAddr) {
			t.Errorf("text view (%v): %d\n%s", args, code, text)
		}
	}

	// Step 1 of the drill: the slow ones, filtered.
	code, body = curl(t, "http://"+w.side.httpAddr+"/v1/profiles?min_duration_ms=90&path=/downstream&limit=20&since=5m")
	if code != 200 || !strings.Contains(body, id) || strings.Contains(body, `"/sleep"`) {
		t.Errorf("GET /v1/profiles: %d %s", code, body)
	}

	// Errors: proper codes, JSON bodies naming the problem.
	code, body = curl(t, "http://"+w.side.httpAddr+"/v1/traces/"+strings.Repeat("ab", 16))
	if code != 404 || !strings.Contains(body, `"code":5`) {
		t.Errorf("unknown trace: %d %s", code, body)
	}
	if _, err := client.GetTrace(ctx, &tracecamv1.GetTraceRequest{TraceId: strings.Repeat("ab", 16)}); status.Code(err) != codes.NotFound {
		t.Errorf("gRPC unknown trace: %v", err)
	}
	code, body = curl(t, "http://"+w.side.httpAddr+"/v1/profiles?limit=abc")
	if code != 400 || !strings.Contains(body, "limit") {
		t.Errorf("bad limit: %d %s", code, body)
	}
	code, body = curl(t, "http://"+w.side.httpAddr+"/v1/profiles?since=yesterday")
	if code != 400 || !strings.Contains(body, "since") {
		t.Errorf("bad since: %d %s", code, body)
	}

	// Status, health, OpenAPI.
	code, body = curl(t, "http://"+w.side.httpAddr+"/v1/status")
	if code != 200 || !strings.Contains(body, `"cgroup":"`+w.cg.Path+`"`) || !strings.Contains(body, `"events_lost_total":0`) {
		t.Errorf("status: %d %s", code, body)
	}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/openapi.json": `"swagger"`} {
		if code, body := curl(t, "http://"+w.side.httpAddr+path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}

	// Server reflection, as grpcurl list uses it.
	conn, _ := grpc.NewClient(w.side.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	rs, err := rpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs.Send(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	rr, err := rs.Recv()
	if err != nil || !strings.Contains(fmt.Sprint(rr.GetListServicesResponse()), "tracecam.v1.Profiler") {
		t.Errorf("reflection: %v %v", rr, err)
	}
}

// SIGTERM: not ready at once, streams end, the process exits cleanly.
func TestAPIGracefulShutdown(t *testing.T) {
	cg := newCgroup(t, "shutdown")
	side := startSidecar(t, &cg, nil)
	client := dialGRPC(t, side.grpcAddr)
	stream, err := client.WatchProfiles(context.Background(), &tracecamv1.WatchProfilesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	side.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-ended:
		if err != io.EOF && status.Code(err) != codes.Unavailable && status.Code(err) != codes.Canceled {
			t.Errorf("stream ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream still open 10 s after SIGTERM")
	}
	done := make(chan error, 1)
	go func() { done <- side.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("sidecar exited with %v: %s", err, side.stderr())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sidecar still running 10 s after SIGTERM")
	}
	// Streams are drained, not waited out: well under the 5 s grace.
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	if _, err := http.Get("http://" + side.httpAddr + "/healthz"); err == nil {
		t.Error("HTTP still served after shutdown")
	}
}
