package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
)

func mk(trace string, ms int, path string, at time.Time) *profile.Profile {
	return &profile.Profile{TraceID: trace, DurationNS: int64(ms) * 1e6, Path: path, StartTime: at}
}

func TestRingBoundedAndIndexed(t *testing.T) {
	r := NewRing(3)
	t0 := time.Unix(1000, 0)
	for i := 0; i < 5; i++ {
		r.Add(mk(fmt.Sprintf("t%d", i%2), 10*(i+1), "/p", t0.Add(time.Duration(i)*time.Second)))
	}
	st := r.Stats()
	if st.Stored != 3 || st.Evicted != 2 || st.Added != 5 {
		t.Fatalf("stats = %+v", st)
	}
	// i=2,3,4 remain: t0 has i=2,4; t1 has i=3.
	if got := len(r.Trace("t0")); got != 2 {
		t.Fatalf("t0 has %d profiles, want 2", got)
	}
	if got := len(r.Trace("t1")); got != 1 {
		t.Fatalf("t1 has %d profiles, want 1", got)
	}
	if tr := r.Trace("t0"); !tr[0].StartTime.Before(tr[1].StartTime) {
		t.Fatal("trace profiles not oldest first")
	}
}

func TestRingList(t *testing.T) {
	r := NewRing(10)
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
	r := NewRing(1000)
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
	r := NewRing(10)
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
