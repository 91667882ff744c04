// Package netem is a test-side network emulator: it joins two fresh
// network namespaces, a "server" and a "client" one, with a user-space
// delay line, so that end-to-end tests get a TCP path with a real
// round-trip time and a bandwidth limit on kernels without sch_netem.
//
// Each namespace gets a TUN device, tun0 (IFF_TUN|IFF_NO_PI, MTU 1500),
// with an address in a shared /24; the kernel routes the peer's address
// to tun0, and this package relays every IP packet read from one TUN
// device to the other, per direction:
//
//   - it holds the packet for Config.Delay (one way; the RTT is 2×Delay
//     plus a fraction of a millisecond of relaying),
//   - paces departures at Config.RateBps bytes per second (counting whole
//     IP packets, so TCP goodput is ~96% of it): a packet leaves at
//     max(arrival+Delay, previous departure + len/RateBps),
//   - and tail-drops a packet when the bytes waiting for the rate limiter
//     (beyond the propagation delay) would exceed Config.QueueBytes.
//
// The relay keeps one FIFO and one timer (a timerfd, which wakes to within
// ~0.1 ms, where Go timers are ~1 ms late) per direction; nothing sleeps
// per packet.
//
//	l := netem.New(t, netem.Config{Delay: 20 * time.Millisecond, RateBps: 4 << 20})
//	srv := l.Command(l.ServerNS, "java", "-jar", "server.jar")   // caller starts and stops it
//	cli := l.Command(l.ClientNS, "curl", "http://"+l.ServerIP.String()+":8080/")
//	ln, _ := l.Listen(l.ServerNS, "tcp", l.ServerIP.String()+":0") // a Go socket in a netns
//
// Everything is undone when the test ends (t.Cleanup): the relays stop,
// the TUN devices go, leftover processes in the namespaces are killed and
// both namespaces are deleted. It needs root, /dev/net/tun and iproute2's
// `ip`; otherwise New skips the test, or fails it when the environment
// variable TRACECAM_REQUIRE_NETEM is set.
package netem
