package netem

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// serve accepts connections on a listener in l.ServerNS and hands each to
// handle, until the test ends.
func serve(t *testing.T, l *Link, handle func(net.Conn)) net.Addr {
	t.Helper()
	ln, err := l.Listen(l.ServerNS, "tcp", net.JoinHostPort(l.ServerIP.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr()
}

// TCP connect time and a 1-byte echo on an established connection take
// 2×Delay, give or take a few milliseconds.
func TestRTT(t *testing.T) {
	for _, cfg := range []Config{
		{Delay: 10 * time.Millisecond},
		{Delay: 20 * time.Millisecond, RateBps: 4 << 20},
	} {
		t.Run(fmt.Sprintf("delay=%v,rate=%d", cfg.Delay, cfg.RateBps), func(t *testing.T) {
			l := New(t, cfg)
			addr := serve(t, l, func(c net.Conn) { io.Copy(c, c) })
			want := 2 * cfg.Delay
			const samples = 15
			var connects, echoes []time.Duration
			for range samples {
				err := Do(l.ClientNS, func() error {
					start := time.Now()
					c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
					if err != nil {
						return err
					}
					defer c.Close()
					connects = append(connects, time.Since(start))
					b := []byte{'x'}
					start = time.Now()
					if _, err := c.Write(b); err != nil {
						return err
					}
					if _, err := io.ReadFull(c, b); err != nil {
						return err
					}
					echoes = append(echoes, time.Since(start))
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			mc, me := median(connects), median(echoes)
			t.Logf("want RTT %v: connect median %v (min %v, max %v); echo median %v (min %v, max %v)",
				want, mc, slices.Min(connects), slices.Max(connects), me, slices.Min(echoes), slices.Max(echoes))
			t.Logf("stats: %v", l.Stats())
			tol := max(5*time.Millisecond, want/4)
			for name, m := range map[string]time.Duration{"connect": mc, "echo": me} {
				if m < want-200*time.Microsecond || m > want+tol {
					t.Errorf("%s median %v, want %v (+%v)", name, m, want, tol)
				}
			}
			if slices.Min(connects) < want-200*time.Microsecond {
				t.Errorf("a connect took %v, under the RTT %v", slices.Min(connects), want)
			}
		})
	}
}

// 2 MiB at 1 MiB/s with a large window takes about 2 s.
func TestRate(t *testing.T) {
	const rate, size = 1 << 20, 2 << 20
	l := New(t, Config{Delay: 5 * time.Millisecond, RateBps: rate})
	payload := make([]byte, size)
	addr := serve(t, l, func(c net.Conn) { c.Write(payload) })
	var elapsed time.Duration
	var n int64
	err := Do(l.ClientNS, func() error {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		n, err = io.Copy(io.Discard, c)
		elapsed = time.Since(start)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Fatalf("received %d bytes, want %d", n, size)
	}
	st := l.Stats()
	wire := float64(st.ServerToClient.Bytes) / elapsed.Seconds()
	t.Logf("%d bytes in %v: goodput %.0f B/s, IP rate %.0f B/s (%.1f%% of %d); %v",
		n, elapsed, float64(n)/elapsed.Seconds(), wire, 100*wire/rate, rate, st)
	want := time.Duration(float64(size) / rate * float64(time.Second))
	if elapsed < want*3/4 || elapsed > want*5/4 {
		t.Errorf("took %v, want %v ± 25%%", elapsed, want)
	}
	if wire > rate*1.02 {
		t.Errorf("IP rate %.0f B/s over the limit %d", wire, rate)
	}
}

// The effect the end-to-end test reproduces: over RTT 40 ms, a client
// whose receive buffer is 85 KB gets 1 MiB slower than one with 4 MB, as
// throughput ≤ window/RTT: the 85 KB socket advertises ~80 KB (about half
// of the doubled buffer), ~2 MB/s, whatever the link's rate. At 4 MiB/s
// the 4 MB client cannot be much faster, slow start included (1 MiB is
// ~0.26 s of wire time plus ~0.2 s of handshake and slow start), so the
// gap is only ~1.1–1.2× (too close to call on a busy machine, and with BBR
// losing packets in start-up); at 8 MiB/s, the rate case 4 uses, it is
// ~1.5×.
func TestReceiveWindow(t *testing.T) {
	for _, tc := range []struct {
		rate     int64
		minRatio float64
	}{
		{8 << 20, 1.35},
	} {
		t.Run(fmt.Sprintf("rate=%dMiB", tc.rate>>20), func(t *testing.T) {
			small, large := windowEffect(t, New(t, Config{Delay: 20 * time.Millisecond, RateBps: tc.rate}))
			if r := float64(small) / float64(large); r < tc.minRatio {
				t.Errorf("85 KB receive buffer took %v, the 4 MB one %v: %.2fx, want ≥ %.2fx", small, large, r, tc.minRatio)
			}
		})
	}
}

// windowEffect serves 1 MiB from l.ServerNS to clients in l.ClientNS with
// SO_RCVBUF 85 KB and 4 MB (set before connecting), and returns the median
// times from connect to EOF.
func windowEffect(t *testing.T, l *Link) (small, large time.Duration) {
	const size = 1 << 20
	payload := make([]byte, size)
	addr := serve(t, l, func(c net.Conn) { c.Write(payload) })
	host, port, _ := net.SplitHostPort(addr.String())

	_, pyErr := exec.LookPath("python3")
	fetch := func(rcvbuf int) time.Duration {
		if pyErr == nil { // as an end-to-end test would: a program run in the namespace
			const script = `
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(sys.argv[3]))
buf = bytearray(1 << 20)
t = time.monotonic()
s.connect((sys.argv[1], int(sys.argv[2])))
n = 0
while True:
    k = s.recv_into(buf)
    if not k:
        break
    n += k
print(n, time.monotonic() - t)
`
			out, err := l.Command(l.ClientNS, "python3", "-c", script, host, port, strconv.Itoa(rcvbuf)).CombinedOutput()
			f := strings.Fields(string(out))
			if err != nil || len(f) != 2 || f[0] != strconv.Itoa(size) {
				t.Fatalf("python client: %v: %s", err, out)
			}
			secs, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			return time.Duration(secs * float64(time.Second))
		}
		var elapsed time.Duration
		d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}}
		err := Do(l.ClientNS, func() error {
			start := time.Now()
			c, err := d.Dial("tcp", addr.String())
			if err != nil {
				return err
			}
			defer c.Close()
			n, err := io.Copy(io.Discard, c)
			elapsed = time.Since(start)
			if err == nil && n != size {
				err = fmt.Errorf("received %d bytes, want %d", n, size)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return elapsed
	}

	var smalls, larges []time.Duration
	for range 3 {
		smalls = append(smalls, fetch(85*1024))
		larges = append(larges, fetch(4<<20))
	}
	small, large = median(smalls), median(larges)
	t.Logf("1 MiB over RTT %v at %d B/s (python client: %v): SO_RCVBUF 85 KB %v (median of %v), 4 MB %v (median of %v): %.2fx",
		2*l.Config.Delay, l.Config.RateBps, pyErr == nil, small, smalls, large, larges, float64(small)/float64(large))
	t.Logf("stats: %v", l.Stats())
	return small, large
}

// A full queue drops the tail and counts it.
func TestQueueDrop(t *testing.T) {
	const sent, size = 200, 1000
	l := New(t, Config{Delay: time.Millisecond, RateBps: 256 << 10, QueueBytes: 16 << 10})
	var srv *net.UDPConn
	var burst time.Duration
	if err := Do(l.ServerNS, func() error {
		var err error
		srv, err = net.ListenUDP("udp", &net.UDPAddr{IP: l.ServerIP.AsSlice()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := Do(l.ClientNS, func() error {
		c, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
		if err != nil {
			return err
		}
		defer c.Close()
		b := make([]byte, size)
		start := time.Now()
		defer func() { burst = time.Since(start) }()
		for range sent {
			if _, err := c.Write(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	got := 0
	b := make([]byte, 2048)
	for {
		srv.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := srv.Read(b); err != nil {
			break
		}
		got++
	}
	st := l.Stats().ClientToServer
	t.Logf("sent %d datagrams of %d B in %v, received %d; %+v", sent, size, burst, got, st)
	if st.Dropped == 0 || got == 0 || got >= sent {
		t.Errorf("want some but not all of %d datagrams dropped: received %d, %+v", sent, got, st)
	}
	// At most QueueBytes beyond the propagation delay, plus what left
	// during the burst, plus one packet.
	if maxGot := (16<<10+int(burst.Seconds()*(256<<10)))/(size+28) + 2; got > maxGot {
		t.Errorf("received %d datagrams, the queue holds at most ~%d", got, maxGot)
	}
}

// Command runs programs inside the namespaces; everything goes when the
// test ends, including a process the test left running.
func TestCommandAndCleanup(t *testing.T) {
	if err := Require(); err != nil {
		if os.Getenv("TRACECAM_REQUIRE_NETEM") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	var l *Link
	var leftover *exec.Cmd
	t.Run("link", func(t *testing.T) {
		l = New(t, Config{Delay: time.Millisecond})
		out, err := l.Command(l.ClientNS, "ip", "-o", "addr", "show", "dev", "tun0").CombinedOutput()
		if err != nil || !strings.Contains(string(out), l.ClientIP.String()+"/24") {
			t.Errorf("tun0 in %s: %v: %s", l.ClientNS, err, out)
		}
		out, _ = l.Command(l.ServerNS, "ip", "-o", "link").CombinedOutput()
		if !strings.Contains(string(out), "tun0") || !strings.Contains(string(out), "mtu 1500") {
			t.Errorf("links in %s: %s", l.ServerNS, out)
		}
		if out, _ := exec.Command("ip", "-o", "link").CombinedOutput(); bytes.Contains(out, []byte(" tun0:")) {
			t.Errorf("tun0 leaked into the caller's namespace:\n%s", out)
		}
		leftover = l.Command(l.ServerNS, "sleep", "600")
		if err := leftover.Start(); err != nil {
			t.Fatal(err)
		}
		// Not stopped here: the link's cleanup must kill it.
	})
	if l == nil {
		return
	}
	done := make(chan error, 1)
	go func() { done <- leftover.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		leftover.Process.Kill()
		t.Errorf("process left in %s still running after cleanup", l.ServerNS)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, ns := range []string{l.ServerNS, l.ClientNS} {
		if strings.Contains(string(out), ns) {
			t.Errorf("%s still listed:\n%s", ns, out)
		}
	}
}
