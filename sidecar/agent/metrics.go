package agent

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/capture"
	"github.com/tracecam/tracecam/sidecar/metrics"
)

// health exports the sidecar's own state — what /v1/status says — as
// Prometheus metrics (names in docs/metrics.md).
type health struct {
	// status is read once per scrape.
	status func() *tracecamv1.Status
	// ring says how full the kernel→user ring buffer is (ok false: gone).
	ring func() (used, size int, ok bool)
	// watchDropped counts profiles slow WatchProfiles clients missed.
	watchDropped func() uint64
	// programs reads the kernel's per-program run counts and times
	// (non-zero only with --bpf-stats).
	programs func() ([]capture.ProgramStat, error)
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descEvents     = desc("tracecam_events_total", "Kernel events delivered to the sidecar, by type.", "type")
	descEventsLost = desc("tracecam_events_lost_total", "Kernel events lost because the ring buffer was full, by type.", "type")
	descRingUsed   = desc("tracecam_ring_buffer_used_bytes", "Bytes waiting in the kernel-to-user ring buffer (fill = used / size).")
	descRingSize   = desc("tracecam_ring_buffer_size_bytes", "Size of the kernel-to-user ring buffer (--ring-buffer-size).")
	descStored     = desc("tracecam_profiles_stored", "Profiles held in the in-memory store.")
	descCapacity   = desc("tracecam_store_capacity", "Slow and notable profiles the in-memory store keeps at most (--store-size).")
	descTierProfs  = desc("tracecam_store_tier_profiles", "Profiles held by each tier of the in-memory store (recent: every profile; kept: per endpoint and 10 s the ones most worth keeping).", "tier")
	descTierBack   = desc("tracecam_store_reaches_back_seconds", "How far back each tier of the in-memory store reaches: the age of its oldest profile.", "tier")
	descTierEvict  = desc("tracecam_store_evicted_total", "Profiles each tier of the in-memory store dropped to stay within its bound.", "tier")
	descThreads    = desc("tracecam_threads_active", "Watched threads the assembler tracks.")
	descConns      = desc("tracecam_connections_active", "Connections with a request in flight.")
	descRedisUp    = desc("tracecam_redis_up", "1 when the last Redis write or ping succeeded, 0 when Redis is unavailable or full (absent without --redis-addr).")
	descRedisQueue = desc("tracecam_redis_pending", "Profiles queued for Redis.")
	descReady      = desc("tracecam_ready", "1 when the probes are attached and the sidecar is not shutting down.")
	descUp         = desc("tracecam_up", "1 when the sidecar watches its pod; an idle sidecar (--on-error=idle, it could not attach) serves 0.")
	descBuild      = desc("tracecam_build_info", "The sidecar's version, as a label; the value is 1.", "version")

	// counters read from the status, in the order they are exported.
	statusCounters = []struct {
		desc *prometheus.Desc
		get  func(*tracecamv1.Status) uint64
	}{
		{desc("tracecam_profiles_total", "Request profiles completed."), func(s *tracecamv1.Status) uint64 { return s.GetAssembler().GetProfiles() }},
		{desc("tracecam_profiles_partial_total", "Profiles marked partial (events lost, or not observed whole)."), func(s *tracecamv1.Status) uint64 { return s.GetAssembler().GetPartial() }},
		{desc("tracecam_requests_dropped_stale_total", "Requests dropped without a response after 5 minutes."), func(s *tracecamv1.Status) uint64 { return s.GetAssembler().GetDroppedStale() }},
		{desc("tracecam_requests_incomplete_total", "Connections that ended before a response."), func(s *tracecamv1.Status) uint64 { return s.GetAssembler().GetIncomplete() }},
		{desc("tracecam_connections_evicted_total", "Connections evicted past the tracking limit."), func(s *tracecamv1.Status) uint64 { return s.GetAssembler().GetDroppedConns() }},
		{desc("tracecam_segments_evicted_total", "Segments evicted past the per-thread limit."), func(s *tracecamv1.Status) uint64 { return s.GetAssembler().GetDroppedSegments() }},
		{desc("tracecam_parse_errors_total", "HTTP heads that did not parse."), func(s *tracecamv1.Status) uint64 { return s.GetAssembler().GetParseErrors() }},
		{desc("tracecam_decode_errors_total", "Kernel records that did not decode."), func(s *tracecamv1.Status) uint64 { return s.GetAssembler().GetDecodeErrors() }},
		{desc("tracecam_output_errors_total", "Profiles that could not be written to stdout."), func(s *tracecamv1.Status) uint64 { return s.GetOutputErrors() }},
		{desc("tracecam_redis_written_total", "Profiles written to Redis."), func(s *tracecamv1.Status) uint64 { return s.GetRedisStats().GetWritten() }},
		{desc("tracecam_redis_dropped_queue_full_total", "Profiles not written to Redis: the write queue was full (Redis slow or down)."), func(s *tracecamv1.Status) uint64 { return s.GetRedisStats().GetDroppedQueueFull() }},
		{desc("tracecam_redis_dropped_write_errors_total", "Profiles not written to Redis: their batch failed."), func(s *tracecamv1.Status) uint64 { return s.GetRedisStats().GetDroppedWriteErrors() }},
	}
	descProgRuns     = desc("tracecam_bpf_program_runs_total", "Runs of each of the camera's BPF programs, for every task on the node (counted only with --bpf-stats).", "program")
	descProgTime     = desc("tracecam_bpf_program_run_seconds_total", "Kernel time spent in each of the camera's BPF programs (counted only with --bpf-stats).", "program")
	descWatchDropped = desc("tracecam_watch_dropped_total", "Profiles a slow WatchProfiles client missed.")
)

// Describe implements prometheus.Collector.
func (h *health) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvents, descEventsLost, descRingUsed, descRingSize, descStored, descCapacity,
		descThreads, descConns, descRedisUp, descRedisQueue, descReady, descUp, descBuild, descWatchDropped, descProgRuns, descProgTime, descTierProfs, descTierBack, descTierEvict} {
		ch <- d
	}
	for _, c := range statusCounters {
		ch <- c.desc
	}
}

// Collect implements prometheus.Collector.
func (h *health) Collect(ch chan<- prometheus.Metric) {
	st := h.status()
	for i := 1; i < len(typeNames); i++ {
		ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(st.GetEventsSeen()[typeNames[i]]), typeNames[i])
		ch <- prometheus.MustNewConstMetric(descEventsLost, prometheus.CounterValue, float64(st.GetEventsLost()[typeNames[i]]), typeNames[i])
	}
	for _, c := range statusCounters {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.get(st)))
	}
	ch <- prometheus.MustNewConstMetric(descWatchDropped, prometheus.CounterValue, float64(h.watchDropped()))
	if used, size, ok := h.ring(); ok {
		ch <- prometheus.MustNewConstMetric(descRingUsed, prometheus.GaugeValue, float64(used))
		ch <- prometheus.MustNewConstMetric(descRingSize, prometheus.GaugeValue, float64(size))
	}
	if h.programs != nil {
		if ps, err := h.programs(); err == nil {
			for _, p := range ps {
				ch <- prometheus.MustNewConstMetric(descProgRuns, prometheus.CounterValue, float64(p.Runs), p.Name)
				ch <- prometheus.MustNewConstMetric(descProgTime, prometheus.CounterValue, float64(p.RunNS)/1e9, p.Name)
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descStored, prometheus.GaugeValue, float64(st.GetProfilesStored()))
	ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, float64(st.GetStoreCapacity()))
	for _, t := range st.GetStores() {
		ch <- prometheus.MustNewConstMetric(descTierProfs, prometheus.GaugeValue, float64(t.GetProfiles()), t.GetName())
		ch <- prometheus.MustNewConstMetric(descTierBack, prometheus.GaugeValue, t.GetReachesBackSeconds(), t.GetName())
		ch <- prometheus.MustNewConstMetric(descTierEvict, prometheus.CounterValue, float64(t.GetEvicted()), t.GetName())
	}
	ch <- prometheus.MustNewConstMetric(descThreads, prometheus.GaugeValue, float64(st.GetAssembler().GetThreadsActive()))
	ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(st.GetAssembler().GetConnsActive()))
	if rs := st.GetRedisStats(); rs != nil {
		up := 0.0
		if st.GetRedis() == "ok" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descRedisUp, prometheus.GaugeValue, up)
		ch <- prometheus.MustNewConstMetric(descRedisQueue, prometheus.GaugeValue, float64(rs.GetPending()))
	}
	ready := 0.0
	if st.GetReady() {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descBuild, prometheus.GaugeValue, 1, st.GetVersion())
}

// newRegistry gathers everything /metrics serves: the north-star metrics
// (rec), the sidecar's health, and the standard process (CPU, memory, file
// descriptors) and Go runtime collectors.
func newRegistry(h *health, rec *metrics.Recorder) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
		h,
		rec,
	)
	return reg
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	// A metric that fails is left out rather than failing the scrape.
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
