package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/diagnose"
	"github.com/tracecam/tracecam/sidecar/profile"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

const (
	us = int64(1_000)
	ms = int64(1_000_000)
)

var start = time.Date(2026, 11, 27, 6, 40, 1, 123_000_000, time.UTC)

// fixtures are the profiles the golden files show, one per kind of slow
// request the camera has to explain. Each is diagnosed by the real
// diagnose package so the goldens also show the summaries users will see.
func fixtures() map[string]*profile.Profile {
	base := func(method, path string, status int, dur int64) *profile.Profile {
		return &profile.Profile{
			TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", ParentSpanID: "b7ad6b7169203331",
			TraceSource: "traceparent",
			Namespace:   "default", Pod: "demo-7f9", Container: "app",
			PID: 1234, TID: 1240, ThreadName: "python3",
			Method: method, Path: path, Host: "demo.default.svc", StatusCode: status,
			Client: "10.0.0.9:41000", Server: "10.0.0.5:8080",
			StartTime: start, DurationNS: dur, RequestBytes: 84, ResponseBytes: 312,
		}
	}
	fs := map[string]*profile.Profile{}

	p := base("GET", "/cpu", 200, 200*ms)
	p.Breakdown = map[profile.Category]int64{profile.CPU: 198 * ms, profile.Runq: 1_950 * us, profile.Other: 50 * us}
	fs["cpu"] = p

	p = base("GET", "/sleep", 200, 151*ms)
	p.Breakdown = map[profile.Category]int64{profile.Sleep: 150_200 * us, profile.CPU: 800 * us}
	p.Timeline = []profile.Segment{{Category: profile.Sleep, StartOffsetNS: 300 * us, DurationNS: 150_200 * us, Syscall: "clock_nanosleep"}}
	fs["sleep"] = p

	p = base("POST", "/write", 201, 198*ms)
	p.Breakdown = map[profile.Category]int64{profile.File: 181_200 * us, profile.CPU: 15 * ms, profile.Runq: 1_800 * us}
	p.Timeline = []profile.Segment{
		{Category: profile.File, StartOffsetNS: 600 * us, DurationNS: 1_000 * us, Syscall: "write", FDKind: "file", FD: 7, File: "/tmp/demo/data.log", Bytes: 4096},
		{Category: profile.File, StartOffsetNS: 1_700 * us, DurationNS: 180_200 * us, Count: 20, Syscall: "fsync", FDKind: "file", FD: 7, File: "/tmp/demo/data.log", RunqNS: 1_200 * us},
	}
	fs["file_fsync"] = p

	p = base("GET", "/lock", 200, 212_400*us)
	p.Breakdown = map[profile.Category]int64{profile.Lock: 201_300 * us, profile.CPU: 7_100 * us, profile.Runq: 2 * ms, profile.Epoll: 2 * ms}
	p.Timeline = []profile.Segment{{
		Category: profile.Lock, StartOffsetNS: 400 * us, DurationNS: 201_300 * us, Syscall: "futex",
		WakerTID: 1239, WakerName: "holder", RunqNS: 2 * ms,
	}}
	fs["lock_waker"] = p

	p = base("GET", "/downstream?id=7&full=1", 502, 214*ms)
	p.ThreadName = "node"
	p.Breakdown = map[profile.Category]int64{profile.Net: 205 * ms, profile.CPU: 6 * ms, profile.Runq: 3 * ms}
	p.Timeline = []profile.Segment{
		{Category: profile.Net, StartOffsetNS: 1_200 * us, DurationNS: 12_300 * us, Syscall: "recvfrom", FDKind: "socket", FD: 9, Peer: "127.0.0.53:53", Bytes: 96},
		{Category: profile.Net, StartOffsetNS: 14 * ms, DurationNS: 192_100 * us, Syscall: "recvfrom", FDKind: "socket", FD: 11, Peer: "10.96.14.2:9000", Bytes: 2300},
	}
	p.DNS = []profile.DNSQuery{{
		Name: "backend.default.svc.cluster.local", Type: "A", Rcode: "NOERROR", Server: "127.0.0.53:53",
		StartOffsetNS: 1_100 * us, LatencyNS: 12_300 * us, Answered: true,
	}}
	p.Network = []profile.NetworkPeer{
		{Peer: "127.0.0.53:53", Protocol: "udp", BytesSent: 51, BytesReceived: 96, WaitNS: 12_300 * us, StartOffsetNS: 1_100 * us, Calls: 1},
		{Peer: "10.96.14.2:9000", Protocol: "tcp", BytesSent: 120, BytesReceived: 2300, WaitNS: 192_700 * us, StartOffsetNS: 13_800 * us, Calls: 1},
	}
	fs["net_downstream"] = p

	p = base("GET", "/lookup", 503, 812*ms)
	p.Breakdown = map[profile.Category]int64{profile.Net: 780 * ms, profile.CPU: 32 * ms}
	p.Timeline = []profile.Segment{
		{Category: profile.Net, StartOffsetNS: 1 * ms, DurationNS: 500 * ms, Syscall: "recvfrom", FDKind: "socket", Peer: "10.96.0.10:53"},
		{Category: profile.Net, StartOffsetNS: 502 * ms, DurationNS: 275 * ms, Syscall: "recvfrom", FDKind: "socket", Peer: "10.96.0.10:53", Bytes: 150},
	}
	p.DNS = []profile.DNSQuery{
		{Name: "backend.default.svc.cluster.local", Type: "A", Server: "10.96.0.10:53", StartOffsetNS: 1 * ms, LatencyNS: 500 * ms},
		{Name: "backend.default.svc.cluster.local", Type: "A", Rcode: "NXDOMAIN", Server: "10.96.0.10:53", StartOffsetNS: 502 * ms, LatencyNS: 275 * ms, Answered: true},
	}
	p.Network = []profile.NetworkPeer{{Peer: "10.96.0.10:53", Protocol: "udp", BytesSent: 102, BytesReceived: 150, WaitNS: 775 * ms, StartOffsetNS: 1 * ms, Calls: 2}}
	fs["dns_timeout"] = p

	// No trace header: the ID is tracecam's own, and the capture lost
	// events, so almost every optional field is absent.
	fs["partial_generated"] = &profile.Profile{
		TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b9c7c989f97918e1", TraceIDGenerated: true,
		PID: 88, TID: 88, ThreadName: "java",
		Method: "PUT", Path: "/items/42", StatusCode: 204,
		StartTime:  time.Date(2026, 11, 27, 7, 40, 1, 5_000_000, time.FixedZone("CET", 3600)),
		DurationNS: 640 * us,
		Breakdown:  map[profile.Category]int64{profile.CPU: 410 * us, profile.Other: 180 * us, profile.Runq: 50 * us},
		Partial:    true, PartialReason: "ring buffer lost 12 events",
	}

	fs["empty"] = &profile.Profile{TraceID: "deadbeef", Method: "GET", Path: "/", StatusCode: 200}

	// Step 3 of the drill: a lock wait on an endpoint that usually sleeps,
	// against the endpoint's baseline.
	p = base("GET", "/work?sleep_ms=40&lock_ms=150", 200, 193_500*us)
	p.Breakdown = map[profile.Category]int64{profile.Sleep: 40_100 * us, profile.Lock: 150_200 * us, profile.CPU: 2_400 * us, profile.Runq: 800 * us}
	p.Timeline = []profile.Segment{
		{Category: profile.Sleep, StartOffsetNS: 300 * us, DurationNS: 40_100 * us, Syscall: "clock_nanosleep"},
		{Category: profile.Lock, StartOffsetNS: 41 * ms, DurationNS: 150_200 * us, Syscall: "futex", WakerTID: 1250, WakerName: "fault-holder", RunqNS: 300 * us},
	}
	p.Baseline = &profile.Baseline{
		Method: "GET", Route: "/work", Samples: 240, Warm: true, DurationNS: 42_900 * us, DurationP90NS: 44 * ms,
		Breakdown: map[profile.Category]int64{profile.Sleep: 40_100 * us, profile.CPU: 2_200 * us, profile.Runq: 300 * us}, DNSNS: 0,
	}
	fs["lock_baseline"] = p

	for _, p := range fs {
		p.Diagnosis = diagnose.Diagnose(p)
	}
	return fs
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update after checking the change)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestTextGolden(t *testing.T) {
	for name, p := range fixtures() {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Text(&buf, p); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".golden", buf.Bytes())
		})
	}
}

func TestJSONLineGolden(t *testing.T) {
	for name, p := range fixtures() {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := JSONLine(&buf, p); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".json.golden", buf.Bytes())
		})
	}
}

func TestTextWithOptions(t *testing.T) {
	fs := fixtures()
	tests := []struct {
		name string
		p    *profile.Profile
		opts TextOptions
	}{
		{"lock_waker_color", fs["lock_waker"], TextOptions{Color: true}},
		{"dns_timeout_evidence", fs["dns_timeout"], TextOptions{Evidence: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := TextWith(&buf, tt.p, tt.opts); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".golden", buf.Bytes())
		})
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// TestColorOnlyAddsEscapes checks colour is decoration: stripping it must
// give the plain view, so the two can never drift apart.
func TestColorOnlyAddsEscapes(t *testing.T) {
	for name, p := range fixtures() {
		t.Run(name, func(t *testing.T) {
			var plain, color bytes.Buffer
			if err := Text(&plain, p); err != nil {
				t.Fatal(err)
			}
			if err := TextWith(&color, p, TextOptions{Color: true}); err != nil {
				t.Fatal(err)
			}
			if !ansi.Match(color.Bytes()) {
				t.Error("colour view has no escapes")
			}
			if got := ansi.ReplaceAll(color.Bytes(), nil); !bytes.Equal(got, plain.Bytes()) {
				t.Errorf("colour view minus escapes differs from plain:\n%s\n---\n%s", got, plain.Bytes())
			}
		})
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		name    string
		p       *profile.Profile
		opts    TextOptions
		want    []string
		notWant []string
	}{
		{
			name: "missing diagnosis is computed for display",
			p: &profile.Profile{Method: "GET", Path: "/x", DurationNS: 10 * ms,
				Breakdown: map[profile.Category]int64{profile.Sleep: 10 * ms}},
			want: []string{"cause  sleep — sleep: 10.0 ms (100%) in a sleep syscall"},
		},
		{
			name: "terminal escapes in wire strings are neutralised",
			p: &profile.Profile{Method: "GET", Path: "/\x1b[2J\x1b]0;owned\a\u202e", ThreadName: "a\nb", PID: 1,
				DurationNS: 1 * ms, Breakdown: map[profile.Category]int64{profile.CPU: 1 * ms}},
			want:    []string{`GET /\x1b[2J\x1b]0;owned\x07\u202e`, `(a\x0ab)`},
			notWant: []string{"\x1b", "\a"},
		},
		{
			name: "invalid utf-8 is escaped",
			p: &profile.Profile{Path: "/\xff\xfe", DurationNS: 1,
				Breakdown: map[profile.Category]int64{profile.CPU: 1}},
			want: []string{`- /\xff\xfe  -  1 ns`},
		},
		{
			name: "unknown categories are shown after the known ones",
			p: &profile.Profile{DurationNS: 4 * ms,
				Breakdown: map[profile.Category]int64{"zzz": 1 * ms, "gpu": 1 * ms, profile.Other: 2 * ms}},
			want: []string{"other     2.0 ms  50%  ████████████████████\n     gpu       1.0 ms  25%  ██████████\n     zzz "},
		},
		{
			name: "timeline is chronological and capped",
			p: func() *profile.Profile {
				p := &profile.Profile{DurationNS: 100 * ms, Breakdown: map[profile.Category]int64{profile.Lock: 100 * ms}}
				for i := range 5 {
					p.Timeline = append(p.Timeline, profile.Segment{Category: profile.Lock, StartOffsetNS: int64(5-i) * ms, DurationNS: 10 * ms})
				}
				return p
			}(),
			opts: TextOptions{MaxTimeline: 2},
			want: []string{"+1.0 ms   lock    10.0 ms\n     +2.0 ms   lock    10.0 ms\n     … 3 more waits (30.0 ms)\n"},
		},
		{
			name:    "sections without data are omitted",
			p:       &profile.Profile{DurationNS: 1 * ms, Breakdown: map[profile.Category]int64{profile.CPU: 1 * ms}},
			want:    []string{"breakdown"},
			notWant: []string{"timeline", "dns", "network", "pod", "trace", "  \n"},
		},
		{
			name: "sub-0.1 ms values are in µs",
			p:    &profile.Profile{DurationNS: 90 * us, Breakdown: map[profile.Category]int64{profile.CPU: 90 * us}},
			want: []string{"cpu      90.0 µs 100%  ████████████████████████████████████████\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := TextWith(&buf, tt.p, tt.opts); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			for _, s := range tt.want {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(out, s) {
					t.Errorf("output holds %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestNilProfile(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*bytes.Buffer) error
	}{
		{"Text", func(b *bytes.Buffer) error { return Text(b, nil) }},
		{"JSONLine", func(b *bytes.Buffer) error { return JSONLine(b, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tt.fn(&buf); err == nil || buf.Len() != 0 {
				t.Errorf("err = %v, wrote %q; want an error and no output", err, buf.String())
			}
		})
	}
}

// oneWrite records every Write call, to check each profile is one call.
type oneWrite struct{ calls [][]byte }

func (o *oneWrite) Write(b []byte) (int, error) {
	o.calls = append(o.calls, append([]byte(nil), b...))
	return len(b), nil
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestSingleWriteAndErrors(t *testing.T) {
	p := fixtures()["net_downstream"]
	tests := []struct {
		name string
		fn   func(w io.Writer) error
	}{
		{"Text", func(w io.Writer) error { return Text(w, p) }},
		{"JSONLine", func(w io.Writer) error { return JSONLine(w, p) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w oneWrite
			if err := tt.fn(&w); err != nil {
				t.Fatal(err)
			}
			if len(w.calls) != 1 {
				t.Errorf("%d Write calls, want 1", len(w.calls))
			}
			if err := tt.fn(failWriter{}); err == nil {
				t.Error("writer error was swallowed")
			}
		})
	}
}

func TestJSONLine(t *testing.T) {
	tests := []struct {
		name string
		p    *profile.Profile
	}{
		{"zero profile", &profile.Profile{}},
		{"lock", fixtures()["lock_waker"]},
		{"dns", fixtures()["dns_timeout"]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := *tt.p
			var buf bytes.Buffer
			if err := JSONLine(&buf, tt.p); err != nil {
				t.Fatal(err)
			}
			line := buf.Bytes()
			if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
				t.Fatalf("want exactly one line ending in \\n, got %q", line)
			}
			if !reflect.DeepEqual(before, *tt.p) {
				t.Error("JSONLine changed the caller's profile")
			}

			var raw map[string]json.RawMessage
			if err := json.Unmarshal(line, &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"trace_id", "span_id", "duration_ns", "breakdown", "timeline", "dns", "network", "diagnosis", "start_time", "status_code"} {
				if _, ok := raw[k]; !ok {
					t.Errorf("key %q missing", k)
				}
			}
			for k, want := range map[string]byte{"breakdown": '{', "timeline": '[', "dns": '[', "network": '['} {
				if v := raw[k]; len(v) == 0 || v[0] != want {
					t.Errorf("%s = %s, want it to start with %c (never null)", k, v, want)
				}
			}
			var diag map[string]json.RawMessage
			if err := json.Unmarshal(raw["diagnosis"], &diag); err != nil {
				t.Fatal(err)
			}
			if string(diag["evidence"]) == "null" {
				t.Error("diagnosis.evidence encoded as null")
			}

			var back profile.Profile
			if err := json.Unmarshal(line, &back); err != nil {
				t.Fatal(err)
			}
			if !back.StartTime.Equal(tt.p.StartTime) {
				t.Errorf("start_time %v, want %v", back.StartTime, tt.p.StartTime)
			}
			back.StartTime = tt.p.StartTime
			want := normalise(*tt.p)
			if !reflect.DeepEqual(back, want) {
				t.Errorf("round trip differs:\n got %+v\nwant %+v", back, want)
			}
		})
	}
}

// normalise gives p the empty collections the encoder emits, which is what
// a decoder reads back.
func normalise(p profile.Profile) profile.Profile {
	if p.Breakdown == nil {
		p.Breakdown = map[profile.Category]int64{}
	}
	if p.Timeline == nil {
		p.Timeline = []profile.Segment{}
	}
	if p.DNS == nil {
		p.DNS = []profile.DNSQuery{}
	}
	if p.Network == nil {
		p.Network = []profile.NetworkPeer{}
	}
	if p.Diagnosis.Evidence == nil {
		p.Diagnosis.Evidence = []string{}
	}
	return p
}

func TestJSONLineKeepsURLsReadable(t *testing.T) {
	var buf bytes.Buffer
	if err := JSONLine(&buf, &profile.Profile{Path: "/a?b=1&c=<2>"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"path":"/a?b=1&c=<2>"`) {
		t.Errorf("path escaped: %s", buf.String())
	}
}

func TestFmtBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{2300, "2.2 KiB"},
		{5 << 20, "5.0 MiB"},
		{3 << 30, "3.0 GiB"},
	}
	for _, tt := range tests {
		if got := profile.FormatBytes(tt.n); got != tt.want {
			t.Errorf("profile.FormatBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
