package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// scrapeMetrics fetches the sidecar's /metrics as Prometheus does and
// parses it with Prometheus' own text parser.
func scrapeMetrics(t *testing.T, s *sidecar) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + s.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// metric returns the series of family name whose labels include want
// (nil when there is none).
func metric(fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	for _, m := range fams[name].GetMetric() {
		ok := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == k && l.GetValue() == v)
			}
			ok = ok && found
		}
		if ok {
			return m
		}
	}
	return nil
}

// value is a counter's or gauge's value, 0 when absent.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	m := metric(fams, name, want)
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// TestMetricsAndBaselines runs the drill's third step on a real workload:
// an endpoint that always sleeps 40 ms learns its baseline; then one
// request waits 150 ms on a lock another thread holds. Its diagnosis names
// lock with the excess over the baseline (not sleep, the usual largest
// category), the requests around it are not flagged, /metrics shows the
// lock time rise and counts the deviation, and the API lists the baseline
// and finds the request by its cause.
func TestMetricsAndBaselines(t *testing.T) {
	w := startWorld(t, "python")
	const steadyURL = "/work?sleep_ms=40&cpu_ms=2"
	steady := func(n int) []*profile.Profile {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = newTraceID()
			get(t, w.base+steadyURL, ids[i])
		}
		out := make([]*profile.Profile, n)
		for i, id := range ids {
			out[i] = w.side.waitProfile(t, id, 10*time.Second)
		}
		return out
	}

	// Warm-up: more than profile.BaselineMinSamples requests.
	warm := steady(profile.BaselineMinSamples + 10)
	for i, p := range warm {
		if p.Baseline == nil || p.Baseline.Route != "/work" || p.Baseline.Method != "GET" {
			t.Fatalf("warm-up request %d carries baseline %+v", i, p.Baseline)
		}
		if p.Diagnosis.Deviation == nil {
			t.Fatalf("warm-up request %d has no comparison with the baseline: %+v", i, p.Diagnosis)
		}
		if i < profile.BaselineMinSamples && p.Diagnosis.Deviation.Verdict != profile.VerdictWarmingUp {
			t.Errorf("request %d of the warm-up judged against %d samples: %+v", i, p.Baseline.Samples, p.Diagnosis.Deviation)
		}
	}
	// Other endpoints: ids collapse into one route.
	for _, path := range []string{"/users/123", "/users/456?x=1"} {
		code, body := curl(t, w.base+path)
		if code != 404 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	before := scrapeMetrics(t, w.side)

	// The fault.
	faultID := newTraceID()
	body := get(t, w.base+steadyURL+"&lock_ms=150", faultID)
	// The workload's own clock around its lock acquisition.
	var waitedMS float64
	if i := strings.Index(body, "lock_waited_ms="); i < 0 {
		t.Fatalf("the fault's reply names no lock wait: %q", body)
	} else if _, err := fmt.Sscanf(body[i:], "lock_waited_ms=%f", &waitedMS); err != nil {
		t.Fatalf("the fault's reply %q: %v", body, err)
	}
	fault := w.side.waitProfile(t, faultID, 10*time.Second)
	b := fault.Baseline
	if b == nil || !b.Warm || b.Samples < profile.BaselineMinSamples {
		t.Fatalf("the fault's profile carries baseline %+v, want a warm one", b)
	}
	// The baseline is the steady request: ~40 ms asleep, no lock.
	if s := b.Breakdown[profile.Sleep]; s < 36e6 || s > 60e6 {
		t.Errorf("baseline sleep median %.1f ms, want ~40", ms(s))
	}
	if l := b.Breakdown[profile.Lock]; l > 5e6 {
		t.Errorf("baseline lock median %.1f ms, want ~0", ms(l))
	}
	d := fault.Diagnosis.Deviation
	if d == nil || d.Verdict != profile.VerdictDeviates || d.Category != profile.Lock {
		t.Fatalf("fault: deviation %+v, want lock (diagnosis %q)\n%s", d, fault.Diagnosis.Summary, dump(fault))
	}
	// The excess against the workload's own clock around its lock
	// acquisition (which also holds the wake-up after the release: runq in
	// the profile). A busy node adds runq to the slow request too: most of
	// the excess, not all.
	waited := int64(waitedMS * 1e6)
	if d.ExcessNS > waited*11/10+2e6 || d.ExcessNS+fault.Breakdown[profile.Runq] < waited*9/10-2e6 || d.ExcessNS*10 < d.TotalExcessNS*6 {
		t.Errorf("lock excess %.1f ms of %.1f ms (runq %.1f ms), the workload waited %.1f ms for the lock: want that, and most of the excess",
			ms(d.ExcessNS), ms(d.TotalExcessNS), ms(fault.Breakdown[profile.Runq]), waitedMS)
	}
	if got := fault.Breakdown[profile.Lock] - b.Breakdown[profile.Lock]; got != d.ExcessNS {
		t.Errorf("excess %d ns, breakdown minus baseline %d ns", d.ExcessNS, got)
	}
	if fault.Diagnosis.Cause != profile.CauseLock || !strings.Contains(fault.Diagnosis.Summary, "vs typical") ||
		!strings.Contains(fault.Diagnosis.Summary, "of the excess") || !strings.Contains(fault.Diagnosis.Summary, "fault-holder") {
		t.Errorf("fault diagnosis: %s — %q", fault.Diagnosis.Cause, fault.Diagnosis.Summary)
	}

	t.Logf("fault: %s — %s", fault.Diagnosis.Cause, fault.Diagnosis.Summary)
	// The requests after it are not flagged, and the one outlier did not
	// move the baseline.
	after := steady(10)
	typical := 0
	for _, p := range after {
		d := p.Diagnosis.Deviation
		switch {
		case d == nil:
			t.Errorf("unaffected request without a comparison: %+v", p.Diagnosis)
		case d.Verdict == profile.VerdictTypical:
			typical++
		case d.Verdict == profile.VerdictDeviates && d.Category == profile.Runq:
			// A busy machine really did delay it: the camera saw it.
			t.Logf("unaffected request %.1f ms flagged runq +%.1f ms (the node is busy)", ms(p.DurationNS), ms(d.ExcessNS))
		default:
			t.Errorf("unaffected request (%.1f ms) flagged: %+v — %s", ms(p.DurationNS), d, p.Diagnosis.Summary)
		}
		if l := p.Baseline.Breakdown[profile.Lock]; l > 5e6 {
			t.Errorf("one outlier moved the lock median to %.1f ms", ms(l))
		}
	}
	if typical < 8 {
		t.Errorf("%d of 10 unaffected requests typical", typical)
	}

	// /metrics: the lock time rose by the fault's, one deviation counted,
	// the requests counted per route and status class.
	afterM := scrapeMetrics(t, w.side)
	work := map[string]string{"method": "GET", "route": "/work"}
	lock := map[string]string{"method": "GET", "route": "/work", "category": "lock"}
	lockSum := func(f map[string]*dto.MetricFamily) float64 {
		return metric(f, "tracecam_request_category_seconds", lock).GetHistogram().GetSampleSum()
	}
	if rise := lockSum(afterM) - lockSum(before); math.Abs(rise-float64(fault.Breakdown[profile.Lock])/1e9) > 0.01 {
		t.Errorf("lock seconds rose by %.3f, the fault waited %.3f", rise, float64(fault.Breakdown[profile.Lock])/1e9)
	}
	if h := metric(afterM, "tracecam_request_category_seconds", lock).GetHistogram(); h.GetSampleCount() != 41 {
		t.Errorf("lock histogram counts %d requests, want 41", h.GetSampleCount())
	} else {
		for _, bk := range h.GetBucket() {
			if bk.GetUpperBound() == 0.1 && bk.GetCumulativeCount() != 40 {
				t.Errorf("%d requests with ≤ 100 ms of lock, want 40", bk.GetCumulativeCount())
			}
		}
	}
	if sleep := metric(afterM, "tracecam_request_category_seconds", map[string]string{"route": "/work", "category": "sleep"}).GetHistogram(); sleep.GetSampleSum() < 41*0.038 {
		t.Errorf("sleep seconds %.3f for 41 requests of 40 ms", sleep.GetSampleSum())
	}
	if n := metric(afterM, "tracecam_request_duration_seconds", work).GetHistogram().GetSampleCount(); n != 41 {
		t.Errorf("duration histogram counts %d /work requests, want 41", n)
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tracecam_request_deviations_total", lock, 1},
		{"tracecam_request_causes_total", map[string]string{"route": "/work", "cause": "lock"}, 1},
		{"tracecam_requests_total", map[string]string{"route": "/work", "status_class": "2xx"}, 41},
		{"tracecam_requests_total", map[string]string{"route": "/users/{id}", "status_class": "4xx"}, 2},
	} {
		if got := value(afterM, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := value(before, "tracecam_request_deviations_total", lock); got != 0 {
		t.Errorf("deviations before the fault: %v", got)
	}
	// The sidecar's own health, and its cost.
	for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "tracecam_events_total",
		"tracecam_events_lost_total", "tracecam_profiles_stored", "tracecam_redis_dropped_write_errors_total"} {
		if afterM[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if got := value(afterM, "tracecam_ring_buffer_size_bytes", nil); got != 8<<20 {
		t.Errorf("ring buffer size %v", got)
	}
	if rss := value(afterM, "process_resident_memory_bytes", nil); rss < 1<<20 {
		t.Errorf("sidecar RSS %v bytes", rss)
	}

	// The API: baselines, and step 1 of the drill by cause.
	code, body := curl(t, "http://"+w.side.httpAddr+"/v1/baselines?route=/work")
	var bl struct {
		Baselines []struct {
			Method, Route string
			Samples       int64
			Warm          bool
			Breakdown     map[string]int64
		}
		Window     string
		MinSamples int `json:"min_samples"`
	}
	if err := json.Unmarshal([]byte(body), &bl); code != 200 || err != nil || len(bl.Baselines) != 1 {
		t.Fatalf("GET /v1/baselines: %d %v %s", code, err, body)
	}
	if x := bl.Baselines[0]; x.Route != "/work" || !x.Warm || x.Samples != 41 || x.Breakdown["sleep"] < 36e6 || bl.MinSamples != profile.BaselineMinSamples {
		t.Errorf("baseline %s", body)
	}
	if code, text := curl(t, "http://"+w.side.httpAddr+"/v1/baselines?format=text"); code != 200 || !strings.Contains(text, "GET /users/{id}") || !strings.Contains(text, "GET /work") {
		t.Errorf("baselines text: %d\n%s", code, text)
	} else {
		t.Logf("GET /v1/baselines?format=text\n%s", text)
	}
	code, body = curl(t, "http://"+w.side.httpAddr+"/v1/profiles?cause=lock&since=10m")
	if code != 200 || !strings.Contains(body, faultID) || strings.Contains(body, warm[0].TraceID) {
		t.Errorf("GET /v1/profiles?cause=lock&since=10m: %d, want the fault %s only: %.2000s", code, faultID, body)
	}
	if code, body = curl(t, "http://"+w.side.httpAddr+"/v1/profiles?cause=sleep&path=/work&limit=100"); code != 200 || strings.Contains(body, faultID) ||
		strings.Count(body, `"trace_id":`) < 30 {
		t.Errorf("cause=sleep: %d, %d profiles, fault included %v", code, strings.Count(body, `"trace_id":`), strings.Contains(body, faultID))
	}
	if code, body = curl(t, "http://"+w.side.httpAddr+"/v1/profiles?cause=slowness"); code != 400 || !strings.Contains(body, "cause") {
		t.Errorf("bad cause: %d %s", code, body)
	}
	// The camera view shows what the request is compared with.
	if code, text := curl(t, "http://"+w.side.httpAddr+"/v1/traces/"+faultID+"?format=text"); code != 200 ||
		!strings.Contains(text, "typical") || !strings.Contains(text, fmt.Sprintf("for GET /work over %d requests", b.Samples)) {
		t.Errorf("text view: %d\n%s", code, text)
	} else {
		t.Logf("the fault's camera view:\n%s", text)
	}
}
