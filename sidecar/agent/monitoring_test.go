package agent

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/metrics"
	"github.com/tracecam/tracecam/sidecar/profile"
)

const monitoringDir = "../../manifests/monitoring"

// exported gathers what the sidecar's /metrics serves, fed with enough
// traffic that every family has series: the series names (histograms as
// _bucket, _sum and _count) and the family names.
func exported(t *testing.T) (series map[string]bool, families []string) {
	t.Helper()
	st := &tracecamv1.Status{
		Version: "test", EventsSeen: map[string]uint64{"data": 10}, EventsLost: map[string]uint64{"data": 1},
		Assembler: &tracecamv1.AssemblerCounters{Profiles: 3}, Redis: "ok", RedisStats: &tracecamv1.RedisStats{Written: 2},
		ProfilesStored: 3, StoreCapacity: 10, Ready: true,
	}
	h := &health{
		status:       func() *tracecamv1.Status { return st },
		ring:         func() (int, int, bool) { return 4096, 8 << 20, true },
		watchDropped: func() uint64 { return 0 },
	}
	rec := metrics.New(metrics.Config{MaxRoutes: 1})
	at := time.Now()
	for i := range 30 {
		b := map[profile.Category]int64{profile.Sleep: 20e6, profile.CPU: 1e6}
		d := int64(21e6)
		if i == 29 { // a lock wait: a deviation
			b[profile.Lock] = 300e6
			d += 300e6
		}
		rec.Observe(&profile.Profile{Method: "GET", Path: "/work", StatusCode: 200, StartTime: at, DurationNS: d, Breakdown: b})
	}
	rec.Observe(&profile.Profile{Method: "GET", Path: "/overflow", StatusCode: 503, StartTime: at, DurationNS: 1e6, Breakdown: map[profile.Category]int64{profile.CPU: 1e6}})
	fams, err := newRegistry(h, rec).Gather()
	if err != nil {
		t.Fatal(err)
	}
	series = map[string]bool{}
	for _, f := range fams {
		families = append(families, f.GetName())
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				series[f.GetName()+s] = true
			}
			continue
		}
		series[f.GetName()] = true
	}
	return series, families
}

// metricRe finds metric names in PromQL: tracecam's own, recorded
// (tracecam:...), and the standard process and Go collectors'. Quoted
// strings (label values, template variables) are removed first.
var (
	metricRe = regexp.MustCompile(`\b(?:tracecam[_:]|process_|go_)[a-zA-Z0-9_:]*`)
	quotedRe = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

func metricNames(expr string) []string {
	return metricRe.FindAllString(quotedRe.ReplaceAllString(expr, `""`), -1)
}

// balanced is a cheap syntax check: brackets nest and close.
func balanced(expr string) bool {
	expr = quotedRe.ReplaceAllString(expr, `""`)
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for _, r := range expr {
		switch r {
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0
}

func loadConfigMap(t *testing.T, file string) *corev1.ConfigMap {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, file))
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{}
	if err := yaml.UnmarshalStrict(b, cm); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || cm.Name == "" || cm.Namespace != "tracecam-system" {
		t.Errorf("%s: %s %s %s/%s, want a v1 ConfigMap in tracecam-system", file, cm.APIVersion, cm.Kind, cm.Namespace, cm.Name)
	}
	return cm
}

// ruleFile is the Prometheus rule file format (rule_files).
type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Record      string            `json:"record,omitempty"`
			Alert       string            `json:"alert,omitempty"`
			Expr        string            `json:"expr"`
			For         string            `json:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

var (
	recordNameRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]*$`)
	alertNameRe  = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
)

func TestPrometheusRules(t *testing.T) {
	series, _ := exported(t)
	cm := loadConfigMap(t, "prometheus-rules-configmap.yaml")
	text, ok := cm.Data["tracecam.rules.yml"]
	if !ok || len(cm.Data) != 1 {
		t.Fatalf("data keys %v, want tracecam.rules.yml", slices.Sorted(maps.Keys(cm.Data)))
	}
	var rf ruleFile
	if err := yaml.UnmarshalStrict([]byte(text), &rf); err != nil {
		t.Fatalf("not a Prometheus rule file: %v", err)
	}
	if len(rf.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	recorded := map[string]bool{}
	groups := map[string]bool{}
	alerts := 0
	for _, g := range rf.Groups {
		if g.Name == "" || groups[g.Name] {
			t.Errorf("group name %q empty or repeated", g.Name)
		}
		groups[g.Name] = true
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			name := r.Record + r.Alert
			switch {
			case (r.Record == "") == (r.Alert == ""):
				t.Errorf("%s: a rule needs exactly one of record and alert", name)
			case r.Record != "" && !recordNameRe.MatchString(r.Record):
				t.Errorf("recording rule %q: want level:metric:operations", r.Record)
			case r.Record != "" && (r.For != "" || len(r.Annotations) > 0):
				t.Errorf("recording rule %q has for or annotations", r.Record)
			case r.Alert != "" && !alertNameRe.MatchString(r.Alert):
				t.Errorf("alert %q: want CamelCase", r.Alert)
			case r.Alert != "" && r.Annotations["summary"] == "":
				t.Errorf("alert %q has no summary", r.Alert)
			}
			if r.Alert != "" {
				alerts++
				if r.For != "" {
					if _, err := time.ParseDuration(r.For); err != nil {
						t.Errorf("alert %q: for %q: %v", r.Alert, r.For, err)
					}
				}
			}
			if strings.TrimSpace(r.Expr) == "" || !balanced(r.Expr) {
				t.Errorf("%s: expr empty or unbalanced: %q", name, r.Expr)
			}
			names := metricNames(r.Expr)
			if len(names) == 0 {
				t.Errorf("%s uses no tracecam metric: %q", name, r.Expr)
			}
			for _, m := range names {
				if strings.HasPrefix(m, "tracecam:") && !recorded[m] {
					t.Errorf("%s uses %s, which no rule records", name, m)
				} else if !strings.HasPrefix(m, "tracecam:") && !series[m] {
					t.Errorf("%s uses %s, which the sidecar does not export", name, m)
				}
			}
		}
	}
	if alerts < 5 {
		t.Errorf("%d alerts: the example should cover latency, deviations and the sidecar's health", alerts)
	}
}

// panelTargets walks a dashboard's panels (rows may nest them) for the
// queries they run.
func panelTargets(panels []any, out *[]string) {
	for _, p := range panels {
		pm, _ := p.(map[string]any)
		for _, tg := range asSlice(pm["targets"]) {
			if e, ok := tg.(map[string]any)["expr"].(string); ok {
				*out = append(*out, e)
			}
		}
		panelTargets(asSlice(pm["panels"]), out)
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func TestGrafanaDashboard(t *testing.T) {
	series, _ := exported(t)
	cm := loadConfigMap(t, "grafana-dashboard-configmap.yaml")
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("label grafana_dashboard=%q, want \"1\" (the Grafana sidecar's convention)", cm.Labels["grafana_dashboard"])
	}
	text, ok := cm.Data["tracecam-dashboard.json"]
	if !ok {
		t.Fatal("no tracecam-dashboard.json in data")
	}
	var dash map[string]any
	if err := json.Unmarshal([]byte(text), &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	if dash["uid"] == nil || dash["title"] == nil {
		t.Error("dashboard without uid or title")
	}
	var exprs []string
	panelTargets(asSlice(dash["panels"]), &exprs)
	if len(exprs) < 10 {
		t.Fatalf("%d queries in the dashboard", len(exprs))
	}
	templating, _ := dash["templating"].(map[string]any)
	for _, v := range asSlice(templating["list"]) {
		if q, ok := v.(map[string]any)["definition"].(string); ok {
			exprs = append(exprs, q)
		}
	}
	used := map[string]bool{}
	for _, e := range exprs {
		if !balanced(e) {
			t.Errorf("unbalanced query: %q", e)
		}
		for _, m := range metricNames(e) {
			used[m] = true
			if !series[m] {
				t.Errorf("query uses %s, which the sidecar does not export: %q", m, e)
			}
		}
	}
	// The north star is on it: duration, category time, causes and
	// deviations, the sidecar's CPU and memory.
	for _, m := range []string{
		metrics.NameRequestDuration + "_bucket", metrics.NameRequestCategory + "_sum", metrics.NameRequestCauses,
		metrics.NameRequestDeviations, "process_cpu_seconds_total", "process_resident_memory_bytes", "tracecam_events_lost_total",
	} {
		if !used[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
}

// TestMetricsDocumented: every tracecam metric the sidecar exports is in
// docs/metrics.md.
func TestMetricsDocumented(t *testing.T) {
	_, families := exported(t)
	doc, err := os.ReadFile("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if strings.HasPrefix(f, "tracecam_") && !strings.Contains(string(doc), "`"+f+"`") {
			t.Errorf("%s is not documented in docs/metrics.md", f)
		}
	}
	for _, want := range []string{"process_cpu_seconds_total", "tracecam_request_category_seconds", "tracecam_ring_buffer_used_bytes"} {
		if !slices.Contains(families, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}
