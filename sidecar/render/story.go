package render

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// TraceStory writes the profiles of one trace (several pods, oldest first)
// as one story: for each request, what it waited on downstream and which
// profile of the trace is the other side, so "client latency large, server
// latency small" reads at a glance:
//
//	trace 4bf92f…: 2 profiles in 2 pods
//	  frontend  GET /call  205.3 ms — waited 82.1 ms on 10.96.0.5:8080 (backend: GET /sleep took 81.0 ms, cause sleep); 120.2 ms in DNS (2 lookups of backend.default.svc, 1 unanswered)
//	  backend   GET /sleep  81.0 ms — cause sleep: sleep: 80.1 ms (99%) in clock_nanosleep
//
// The other side of a call is the profile whose server address is the peer,
// else the one that ran inside the wait (a service VIP hides the pod's
// address).
func TraceStory(w io.Writer, ps []*profile.Profile) error {
	if len(ps) == 0 {
		_, err := io.WriteString(w, "no profiles\n")
		return err
	}
	var b strings.Builder
	pods := map[string]bool{}
	for _, p := range ps {
		pods[who(p)] = true
	}
	fmt.Fprintf(&b, "trace %s: %s in %s\n", clean(ps[0].TraceID),
		profile.Plural(len(ps), "profile", "profiles"), profile.Plural(len(pods), "pod", "pods"))
	width := 0
	for _, p := range ps {
		width = max(width, len(who(p)))
	}
	for _, p := range ps {
		fmt.Fprintf(&b, "  %-*s  %s %s  %s — %s\n", width, clean(who(p)), clean(p.Method), clean(p.Path),
			profile.FormatDuration(p.DurationNS), strings.Join(storyParts(p, ps), "; "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// who names a profile's pod (or process, outside Kubernetes).
func who(p *profile.Profile) string {
	if p.Pod != "" {
		return p.Pod
	}
	return fmt.Sprintf("pid %d", p.PID)
}

func storyParts(p *profile.Profile, all []*profile.Profile) []string {
	var parts []string
	peers := append([]profile.NetworkPeer(nil), p.Network...)
	sort.SliceStable(peers, func(i, j int) bool { return peers[i].WaitNS > peers[j].WaitNS })
	for _, n := range peers {
		if n.WaitNS <= 0 {
			continue
		}
		s := fmt.Sprintf("waited %s on %s", profile.FormatDuration(n.WaitNS), clean(n.Peer))
		if q := callee(p, n, all); q != nil {
			s += fmt.Sprintf(" (%s: %s %s took %s, cause %s)", clean(who(q)), clean(q.Method), clean(q.Path),
				profile.FormatDuration(q.DurationNS), orDash(string(q.Diagnosis.Cause)))
		}
		parts = append(parts, s)
	}
	if len(p.DNS) > 0 {
		var total int64
		names := map[string]bool{}
		var unanswered, failed int
		for _, q := range p.DNS {
			total += q.LatencyNS
			names[q.Name] = true
			switch {
			case !q.Answered:
				unanswered++
			case q.Rcode != "NOERROR":
				failed++
			}
		}
		list := make([]string, 0, len(names))
		for n := range names {
			list = append(list, clean(n))
		}
		sort.Strings(list)
		s := fmt.Sprintf("%s in DNS (%s of %s", profile.FormatDuration(total),
			profile.Plural(len(p.DNS), "lookup", "lookups"), strings.Join(list, ", "))
		if unanswered > 0 {
			s += fmt.Sprintf(", %d unanswered", unanswered)
		}
		if failed > 0 {
			s += fmt.Sprintf(", %d failed", failed)
		}
		parts = append(parts, s+")")
	}
	if len(parts) == 0 {
		parts = append(parts, "cause "+orDash(string(p.Diagnosis.Cause))+": "+clean(p.Diagnosis.Summary))
	}
	return parts
}

// callee finds the profile of the trace that served p's call to peer n.
func callee(p *profile.Profile, n profile.NetworkPeer, all []*profile.Profile) *profile.Profile {
	// Behind a service VIP the callee's address is not the peer's: match a
	// profile that ran inside the caller's exchange with this peer (from its
	// first call on) and was no longer than the wait — but not one that
	// answered another of the caller's peers (a frontend that waited on DNS
	// and then on the backend must not pair the backend with the DNS wait).
	start, end := p.StartTime.Add(timeNS(n.StartOffsetNS)), p.StartTime.Add(timeNS(p.DurationNS))
	others := map[string]bool{}
	for _, m := range p.Network {
		if m.Peer != n.Peer {
			others[m.Peer] = true
		}
	}
	var inside *profile.Profile
	for _, q := range all {
		if q == p {
			continue
		}
		if q.Server == n.Peer {
			return q
		}
		if q.Server != "" && others[q.Server] {
			continue
		}
		qs, qe := q.StartTime, q.StartTime.Add(timeNS(q.DurationNS))
		if inside == nil && !qs.Before(start) && !qe.After(end) && q.DurationNS <= n.WaitNS+n.WaitNS/10 {
			inside = q
		}
	}
	return inside
}

func timeNS(ns int64) time.Duration { return time.Duration(ns) }
