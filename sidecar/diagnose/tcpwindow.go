package diagnose

import (
	"fmt"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// isTCPWindow is the tcp_window refinement of net (and of epoll, for event
// loops waiting to write): the response's bytes waited for the client's
// advertised receive window for at least half of ns (the time, or its
// excess over the baseline). A response that is slow to send is then fixed
// at the receiver (its buffer size, or how fast it reads), not in the
// network.
func isTCPWindow(p *profile.Profile, ns int64) bool {
	return p.TCP != nil && ns > 0 && p.TCP.WindowLimitedNS*2 >= ns
}

// loopWaitedForWindow: an event loop's idle wait the loop accounting took
// for a timer (its deadline) while the response bytes waited for the
// client's window — nginx waits for a writable socket with its send
// timeout as the deadline.
func loopWaitedForWindow(p *profile.Profile, ns int64) bool {
	return p.Accounting == profile.AccountingEventLoop && isTCPWindow(p, ns)
}

func tcpWindowFinding(p *profile.Profile) finding {
	t := p.TCP
	var segs []profile.Segment
	for _, s := range p.Timeline {
		if (s.Category == profile.Net || s.Category == profile.Epoll) && (s.Peer == "" || s.Peer == p.Client) {
			segs = append(segs, s)
		}
	}
	return finding{
		cause:   profile.CauseTCPWindow,
		label:   string(profile.CauseTCPWindow),
		phrase:  tcpWindowPhrase(p),
		details: longest(segs, byDuration, segLine),
		count: fmt.Sprintf("the client advertised %s at most while the response went out (%s at the end): its receive buffer is too small for the path, or it reads slowly",
			profile.FormatBytes(t.PeerWindowMinBytes), profile.FormatBytes(t.PeerWindowBytes)),
	}
}

func tcpWindowPhrase(p *profile.Profile) string {
	t := p.TCP
	s := fmt.Sprintf("sending the response (%s) held back by the client's TCP receive window for %s; window as small as %s",
		profile.FormatBytes(p.ResponseBytes), profile.FormatDuration(t.WindowLimitedNS), profile.FormatBytes(t.PeerWindowMinBytes))
	if t.DeliveryNS > 0 {
		s += fmt.Sprintf("; the client acknowledged the last byte %s after the last write", profile.FormatDuration(t.DeliveryNS))
	}
	return s
}
