package netem

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracecam/tracecam/e2e/netns"
)

// Config describes the emulated path. The same settings apply to both
// directions.
type Config struct {
	// Delay is the one-way propagation delay, each direction: the RTT is
	// 2×Delay (plus well under a millisecond of relaying).
	Delay time.Duration
	// RateBps is the bandwidth in bytes per second, per direction,
	// counting whole IP packets; 0 means unlimited.
	RateBps int64
	// QueueBytes bounds the bytes waiting for the rate limiter per
	// direction (the bottleneck buffer; packets in the delay line itself
	// do not count); a packet that would exceed it is dropped. The default
	// is 2×BDP (2 × RateBps × 2×Delay) or 256 KiB, whichever is larger.
	// Without a rate limit nothing queues and nothing is dropped, except
	// past a 64 MiB safety cap on the delay line.
	QueueBytes int
}

// DirStats counts one direction's packets (IP packets, bytes of IP
// packets).
type DirStats struct {
	Packets      int64 // relayed (written to the far TUN device)
	Bytes        int64
	Dropped      int64 // tail-dropped (queue full) or failed to write
	DroppedBytes int64
}

// Stats is a snapshot of both directions' counters.
type Stats struct {
	ServerToClient DirStats
	ClientToServer DirStats
}

func (s Stats) String() string {
	f := func(d DirStats) string {
		return fmt.Sprintf("%d pkts/%d B relayed, %d pkts/%d B dropped", d.Packets, d.Bytes, d.Dropped, d.DroppedBytes)
	}
	return "server->client: " + f(s.ServerToClient) + "; client->server: " + f(s.ClientToServer)
}

// Link is a pair of network namespaces joined by an emulated path, made by
// New.
type Link struct {
	// ServerNS and ClientNS are the namespaces' names (`ip netns` names,
	// tcsrv-<random> and tccli-<random>).
	ServerNS, ClientNS string
	// ServerIP and ClientIP are the addresses of tun0 in ServerNS and
	// ClientNS: 10.77.N.1 and 10.77.N.2, in Prefix (10.77.N.0/24).
	ServerIP, ClientIP netip.Addr
	Prefix             netip.Prefix
	// Config is the configuration in effect, defaults filled in.
	Config Config

	s2c, c2s *pipe
	wg       sync.WaitGroup
}

// maxInflight caps the bytes one direction holds, whatever the
// configuration, so that a runaway sender cannot exhaust memory.
const maxInflight = 64 << 20

// Require says why links cannot be made here, or nil when they can.
func Require() error {
	if err := netns.Require(); err != nil {
		return err
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("netem needs /dev/net/tun (CONFIG_TUN): %v", err)
	}
	return nil
}

var ipCmd struct {
	once sync.Once
	path string
	err  error
}

func ipPath() (string, error) {
	ipCmd.once.Do(func() {
		if p, err := exec.LookPath("ip"); err == nil {
			ipCmd.path = p
			return
		}
		for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				ipCmd.path = p
				return
			}
		}
		ipCmd.err = errors.New("netem needs the ip command (Debian package iproute2)")
	})
	return ipCmd.path, ipCmd.err
}

var subnetSeq atomic.Uint32

func init() {
	var b [1]byte
	rand.Read(b[:])
	subnetSeq.Store(uint32(b[0]))
}

// New creates the two namespaces, their TUN devices and the relays, and
// registers their teardown with t.Cleanup (register the cleanup of
// processes started in the namespaces after calling New, so that it runs
// first; processes still inside when the link is torn down are killed).
// It skips the test when the machine cannot do it (not root, no
// /dev/net/tun, no ip), or fails it if TRACECAM_REQUIRE_NETEM is set.
func New(t testing.TB, cfg Config) *Link {
	t.Helper()
	if err := Require(); err != nil {
		if os.Getenv("TRACECAM_REQUIRE_NETEM") != "" {
			t.Fatalf("netem: %v (TRACECAM_REQUIRE_NETEM is set)", err)
		}
		t.Skipf("netem: %v", err)
	}
	if cfg.Delay < 0 || cfg.RateBps < 0 || cfg.QueueBytes < 0 {
		t.Fatalf("netem: negative value in %+v", cfg)
	}
	if cfg.QueueBytes == 0 {
		cfg.QueueBytes = 256 << 10
		if cfg.RateBps > 0 {
			bdp := float64(cfg.RateBps) * (2 * cfg.Delay).Seconds()
			if q := 2 * bdp; q > float64(cfg.QueueBytes) {
				cfg.QueueBytes = int(min(q, maxInflight))
			}
		}
	}

	n := byte(subnetSeq.Add(1))
	// The namespaces (loopback up, deleted with whatever still runs in them
	// when the test ends) come from netns; their cleanup, registered first,
	// runs last.
	l := &Link{
		ServerNS: netns.New(t, "tcsrv").Name,
		ClientNS: netns.New(t, "tccli").Name,
		ServerIP: netip.AddrFrom4([4]byte{10, 77, n, 1}),
		ClientIP: netip.AddrFrom4([4]byte{10, 77, n, 2}),
		Prefix:   netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, n, 0}), 24),
		Config:   cfg,
	}

	var tuns []*os.File
	for _, ns := range []string{l.ServerNS, l.ClientNS} {
		f, err := openTUN(ns, "tun0")
		if err != nil {
			t.Fatalf("netem: %v", err)
		}
		tuns = append(tuns, f)
		t.Cleanup(func() { f.Close() }) // before deleteNS; idempotent with stop
	}
	srvTun, cliTun := tuns[0], tuns[1]
	for _, x := range []struct {
		ns   string
		addr netip.Addr
	}{{l.ServerNS, l.ServerIP}, {l.ClientNS, l.ClientIP}} {
		// No IPv6 link-local address: keeps router solicitations and
		// the like off the link.
		ip("-n", x.ns, "link", "set", "tun0", "addrgenmode", "none")
		steps := [][]string{
			{"-n", x.ns, "link", "set", "tun0", "mtu", "1500", "txqueuelen", "1000"},
			{"-n", x.ns, "addr", "add", netip.PrefixFrom(x.addr, 24).String(), "dev", "tun0"},
			{"-n", x.ns, "link", "set", "tun0", "up"},
		}
		for _, s := range steps {
			if err := ip(s...); err != nil {
				t.Fatalf("netem: %v", err)
			}
		}
	}

	var err error
	if l.s2c, err = newPipe("server->client", srvTun, cliTun, cfg); err != nil {
		t.Fatalf("netem: %v", err)
	}
	if l.c2s, err = newPipe("client->server", cliTun, srvTun, cfg); err != nil {
		l.s2c.timer.Close()
		t.Fatalf("netem: %v", err)
	}
	for _, p := range []*pipe{l.s2c, l.c2s} {
		l.wg.Add(2)
		go func() { defer l.wg.Done(); p.readLoop() }()
		go func() { defer l.wg.Done(); p.writeLoop() }()
	}
	t.Cleanup(l.stop) // runs first: relays stop, then TUNs close, then namespaces go
	return l
}

// stop ends the relays and waits for them.
func (l *Link) stop() {
	pipes := []*pipe{l.s2c, l.c2s}
	for _, p := range pipes {
		p.stop()
	}
	for _, p := range pipes {
		p.close()
	}
	l.wg.Wait()
}

// Stats returns the counters of both directions.
func (l *Link) Stats() Stats {
	return Stats{ServerToClient: l.s2c.stats(), ClientToServer: l.c2s.stats()}
}

// Command returns a command that runs name args... inside the network
// namespace ns (`ip netns exec NS name args...`, which execs the program:
// the process started is the program itself). The caller starts, waits
// for and kills it.
func (l *Link) Command(ns string, name string, args ...string) *exec.Cmd {
	p, err := ipPath()
	if err != nil {
		p = "ip"
	}
	return exec.Command(p, append([]string{"netns", "exec", ns, name}, args...)...)
}

// CommandContext is Command with a context that kills the process.
func (l *Link) CommandContext(ctx context.Context, ns string, name string, args ...string) *exec.Cmd {
	p, err := ipPath()
	if err != nil {
		p = "ip"
	}
	return exec.CommandContext(ctx, p, append([]string{"netns", "exec", ns, name}, args...)...)
}

// Listen creates a listener inside namespace ns (sockets stay in the
// namespace they were created in, whatever thread uses them later).
func (l *Link) Listen(ns, network, address string) (net.Listener, error) {
	var ln net.Listener
	err := Do(ns, func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// Dial connects from inside namespace ns with d (nil: a zero Dialer); set
// d.Control to set socket options, such as SO_RCVBUF, before connecting.
func (l *Link) Dial(ns string, d *net.Dialer, network, address string) (net.Conn, error) {
	if d == nil {
		d = &net.Dialer{}
	}
	var c net.Conn
	err := Do(ns, func() error {
		var err error
		c, err = d.Dial(network, address)
		return err
	})
	return c, err
}

// Do runs fn on an OS thread that has entered network namespace ns (a
// name under /run/netns), and waits for it: sockets fn creates belong to
// ns. Goroutines fn starts do not run in ns.
func Do(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Not unlocked unless the thread is back in its own namespace:
		// a goroutine that exits locked takes its thread with it.
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(nsPath(ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		var ferr error
		defer func() {
			if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
			errc <- ferr
		}()
		ferr = fn()
	}()
	return <-errc
}

func nsPath(ns string) string {
	if strings.ContainsRune(ns, '/') {
		return ns
	}
	if _, err := os.Stat("/run/netns"); err == nil {
		return filepath.Join("/run/netns", ns)
	}
	return filepath.Join("/var/run/netns", ns)
}

// openTUN creates TUN device name inside namespace ns and returns it open,
// non-blocking (reads park in the Go poller and end when it is closed).
// The device lives as long as the file.
func openTUN(ns, name string) (*os.File, error) {
	var fd int
	err := Do(ns, func() error {
		// /dev/net/tun binds the device to the opener's namespace.
		var err error
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err == nil {
			ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s in %s: %w", name, ns, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), ns+"/"+name), nil
}

func ip(args ...string) error {
	p, err := ipPath()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(p, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// pipe is one direction of the link: packets read from in are written to
// out when due.
type pipe struct {
	name    string
	in, out *os.File
	delay   time.Duration
	rate    float64 // bytes per second; 0: unlimited
	limit   int     // QueueBytes

	mu       sync.Mutex
	q        []packet // FIFO; due times never decrease
	head     int
	inflight int       // bytes in q
	last     time.Time // departure of the last accepted packet
	closed   bool

	wake  chan struct{} // cap 1: q went non-empty
	done  chan struct{}
	timer *os.File // timerfd, non-blocking, in the Go poller

	packets, bytes, dropped, droppedBytes atomic.Int64
}

type packet struct {
	due time.Time
	b   []byte
}

func newPipe(name string, in, out *os.File, cfg Config) (*pipe, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd_create: %w", err)
	}
	return &pipe{
		name:  name,
		in:    in,
		out:   out,
		delay: cfg.Delay,
		rate:  float64(cfg.RateBps),
		limit: cfg.QueueBytes,
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		timer: os.NewFile(uintptr(fd), "timerfd-"+name),
	}, nil
}

// stop tells the loops to end; close then wakes them.
func (p *pipe) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		close(p.done)
	}
}

func (p *pipe) close() {
	p.in.Close()
	p.timer.Close()
}

func (p *pipe) stats() DirStats {
	return DirStats{
		Packets:      p.packets.Load(),
		Bytes:        p.bytes.Load(),
		Dropped:      p.dropped.Load(),
		DroppedBytes: p.droppedBytes.Load(),
	}
}

// readLoop takes packets off the in device and schedules them.
func (p *pipe) readLoop() {
	buf := make([]byte, 65536)
	for {
		n, err := p.in.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) || errors.Is(err, unix.EBADFD) {
				return
			}
			select {
			case <-p.done:
				return
			default:
			}
			// EAGAIN cannot reach here (the poller waits); anything else
			// (EINVAL on a bogus packet...) is not worth stopping for.
			time.Sleep(time.Millisecond)
			continue
		}
		if n == 0 {
			continue
		}
		p.enqueue(bytes.Clone(buf[:n]), time.Now())
	}
}

func (p *pipe) enqueue(b []byte, now time.Time) {
	n := len(b)
	due := now.Add(p.delay)
	p.mu.Lock()
	if p.rate > 0 {
		// The token bucket (no burst): a packet leaves no earlier than
		// len/rate after the one before it.
		if earliest := p.last.Add(time.Duration(float64(n) / p.rate * 1e9)); earliest.After(due) {
			// Bytes waiting for the limiter beyond the propagation delay.
			if backlog := p.last.Sub(due).Seconds() * p.rate; backlog+float64(n) > float64(p.limit) {
				p.mu.Unlock()
				p.dropped.Add(1)
				p.droppedBytes.Add(int64(n))
				return
			}
			due = earliest
		}
	}
	if p.inflight+n > maxInflight {
		p.mu.Unlock()
		p.dropped.Add(1)
		p.droppedBytes.Add(int64(n))
		return
	}
	p.last = due
	wasEmpty := p.head == len(p.q)
	p.q = append(p.q, packet{due: due, b: b})
	p.inflight += n
	p.mu.Unlock()
	if wasEmpty {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// writeLoop writes packets to the out device when they are due, sleeping
// on the timerfd until the head of the queue is due.
func (p *pipe) writeLoop() {
	var tbuf [8]byte
	var due []packet
	for {
		p.mu.Lock()
		now := time.Now()
		due = due[:0]
		for p.head < len(p.q) && !p.q[p.head].due.After(now) {
			due = append(due, p.q[p.head])
			p.q[p.head] = packet{}
			p.head++
		}
		empty := p.head == len(p.q)
		var next time.Time
		if empty {
			p.q, p.head = p.q[:0], 0
		} else {
			next = p.q[p.head].due
			if p.head > 1024 && p.head*2 > len(p.q) {
				p.q = append(p.q[:0], p.q[p.head:]...)
				p.head = 0
			}
		}
		for _, pk := range due {
			p.inflight -= len(pk.b)
		}
		p.mu.Unlock()

		for _, pk := range due {
			if _, err := p.out.Write(pk.b); err != nil {
				select {
				case <-p.done:
					return
				default:
				}
				p.dropped.Add(1)
				p.droppedBytes.Add(int64(len(pk.b)))
				continue
			}
			p.packets.Add(1)
			p.bytes.Add(int64(len(pk.b)))
		}

		if empty {
			select {
			case <-p.wake:
				continue
			case <-p.done:
				return
			}
		}
		d := time.Until(next)
		if d <= 0 {
			continue
		}
		// Packets arriving meanwhile are due no earlier than next: one
		// timer suffices.
		if err := p.arm(d); err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			time.Sleep(d)
			continue
		}
		if _, err := p.timer.Read(tbuf[:]); err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			if !errors.Is(err, os.ErrClosed) {
				time.Sleep(d)
				continue
			}
			return
		}
	}
}

// arm sets the timerfd to expire after d. (Not through File.Fd, which
// would switch the file to blocking mode and out of the poller.)
func (p *pipe) arm(d time.Duration) error {
	rc, err := p.timer.SyscallConn()
	if err != nil {
		return err
	}
	its := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if cerr := rc.Control(func(fd uintptr) {
		err = unix.TimerfdSettime(int(fd), 0, &its, nil)
	}); cerr != nil {
		return cerr
	}
	return err
}
