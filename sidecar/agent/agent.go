package agent

import (
	"context"
	"errors"
	"fmt"
	"google.golang.org/protobuf/types/known/timestamppb"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/tracecam/tracecam/gateway"
	"github.com/tracecam/tracecam/proto"
	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/api"
	"github.com/tracecam/tracecam/sidecar/assemble"
	"github.com/tracecam/tracecam/sidecar/capture"
	"github.com/tracecam/tracecam/sidecar/cgroup"
	"github.com/tracecam/tracecam/sidecar/diagnose"
	"github.com/tracecam/tracecam/sidecar/event"
	"github.com/tracecam/tracecam/sidecar/gobin"
	"github.com/tracecam/tracecam/sidecar/metrics"
	"github.com/tracecam/tracecam/sidecar/profile"
	"github.com/tracecam/tracecam/sidecar/rediscache"
	"github.com/tracecam/tracecam/sidecar/render"
	"github.com/tracecam/tracecam/sidecar/store"
)

// pollInterval is the longest an event waits in the ring buffer.
const pollInterval = 50 * time.Millisecond

// Version is set at build time (-ldflags -X).
var Version = "dev"

// Config is the sidecar's configuration (from flags and environment).
type Config struct {
	Cgroup           string // "" = parent of our own cgroup (the pod)
	Output           string // none, text, json
	HTTPAddr         string
	GRPCAddr         string
	SegmentThreshold time.Duration
	// StoreSize bounds the kept exemplars, StoreBytes the recent log
	// (store.Config).
	StoreSize      int
	StoreBytes     int
	RingBufferSize uint32
	// NoGoProbes leaves the pod's Go programs unprobed: their requests are
	// then estimated (and say so) instead of followed goroutine by
	// goroutine, which costs ~1 µs per goroutine switch.
	NoGoProbes bool
	// Redis, when set, is the shared cache every profile is written to and
	// GetTrace also reads from.
	Redis *rediscache.Config
	Pprof bool // serve /debug/pprof/ on the HTTP port
	// BPFStats turns on the kernel's per-program run-time statistics
	// while the sidecar runs (tracecam_bpf_program_* in /metrics); they
	// cost every BPF program on the host two clock reads per run.
	BPFStats       bool
	Pod, Namespace string
	// PodUID finds the pod's cgroup when a private cgroup namespace hides
	// our own (as in a Kubernetes sidecar on cgroup v2).
	PodUID    string
	Container string
	Stdout    io.Writer
	// MaxRoutes caps the endpoints tracked one by one in /metrics and
	// baselines (default metrics.DefaultMaxRoutes); BaselineWindow is the
	// span baselines are learned over (default metrics.DefaultWindow).
	MaxRoutes      int
	BaselineWindow time.Duration
}

// Agent is a running sidecar.
type Agent struct {
	cfg    Config
	target cgroup.Target
	cam    *capture.Camera
	asm    *assemble.Assembler
	Store  *store.Store
	hub    *api.Hub
	// rec sums profiles per endpoint (the north-star metrics) and learns
	// their baselines.
	rec *metrics.Recorder
	// gof follows the pod's Go programs goroutine by goroutine.
	gof *goFollower

	mu       sync.Mutex // guards asm and the stdout writer
	ready    atomic.Bool
	lastStat atomic.Pointer[tracecamv1.Status]
	outErrs  atomic.Uint64

	httpLn, grpcLn net.Listener
	httpSrv        *http.Server
	grpcSrv        *grpc.Server
	api            *api.Server
	cache          *rediscache.Cache
	cacheCancel    context.CancelFunc
	cacheDone      chan struct{}
	bpfStats       io.Closer // non-nil while BPF run-time statistics are on
}

var typeNames = [...]string{"", "data", "segment", "exit", "acked"}

// Start resolves the target, loads and attaches the probes, and starts
// serving HTTP. Run consumes events until ctx ends.
func Start(cfg Config) (*Agent, error) {
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	target, selfCg, selfPID, err := resolveTarget(cfg.Cgroup, cfg.PodUID)
	if err != nil {
		return nil, err
	}
	slog.Info("watching cgroup", "path", target.Path, "id", target.ID, "level", target.Level)
	cam, err := capture.Open(capture.Config{
		Target: target, SelfCgroupID: selfCg, SelfPID: selfPID, SegmentThreshold: cfg.SegmentThreshold,
		RingBufferSize: cfg.RingBufferSize,
	})
	if err != nil {
		return nil, err
	}
	slog.Info("probes attached", "count", len(cam.Probes()), "probes", cam.Probes())
	a := &Agent{
		cfg: cfg, target: target, cam: cam, Store: store.New(store.Config{KeptProfiles: cfg.StoreSize, RecentBytes: cfg.StoreBytes}), hub: api.NewHub(),
		rec: metrics.New(metrics.Config{MaxRoutes: cfg.MaxRoutes, Window: cfg.BaselineWindow}),
		gof: newGoFollower(cam.FollowGo),
	}
	if cfg.NoGoProbes {
		const off = "goroutine probes are off (--go-probes=false)"
		a.gof = newGoFollower(func(string, *gobin.Binary) error { return errors.New(off) })
		a.gof.off = "its goroutines are not followed: " + off
	}
	if cfg.Redis != nil {
		c, err := rediscache.New(*cfg.Redis)
		if err != nil {
			cam.Close()
			return nil, fmt.Errorf("redis: %w", err)
		}
		a.cache = c
		ctx, cancel := context.WithCancel(context.Background())
		a.cacheCancel, a.cacheDone = cancel, make(chan struct{})
		go func() { defer close(a.cacheDone); c.Run(ctx) }()
		slog.Info("redis cache", "addrs", cfg.Redis.Addrs, "cluster", cfg.Redis.Cluster, "ttl", cfg.Redis.TTL)
	}
	a.asm = assemble.New(assemble.Config{
		Pod: cfg.Pod, Namespace: cfg.Namespace, Container: cfg.Container, ContainerOf: newContainerNames().of,
		WallClock: wallClock(), FileName: procFileName, SegmentThreshold: cfg.SegmentThreshold,
		Runtime: a.gof.runtime, GoWaitReason: a.gof.waitReason, GoUnfollowed: a.gof.unfollowed,
	}, a.onProfile)
	if cfg.BPFStats {
		if a.bpfStats, err = capture.EnableStats(); err != nil {
			cam.Close()
			return nil, err
		}
	}
	go a.gof.scan(target.Path)
	if err := a.serve(); err != nil {
		a.closeServers()
		cam.Close()
		return nil, err
	}
	a.ready.Store(true)
	return a, nil
}

// serve starts the gRPC server (tracecam.v1.Profiler, with reflection) and
// the HTTP server (the same service as REST through grpc-gateway, plus
// health, readiness, metrics and the OpenAPI document).
func (a *Agent) serve() error {
	srv := &api.Server{Store: a.Store, Hub: a.hub, Status: a.Status, Baselines: a.rec}
	if a.cache != nil {
		srv.Remote = a.cache
	}
	a.api = srv
	if a.cfg.GRPCAddr != "" {
		ln, err := net.Listen("tcp", a.cfg.GRPCAddr)
		if err != nil {
			return fmt.Errorf("listening on %s for gRPC: %w", a.cfg.GRPCAddr, err)
		}
		a.grpcLn = ln
		a.grpcSrv = grpc.NewServer(
			grpc.MaxRecvMsgSize(64<<10), // requests are small; refuse anything else early
			grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Minute}),
			grpc.ConnectionTimeout(10*time.Second),
		)
		tracecamv1.RegisterProfilerServer(a.grpcSrv, srv)
		reflection.Register(a.grpcSrv)
		slog.Info("grpc listening", "addr", ln.Addr().String())
		go func() {
			if err := a.grpcSrv.Serve(ln); err != nil {
				slog.Error("grpc server stopped", "err", err)
			}
		}()
	}
	if a.cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("listening on %s for HTTP: %w", a.cfg.HTTPAddr, err)
		}
		a.httpLn = ln
		h, err := a.handler(srv)
		if err != nil {
			return err
		}
		a.httpSrv = gateway.NewServer("", h)
		slog.Info("http listening", "addr", ln.Addr().String())
		go func() {
			if err := a.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				slog.Error("http server stopped", "err", err)
			}
		}()
	}
	return nil
}

// resolveTarget picks the cgroup to watch: the one given, or the parent of
// our own (the pod, when we are one of its containers). In a private cgroup
// namespace (the default for containers on cgroup v2) our own cgroup reads
// as "/", so the pod is found by its UID in the host's cgroup tree (mounted
// over /sys/fs/cgroup). When we sit inside the target, our own cgroup (if it
// is known and below the target) and our own process are excluded.
func resolveTarget(path, podUID string) (t cgroup.Target, selfCg uint64, selfPID int, err error) {
	self, err := cgroup.Self()
	if err != nil {
		return t, 0, 0, fmt.Errorf("finding own cgroup: %w", err)
	}
	switch {
	case path != "":
		if t, err = cgroup.Resolve(path); err != nil {
			return t, 0, 0, err
		}
	case self.Level == 0 && podUID != "":
		if t, err = cgroup.FindPod(self.Root, podUID); err != nil {
			return t, 0, 0, fmt.Errorf("own cgroup is hidden (private cgroup namespace): %w", err)
		}
		slog.Info("found the pod's cgroup by its UID", "uid", podUID, "path", t.Path)
		return t, 0, os.Getpid(), nil
	default:
		t, err = cgroup.Parent(self)
		if err != nil {
			return t, 0, 0, fmt.Errorf("no --cgroup given and own cgroup %s has no parent to watch (in a private cgroup namespace, set --pod-uid or POD_UID): %w", self.Path, err)
		}
	}
	if !strings.HasPrefix(self.Path+"/", strings.TrimSuffix(t.Path, "/")+"/") {
		return t, 0, 0, nil // outside the target: the cgroup filter excludes us
	}
	if self.ID != t.ID {
		// Our own cgroup below the target (a pod's sidecar container):
		// excluding it excludes us, without a pid check on every event
		// (in a pod that check is a pid-namespace helper call).
		return t, self.ID, 0, nil
	}
	return t, 0, os.Getpid(), nil
}

// wallClock maps CLOCK_MONOTONIC (bpf_ktime_get_ns) to wall time.
func wallClock() func(uint64) time.Time {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	mono := uint64(ts.Nano())
	wall := time.Now()
	return func(t uint64) time.Time {
		return wall.Add(time.Duration(int64(t) - int64(mono))).UTC()
	}
}

func monoNow() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// procFileName resolves an fd to its path through /proc, checking the inode
// so a reused fd does not name the wrong file.
func procFileName(pid uint32, fd int32, ino uint64) string {
	p := fmt.Sprintf("/proc/%d/fd/%d", pid, fd)
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil || (ino != 0 && st.Ino != ino) {
		return ""
	}
	name, err := os.Readlink(p)
	if err != nil {
		return ""
	}
	return name
}

// EagerDiagnosis is the duration from which a profile is diagnosed as it
// completes rather than when it is read: slow requests are the ones people
// list and open (and few), fast ones are most of the traffic and rarely read.
const EagerDiagnosis = 10 * time.Millisecond

func (a *Agent) onProfile(p *profile.Profile) {
	// First: it attaches the endpoint's baseline, which the diagnosis
	// compares the request with.
	a.rec.Observe(p)
	if a.cfg.Output != "none" || p.DurationNS >= EagerDiagnosis.Nanoseconds() {
		p.Diagnosis = diagnose.Diagnose(p)
	}
	a.Store.Add(p) // keeps a compact copy
	watched := a.hub.Watching()
	if watched {
		a.hub.Publish(p)
	}
	if a.cache != nil {
		a.cache.Enqueue(p) // never blocks: the writer is asynchronous
	}
	var err error
	switch a.cfg.Output {
	case "json":
		err = render.JSONLine(a.cfg.Stdout, p)
	case "text":
		err = render.Text(a.cfg.Stdout, p)
		if err == nil {
			_, err = io.WriteString(a.cfg.Stdout, "\n")
		}
	}
	if err != nil {
		a.outErrs.Add(1)
		slog.Warn("writing profile to stdout", "err", err)
	}
	if !watched && a.cache == nil {
		// Nobody else holds p: the assembler builds the next one in it
		// (onProfile runs inside asm.Handle, under a.mu).
		a.asm.Recycle(p)
	}
}

// Run reads events until ctx is done, then flushes and detaches.
func (a *Agent) Run(ctx context.Context) error {
	// The camera (and its maps, which the status reads) closes only after
	// the servers have stopped; the read deadline below is what notices ctx.
	defer a.cam.Close()
	var rec ringbuf.Record
	var dec event.Decoder
	var lastPID uint32
	lastFlush := time.Now()
	// The kernel side wakes us only when 256 KiB are waiting; the read
	// deadline bounds how late a quiet pod's events are read. It is renewed
	// when it fires or every few thousand events, not per event: reading the
	// clock per event was a measurable share of the sidecar's CPU.
	a.cam.SetDeadline(lastFlush.Add(pollInterval))
	for n := 0; ; n++ {
		err := a.cam.Read(&rec)
		switch {
		case err == nil:
			ev, derr := dec.Decode(rec.RawSample)
			a.mu.Lock()
			if derr != nil {
				a.asm.CountDecodeError()
				slog.Debug("undecodable event", "err", derr)
			} else {
				// A process is looked at once; the lock and lookup are
				// skipped for the run of events of the same process.
				if d, ok := ev.(*event.Data); ok && d.PID != lastPID {
					lastPID = d.PID
					a.gof.see(d.PID)
				}
				a.asm.Handle(ev)
			}
			a.mu.Unlock()
			if n%4096 != 0 {
				continue
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, ringbuf.ErrClosed):
			a.shutdown()
			return nil
		default:
			return fmt.Errorf("reading ring buffer: %w", err)
		}
		now := time.Now()
		a.cam.SetDeadline(now.Add(pollInterval))
		if now.Sub(lastFlush) > 200*time.Millisecond {
			lastFlush = now
			a.mu.Lock()
			a.asm.Flush(monoNow())
			a.mu.Unlock()
			a.refreshStatus()
		}
		if ctx.Err() != nil {
			a.shutdown()
			return nil
		}
	}
}

// shutdown stops serving gracefully: not ready first (so a load balancer
// stops sending), then in-flight calls finish and streams end, within a
// bound.
func (a *Agent) shutdown() {
	a.ready.Store(false)
	if a.bpfStats != nil {
		a.bpfStats.Close()
	}
	a.refreshStatus()
	a.closeServers()
	if a.cache != nil {
		a.cacheCancel() // Run flushes what is queued, within a bound
		<-a.cacheDone
		a.cache.Close()
	}
}

const shutdownGrace = 5 * time.Second

func (a *Agent) closeServers() {
	if a.api != nil {
		a.api.Shutdown() // end live streams so the graceful stop can finish
	}
	var wg sync.WaitGroup
	if a.grpcSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { a.grpcSrv.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(shutdownGrace):
				a.grpcSrv.Stop()
			}
		}()
	} else if a.grpcLn != nil {
		a.grpcLn.Close()
	}
	if a.httpSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			defer cancel()
			if err := a.httpSrv.Shutdown(ctx); err != nil {
				a.httpSrv.Close()
			}
		}()
	} else if a.httpLn != nil {
		a.httpLn.Close()
	}
	wg.Wait()
}

// Status returns the current status.
func (a *Agent) Status() *tracecamv1.Status { return a.refreshStatus() }

func (a *Agent) refreshStatus() *tracecamv1.Status {
	st := &tracecamv1.Status{
		Version: Version, Cgroup: a.target.Path, CgroupId: a.target.ID,
		Pod: a.cfg.Pod, Namespace: a.cfg.Namespace, Probes: a.cam.Probes(),
		EventsSeen: map[string]uint64{}, EventsLost: map[string]uint64{}, Redis: "not configured",
		SegmentThreshold: a.cfg.SegmentThreshold.String(), OutputErrors: a.outErrs.Load(),
		Ready: a.ready.Load(),
	}
	if ks, err := a.cam.Stats(); err == nil {
		for i := 1; i < len(typeNames); i++ {
			st.EventsSeen[typeNames[i]] = ks.Sent[i]
			st.EventsLost[typeNames[i]] = ks.Lost[i]
			st.EventsLostTotal += ks.Lost[i]
		}
	} else if prev := a.lastStat.Load(); prev != nil {
		// The maps are gone after shutdown: keep the last counts.
		st.EventsSeen, st.EventsLost, st.EventsLostTotal = prev.EventsSeen, prev.EventsLost, prev.EventsLostTotal
	}
	a.mu.Lock()
	c := a.asm.Counters()
	a.mu.Unlock()
	st.Assembler = &tracecamv1.AssemblerCounters{
		Events: c.Events, Profiles: c.Profiles, Partial: c.Partial, DroppedStale: c.DroppedStale,
		DroppedConns: c.DroppedConns, DroppedSegments: c.DroppedSegs, ParseErrors: c.ParseErrors,
		Incomplete: c.Incomplete, DecodeErrors: c.DecodeErrors, CrossThread: c.CrossThread,
		TraceIdsGenerated: c.Generated, DnsQueries: c.DNSQueries,
		ThreadsActive: int64(c.ThreadsActive), ConnsActive: int64(c.ConnsActive),
	}
	ss := a.Store.Stats()
	st.ProfilesStored = int64(ss.Recent.Profiles + ss.Kept.Profiles)
	st.StoreCapacity = int64(ss.Kept.Capacity)
	now := time.Now()
	for _, t := range []struct {
		name string
		s    store.TierStats
	}{{"recent", ss.Recent}, {"kept", ss.Kept}} {
		tier := &tracecamv1.StoreTier{
			Name: t.name, Profiles: int64(t.s.Profiles), Capacity: int64(t.s.Capacity), Bytes: t.s.Bytes, Evicted: t.s.Evicted,
		}
		if !t.s.Oldest.IsZero() {
			tier.Oldest = timestamppb.New(t.s.Oldest)
			tier.ReachesBackSeconds = max(now.Sub(t.s.Oldest).Seconds(), 0)
		}
		st.Stores = append(st.Stores, tier)
	}
	if a.cache != nil {
		rs := a.cache.Stats()
		st.Redis = rs.State
		st.RedisStats = &tracecamv1.RedisStats{
			Enqueued: rs.Enqueued, Written: rs.Written, DroppedQueueFull: rs.DroppedQueueFull,
			DroppedWriteErrors: rs.DroppedWriteErrors, Pending: int64(rs.Pending), LastError: rs.LastError,
			Lookups: rs.Lookups, LookupErrors: rs.LookupErrors,
		}
	}
	a.lastStat.Store(st)
	return st
}

// Addr is the HTTP listen address (useful with port 0).
func (a *Agent) Addr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}

func (a *Agent) handler(srv *api.Server) (http.Handler, error) {
	mux, err := gateway.NewMux(context.Background(), srv, gateway.Options{OpenAPI: proto.OpenAPI})
	if err != nil {
		return nil, fmt.Errorf("building the REST gateway: %w", err)
	}
	extra := map[string]http.Handler{
		"/healthz": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }),
		"/readyz": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !a.ready.Load() {
				http.Error(w, "not ready: probes not attached or shutting down", http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ready\n")
		}),
		"/metrics": metricsHandler(newRegistry(&health{
			status: a.Status, ring: a.cam.RingUsage, watchDropped: a.hub.Dropped, programs: a.cam.ProgramStats,
		}, a.rec)),
	}
	if a.cfg.Pprof {
		extra["/debug/pprof/"] = http.HandlerFunc(pprof.Index)
		extra["/debug/pprof/profile"] = http.HandlerFunc(pprof.Profile)
	}
	return gateway.Handler(mux, extra), nil
}
