package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/tracecam/tracecam/sidecar/assemble"
	"github.com/tracecam/tracecam/sidecar/capture"
	"github.com/tracecam/tracecam/sidecar/cgroup"
	"github.com/tracecam/tracecam/sidecar/diagnose"
	"github.com/tracecam/tracecam/sidecar/event"
	"github.com/tracecam/tracecam/sidecar/profile"
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
	SegmentThreshold time.Duration
	StoreSize        int
	RingBufferSize   uint32
	Pprof            bool // serve /debug/pprof/ on the HTTP port
	Pod, Namespace   string
	Container        string
	Stdout           io.Writer
}

// Agent is a running sidecar.
type Agent struct {
	cfg    Config
	target cgroup.Target
	cam    *capture.Camera
	asm    *assemble.Assembler
	Store  *store.Ring

	mu       sync.Mutex // guards asm and the stdout writer
	ready    atomic.Bool
	lastStat atomic.Pointer[Status]
	outErrs  atomic.Uint64
	listener net.Listener
}

// Status is what /v1/status reports.
type Status struct {
	Version   string            `json:"version"`
	Cgroup    string            `json:"cgroup"`
	CgroupID  uint64            `json:"cgroup_id"`
	Pod       string            `json:"pod,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	Probes    []string          `json:"probes"`
	Events    map[string]uint64 `json:"events_seen"`
	Lost      map[string]uint64 `json:"events_lost"`
	// LostTotal is every kernel event lost; profiles overlapping a loss are
	// marked partial.
	LostTotal      uint64            `json:"events_lost_total"`
	Assembler      assemble.Counters `json:"assembler"`
	ProfilesStored int               `json:"profiles_stored"`
	StoreCapacity  int               `json:"store_capacity"`
	OutputErrors   uint64            `json:"output_errors"`
	Redis          string            `json:"redis"`
	Threshold      string            `json:"segment_threshold"`
}

var typeNames = [...]string{"", "data", "segment", "exit"}

// Start resolves the target, loads and attaches the probes, and starts
// serving HTTP. Run consumes events until ctx ends.
func Start(cfg Config) (*Agent, error) {
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.StoreSize <= 0 {
		cfg.StoreSize = 10000
	}
	target, selfCg, selfPID, err := resolveTarget(cfg.Cgroup)
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
	a := &Agent{cfg: cfg, target: target, cam: cam, Store: store.NewRing(cfg.StoreSize)}
	a.asm = assemble.New(assemble.Config{
		Pod: cfg.Pod, Namespace: cfg.Namespace, Container: cfg.Container,
		WallClock: wallClock(), FileName: procFileName,
	}, a.onProfile)
	if cfg.HTTPAddr != "" {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			cam.Close()
			return nil, fmt.Errorf("listening on %s: %w", cfg.HTTPAddr, err)
		}
		a.listener = ln
		slog.Info("http listening", "addr", ln.Addr().String())
		srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10}
		go srv.Serve(ln)
	}
	a.ready.Store(true)
	return a, nil
}

// resolveTarget picks the cgroup to watch: the one given, or the parent of
// our own (the pod, when we are one of its containers). When we sit inside
// the target, our own cgroup (if it is below the target) and our own process
// are excluded.
func resolveTarget(path string) (t cgroup.Target, selfCg uint64, selfPID int, err error) {
	self, err := cgroup.Self()
	if err != nil {
		return t, 0, 0, fmt.Errorf("finding own cgroup: %w", err)
	}
	if path == "" {
		t, err = cgroup.Parent(self)
		if err != nil {
			return t, 0, 0, fmt.Errorf("no --cgroup given and own cgroup %s has no parent to watch: %w", self.Path, err)
		}
	} else if t, err = cgroup.Resolve(path); err != nil {
		return t, 0, 0, err
	}
	if !strings.HasPrefix(self.Path+"/", strings.TrimSuffix(t.Path, "/")+"/") {
		return t, 0, 0, nil // outside the target: the cgroup filter excludes us
	}
	if self.ID != t.ID {
		selfCg = self.ID
	}
	return t, selfCg, os.Getpid(), nil
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

func (a *Agent) onProfile(p *profile.Profile) {
	if a.cfg.Output != "none" {
		p.Diagnosis = diagnose.Diagnose(p)
	}
	a.Store.Add(p)
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
}

// Run reads events until ctx is done, then flushes and detaches.
func (a *Agent) Run(ctx context.Context) error {
	defer a.cam.Close()
	go func() {
		<-ctx.Done()
		a.cam.Close() // unblocks Read
	}()
	var rec ringbuf.Record
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
			ev, derr := event.Decode(rec.RawSample)
			a.mu.Lock()
			if derr != nil {
				a.asm.CountDecodeError()
				slog.Debug("undecodable event", "err", derr)
			} else {
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

func (a *Agent) shutdown() {
	a.ready.Store(false)
	a.refreshStatus()
	if a.listener != nil {
		a.listener.Close()
	}
}

// Status returns the current status.
func (a *Agent) Status() Status { return a.refreshStatus() }

func (a *Agent) refreshStatus() Status {
	st := Status{
		Version: Version, Cgroup: a.target.Path, CgroupID: a.target.ID,
		Pod: a.cfg.Pod, Namespace: a.cfg.Namespace, Probes: a.cam.Probes(),
		Events: map[string]uint64{}, Lost: map[string]uint64{}, Redis: "not configured",
		Threshold: a.cfg.SegmentThreshold.String(), OutputErrors: a.outErrs.Load(),
	}
	if ks, err := a.cam.Stats(); err == nil {
		for i := 1; i < len(typeNames); i++ {
			st.Events[typeNames[i]] = ks.Sent[i]
			st.Lost[typeNames[i]] = ks.Lost[i]
			st.LostTotal += ks.Lost[i]
		}
	} else if prev := a.lastStat.Load(); prev != nil {
		st.Events, st.Lost, st.LostTotal = prev.Events, prev.Lost, prev.LostTotal
	}
	a.mu.Lock()
	st.Assembler = a.asm.Counters()
	a.mu.Unlock()
	ss := a.Store.Stats()
	st.ProfilesStored, st.StoreCapacity = ss.Stored, ss.Capacity
	a.lastStat.Store(&st)
	return st
}

// Addr is the HTTP listen address (useful with port 0).
func (a *Agent) Addr() string {
	if a.listener == nil {
		return ""
	}
	return a.listener.Addr().String()
}

func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	if a.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !a.ready.Load() {
			http.Error(w, "probes not attached", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(a.Status())
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		st := a.Status()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP tracecam_events_total Kernel events delivered, by type.\n# TYPE tracecam_events_total counter\n")
		for i := 1; i < len(typeNames); i++ {
			fmt.Fprintf(w, "tracecam_events_total{type=%q} %d\n", typeNames[i], st.Events[typeNames[i]])
		}
		fmt.Fprintf(w, "# HELP tracecam_events_lost_total Kernel events lost (ring buffer full), by type.\n# TYPE tracecam_events_lost_total counter\n")
		for i := 1; i < len(typeNames); i++ {
			fmt.Fprintf(w, "tracecam_events_lost_total{type=%q} %d\n", typeNames[i], st.Lost[typeNames[i]])
		}
		c := st.Assembler
		for _, m := range []struct {
			name, help string
			v          uint64
		}{
			{"tracecam_profiles_total", "Request profiles completed.", c.Profiles},
			{"tracecam_profiles_partial_total", "Profiles marked partial.", c.Partial},
			{"tracecam_requests_dropped_stale_total", "Requests dropped without a response.", c.DroppedStale},
			{"tracecam_requests_incomplete_total", "Connections that ended before a response.", c.Incomplete},
			{"tracecam_connections_evicted_total", "Connections evicted past the tracking limit.", c.DroppedConns},
			{"tracecam_segments_evicted_total", "Segments evicted past the per-thread limit.", c.DroppedSegs},
			{"tracecam_parse_errors_total", "HTTP heads that did not parse.", c.ParseErrors},
			{"tracecam_decode_errors_total", "Kernel records that did not decode.", c.DecodeErrors},
			{"tracecam_output_errors_total", "Profiles that could not be written to stdout.", st.OutputErrors},
		} {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", m.name, m.help, m.name, m.name, m.v)
		}
		fmt.Fprintf(w, "# TYPE tracecam_profiles_stored gauge\ntracecam_profiles_stored %d\n", st.ProfilesStored)
	})
	mux.HandleFunc("GET /v1/profiles", func(w http.ResponseWriter, r *http.Request) {
		q := store.Query{Limit: 100}
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				http.Error(w, `{"error":"invalid limit"}`, http.StatusBadRequest)
				return
			}
			q.Limit = n
		}
		q.PathPrefix = r.URL.Query().Get("path")
		w.Header().Set("Content-Type", "application/json")
		list := a.Store.List(q)
		for i, p := range list {
			list[i] = Diagnosed(p)
		}
		json.NewEncoder(w).Encode(map[string]any{"profiles": list})
	})
	return mux
}
