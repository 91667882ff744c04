package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metric names (documented in docs/metrics.md).
const (
	NameRequestDuration   = "tracecam_request_duration_seconds"
	NameRequestCategory   = "tracecam_request_category_seconds"
	NameRequests          = "tracecam_requests_total"
	NameRequestCauses     = "tracecam_request_causes_total"
	NameRequestDeviations = "tracecam_request_deviations_total"
	NameRoutes            = "tracecam_routes"
	NameRoutesMax         = "tracecam_routes_max"
	NameRouteOverflow     = "tracecam_route_overflow_total"
	NameRoutesEvicted     = "tracecam_routes_evicted_total"
)

var (
	descDuration = prometheus.NewDesc(NameRequestDuration,
		"Duration of the requests the pod served (first byte read to last byte written), by endpoint.",
		[]string{"method", "route"}, nil)
	descCategory = prometheus.NewDesc(NameRequestCategory,
		"Time the serving thread spent in each category per request (cpu, runq, net, file, lock, epoll, sleep, queue, other; dns is the part of net/epoll spent in DNS lookups, gc the part of lock spent stopped by the runtime's garbage collector), by endpoint.",
		[]string{"method", "route", "category"}, nil)
	descRequests = prometheus.NewDesc(NameRequests,
		"Requests served, by endpoint and status class (1xx..5xx, unknown when no response status was seen).",
		[]string{"method", "route", "status_class"}, nil)
	descCauses = prometheus.NewDesc(NameRequestCauses,
		"Requests by diagnosed cause (the cause /v1/profiles reports), by endpoint.",
		[]string{"method", "route", "cause"}, nil)
	descDeviations = prometheus.NewDesc(NameRequestDeviations,
		"Requests markedly slower than their endpoint's baseline whose excess sits in one category, by that category.",
		[]string{"method", "route", "category"}, nil)
	descRoutes = prometheus.NewDesc(NameRoutes,
		"Endpoints (method and normalised route) tracked one by one.", nil, nil)
	descRoutesMax = prometheus.NewDesc(NameRoutesMax,
		"Most endpoints tracked one by one (--max-routes); further ones are counted under route=\"other\".", nil, nil)
	descOverflow = prometheus.NewDesc(NameRouteOverflow,
		"Requests counted under route=\"other\" because the endpoint table was full.", nil, nil)
	descEvicted = prometheus.NewDesc(NameRoutesEvicted,
		"Endpoints dropped from a full table after a whole baseline window without requests.", nil, nil)
)

// Describe implements prometheus.Collector.
func (r *Recorder) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDuration, descCategory, descRequests, descCauses, descDeviations, descRoutes, descRoutesMax, descOverflow, descEvicted} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: every endpoint's duration
// histogram, its category histograms for the categories it spent time in
// (each counting every request, so sums and counts compare), and its
// counters that are not zero.
func (r *Recorder) Collect(ch chan<- prometheus.Metric) {
	eps, st := r.snapshot()
	for i := range eps {
		e := &eps[i]
		c := &e.c
		var count uint64
		for _, n := range c.dur {
			count += n
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, count, float64(c.durSum)/1e9, cumulative(durationBounds, c.dur[:]), e.method, e.route)
		for k := range numCats {
			if c.catSum[k] == 0 {
				// A category the endpoint never spent time in has no
				// series (yet): most endpoints use a few of them, and
				// these series are most of a scrape. Its count, once it
				// appears, still counts every request.
				continue
			}
			ch <- prometheus.MustNewConstHistogram(descCategory, count, float64(c.catSum[k])/1e9, cumulative(categoryBounds, c.cat[k][:]), e.method, e.route, catNames[k])
		}
		for k, n := range c.status {
			if n > 0 {
				ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(n), e.method, e.route, statusNames[k])
			}
		}
		for k, n := range c.causes {
			if n > 0 {
				ch <- prometheus.MustNewConstMetric(descCauses, prometheus.CounterValue, float64(n), e.method, e.route, string(causeNames[k]))
			}
		}
		for k, n := range c.deviations {
			if n > 0 {
				ch <- prometheus.MustNewConstMetric(descDeviations, prometheus.CounterValue, float64(n), e.method, e.route, catNames[k])
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descRoutes, prometheus.GaugeValue, float64(st.Routes))
	ch <- prometheus.MustNewConstMetric(descRoutesMax, prometheus.GaugeValue, float64(st.MaxRoutes))
	ch <- prometheus.MustNewConstMetric(descOverflow, prometheus.CounterValue, float64(st.Overflowed))
	ch <- prometheus.MustNewConstMetric(descEvicted, prometheus.CounterValue, float64(st.Evicted))
}

// cumulative turns per-bucket counts (the last one +Inf) into the
// cumulative counts by upper bound a const histogram takes.
func cumulative(bounds []float64, counts []uint64) map[float64]uint64 {
	out := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, b := range bounds {
		cum += counts[i]
		out[b] = cum
	}
	return out
}
