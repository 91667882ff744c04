package profilepb

import (
	"math"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/profile"
)

// ToProto returns the wire form of p; nil gives nil.
func ToProto(p *profile.Profile) *tracecamv1.Profile {
	if p == nil {
		return nil
	}
	out := &tracecamv1.Profile{
		TraceId:          str(p.TraceID),
		SpanId:           str(p.SpanID),
		ParentSpanId:     str(p.ParentSpanID),
		TraceIdGenerated: p.TraceIDGenerated,
		TraceSource:      str(p.TraceSource),
		Pod:              str(p.Pod),
		Namespace:        str(p.Namespace),
		Container:        str(p.Container),
		Pid:              p.PID,
		Tid:              p.TID,
		ThreadName:       str(p.ThreadName),
		Method:           str(p.Method),
		Path:             str(p.Path),
		Host:             str(p.Host),
		StatusCode:       clamp32(p.StatusCode),
		Client:           str(p.Client),
		Server:           str(p.Server),
		DurationNs:       p.DurationNS,
		RequestBytes:     p.RequestBytes,
		ResponseBytes:    p.ResponseBytes,
		Diagnosis: &tracecamv1.Diagnosis{
			Cause:     str(string(p.Diagnosis.Cause)),
			Summary:   str(p.Diagnosis.Summary),
			Evidence:  strs(p.Diagnosis.Evidence),
			Deviation: deviationToProto(p.Diagnosis.Deviation),
		},
		Partial:       p.Partial,
		PartialReason: str(p.PartialReason),
		Baseline:      BaselineToProto(p.Baseline),
		Tcp:           tcpToProto(p.TCP),
		StealNs:       p.StealNS,
		Accounting:    str(string(p.Accounting)),
		GoroutineId:   p.GoroutineID,
	}
	if !p.StartTime.IsZero() {
		out.StartTime = timestamppb.New(p.StartTime)
	}
	if len(p.Breakdown) > 0 {
		out.Breakdown = make(map[string]int64, len(p.Breakdown))
		for c, ns := range p.Breakdown {
			// Two categories differing only in invalid bytes would merge
			// here; categories are program constants, so sum rather than
			// pick one arbitrarily.
			out.Breakdown[str(string(c))] += ns
		}
	}
	if len(p.Timeline) > 0 {
		out.Timeline = make([]*tracecamv1.Segment, len(p.Timeline))
		for i, s := range p.Timeline {
			out.Timeline[i] = &tracecamv1.Segment{
				Category:      str(string(s.Category)),
				StartOffsetNs: s.StartOffsetNS,
				DurationNs:    s.DurationNS,
				RunqNs:        s.RunqNS,
				Count:         clamp32(s.Count),
				Syscall:       str(s.Syscall),
				FdKind:        str(s.FDKind),
				Fd:            s.FD,
				Peer:          str(s.Peer),
				File:          str(s.File),
				Bytes:         s.Bytes,
				WakerTid:      s.WakerTID,
				WakerName:     str(s.WakerName),
				Detail:        str(s.Detail),
				HolderTraceId: str(s.HolderTraceID),
			}
		}
	}
	if len(p.DNS) > 0 {
		out.Dns = make([]*tracecamv1.DNSQuery, len(p.DNS))
		for i, q := range p.DNS {
			out.Dns[i] = &tracecamv1.DNSQuery{
				Name:          str(q.Name),
				Type:          str(q.Type),
				Rcode:         str(q.Rcode),
				Server:        str(q.Server),
				StartOffsetNs: q.StartOffsetNS,
				LatencyNs:     q.LatencyNS,
				Answered:      q.Answered,
				Attempt:       q.Attempt,
			}
		}
	}
	if len(p.Network) > 0 {
		out.Network = make([]*tracecamv1.NetworkPeer, len(p.Network))
		for i, n := range p.Network {
			out.Network[i] = &tracecamv1.NetworkPeer{
				Peer:          str(n.Peer),
				Protocol:      str(n.Protocol),
				BytesSent:     n.BytesSent,
				BytesReceived: n.BytesReceived,
				WaitNs:        n.WaitNS,
				StartOffsetNs: n.StartOffsetNS,
				Calls:         clamp32(n.Calls),
			}
		}
	}
	return out
}

// FromProto returns the in-memory form of p; nil gives nil. Nil nested
// messages (an unset diagnosis, a nil timeline entry) read as their zero
// values.
func FromProto(p *tracecamv1.Profile) *profile.Profile {
	if p == nil {
		return nil
	}
	out := &profile.Profile{
		TraceID:          p.GetTraceId(),
		SpanID:           p.GetSpanId(),
		ParentSpanID:     p.GetParentSpanId(),
		TraceIDGenerated: p.GetTraceIdGenerated(),
		TraceSource:      p.GetTraceSource(),
		Pod:              p.GetPod(),
		Namespace:        p.GetNamespace(),
		Container:        p.GetContainer(),
		PID:              p.GetPid(),
		TID:              p.GetTid(),
		ThreadName:       p.GetThreadName(),
		Method:           p.GetMethod(),
		Path:             p.GetPath(),
		Host:             p.GetHost(),
		StatusCode:       int(p.GetStatusCode()),
		Client:           p.GetClient(),
		Server:           p.GetServer(),
		DurationNS:       p.GetDurationNs(),
		RequestBytes:     p.GetRequestBytes(),
		ResponseBytes:    p.GetResponseBytes(),
		Diagnosis: profile.Diagnosis{
			Cause:     profile.Cause(p.GetDiagnosis().GetCause()),
			Summary:   p.GetDiagnosis().GetSummary(),
			Evidence:  copyStrs(p.GetDiagnosis().GetEvidence()),
			Deviation: deviationFromProto(p.GetDiagnosis().GetDeviation()),
		},
		Partial:       p.GetPartial(),
		PartialReason: p.GetPartialReason(),
		Baseline:      BaselineFromProto(p.GetBaseline()),
		TCP:           tcpFromProto(p.GetTcp()),
		StealNS:       p.GetStealNs(),
		Accounting:    profile.Accounting(p.GetAccounting()),
		GoroutineID:   p.GetGoroutineId(),
	}
	if ts := p.GetStartTime(); ts != nil {
		out.StartTime = time.Unix(ts.GetSeconds(), int64(ts.GetNanos())).UTC()
	}
	if b := p.GetBreakdown(); len(b) > 0 {
		out.Breakdown = make(map[profile.Category]int64, len(b))
		for c, ns := range b {
			out.Breakdown[profile.Category(c)] = ns
		}
	}
	if tl := p.GetTimeline(); len(tl) > 0 {
		out.Timeline = make([]profile.Segment, len(tl))
		for i, s := range tl {
			out.Timeline[i] = profile.Segment{
				Category:      profile.Category(s.GetCategory()),
				StartOffsetNS: s.GetStartOffsetNs(),
				DurationNS:    s.GetDurationNs(),
				RunqNS:        s.GetRunqNs(),
				Count:         int(s.GetCount()),
				Syscall:       s.GetSyscall(),
				FDKind:        s.GetFdKind(),
				FD:            s.GetFd(),
				Peer:          s.GetPeer(),
				File:          s.GetFile(),
				Bytes:         s.GetBytes(),
				WakerTID:      s.GetWakerTid(),
				WakerName:     s.GetWakerName(),
				Detail:        s.GetDetail(),
				HolderTraceID: s.GetHolderTraceId(),
			}
		}
	}
	if qs := p.GetDns(); len(qs) > 0 {
		out.DNS = make([]profile.DNSQuery, len(qs))
		for i, q := range qs {
			out.DNS[i] = profile.DNSQuery{
				Name:          q.GetName(),
				Type:          q.GetType(),
				Rcode:         q.GetRcode(),
				Server:        q.GetServer(),
				StartOffsetNS: q.GetStartOffsetNs(),
				LatencyNS:     q.GetLatencyNs(),
				Answered:      q.GetAnswered(),
				Attempt:       q.GetAttempt(),
			}
		}
	}
	if ns := p.GetNetwork(); len(ns) > 0 {
		out.Network = make([]profile.NetworkPeer, len(ns))
		for i, n := range ns {
			out.Network[i] = profile.NetworkPeer{
				Peer:          n.GetPeer(),
				Protocol:      n.GetProtocol(),
				BytesSent:     n.GetBytesSent(),
				BytesReceived: n.GetBytesReceived(),
				WaitNS:        n.GetWaitNs(),
				StartOffsetNS: n.GetStartOffsetNs(),
				Calls:         int(n.GetCalls()),
			}
		}
	}
	return out
}

// BaselineToProto returns the wire form of b; nil gives nil.
func BaselineToProto(b *profile.Baseline) *tracecamv1.Baseline {
	if b == nil {
		return nil
	}
	out := &tracecamv1.Baseline{
		Method: str(b.Method), Route: str(b.Route), Samples: b.Samples, Warm: b.Warm,
		DurationNs: b.DurationNS, DurationP90Ns: b.DurationP90NS, DnsNs: b.DNSNS,
	}
	if len(b.Breakdown) > 0 {
		out.Breakdown = make(map[string]int64, len(b.Breakdown))
		for c, ns := range b.Breakdown {
			out.Breakdown[str(string(c))] += ns
		}
	}
	return out
}

// BaselineFromProto returns the in-memory form of b; nil gives nil.
func BaselineFromProto(b *tracecamv1.Baseline) *profile.Baseline {
	if b == nil {
		return nil
	}
	out := &profile.Baseline{
		Method: b.GetMethod(), Route: b.GetRoute(), Samples: b.GetSamples(), Warm: b.GetWarm(),
		DurationNS: b.GetDurationNs(), DurationP90NS: b.GetDurationP90Ns(), DNSNS: b.GetDnsNs(),
	}
	if bd := b.GetBreakdown(); len(bd) > 0 {
		out.Breakdown = make(map[profile.Category]int64, len(bd))
		for c, ns := range bd {
			out.Breakdown[profile.Category(c)] = ns
		}
	}
	return out
}

func deviationToProto(d *profile.Deviation) *tracecamv1.Deviation {
	if d == nil {
		return nil
	}
	return &tracecamv1.Deviation{
		Verdict: str(string(d.Verdict)), Category: str(string(d.Category)), ActualNs: d.ActualNS,
		TypicalNs: d.TypicalNS, ExcessNs: d.ExcessNS, TotalExcessNs: d.TotalExcessNS,
	}
}

func deviationFromProto(d *tracecamv1.Deviation) *profile.Deviation {
	if d == nil {
		return nil
	}
	return &profile.Deviation{
		Verdict: profile.Verdict(d.GetVerdict()), Category: profile.Category(d.GetCategory()), ActualNS: d.GetActualNs(),
		TypicalNS: d.GetTypicalNs(), ExcessNS: d.GetExcessNs(), TotalExcessNS: d.GetTotalExcessNs(),
	}
}

// str makes s safe for a proto3 string field.
func str(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func strs(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = str(s)
	}
	return out
}

func copyStrs(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	return append([]string(nil), ss...)
}

func clamp32(n int) int32 {
	return int32(max(math.MinInt32, min(n, math.MaxInt32)))
}

func tcpToProto(t *profile.TCPSend) *tracecamv1.TCPSend {
	if t == nil {
		return nil
	}
	return &tracecamv1.TCPSend{WindowLimitedNs: t.WindowLimitedNS, PeerWindowMinBytes: t.PeerWindowMinBytes, PeerWindowBytes: t.PeerWindowBytes, DeliveryNs: t.DeliveryNS}
}

func tcpFromProto(t *tracecamv1.TCPSend) *profile.TCPSend {
	if t == nil {
		return nil
	}
	return &profile.TCPSend{WindowLimitedNS: t.GetWindowLimitedNs(), PeerWindowMinBytes: t.GetPeerWindowMinBytes(), PeerWindowBytes: t.GetPeerWindowBytes(), DeliveryNS: t.GetDeliveryNs()}
}
