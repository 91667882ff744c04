package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/tracecam/tracecam/bpf"
	"github.com/tracecam/tracecam/sidecar/cgroup"
)

// Config says what to watch.
type Config struct {
	Target cgroup.Target
	// SelfCgroupID, when non-zero, is a cgroup below Target never to watch:
	// the sidecar's own container.
	SelfCgroupID uint64
	// SelfPID, when non-zero, is never watched: the sidecar process itself,
	// when it runs inside Target. Leave it 0 otherwise: the cgroup filter
	// already excludes it, and the check would cost every event a helper.
	SelfPID          int
	SegmentThreshold time.Duration
	// RingBufferSize is the kernel→user ring buffer in bytes (a power of
	// two, at least a page; default 8 MiB). Events that do not fit are lost,
	// counted, and mark the profiles they belong to partial.
	RingBufferSize uint32
}

// DefaultRingBufferSize holds ~11,000 data events: a burst of 3,500
// requests at once, or ~50 ms of a 70,000 req/s pod if user space stalls.
const DefaultRingBufferSize = 8 << 20

// Camera is the loaded and attached set of programs.
type Camera struct {
	objs   bpf.CameraObjects
	links  []link.Link
	reader *ringbuf.Reader
	probes []string

	closeOnce sync.Once
	// mu keeps Close from unmapping the ring while RingUsage reads it, and
	// from racing FollowGo's attachments.
	mu         sync.RWMutex
	closed     bool
	goBinaries int // go_layouts entries in use
	// uprobeMulti: the goroutine probes attach as one uprobe_multi link
	// (Linux 6.6+), which needs only CAP_BPF and CAP_PERFMON; older
	// kernels get perf-event uprobes, which need CAP_SYS_ADMIN.
	uprobeMulti bool
}

// procPIDInitIno is the initial pid namespace's inode number
// (PROC_PID_INIT_INO): its numbers are the kernel's own.
const procPIDInitIno = 0xEFFFFFFC

// ownPIDNamespace is this process's pid namespace (device and inode of
// /proc/self/ns/pid) when it is not the initial one.
func ownPIDNamespace() (dev, ino uint64, ok bool) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err != nil || st.Ino == procPIDInitIno {
		return 0, 0, false
	}
	return st.Dev, st.Ino, true
}

// haveUprobeMulti says whether the kernel has uprobe_multi links: its BTF
// describes their kernel object. (Which attach type the goroutine programs
// get is decided at load time, before anything can be attached.)
func haveUprobeMulti() bool {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return false
	}
	var s *btf.Struct
	return spec.TypeByName("bpf_uprobe_multi_link", &s) == nil
}

// Check reports, in one line, what this host lacks to run the camera.
func Check() error {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return fmt.Errorf("kernel BTF missing (/sys/kernel/btf/vmlinux): tracecam needs a kernel built with CONFIG_DEBUG_INFO_BTF=y: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if !has(unix.CAP_SYS_ADMIN) && !(has(unix.CAP_BPF) && has(unix.CAP_PERFMON)) {
		return errors.New("missing capabilities: tracecam needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load its eBPF programs")
	}
	return nil
}

// Open loads and attaches the programs.
func Open(cfg Config) (*Camera, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raising memlock limit: %w", err)
	}
	spec, err := bpf.LoadCamera()
	if err != nil {
		return nil, fmt.Errorf("reading bpf object: %w", err)
	}
	thr := cfg.SegmentThreshold
	if thr <= 0 {
		thr = time.Millisecond
	}
	size := cfg.RingBufferSize
	if size == 0 {
		size = DefaultRingBufferSize
	}
	if size < uint32(os.Getpagesize()) || size&(size-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d: want a power of two of at least %d", size, os.Getpagesize())
	}
	spec.Maps["events"].MaxEntries = size
	sets := map[string]any{
		// Each CPU wakes the reader after writing an eighth of the ring (at
		// most 128 KiB), so even all CPUs together wake it well before a
		// small ring fills.
		"wakeup_bytes": uint64(min(size/8/uint32(max(runtime.NumCPU(), 1)), 128<<10)),
		"target_cgid":  cfg.Target.ID,
		"target_level": uint32(cfg.Target.Level),
		"self_cgid":    cfg.SelfCgroupID,
		"self_tgid":    uint32(cfg.SelfPID),
		"segment_ns":   uint64(thr.Nanoseconds()),
	}
	// In a pid namespace of its own (a pod's), the sidecar knows processes
	// by that namespace's numbers: the programs report those.
	if dev, ino, ok := ownPIDNamespace(); ok {
		sets["pidns_dev"], sets["pidns_ino"] = dev, ino
	}
	for name, v := range sets {
		vs, ok := spec.Variables[name]
		if !ok {
			return nil, fmt.Errorf("bpf object has no variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("setting %s: %w", name, err)
		}
	}
	c := &Camera{uprobeMulti: haveUprobeMulti()}
	if c.uprobeMulti {
		for _, name := range []string{"go_execute", "go_ready"} {
			spec.Programs[name].AttachType = ebpf.AttachTraceUprobeMulti
		}
	}
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loading bpf programs (verifier): %+v", ve)
		}
		return nil, fmt.Errorf("loading bpf programs: %w", err)
	}
	if err := c.attach(); err != nil {
		c.Close()
		return nil, err
	}
	rd, err := ringbuf.NewReader(c.objs.Events)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("opening ring buffer: %w", err)
	}
	c.reader = rd
	return c, nil
}

func (c *Camera) attach() error {
	// All tp_btf: the scheduler for the time accounting, the socket layer
	// for request bytes. No syscall hook at all: a raw sys_enter/sys_exit
	// would tax every syscall on the node, per-syscall tracepoints every
	// read and write (pipes and files too).
	progs := []struct {
		prog *ebpf.Program
		name string
	}{
		{c.objs.OnSwitch, "sched_switch"},
		{c.objs.OnWaking, "sched_waking"},
		{c.objs.OnExit, "sched_process_exit"},
		{c.objs.OnSend, "sock_send_length"},
		{c.objs.OnRecv, "sock_recv_length"},
		// When request bytes reach a pod's TCP socket: the start of the
		// time a request waits before a worker thread reads it (queue).
		{c.objs.OnTcpProbe, "tcp_probe"},
		// The end of a connection the server closed after its response:
		// when that response was delivered.
		{c.objs.OnSetState, "inet_sock_set_state"},
	}
	for _, p := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p.prog})
		if err != nil {
			return fmt.Errorf("attaching tp_btf/%s (tracecam needs Linux 6.3 or later): %w", p.name, err)
		}
		c.links = append(c.links, l)
		c.probes = append(c.probes, "tp_btf/"+p.name)
	}
	return nil
}

// Probes lists what is attached, for logs and /v1/status.
func (c *Camera) Probes() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return append([]string(nil), c.probes...)
}

// Read blocks for the next raw event. The returned slice is only valid until
// the next call. It returns ringbuf.ErrClosed (wrapped) after Close.
func (c *Camera) Read(rec *ringbuf.Record) error {
	return c.reader.ReadInto(rec)
}

// SetDeadline makes Read return os.ErrDeadlineExceeded at t, so a reader can
// flush idle state periodically.
func (c *Camera) SetDeadline(t time.Time) { c.reader.SetDeadline(t) }

// Stats are the kernel-side event counters, summed over CPUs.
type Stats struct {
	Sent [numTypes]uint64 // by event type (index = type)
	Lost [numTypes]uint64
}

// numTypes is EV_TYPES in camera.h: record types are 1..numTypes-1.
const numTypes = 5

// Stats reads the counters.
func (c *Camera) Stats() (Stats, error) {
	var s Stats
	for i := uint32(0); i < 2*numTypes; i++ {
		var per []uint64
		if err := c.objs.Stats.Lookup(i, &per); err != nil {
			return s, fmt.Errorf("reading stats slot %d: %w", i, err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		if i < numTypes {
			s.Sent[i] = sum
		} else {
			s.Lost[i-numTypes] = sum
		}
	}
	return s, nil
}

// RingUsage says how full the kernel→user ring buffer is: bytes waiting to
// be read, and its size. ok is false once the camera is closed.
func (c *Camera) RingUsage() (used, size int, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed || c.reader == nil {
		return 0, 0, false
	}
	return c.reader.AvailableBytes(), c.reader.BufferSize(), true
}

// ProgramStat is what the kernel counted for one program while run-time
// statistics were enabled (EnableStats): how often it ran and for how long.
type ProgramStat struct {
	Name  string
	Runs  uint64
	RunNS uint64
}

// ProgramStats reads every program's run count and run time. The kernel
// counts them only while statistics are enabled (EnableStats, or the
// kernel.bpf_stats_enabled sysctl); otherwise they stay 0.
func (c *Camera) ProgramStats() ([]ProgramStat, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, errors.New("camera closed")
	}
	progs := []struct {
		name string
		prog *ebpf.Program
	}{
		{"sched_switch", c.objs.OnSwitch}, {"sched_waking", c.objs.OnWaking}, {"sched_process_exit", c.objs.OnExit},
		{"sock_send_length", c.objs.OnSend}, {"sock_recv_length", c.objs.OnRecv}, {"tcp_probe", c.objs.OnTcpProbe},
		{"inet_sock_set_state", c.objs.OnSetState}, {"go_execute", c.objs.GoExecute}, {"go_ready", c.objs.GoReady},
	}
	out := make([]ProgramStat, 0, len(progs))
	for _, p := range progs {
		st, err := p.prog.Stats()
		if err != nil {
			return nil, fmt.Errorf("reading stats of %s: %w", p.name, err)
		}
		out = append(out, ProgramStat{Name: p.name, Runs: st.RunCount, RunNS: uint64(st.Runtime.Nanoseconds())})
	}
	return out, nil
}

// EnableStats turns on the kernel's run-time statistics for every BPF
// program on the host until the returned closer is closed. They cost two
// clock reads per program run (~30-50 ns here), which is why they are off
// by default (--bpf-stats).
func EnableStats() (io.Closer, error) {
	cl, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return nil, fmt.Errorf("enabling BPF run-time statistics: %w", err)
	}
	return cl, nil
}

// Close detaches everything and frees the maps.
func (c *Camera) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		links := c.links
		c.mu.Unlock()
		if c.reader != nil {
			c.reader.Close()
		}
		for _, l := range links {
			l.Close()
		}
		c.objs.Close()
	})
	return nil
}
