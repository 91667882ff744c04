package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tracecam/tracecam/sidecar/diagnose"
	"github.com/tracecam/tracecam/sidecar/profile"
)

const ms = int64(time.Millisecond)

var t0 = time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)

// clock is a settable clock for the recorder and the profiles' times.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func req(c *clock, method, path string, status int, b map[profile.Category]int64) *profile.Profile {
	var d int64
	for _, v := range b {
		d += v
	}
	c.t = c.t.Add(time.Second)
	return &profile.Profile{Method: method, Path: path, StatusCode: status, StartTime: c.t.Add(-time.Duration(d)), DurationNS: d, Breakdown: b}
}

func steady(c *clock) *profile.Profile {
	return req(c, "GET", "/work", 200, map[profile.Category]int64{profile.Sleep: 20 * ms, profile.CPU: 2 * ms})
}

func TestBaselineLearnsMediansAndIgnoresOutliers(t *testing.T) {
	c := &clock{t: t0}
	r := New(Config{Now: c.now})
	for i := range 100 {
		p := steady(c)
		if i%10 == 9 { // one request in ten waits 400 ms on a lock
			p = req(c, "GET", "/work", 200, map[profile.Category]int64{profile.Sleep: 20 * ms, profile.CPU: 2 * ms, profile.Lock: 400 * ms})
		}
		r.Observe(p)
		switch {
		case i < profile.BaselineMinSamples && p.Baseline.Warm:
			t.Fatalf("request %d carries a warm baseline: %+v", i, p.Baseline)
		case i <= 64 && p.Baseline.Samples != int64(min(i, 63)):
			// Young baselines are recomputed every sample: each profile
			// carries the baseline of every request before it.
			t.Fatalf("request %d carries a baseline of %d samples", i, p.Baseline.Samples)
		}
	}
	bs := r.Baselines()
	if len(bs) != 1 {
		t.Fatalf("%d baselines", len(bs))
	}
	b := bs[0]
	if b.Method != "GET" || b.Route != "/work" || b.Samples != 100 || !b.Warm {
		t.Errorf("baseline %+v", b)
	}
	near := func(name string, got, want int64) {
		if math.Abs(float64(got-want)) > 0.07*float64(want)+float64(time.Microsecond) {
			t.Errorf("%s = %v, want ~%v", name, time.Duration(got), time.Duration(want))
		}
	}
	near("median duration", b.DurationNS, 22*ms)
	near("median sleep", b.Breakdown[profile.Sleep], 20*ms)
	near("median cpu", b.Breakdown[profile.CPU], 2*ms)
	if _, ok := b.Breakdown[profile.Lock]; ok {
		t.Errorf("lock median %v: the outliers moved the baseline", b.Breakdown[profile.Lock])
	}
	if b.DurationP90NS < 21*ms || b.DurationP90NS > 400*ms {
		t.Errorf("p90 %v", time.Duration(b.DurationP90NS))
	}

	// The next slow request is judged against it.
	p := req(c, "GET", "/work?fault=1", 200, map[profile.Category]int64{profile.Sleep: 20 * ms, profile.CPU: 2 * ms, profile.Lock: 300 * ms})
	r.Observe(p)
	d, ok := diagnose.Compare(p)
	if !ok || d.Verdict != profile.VerdictDeviates || d.Category != profile.Lock || math.Abs(float64(d.ExcessNS-300*ms)) > float64(ms) {
		t.Errorf("deviation %+v", d)
	}
}

func TestBaselineIsFromBeforeTheProfile(t *testing.T) {
	c := &clock{t: t0}
	r := New(Config{Now: c.now, Window: 24 * time.Hour})
	for range 1000 {
		r.Observe(steady(c))
	}
	// However long the endpoint has run, a profile never carries a
	// baseline that already counts it.
	for i := range 300 {
		p := steady(c)
		r.Observe(p)
		if seen := int64(1000 + i); p.Baseline.Samples >= seen+1 || p.Baseline.Samples < seen-seen/16 {
			t.Fatalf("profile after %d carries a baseline of %d samples", seen, p.Baseline.Samples)
		}
	}
}

func TestWindowSlides(t *testing.T) {
	c := &clock{t: t0}
	r := New(Config{Now: c.now, Window: 10 * time.Minute})
	for range 50 {
		r.Observe(steady(c)) // 50 s
	}
	// The endpoint gets slower for good: after a window the baseline is
	// the new normal.
	slow := func() *profile.Profile {
		return req(c, "GET", "/work", 200, map[profile.Category]int64{profile.Sleep: 80 * ms, profile.CPU: 2 * ms})
	}
	for range 660 { // 11 minutes
		r.Observe(slow())
	}
	b := r.Baselines()[0]
	if b.Breakdown[profile.Sleep] < 75*ms {
		t.Errorf("after a window the baseline still holds the old requests: %+v", b)
	}
	if b.Samples > 600 {
		t.Errorf("window holds %d samples, more than 10 minutes' worth", b.Samples)
	}
	// A window without requests empties it.
	c.t = c.t.Add(11 * time.Minute)
	if b := r.Baselines()[0]; b.Samples != 0 || b.Warm {
		t.Errorf("baseline after an idle window: %+v", b)
	}
}

func TestCardinalityCap(t *testing.T) {
	c := &clock{t: t0}
	r := New(Config{Now: c.now, MaxRoutes: 3})
	for i := range 50 {
		// Ids collapse: these are one route.
		r.Observe(req(c, "GET", fmt.Sprintf("/users/%d", i), 200, map[profile.Category]int64{profile.CPU: ms}))
	}
	for i := range 50 {
		// Distinct routes: only two more fit.
		p := req(c, "GET", fmt.Sprintf("/page-%c%c", 'a'+i%26, 'a'+i/26), 200, map[profile.Category]int64{profile.CPU: ms})
		r.Observe(p)
		if i >= 2 && p.Baseline != nil {
			t.Errorf("request to an overflowed route carries a baseline: %+v", p.Baseline)
		}
	}
	r.Observe(req(c, "POST", "/new", 200, map[profile.Category]int64{profile.CPU: ms}))
	r.Observe(req(c, "BREW", "/pot", 418, map[profile.Category]int64{profile.CPU: ms}))
	st := r.Stats()
	if st.Routes != 3 || st.Overflowed != 50 {
		t.Errorf("stats %+v, want 3 routes, 50 overflowed", st)
	}
	eps, _ := r.snapshot()
	routes := map[string]uint64{}
	for _, e := range eps {
		var n uint64
		for _, v := range e.c.status {
			n += v
		}
		routes[e.method+" "+e.route] = n
	}
	want := map[string]uint64{"GET /users/{id}": 50, "GET /page-aa": 1, "GET /page-ba": 1, "GET other": 48, "POST other": 1, "OTHER other": 1}
	if fmt.Sprint(routes) != fmt.Sprint(want) {
		t.Errorf("endpoints %v, want %v", routes, want)
	}

	// A whole window later, idle routes make room for new ones.
	c.t = c.t.Add(11 * time.Minute)
	r.Observe(req(c, "GET", "/fresh", 200, map[profile.Category]int64{profile.CPU: ms}))
	if st := r.Stats(); st.Evicted != 3 || st.Routes != 1 {
		t.Errorf("after an idle window: %+v", st)
	}
}

func TestMemoryIsBounded(t *testing.T) {
	c := &clock{t: t0}
	r := New(Config{Now: c.now, MaxRoutes: 10})
	for i := range 100_000 {
		r.Observe(req(c, [...]string{"GET", "POST", "X"}[i%3], fmt.Sprintf("/r%d/x", i), 200, map[profile.Category]int64{profile.CPU: ms}))
	}
	if len(r.routes) != 10 || len(r.overflow) != 3 || len(r.free) > 10 {
		t.Errorf("%d routes, %d overflow, %d free", len(r.routes), len(r.overflow), len(r.free))
	}
}

func TestObserveDoesNotAllocate(t *testing.T) {
	c := &clock{t: t0}
	r := New(Config{Now: c.now})
	ps := make([]*profile.Profile, 2000)
	for i := range ps {
		ps[i] = req(c, "GET", fmt.Sprintf("/users/%d", i), 200, map[profile.Category]int64{profile.Sleep: 20 * ms, profile.CPU: 2 * ms, profile.Runq: 100_000})
	}
	for _, p := range ps[:1000] {
		r.Observe(p)
	}
	i := 1000
	// Amortised: the baseline snapshot (two allocations) is recomputed
	// every n/16 samples, so the average rounds down to zero.
	if n := testing.AllocsPerRun(900, func() {
		r.Observe(ps[i])
		i++
	}); n != 0 {
		t.Errorf("Observe allocates %.2f times per profile", n)
	}
}

// scrape serves the recorder through promhttp, as the sidecar does, and
// parses the text with the Prometheus parser.
func scrape(t *testing.T, cs ...prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cs...)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	body, _ := io.ReadAll(rec.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// find returns the metric of family name whose labels include want.
func find(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	for _, m := range fams[name].GetMetric() {
		l := labels(m)
		ok := true
		for k, v := range want {
			ok = ok && l[k] == v
		}
		if ok {
			return m
		}
	}
	return nil
}

func TestMetricsExposition(t *testing.T) {
	c := &clock{t: t0}
	r := New(Config{Now: c.now})
	for range 30 {
		r.Observe(steady(c))
	}
	lockP := req(c, "GET", "/work", 200, map[profile.Category]int64{profile.Sleep: 20 * ms, profile.CPU: 2 * ms, profile.Lock: 300 * ms})
	r.Observe(lockP)
	r.Observe(req(c, "GET", "/users/42", 404, map[profile.Category]int64{profile.CPU: ms}))
	dnsP := req(c, "POST", "/users/43/orders", 502, map[profile.Category]int64{profile.Net: 50 * ms})
	dnsP.DNS = []profile.DNSQuery{{LatencyNS: 40 * ms}}
	r.Observe(dnsP)

	fams := scrape(t, r)
	for name, typ := range map[string]dto.MetricType{
		NameRequestDuration: dto.MetricType_HISTOGRAM, NameRequestCategory: dto.MetricType_HISTOGRAM,
		NameRequests: dto.MetricType_COUNTER, NameRequestCauses: dto.MetricType_COUNTER, NameRequestDeviations: dto.MetricType_COUNTER,
		NameRoutes: dto.MetricType_GAUGE, NameRoutesMax: dto.MetricType_GAUGE, NameRouteOverflow: dto.MetricType_COUNTER, NameRoutesEvicted: dto.MetricType_COUNTER,
	} {
		if f := fams[name]; f == nil || f.GetType() != typ {
			t.Errorf("%s: %v, want a %v", name, f, typ)
		}
	}
	work := map[string]string{"method": "GET", "route": "/work"}
	h := find(fams, NameRequestDuration, work).GetHistogram()
	if h.GetSampleCount() != 31 || math.Abs(h.GetSampleSum()-(30*0.022+0.322)) > 1e-9 {
		t.Errorf("duration histogram: count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
	}
	for _, b := range h.GetBucket() {
		want := uint64(0)
		switch {
		case b.GetUpperBound() >= 0.5:
			want = 31
		case b.GetUpperBound() >= 0.025:
			want = 30
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("duration le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
		}
	}
	for cat, sum := range map[string]float64{"lock": 0.3, "sleep": 31 * 0.020, "cpu": 31 * 0.002} {
		m := find(fams, NameRequestCategory, map[string]string{"method": "GET", "route": "/work", "category": cat})
		if m == nil || m.GetHistogram().GetSampleCount() != 31 || math.Abs(m.GetHistogram().GetSampleSum()-sum) > 1e-9 {
			t.Errorf("category %s: %v, want sum %v over 31", cat, m, sum)
		}
	}
	// Categories an endpoint never spent time in have no series: /work
	// has cpu, sleep, lock; /users/{id} cpu; the POST net and dns.
	if n := len(fams[NameRequestCategory].GetMetric()); n != 6 {
		t.Errorf("%d category series, want 6", n)
	}
	if m := find(fams, NameRequestCategory, map[string]string{"route": "/work", "category": "net"}); m != nil {
		t.Errorf("a category with no time has a series: %v", m)
	}
	if m := find(fams, NameRequestCategory, map[string]string{"route": "/users/{id}/orders", "category": "dns"}); m.GetHistogram().GetSampleSum() != 0.04 {
		t.Errorf("dns time: %v", m)
	}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{NameRequests, map[string]string{"route": "/work", "status_class": "2xx"}, 31},
		{NameRequests, map[string]string{"route": "/users/{id}", "status_class": "4xx"}, 1},
		{NameRequests, map[string]string{"route": "/users/{id}/orders", "method": "POST", "status_class": "5xx"}, 1},
		{NameRequestCauses, map[string]string{"route": "/work", "cause": "sleep"}, 30},
		{NameRequestCauses, map[string]string{"route": "/work", "cause": "lock"}, 1},
		{NameRequestCauses, map[string]string{"route": "/users/{id}/orders", "cause": "dns"}, 1},
		{NameRequestDeviations, map[string]string{"route": "/work", "category": "lock"}, 1},
		{NameRoutes, nil, 3},
		{NameRoutesMax, nil, DefaultMaxRoutes},
	} {
		m := find(fams, tt.name, tt.labels)
		var got float64
		switch {
		case m.GetCounter() != nil:
			got = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			got = m.GetGauge().GetValue()
		}
		if m == nil || got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, m, tt.want)
		}
	}
	// Zero counters are not exported: no series per possible cause.
	if m := find(fams, NameRequestCauses, map[string]string{"route": "/work", "cause": "gc"}); m != nil {
		t.Errorf("zero cause exported: %v", m)
	}
	if lockP.Diagnosis.Cause != "" {
		t.Error("Observe wrote the diagnosis")
	}
}

func BenchmarkObserve(b *testing.B) {
	c := &clock{t: t0}
	r := New(Config{Now: c.now})
	routes := []string{"/users/42", "/users/43/orders", "/checkout", "/health", "/api/v1/items/550e8400-e29b-41d4-a716-446655440000"}
	ps := make([]*profile.Profile, 4096)
	for i := range ps {
		p := req(c, "GET", routes[i%len(routes)], 200, map[profile.Category]int64{
			profile.CPU: 2*ms + int64(i%7)*100_000, profile.Runq: 200_000, profile.Net: 5 * ms, profile.Sleep: int64(i%3) * ms,
		})
		ps[i] = p
	}
	for _, p := range ps {
		r.Observe(p)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Observe(ps[i%len(ps)])
	}
}

// BenchmarkScrape is one /metrics scrape of a full endpoint table
// (DefaultMaxRoutes endpoints), rendered as Prometheus text.
func BenchmarkScrape(b *testing.B) {
	c := &clock{t: t0}
	r := New(Config{Now: c.now})
	for i := range DefaultMaxRoutes * 20 {
		r.Observe(req(c, "GET", fmt.Sprintf("/r%d", i%DefaultMaxRoutes), 200+i%4*100, map[profile.Category]int64{profile.CPU: ms, profile.Lock: int64(i%5) * ms}))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(r)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if i == 0 {
			b.ReportMetric(float64(rec.Body.Len()), "bytes/scrape")
		}
	}
}

// TestConcurrentUse: the capture path observes while scrapes and the API
// read (run with -race).
func TestConcurrentUse(t *testing.T) {
	r := New(Config{MaxRoutes: 5, Window: 50 * time.Millisecond})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20000 {
			p := &profile.Profile{Method: "GET", Path: fmt.Sprintf("/r%d/%d", i%7, i), StatusCode: 200, DurationNS: 3 * ms,
				StartTime: time.Now(), Breakdown: map[profile.Category]int64{profile.CPU: 2 * ms, profile.Lock: ms}}
			r.Observe(p)
			if p.Baseline != nil && p.Baseline.Samples < 0 {
				t.Error("bad baseline")
			}
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		scrape(t, r)
		for _, b := range r.Baselines() {
			_ = b.Breakdown[profile.CPU]
		}
	}
}
