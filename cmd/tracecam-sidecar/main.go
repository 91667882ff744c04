// Command tracecam-sidecar watches one cgroup (a pod) with eBPF and prints
// or serves a profile of every request its threads serve.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tracecam/tracecam/sidecar/agent"
	"github.com/tracecam/tracecam/sidecar/metrics"
	"github.com/tracecam/tracecam/sidecar/rediscache"
	"github.com/tracecam/tracecam/sidecar/store"
)

// envDefault lets every flag be set from TRACECAM_<FLAG> (dashes become
// underscores), so the webhook can configure the sidecar by environment.
func envDefault(name, def string) string {
	if v, ok := os.LookupEnv("TRACECAM_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))); ok {
		return v
	}
	return def
}

// envDuration is envDefault for duration flags.
func envDuration(name string, def time.Duration) time.Duration {
	if v := envDefault(name, ""); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tracecam-sidecar:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := flag.NewFlagSet("tracecam-sidecar", flag.ContinueOnError)
	cg := fs.String("cgroup", envDefault("cgroup", ""), "cgroup v2 directory to watch (host path or path under the cgroup2 mount); default: the parent of this process's cgroup, i.e. the pod")
	output := fs.String("output", envDefault("output", "none"), "print completed profiles on stdout: none, text or json (one object per line)")
	grpcAddr := fs.String("grpc-addr", envDefault("grpc-addr", ":7070"), "gRPC address for tracecam.v1.Profiler (empty: off)")
	httpAddr := fs.String("http-addr", envDefault("http-addr", ":7071"), "HTTP address for the REST API (/v1/...), /healthz, /readyz, /metrics, /openapi.json (empty: off)")
	thrS := fs.String("segment-threshold", envDefault("segment-threshold", "1ms"), "waits at least this long become timeline segments")
	storeS := fs.String("store-size", envDefault("store-size", strconv.Itoa(store.DefaultKeptProfiles)), "slow and notable profiles kept in memory: per endpoint and per 10 s the 16 most worth keeping, this many at most (docs/architecture.md, how long profiles stay)")
	storeBytesS := fs.String("store-bytes", envDefault("store-bytes", strconv.Itoa(store.DefaultRecentBytes)), "bytes of memory for every recent profile in compact form (~160 B each), oldest overwritten first")
	pod := fs.String("pod", envDefault("pod", os.Getenv("POD_NAME")), "pod name to label profiles with")
	ns := fs.String("namespace", envDefault("namespace", os.Getenv("POD_NAMESPACE")), "pod namespace to label profiles with")
	container := fs.String("container", envDefault("container", ""), "container name to label profiles with when the process's own is not known (the webhook sets it for a pod with one app container; each app container also carries TRACECAM_CONTAINER_NAME, read where the sidecar may read its environment)")
	ringS := fs.String("ring-buffer-size", envDefault("ring-buffer-size", "8388608"), "kernel-to-user event buffer in bytes (a power of two); events that do not fit are counted as lost")
	redisAddr := fs.String("redis-addr", envDefault("redis-addr", ""), "shared Redis for cross-pod trace lookups, host:port; several, comma-separated, = Redis Cluster (or Sentinel with --redis-master-name); empty: in-memory store only")
	redisPassFile := fs.String("redis-password-file", envDefault("redis-password-file", ""), "file holding the Redis password")
	redisTLS := fs.Bool("redis-tls", envDefault("redis-tls", "") == "true", "connect to Redis over TLS")
	redisCA := fs.String("redis-tls-ca", envDefault("redis-tls-ca", ""), "PEM CA file to verify Redis' certificate (default: system roots)")
	redisTTL := fs.Duration("redis-ttl", envDuration("redis-ttl", 15*time.Minute), "how long profiles stay in Redis")
	redisMaster := fs.String("redis-master-name", envDefault("redis-master-name", ""), "Sentinel master name (with --redis-addr listing the sentinels)")
	clusterName := fs.String("cluster-name", envDefault("cluster-name", "default"), "names this Kubernetes cluster in Redis keys, so one Redis can serve several")
	pprofOn := fs.Bool("pprof", envDefault("pprof", "") == "true", "serve Go profiling at /debug/pprof/ on the HTTP port")
	bpfStats := fs.Bool("bpf-stats", envDefault("bpf-stats", "") == "true", "count each BPF program's runs and kernel time (tracecam_bpf_program_* in /metrics); costs every BPF program on the node two clock reads per run")
	podUID := fs.String("pod-uid", envDefault("pod-uid", os.Getenv("POD_UID")), "pod UID: finds the pod's cgroup when a private cgroup namespace hides it")
	goProbes := fs.Bool("go-probes", envDefault("go-probes", "true") == "true", "follow the pod's Go programs goroutine by goroutine (uprobes on runtime.execute and runtime.ready, ~1 µs per goroutine switch); false: their profiles are estimated and say so")
	logLevel := fs.String("log-level", envDefault("log-level", "info"), "debug, info, warn or error")
	onError := fs.String("on-error", envDefault("on-error", "exit"), "when the probes cannot be attached (or the cgroup not found): exit (with the reason), or idle (log it, stay up and ready, /v1/status says why; what the webhook injects, so a sidecar that cannot watch never takes its pod out of service)")
	maxRoutesS := fs.String("max-routes", envDefault("max-routes", strconv.Itoa(metrics.DefaultMaxRoutes)), "endpoints (method and normalised route) tracked one by one in /metrics and baselines; further ones are counted under route \"other\"")
	baselineWindow := fs.Duration("baseline-window", envDuration("baseline-window", metrics.DefaultWindow), "span endpoint baselines are learned over (two halves, the older dropped as a new one starts)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *onError != "exit" && *onError != "idle" {
		return fmt.Errorf("--on-error=%q: want exit or idle", *onError)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	// Logs go to stderr so stdout stays a clean profile stream for jq.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
	switch *output {
	case "none", "text", "json":
	default:
		return fmt.Errorf("--output must be none, text or json, not %q", *output)
	}
	thr, err := time.ParseDuration(*thrS)
	if err != nil || thr <= 0 {
		return fmt.Errorf("--segment-threshold %q: want a positive duration like 1ms", *thrS)
	}
	size, err := strconv.Atoi(*storeS)
	if err != nil || size <= 0 {
		return fmt.Errorf("--store-size %q: want a positive integer", *storeS)
	}
	storeBytes, err := strconv.Atoi(*storeBytesS)
	if err != nil || storeBytes < 1<<20 {
		return fmt.Errorf("--store-bytes %q: want a number of bytes, at least 1048576", *storeBytesS)
	}

	// Memory: the store is bounded in bytes (--store-bytes) and holds no
	// pointers, so the collector never scans it; the rest of the heap is
	// profiles in flight, short-lived garbage at a steady rate. Collecting
	// less often trades memory for CPU the node would otherwise pay; the
	// soft limit (the store with its index, plus 24 MiB; 16 MiB cost ~0.6
	// µs per request in collections, docs/benchmarks.md) keeps the heap,
	// and so the sidecar's RSS, in check. GOGC and GOMEMLIMIT, when set,
	// win.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(storeBytes)*5/4 + 24<<20)
	}

	maxRoutes, err := strconv.Atoi(*maxRoutesS)
	if err != nil || maxRoutes <= 0 {
		return fmt.Errorf("--max-routes %q: want a positive integer", *maxRoutesS)
	}
	if *baselineWindow < 2*time.Second {
		return fmt.Errorf("--baseline-window %v: want at least 2s", *baselineWindow)
	}

	ring, err := strconv.ParseUint(*ringS, 10, 32)
	if err != nil {
		return fmt.Errorf("--ring-buffer-size %q: want a number of bytes", *ringS)
	}

	var redisCfg *rediscache.Config
	if *redisAddr != "" {
		redisCfg = &rediscache.Config{
			Addrs: strings.Split(*redisAddr, ","), MasterName: *redisMaster, TLS: *redisTLS, TLSCAFile: *redisCA,
			TTL: *redisTTL, Cluster: *clusterName,
		}
		if *redisPassFile != "" {
			b, err := os.ReadFile(*redisPassFile)
			if err != nil {
				return fmt.Errorf("--redis-password-file: %w", err)
			}
			redisCfg.Password = strings.TrimRight(string(b), "\r\n")
		}
	}

	a, err := agent.Start(agent.Config{
		Cgroup: *cg, Output: *output, HTTPAddr: *httpAddr, GRPCAddr: *grpcAddr, SegmentThreshold: thr,
		StoreSize: size, StoreBytes: storeBytes, Pod: *pod, Namespace: *ns, PodUID: *podUID, Pprof: *pprofOn, BPFStats: *bpfStats, Container: *container,
		RingBufferSize: uint32(ring), NoGoProbes: !*goProbes, Redis: redisCfg, MaxRoutes: maxRoutes, BaselineWindow: *baselineWindow,
	})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err != nil {
		if *onError != "idle" {
			return err
		}
		return idle(ctx, *httpAddr, err)
	}
	return a.Run(ctx)
}

// idle is --on-error=idle: the sidecar could not start watching, but as a
// pod's sidecar its readiness counts toward the pod's, so exiting (and
// crash-looping) would take the app out of service. It logs the reason and
// serves /healthz and /readyz (200, saying it is idle), /v1/status (503 with
// the reason) and /metrics (tracecam_up 0) until it is stopped.
func idle(ctx context.Context, addr string, cause error) error {
	slog.Error("not watching: idle until stopped (--on-error=idle)", "err", cause)
	if addr == "" {
		<-ctx.Done()
		return nil
	}
	reason := cause.Error()
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "idle: not watching: %s\n", reason)
	}
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]any{"code": 14, "status": http.StatusServiceUnavailable,
			"error": "idle: not watching: " + reason, "ready": false})
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "# HELP tracecam_up 1 when the sidecar watches its pod, 0 when it runs idle (--on-error=idle).\n# TYPE tracecam_up gauge\ntracecam_up 0\n")
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("idle HTTP server: %w (and not watching: %v)", err, cause)
	}
	slog.Info("http listening", "addr", l.Addr().String(), "idle", true)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("idle HTTP server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}
