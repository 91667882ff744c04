package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
)

func mk(trace string, ms int, path string, at time.Time) *profile.Profile {
	return &profile.Profile{TraceID: trace, DurationNS: int64(ms) * 1e6, Path: path, StartTime: at}
}

func TestList(t *testing.T) {
	r := New(Config{})
	t0 := time.Unix(1000, 0)
	r.Add(mk("a", 5, "/fast", t0))
	r.Add(mk("b", 300, "/slow", t0.Add(time.Second)))
	r.Add(mk("c", 200, "/slow/x", t0.Add(2*time.Second)))
	r.Add(mk("d", 250, "/other", t0.Add(3*time.Second)))
	tests := []struct {
		name string
		q    Query
		want []string
	}{
		{"all slowest first", Query{}, []string{"b", "d", "c", "a"}},
		{"min duration", Query{MinDuration: 100 * time.Millisecond}, []string{"b", "d", "c"}},
		{"path prefix", Query{PathPrefix: "/slow"}, []string{"b", "c"}},
		{"since", Query{Since: t0.Add(2 * time.Second)}, []string{"d", "c"}},
		{"limit", Query{Limit: 2}, []string{"b", "d"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := r.List(tc.q)
			var ids []string
			for _, p := range got {
				ids = append(ids, p.TraceID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", ids, tc.want)
			}
		})
	}
}

// The heap-based limit keeps exactly the slowest, whatever the order they
// arrive in.
func TestListLimitKeepsSlowest(t *testing.T) {
	r := New(Config{})
	t0 := time.Unix(1000, 0)
	for i := 0; i < 1000; i++ {
		ms := (i * 7919) % 1000 // a permutation of 0..999
		r.Add(mk(fmt.Sprint(i), ms, "/p", t0))
	}
	got := r.List(Query{Limit: 20})
	if len(got) != 20 {
		t.Fatalf("%d profiles", len(got))
	}
	for i, p := range got {
		if want := int64(999-i) * 1e6; p.DurationNS != want {
			t.Fatalf("position %d: %d ns, want %d", i, p.DurationNS, want)
		}
	}
}

func TestListMatch(t *testing.T) {
	r := New(Config{})
	t0 := time.Unix(1000, 0)
	for i := range 6 {
		r.Add(mk(fmt.Sprintf("t%d", i), 10*(i+1), "/p", t0))
	}
	even := func(p *profile.Profile) bool { return (p.DurationNS/1e7)%2 == 0 }
	got := r.List(Query{Match: even, Limit: 2})
	if len(got) != 2 || got[0].TraceID != "t5" || got[1].TraceID != "t3" {
		t.Errorf("List with Match = %v", got)
	}
}

// full is a profile with every stored field set.
func full() *profile.Profile {
	return &profile.Profile{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", ParentSpanID: "b7ad6b7169203331",
		TraceIDGenerated: true, TraceSource: "traceparent", Pod: "web-1", Namespace: "shop", Container: "app",
		PID: 4242, TID: 4250, ThreadName: "gunicorn: work", Method: "POST", Path: "/api/orders/17", Host: "shop.local",
		StatusCode: 503, Client: "10.0.0.7:51234", Server: "10.0.0.9:8080",
		StartTime: time.Unix(1700000000, 123456789), DurationNS: 48_500_000, RequestBytes: 512, ResponseBytes: 70_000,
		Breakdown: map[profile.Category]int64{profile.CPU: 1e6, profile.Net: 40e6, profile.Runq: 2e6, profile.Lock: 5.5e6, "future": 7},
		Timeline: []profile.Segment{
			{Category: profile.Net, StartOffsetNS: 100, DurationNS: 40e6, RunqNS: 3000, Count: 2, Syscall: "recvfrom", FDKind: "socket",
				FD: 7, Peer: "10.0.0.3:5432", Bytes: 900, WakerTID: 1, WakerName: "swapper", Detail: "d"},
			{Category: profile.Loop, DurationNS: 2e6, HolderTraceID: "aa", File: "/var/x", FD: -1},
		},
		DNS: []profile.DNSQuery{{Name: "db.local", Type: "A", Rcode: "NOERROR", Server: "10.96.0.10:53", StartOffsetNS: 5,
			LatencyNS: 900_000, Answered: true, Attempt: 2}},
		Network: []profile.NetworkPeer{{Peer: "10.0.0.3:5432", Protocol: "tcp", BytesSent: 100, BytesReceived: 900,
			WaitNS: 40e6, StartOffsetNS: 100, Calls: 3}},
		Diagnosis:     profile.Diagnosis{Cause: profile.CauseNet, Summary: "s"},
		Partial:       true,
		PartialReason: "events lost",
		Baseline: &profile.Baseline{Method: "POST", Route: "/api/orders/{id}", Samples: 90, Warm: true, DurationNS: 9e6,
			DurationP90NS: 12e6, Breakdown: map[profile.Category]int64{profile.CPU: 1e6, profile.Net: 8e6}, DNSNS: 3},
		TCP:         &profile.TCPSend{WindowLimitedNS: 1, PeerWindowMinBytes: 2, PeerWindowBytes: 3, DeliveryNS: 4},
		StealNS:     99,
		Accounting:  profile.AccountingGoroutine,
		GoroutineID: 1 << 40,
	}
}

// Every field but the diagnosis survives the stored form; the diagnosis is
// computed again when read.
func TestCodecRoundTrip(t *testing.T) {
	for _, p := range []*profile.Profile{full(), {Breakdown: map[profile.Category]int64{}, StartTime: time.Unix(0, 0)}} {
		got, err := decode(encode(nil, p))
		if err != nil {
			t.Fatal(err)
		}
		want := *p
		want.Diagnosis = profile.Diagnosis{}
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, &want)
		}
	}
}

// A damaged record is an error, never a panic or a wrong profile.
func TestCodecTruncated(t *testing.T) {
	rec := encode(nil, full())
	for n := 0; n < len(rec); n++ {
		if _, err := decode(rec[:n]); err == nil {
			t.Fatalf("record cut at %d of %d bytes decoded", n, len(rec))
		}
	}
	bad := append([]byte{codecVersion + 1}, rec[1:]...)
	if _, err := decode(bad); err == nil {
		t.Fatal("wrong version decoded")
	}
}

func fast(trace string, at time.Time) *profile.Profile {
	return &profile.Profile{TraceID: trace, Method: "GET", Path: "/fast", StartTime: at, DurationNS: 100_000,
		Breakdown: map[profile.Category]int64{profile.CPU: 100_000}}
}

// The recent log is bounded by bytes: old profiles go, a lookup of one says
// it was evicted, a trace never served says not found.
func TestRecentBoundedByBytes(t *testing.T) {
	s := New(Config{RecentBytes: 64 << 10, KeptProfiles: 1, PerBucket: 1})
	t0 := time.Unix(1000, 0)
	const n = 5000
	for i := range n {
		s.Add(fast(fmt.Sprintf("%032x", i), t0.Add(time.Duration(i)*time.Millisecond)))
	}
	st := s.Stats()
	if st.Added != n || st.Recent.Profiles == 0 || st.Recent.Profiles >= n-1 || st.Recent.Bytes > 64<<10 {
		t.Fatalf("stats %+v", st)
	}
	if list, _ := s.Trace(fmt.Sprintf("%032x", n-1)); len(list) != 1 {
		t.Fatal("newest profile not found")
	}
	list, evicted := s.Trace(fmt.Sprintf("%032x", 10))
	if len(list) != 0 || !evicted {
		t.Fatalf("old profile: %d found, evicted %v; want evicted", len(list), evicted)
	}
	if want := t0.Add(time.Duration(n-st.Recent.Profiles) * time.Millisecond); !st.Recent.Oldest.Equal(want) {
		t.Errorf("recent reaches back to %v, want %v", st.Recent.Oldest, want)
	}
	// Never served: not found, not evicted (the filter holds < 5000 of
	// ~65,000 bits here, so a false "evicted" would be a bug).
	if list, evicted := s.Trace(fmt.Sprintf("%032x", n+7)); len(list) != 0 || evicted {
		t.Fatalf("unknown trace: %d found, evicted %v", len(list), evicted)
	}
}

// The drill's case: one slow request, then a busy pod's load for 20
// minutes (simulated clock). The slow one is still there, whole, long after
// the recent log has turned over.
func TestSlowRequestOutlivesLoad(t *testing.T) {
	s := New(Config{RecentBytes: 256 << 10})
	t0 := time.Unix(1000, 0)
	slow := full()
	slow.Partial, slow.StatusCode, slow.Timeline, slow.DNS = false, 200, nil, nil
	slow.StartTime = t0
	s.Add(slow)
	// 20 minutes at 500 requests per simulated second (600,000 requests).
	for i := range 600_000 {
		s.Add(fast(fmt.Sprintf("%032x", i+1), t0.Add(time.Duration(i)*2*time.Millisecond)))
	}
	list, _ := s.Trace(slow.TraceID)
	if len(list) != 1 || list[0].DurationNS != slow.DurationNS || list[0].Baseline == nil {
		t.Fatalf("slow request after 20 min of load: %v", list)
	}
	st := s.Stats()
	if !st.Kept.Oldest.Equal(t0) || st.Kept.Profiles > DefaultKeptProfiles {
		t.Fatalf("kept %+v", st.Kept)
	}
	if st.Recent.Oldest.Before(t0.Add(19 * time.Minute)) {
		t.Fatalf("recent log reaches back to %v: it should have turned over", st.Recent.Oldest)
	}
	// Listing the slowest finds it first, once (it is in both tiers until
	// the recent log drops it; here only in kept).
	if got := s.List(Query{Limit: 3}); len(got) != 3 || got[0].TraceID != slow.TraceID || got[1].TraceID == slow.TraceID {
		t.Fatalf("List = %v", got)
	}
}

// The kept set is bounded by count whatever the number of endpoints, the
// oldest buckets go first, and with many endpoints each keeps fewer per
// bucket so the set reaches back further.
func TestKeptBounded(t *testing.T) {
	s := New(Config{RecentBytes: 64 << 10, KeptProfiles: 100, PerBucket: 4})
	t0 := time.Unix(1000, 0)
	for i := range 10_000 {
		p := fast(fmt.Sprintf("%032x", i), t0.Add(time.Duration(i)*100*time.Millisecond))
		p.Baseline = &profile.Baseline{Method: "GET", Route: fmt.Sprintf("/r%d", i%7)}
		s.Add(p)
	}
	st := s.Stats()
	if st.Kept.Profiles != 100 || st.Kept.Evicted == 0 {
		t.Fatalf("kept %+v", st.Kept)
	}
	// 7 endpoints share each 10 s: 100 / (7 × 90 buckets) rounds to one
	// each per bucket, so 100 reach back ~14 buckets from the last profile
	// (t0+1000 s), not the ~3.6 buckets 4 each would.
	if d := t0.Add(1000 * time.Second).Sub(st.Kept.Oldest); d < 130*time.Second || d > 150*time.Second {
		t.Fatalf("kept reaches back %v, want 130-150s", d)
	}
	// One endpoint alone, with room for 15 min of 10 s buckets, keeps
	// PerBucket per bucket.
	one := New(Config{RecentBytes: 64 << 10, KeptProfiles: 1000, PerBucket: 4})
	for i := range 1000 {
		one.Add(fast(fmt.Sprintf("%032x", i), t0.Add(time.Duration(i)*100*time.Millisecond)))
	}
	if st := one.Stats(); st.Kept.Profiles != 40 {
		t.Fatalf("one endpoint over 100 s kept %d, want 4 per 10 s", st.Kept.Profiles)
	}
}

// A profile in both tiers is listed and looked up once.
func TestNoDuplicatesAcrossTiers(t *testing.T) {
	s := New(Config{})
	p := fast("4bf92f3577b34da6a3ce929d0e0e4736", time.Unix(1000, 0))
	s.Add(p)
	if list, _ := s.Trace(p.TraceID); len(list) != 1 {
		t.Fatalf("Trace found %d copies", len(list))
	}
	if list := s.List(Query{}); len(list) != 1 {
		t.Fatalf("List found %d copies", len(list))
	}
}

// The evicted-trace filter's false "evicted" rate, full (both generations
// at capacity), is what the API documents: under 3%.
func TestEvictedFalsePositives(t *testing.T) {
	s := newEvictedSet(1 << 16)
	for i := range 2 << 16 {
		s.add(hashTrace(fmt.Sprintf("%032x", i)))
	}
	for i := range 1000 {
		if !s.has(hashTrace(fmt.Sprintf("%032x", (2<<16)-1-i))) {
			t.Fatal("a trace just added is not in the filter")
		}
	}
	fp := 0
	const n = 100_000
	for i := range n {
		if s.has(hashTrace(fmt.Sprintf("%032x", 1<<40+i))) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.03 {
		t.Fatalf("false evicted rate %.3f, want under 0.03", rate)
	} else {
		t.Logf("false evicted rate %.4f", rate)
	}
}

// The codes are the categories' positions in profile.Categories.
func TestCategoryCodes(t *testing.T) {
	for i, c := range profile.Categories {
		if code, ok := categoryCode(c); !ok || int(code) != i {
			t.Errorf("%s: code %d %v, want %d", c, code, ok, i)
		}
	}
	if _, ok := categoryCode("future"); ok {
		t.Error("an unknown category has a code")
	}
}
