package api

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/profile"
	"github.com/tracecam/tracecam/sidecar/store"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func TestParseTraceID(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"4bf92f3577b34da6a3ce929d0e0e4736", "4bf92f3577b34da6a3ce929d0e0e4736", ""},
		{"4BF92F3577B34DA6A3CE929D0E0E4736", "4bf92f3577b34da6a3ce929d0e0e4736", ""},
		{"a3ce929d0e0e4736", "0000000000000000a3ce929d0e0e4736", ""},
		{"", "", "trace_id"},
		{"xyz", "", "trace_id"},
		{"4bf92f3577b34da6a3ce929d0e0e473g", "", "trace_id"},
	}
	for _, tc := range tests {
		got, err := ParseTraceID(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTraceID(%q) err %v, want one naming %s", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseTraceID(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestParseListQuery(t *testing.T) {
	tests := []struct {
		name string
		req  *tracecamv1.ListProfilesRequest
		want store.Query
		err  string // the parameter the error must name
	}{
		{"defaults", &tracecamv1.ListProfilesRequest{}, store.Query{Limit: DefaultLimit}, ""},
		{"all set", &tracecamv1.ListProfilesRequest{MinDurationMs: 100, Path: "/checkout", Limit: 20, Since: "5m"},
			store.Query{MinDuration: 100 * time.Millisecond, PathPrefix: "/checkout", Limit: 20, Since: now.Add(-5 * time.Minute)}, ""},
		{"since rfc3339", &tracecamv1.ListProfilesRequest{Since: "2026-11-27T11:00:00Z"},
			store.Query{Limit: DefaultLimit, Since: now.Add(-time.Hour)}, ""},
		{"negative min", &tracecamv1.ListProfilesRequest{MinDurationMs: -1}, store.Query{}, "min_duration_ms"},
		{"limit too big", &tracecamv1.ListProfilesRequest{Limit: MaxLimit + 1}, store.Query{}, "limit"},
		{"negative limit", &tracecamv1.ListProfilesRequest{Limit: -5}, store.Query{}, "limit"},
		{"bad since", &tracecamv1.ListProfilesRequest{Since: "yesterday"}, store.Query{}, "since"},
		{"negative since", &tracecamv1.ListProfilesRequest{Since: "-5m"}, store.Query{}, "since"},
		{"bad format", &tracecamv1.ListProfilesRequest{Format: "xml"}, store.Query{}, "format"},
		{"bad cause", &tracecamv1.ListProfilesRequest{Cause: "bogus"}, store.Query{}, "cause"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseListQuery(tc.req, now)
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("err %v, want one starting with %s", err, tc.err)
				}
				return
			}
			if got.Match != nil {
				t.Error("a filter without cause matches on something")
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestListProfilesByCause(t *testing.T) {
	st := store.New(store.Config{})
	lock := map[profile.Category]int64{profile.Lock: 300e6, profile.CPU: 1e6}
	st.Add(&profile.Profile{TraceID: "a", Path: "/x", DurationNS: 301e6, StartTime: now.Add(-time.Minute), Breakdown: lock})
	st.Add(&profile.Profile{TraceID: "b", Path: "/x", DurationNS: 2e6, StartTime: now.Add(-time.Minute), Breakdown: map[profile.Category]int64{profile.CPU: 2e6}})
	st.Add(&profile.Profile{TraceID: "c", Path: "/x", DurationNS: 301e6, StartTime: now.Add(-time.Hour), Breakdown: lock})
	// A diagnosis computed as it completed is not stored: the stored form
	// is diagnosed again when read, from what it measured.
	st.Add(&profile.Profile{TraceID: "d", Path: "/y", DurationNS: 5e6, StartTime: now, Breakdown: map[profile.Category]int64{profile.CPU: 5e6},
		Diagnosis: profile.Diagnosis{Cause: profile.CauseLock}})
	// On a sleeping endpoint, the lock wait is what deviates.
	st.Add(&profile.Profile{TraceID: "e", Path: "/z", DurationNS: 350e6, StartTime: now, Breakdown: map[profile.Category]int64{profile.Sleep: 200e6, profile.Lock: 150e6},
		Baseline: &profile.Baseline{Warm: true, Samples: 50, DurationNS: 200e6, Breakdown: map[profile.Category]int64{profile.Sleep: 200e6}}})
	s := &Server{Store: st, Hub: NewHub(), Now: func() time.Time { return now }}
	resp, err := s.ListProfiles(context.Background(), &tracecamv1.ListProfilesRequest{Cause: "lock", Since: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, p := range resp.GetProfiles() {
		ids = append(ids, p.GetTraceId()+"="+p.GetDiagnosis().GetCause())
	}
	if got := strings.Join(ids, " "); got != "e=lock a=lock" {
		t.Errorf("cause=lock since=10m: %s, want e, a", got)
	}
}

type fakeBaselines []*profile.Baseline

func (f fakeBaselines) Baselines() []*profile.Baseline { return f }
func (fakeBaselines) Window() time.Duration            { return 10 * time.Minute }

func TestListBaselines(t *testing.T) {
	ctx := context.Background()
	s := &Server{Store: store.New(store.Config{}), Hub: NewHub()}
	resp, err := s.ListBaselines(ctx, &tracecamv1.ListBaselinesRequest{})
	if err != nil || len(resp.GetBaselines()) != 0 || resp.GetMinSamples() != profile.BaselineMinSamples {
		t.Fatalf("without a source: %v, %v", resp, err)
	}
	s.Baselines = fakeBaselines{
		{Method: "GET", Route: "/users/{id}", Samples: 30, Warm: true, DurationNS: 5e6, Breakdown: map[profile.Category]int64{profile.CPU: 4e6}},
		{Method: "POST", Route: "/users/{id}", Samples: 3},
		{Method: "GET", Route: "/health", Samples: 100, Warm: true},
	}
	resp, err = s.ListBaselines(ctx, &tracecamv1.ListBaselinesRequest{Method: "get", Route: "/users"})
	if err != nil || len(resp.GetBaselines()) != 1 || resp.GetWindow() != "10m0s" {
		t.Fatalf("GET /users: %v, %v", resp, err)
	}
	if b := resp.GetBaselines()[0]; b.GetRoute() != "/users/{id}" || b.GetBreakdown()["cpu"] != 4e6 || !b.GetWarm() {
		t.Errorf("baseline %v", b)
	}
	if _, err := s.ListBaselines(ctx, &tracecamv1.ListBaselinesRequest{Format: "yaml"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad format: %v", err)
	}
}

func TestWatchFilter(t *testing.T) {
	if _, err := ParseWatchFilter(&tracecamv1.WatchProfilesRequest{Cause: "bogus"}); err == nil || !strings.HasPrefix(err.Error(), "cause") {
		t.Errorf("bogus cause accepted: %v", err)
	}
	if _, err := ParseWatchFilter(&tracecamv1.WatchProfilesRequest{MinDurationMs: -1}); err == nil {
		t.Error("negative min_duration_ms accepted")
	}
	f, err := ParseWatchFilter(&tracecamv1.WatchProfilesRequest{MinDurationMs: 100, PathPrefix: "/api", Cause: "lock"})
	if err != nil {
		t.Fatal(err)
	}
	p := &profile.Profile{Path: "/api/x", DurationNS: 150e6, Diagnosis: profile.Diagnosis{Cause: profile.CauseLock}}
	if !f.Match(p) {
		t.Error("matching profile rejected")
	}
	for _, q := range []profile.Profile{
		{Path: "/api/x", DurationNS: 50e6, Diagnosis: profile.Diagnosis{Cause: profile.CauseLock}},
		{Path: "/other", DurationNS: 150e6, Diagnosis: profile.Diagnosis{Cause: profile.CauseLock}},
		{Path: "/api/x", DurationNS: 150e6, Diagnosis: profile.Diagnosis{Cause: profile.CauseCPU}},
	} {
		if f.Match(&q) {
			t.Errorf("%+v matched", q)
		}
	}
}

func TestServerErrorsAndData(t *testing.T) {
	st := store.New(store.Config{})
	id := "4bf92f3577b34da6a3ce929d0e0e4736"
	st.Add(&profile.Profile{TraceID: id, Path: "/a", DurationNS: 2e6, StartTime: now,
		Breakdown: map[profile.Category]int64{profile.CPU: 2e6}})
	s := &Server{Store: st, Hub: NewHub(), Now: func() time.Time { return now }}
	ctx := context.Background()

	resp, err := s.GetTrace(ctx, &tracecamv1.GetTraceRequest{TraceId: strings.ToUpper(id)})
	if err != nil || len(resp.Profiles) != 1 || resp.Profiles[0].GetDiagnosis().GetCause() != "cpu" || resp.Sources["local"] != "ok" {
		t.Fatalf("GetTrace = %v, %v", resp, err)
	}
	if _, err := s.GetTrace(ctx, &tracecamv1.GetTraceRequest{TraceId: strings.Repeat("1", 32)}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown trace: %v, want NotFound", err)
	}
	if _, err := s.GetTrace(ctx, &tracecamv1.GetTraceRequest{TraceId: "nope"}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad id: %v, want InvalidArgument", err)
	}
	if _, err := s.ListProfiles(ctx, &tracecamv1.ListProfilesRequest{Limit: -1}); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "limit") {
		t.Errorf("bad limit: %v, want InvalidArgument naming limit", err)
	}
	if _, err := s.GetStatus(ctx, &tracecamv1.GetStatusRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("status without a source: %v", err)
	}
	// The stored profile is not written to by diagnosing it on the way out.
	if list, _ := st.Trace(id); list[0].Diagnosis.Cause != "" {
		t.Error("GetTrace wrote the diagnosis into the stored profile")
	}
}

func TestHubDropsForSlowWatchers(t *testing.T) {
	h := NewHub()
	if h.Watching() {
		t.Fatal("empty hub watching")
	}
	fast, slow := h.Subscribe(10), h.Subscribe(1)
	for i := 0; i < 5; i++ {
		h.Publish(&profile.Profile{Path: "/x"})
	}
	if len(fast.C) != 5 || len(slow.C) != 1 || slow.Dropped() != 4 || h.Dropped() != 4 {
		t.Fatalf("fast %d slow %d dropped %d/%d", len(fast.C), len(slow.C), slow.Dropped(), h.Dropped())
	}
	h.Unsubscribe(fast)
	h.Unsubscribe(slow)
	if h.Watching() {
		t.Error("still watching after unsubscribe")
	}
}

type fakeRemote struct {
	list []*profile.Profile
	err  error
}

func (f fakeRemote) Lookup(context.Context, string) ([]*profile.Profile, error) { return f.list, f.err }

func TestMergeTrace(t *testing.T) {
	at := func(s int) time.Time { return now.Add(time.Duration(s) * time.Second) }
	a := &profile.Profile{Pod: "a", Namespace: "ns", SpanID: "1", StartTime: at(2), Path: "/local"}
	aCached := &profile.Profile{Pod: "a", Namespace: "ns", SpanID: "1", StartTime: at(2), Path: "/cached"}
	b := &profile.Profile{Pod: "b", Namespace: "ns", SpanID: "2", StartTime: at(1)}
	c := &profile.Profile{Pod: "a", Namespace: "other", SpanID: "1", StartTime: at(3)}
	got := MergeTrace([]*profile.Profile{a}, []*profile.Profile{aCached, b, c})
	if len(got) != 3 || got[0] != b || got[1] != a || got[2] != c {
		t.Fatalf("merge = %v", got)
	}
}

func TestGetTraceWithRemote(t *testing.T) {
	id := strings.Repeat("ab", 16)
	ctx := context.Background()
	local := store.New(store.Config{})
	local.Add(&profile.Profile{TraceID: id, Pod: "a", SpanID: "1", StartTime: now.Add(time.Second), DurationNS: 1})
	other := &profile.Profile{TraceID: id, Pod: "b", SpanID: "2", StartTime: now, DurationNS: 1}

	s := &Server{Store: local, Hub: NewHub(), Remote: fakeRemote{list: []*profile.Profile{other}}}
	resp, err := s.GetTrace(ctx, &tracecamv1.GetTraceRequest{TraceId: id})
	if err != nil || len(resp.Profiles) != 2 || resp.Profiles[0].GetPod() != "b" || resp.Sources["redis"] != "ok" {
		t.Fatalf("with cache: %v %v", resp, err)
	}

	// The cache is down: local profiles still answer, and the answer says so.
	s.Remote = fakeRemote{err: fmt.Errorf("connection refused")}
	resp, err = s.GetTrace(ctx, &tracecamv1.GetTraceRequest{TraceId: id})
	if err != nil || len(resp.Profiles) != 1 || resp.Sources["local"] != "ok" || !strings.HasPrefix(resp.Sources["redis"], "unavailable") {
		t.Fatalf("cache down: %v %v", resp, err)
	}
	// Unknown locally and the cache is down: not NOT_FOUND, an empty answer naming the gap.
	resp, err = s.GetTrace(ctx, &tracecamv1.GetTraceRequest{TraceId: strings.Repeat("cd", 16)})
	if err != nil || len(resp.Profiles) != 0 || !strings.HasPrefix(resp.Sources["redis"], "unavailable") {
		t.Fatalf("unknown, cache down: %v %v", resp, err)
	}
	// Unknown everywhere: NOT_FOUND.
	s.Remote = fakeRemote{}
	if _, err := s.GetTrace(ctx, &tracecamv1.GetTraceRequest{TraceId: strings.Repeat("cd", 16)}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown everywhere: %v", err)
	}
}
