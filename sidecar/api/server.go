package api

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/diagnose"
	"github.com/tracecam/tracecam/sidecar/profile"
	"github.com/tracecam/tracecam/sidecar/profilepb"
	"github.com/tracecam/tracecam/sidecar/store"
)

// Limits of the list query.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
	// watchBuffer is how many profiles a slow watcher may lag behind.
	watchBuffer = 1024
)

// Remote is a shared source of other pods' profiles (the Redis cache).
type Remote interface {
	Lookup(ctx context.Context, traceID string) ([]*profile.Profile, error)
}

// Baselines are the endpoints' learned baselines (the metrics recorder).
type Baselines interface {
	Baselines() []*profile.Baseline
	// Window is the span baselines are learned over.
	Window() time.Duration
}

// Server is the Profiler service.
type Server struct {
	tracecamv1.UnimplementedProfilerServer
	Store *store.Store
	// Remote, when set, is asked for every GetTrace too.
	Remote Remote
	Hub    *Hub
	Status func() *tracecamv1.Status
	// Baselines, when set, is the source of ListBaselines.
	Baselines Baselines
	// Now is the clock for "since" (default time.Now).
	Now func() time.Time

	closing     chan struct{}
	closingOnce sync.Once
}

func (s *Server) closingCh() chan struct{} {
	s.closingOnce.Do(func() { s.closing = make(chan struct{}) })
	return s.closing
}

// Shutdown ends every live stream (their clients see the stream close
// cleanly) so that a graceful stop does not wait for watchers that would
// never leave on their own.
func (s *Server) Shutdown() {
	ch := s.closingCh()
	select {
	case <-ch:
	default:
		close(ch)
	}
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// GetTrace returns the trace's profiles from this pod and, when a shared
// cache is configured, from every pod, oldest first. A cache that fails
// does not fail the call: the answer says which source is missing.
func (s *Server) GetTrace(ctx context.Context, req *tracecamv1.GetTraceRequest) (*tracecamv1.GetTraceResponse, error) {
	id, err := ParseTraceID(req.GetTraceId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	local, evicted := s.Store.Trace(id)
	sources := map[string]string{"local": "ok"}
	var remote []*profile.Profile
	if s.Remote != nil {
		remote, err = s.Remote.Lookup(ctx, id)
		if err != nil {
			sources["redis"] = "unavailable: " + err.Error()
		} else {
			sources["redis"] = "ok"
		}
	}
	list := MergeTrace(local, remote)
	if len(list) == 0 && sources["redis"] != "" && sources["redis"] != "ok" {
		// Nothing here and the cache could not say: not "not found".
		return &tracecamv1.GetTraceResponse{Sources: sources}, nil
	}
	if len(list) == 0 && evicted {
		st := s.Store.Stats()
		return nil, status.Errorf(codes.NotFound, "trace %s: evicted: this pod served it, but its profile was dropped to bound the sidecar's memory "+
			"(the store now reaches back %s for every request and %s for the slowest of each endpoint; "+
			"a trace this pod never served is reported evicted with a probability under 3%%)",
			id, reach(st.Recent.Oldest, s.now()), reach(st.Kept.Oldest, s.now()))
	}
	if len(list) == 0 {
		return nil, status.Errorf(codes.NotFound, "trace %s: no profiles", id)
	}
	return &tracecamv1.GetTraceResponse{Profiles: toProto(list), Sources: sources}, nil
}

// reach says how far back a store tier reaches from now.
func reach(oldest, now time.Time) string {
	if oldest.IsZero() {
		return "nothing"
	}
	return now.Sub(oldest).Round(time.Second).String()
}

// MergeTrace joins local and cached profiles of one trace: one per
// (namespace, pod, span) — the local copy wins, it may be newer than the
// cache — ordered by start time.
func MergeTrace(local, remote []*profile.Profile) []*profile.Profile {
	type key struct{ ns, pod, span string }
	seen := make(map[key]bool, len(local)+len(remote))
	out := make([]*profile.Profile, 0, len(local)+len(remote))
	for _, list := range [][]*profile.Profile{local, remote} {
		for _, p := range list {
			k := key{p.Namespace, p.Pod, p.SpanID}
			if seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartTime.Before(out[j].StartTime) })
	return out
}

// ListProfiles returns recent profiles, slowest first.
func (s *Server) ListProfiles(ctx context.Context, req *tracecamv1.ListProfilesRequest) (*tracecamv1.ListProfilesResponse, error) {
	q, err := ParseListQuery(req, s.now())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &tracecamv1.ListProfilesResponse{Profiles: toProto(s.Store.List(q))}, nil
}

// ListBaselines returns the endpoints' baselines, by route then method.
func (s *Server) ListBaselines(ctx context.Context, req *tracecamv1.ListBaselinesRequest) (*tracecamv1.ListBaselinesResponse, error) {
	if f := req.GetFormat(); f != "" && f != "text" && f != "json" {
		return nil, status.Errorf(codes.InvalidArgument, "format %q: want text or json", f)
	}
	resp := &tracecamv1.ListBaselinesResponse{MinSamples: profile.BaselineMinSamples}
	if s.Baselines == nil {
		return resp, nil
	}
	resp.Window = s.Baselines.Window().String()
	method, prefix := req.GetMethod(), req.GetRoute()
	for _, b := range s.Baselines.Baselines() {
		if (method == "" || strings.EqualFold(b.Method, method)) && strings.HasPrefix(b.Route, prefix) {
			resp.Baselines = append(resp.Baselines, profilepb.BaselineToProto(b))
		}
	}
	return resp, nil
}

// GetStatus reports the sidecar's state.
func (s *Server) GetStatus(ctx context.Context, _ *tracecamv1.GetStatusRequest) (*tracecamv1.Status, error) {
	if s.Status == nil {
		return nil, status.Error(codes.Unavailable, "status not available yet")
	}
	return s.Status(), nil
}

// WatchProfiles streams profiles as they complete until the client goes
// away or the server shuts down.
func (s *Server) WatchProfiles(req *tracecamv1.WatchProfilesRequest, stream tracecamv1.Profiler_WatchProfilesServer) error {
	f, err := ParseWatchFilter(req)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	sub := s.Hub.Subscribe(watchBuffer)
	defer s.Hub.Unsubscribe(sub)
	ctx := stream.Context()
	closing := s.closingCh()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-closing:
			return nil
		case p := <-sub.C:
			p = Diagnosed(p)
			if !f.Match(p) {
				continue
			}
			if err := stream.Send(profilepb.ToProto(p)); err != nil {
				return err
			}
		}
	}
}

// Diagnosed returns p with its diagnosis filled in: a shallow copy when it
// was missing, so profiles shared with the store are never written to.
func Diagnosed(p *profile.Profile) *profile.Profile {
	if p.Diagnosis.Cause != "" {
		return p
	}
	q := *p
	q.Diagnosis = diagnose.Diagnose(p)
	return &q
}

func toProto(list []*profile.Profile) []*tracecamv1.Profile {
	out := make([]*tracecamv1.Profile, len(list))
	for i, p := range list {
		out[i] = profilepb.ToProto(Diagnosed(p))
	}
	return out
}

// ParseTraceID accepts a W3C trace ID (32 hex digits) or a 64-bit one (16
// hex digits, as B3 and Jaeger may send: left-padded to 32 as the sidecar
// stores them), in any case.
func ParseTraceID(id string) (string, error) {
	id = strings.ToLower(strings.TrimSpace(id))
	if len(id) == 16 {
		id = strings.Repeat("0", 16) + id
	}
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", fmt.Errorf("trace_id %q: want 32 hex digits", id)
	}
	return id, nil
}

// ParseListQuery checks a list request and turns it into a store query.
func ParseListQuery(req *tracecamv1.ListProfilesRequest, now time.Time) (store.Query, error) {
	q := store.Query{Limit: DefaultLimit, PathPrefix: req.GetPath()}
	if ms := req.GetMinDurationMs(); ms < 0 {
		return q, fmt.Errorf("min_duration_ms %d: want 0 or more", ms)
	} else {
		q.MinDuration = time.Duration(ms) * time.Millisecond
	}
	switch l := req.GetLimit(); {
	case l < 0 || l > MaxLimit:
		return q, fmt.Errorf("limit %d: want 1 to %d", l, MaxLimit)
	case l > 0:
		q.Limit = int(l)
	}
	if since := req.GetSince(); since != "" {
		t, err := ParseSince(since, now)
		if err != nil {
			return q, err
		}
		q.Since = t
	}
	if f := req.GetFormat(); f != "" && f != "text" && f != "json" {
		return q, fmt.Errorf("format %q: want text or json", f)
	}
	if c := profile.Cause(req.GetCause()); c != "" {
		if !causes[c] {
			return q, fmt.Errorf("cause %q: want one of %s", c, causeList)
		}
		q.Match = func(p *profile.Profile) bool { return CauseOf(p) == c }
	}
	return q, nil
}

// CauseOf is p's diagnosed cause: the one it carries, else the one
// Diagnose would give it (computed without diagnosing, so filtering a full
// store stays cheap).
func CauseOf(p *profile.Profile) profile.Cause {
	if p.Diagnosis.Cause != "" {
		return p.Diagnosis.Cause
	}
	return diagnose.Cause(p)
}

// ParseSince reads "5m" (that long ago) or an RFC 3339 time.
func ParseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("since %q: want a positive duration", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("since %q: want a duration like 5m or an RFC 3339 time", s)
	}
	return t, nil
}

// WatchFilter selects streamed profiles.
type WatchFilter struct {
	MinDuration time.Duration
	PathPrefix  string
	Cause       profile.Cause
}

var causes = map[profile.Cause]bool{
	profile.CauseCPU: true, profile.CauseRunq: true, profile.CauseNet: true, profile.CauseDNS: true,
	profile.CauseTCPWindow: true, profile.CauseFile: true, profile.CauseLock: true, profile.CauseGC: true,
	profile.CauseQueue: true, profile.CauseSleep: true, profile.CauseUnknown: true,
}

const causeList = "cpu, runq, net, dns, tcp_window, file, lock, gc, queue, sleep, unknown"

// ParseWatchFilter checks a watch request.
func ParseWatchFilter(req *tracecamv1.WatchProfilesRequest) (WatchFilter, error) {
	f := WatchFilter{PathPrefix: req.GetPathPrefix(), Cause: profile.Cause(req.GetCause())}
	if ms := req.GetMinDurationMs(); ms < 0 {
		return f, fmt.Errorf("min_duration_ms %d: want 0 or more", ms)
	} else {
		f.MinDuration = time.Duration(ms) * time.Millisecond
	}
	if f.Cause != "" && !causes[f.Cause] {
		return f, fmt.Errorf("cause %q: want one of %s", f.Cause, causeList)
	}
	return f, nil
}

// Match says whether p passes the filter (p must be diagnosed).
func (f WatchFilter) Match(p *profile.Profile) bool {
	return p.DurationNS >= f.MinDuration.Nanoseconds() &&
		strings.HasPrefix(p.Path, f.PathPrefix) &&
		(f.Cause == "" || p.Diagnosis.Cause == f.Cause)
}
