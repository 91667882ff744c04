package profilepb

import (
	"math"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/profile"
)

const (
	us = int64(time.Microsecond)
	ms = int64(time.Millisecond)
)

// full sets every field of every type to a non-zero value, so a field the
// conversion forgets fails the round trip.
func full() *profile.Profile {
	return &profile.Profile{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", ParentSpanID: "b7ad6b7169203331",
		TraceIDGenerated: true, TraceSource: "traceparent",
		Pod: "demo-7f9", Namespace: "default", Container: "app",
		PID: 1234, TID: 1240, ThreadName: "python3",
		Method: "GET", Path: "/downstream?id=7&full=1", Host: "demo.default.svc", StatusCode: 502,
		Client: "10.0.0.9:41000", Server: "10.0.0.5:8080",
		StartTime:  time.Date(2026, 11, 27, 6, 40, 1, 123_456_789, time.UTC),
		DurationNS: 214 * ms, RequestBytes: 84, ResponseBytes: 312,
		Breakdown: map[profile.Category]int64{profile.Net: 205 * ms, profile.CPU: 6 * ms, profile.Runq: 3 * ms, "future": 1},
		Timeline: []profile.Segment{{
			Category: profile.Lock, StartOffsetNS: 400 * us, DurationNS: 201 * ms, RunqNS: 2 * ms, Count: 3,
			Syscall: "futex", FDKind: "socket", FD: 11, Peer: "10.96.14.2:9000", File: "/tmp/x", Bytes: 2300,
			WakerTID: 1239, WakerName: "holder", Detail: "detail", HolderTraceID: "4bf92f3577b34da6a3ce929d0e0e4737",
		}, {Category: profile.Net, StartOffsetNS: 1, DurationNS: 2}},
		DNS: []profile.DNSQuery{{
			Name: "backend.default.svc.cluster.local", Type: "A", Rcode: "NXDOMAIN", Server: "10.96.0.10:53",
			StartOffsetNS: 1 * ms, LatencyNS: 500 * ms, Answered: true, Attempt: 2,
		}},
		Network: []profile.NetworkPeer{{
			Peer: "10.96.14.2:9000", Protocol: "tcp", BytesSent: 120, BytesReceived: 2300,
			WaitNS: 192 * ms, StartOffsetNS: 13 * ms, Calls: 4,
		}},
		Diagnosis: profile.Diagnosis{Cause: profile.CauseTCPWindow, Summary: "downstream slow", Evidence: []string{"a", "b"},
			Deviation: &profile.Deviation{
				Verdict: profile.VerdictDeviates, Category: profile.Net, ActualNS: 205 * ms, TypicalNS: 5 * ms, ExcessNS: 200 * ms, TotalExcessNS: 204 * ms,
			}},
		Partial: true, PartialReason: "ring buffer lost 12 events",
		Baseline: &profile.Baseline{
			Method: "GET", Route: "/downstream", Samples: 240, Warm: true, DurationNS: 10 * ms, DurationP90NS: 14 * ms,
			Breakdown: map[profile.Category]int64{profile.Net: 5 * ms, profile.CPU: 4 * ms}, DNSNS: 1 * ms,
		},
		TCP:         &profile.TCPSend{WindowLimitedNS: 812_000_000, PeerWindowMinBytes: 87_040, PeerWindowBytes: 4096, DeliveryNS: 370_000_000},
		StealNS:     1_500_000,
		Accounting:  profile.AccountingEventLoop,
		GoroutineID: 4242,
	}
}

// TestFullCoversEveryField guards the round-trip test itself: a field added
// to profile.Profile later must be filled in full() too.
func TestFullCoversEveryField(t *testing.T) {
	var check func(path string, v reflect.Value)
	check = func(path string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Struct:
			if v.Type() == reflect.TypeFor[time.Time]() {
				if v.Interface().(time.Time).IsZero() {
					t.Errorf("%s is zero", path)
				}
				return
			}
			for i := range v.NumField() {
				check(path+"."+v.Type().Field(i).Name, v.Field(i))
			}
		case reflect.Pointer:
			if v.IsNil() {
				t.Errorf("%s is nil", path)
				return
			}
			check(path, v.Elem())
		case reflect.Slice:
			if v.Len() == 0 {
				t.Errorf("%s is empty", path)
				return
			}
			// The first element must be full; others may be sparse.
			check(path+"[0]", v.Index(0))
		default:
			if v.IsZero() {
				t.Errorf("%s is zero", path)
			}
		}
	}
	check("Profile", reflect.ValueOf(*full()))
}

func TestRoundTrip(t *testing.T) {
	local := time.Date(2026, 11, 27, 7, 40, 1, 5_000_000, time.FixedZone("CET", 3600))
	tests := []struct {
		name string
		in   *profile.Profile
		// want is what comes back; nil means in itself.
		want *profile.Profile
	}{
		{name: "full", in: full()},
		{name: "zero", in: &profile.Profile{}},
		{name: "zero time", in: func() *profile.Profile { p := full(); p.StartTime = time.Time{}; return p }()},
		{
			name: "empty collections come back nil",
			in: &profile.Profile{
				TraceID: "t", Breakdown: map[profile.Category]int64{}, Timeline: []profile.Segment{},
				DNS: []profile.DNSQuery{}, Network: []profile.NetworkPeer{},
				Diagnosis: profile.Diagnosis{Evidence: []string{}},
			},
			want: &profile.Profile{TraceID: "t"},
		},
		{
			name: "time comes back in UTC",
			in:   &profile.Profile{StartTime: local},
			want: &profile.Profile{StartTime: local.UTC()},
		},
		{
			name: "monotonic reading is dropped",
			in:   &profile.Profile{StartTime: time.Now()},
		},
		{
			name: "invalid UTF-8 is replaced",
			in:   &profile.Profile{Path: "/a\xffb", Diagnosis: profile.Diagnosis{Evidence: []string{"x\xfe"}}},
			want: &profile.Profile{Path: "/a\uFFFDb", Diagnosis: profile.Diagnosis{Evidence: []string{"x\uFFFD"}}},
		},
		{
			name: "ints clamp to int32",
			in: &profile.Profile{
				StatusCode: math.MaxInt32 + 1,
				Timeline:   []profile.Segment{{Count: math.MinInt32 - 1}},
				Network:    []profile.NetworkPeer{{Calls: math.MaxInt64}},
			},
			want: &profile.Profile{
				StatusCode: math.MaxInt32,
				Timeline:   []profile.Segment{{Count: math.MinInt32}},
				Network:    []profile.NetworkPeer{{Calls: math.MaxInt32}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want
			if want == nil {
				want = tt.in
			}
			pb := ToProto(tt.in)
			// The wire form must survive the real codec (valid UTF-8 etc.).
			b, err := proto.Marshal(pb)
			if err != nil {
				t.Fatalf("proto.Marshal: %v", err)
			}
			var back tracecamv1.Profile
			if err := proto.Unmarshal(b, &back); err != nil {
				t.Fatalf("proto.Unmarshal: %v", err)
			}
			for _, m := range []*tracecamv1.Profile{pb, &back} {
				got := FromProto(m)
				if tt.name == "monotonic reading is dropped" {
					if !got.StartTime.Equal(tt.in.StartTime) {
						t.Fatalf("StartTime = %v, want %v", got.StartTime, tt.in.StartTime)
					}
					want = &profile.Profile{StartTime: tt.in.StartTime.UTC().Round(0)}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("round trip:\n got %#v\nwant %#v", got, want)
				}
			}
		})
	}
}

func TestToProtoFields(t *testing.T) {
	p := full()
	pb := ToProto(p)
	if got, want := pb.GetStartTime().AsTime(), p.StartTime; !got.Equal(want) {
		t.Errorf("start_time = %v, want %v", got, want)
	}
	if pb.GetDurationNs() != p.DurationNS || pb.GetStatusCode() != 502 || pb.GetDiagnosis().GetCause() != "tcp_window" {
		t.Errorf("scalars: %v", pb)
	}
	if got := pb.GetBreakdown()["net"]; got != 205*ms {
		t.Errorf("breakdown[net] = %d", got)
	}
	if got := pb.GetTimeline()[0].GetCategory(); got != "lock" {
		t.Errorf("timeline[0].category = %q", got)
	}
	// ToProto must copy: changing the wire form leaves p alone.
	pb.Diagnosis.Evidence[0] = "changed"
	pb.Breakdown["net"] = 0
	if p.Diagnosis.Evidence[0] != "a" || p.Breakdown[profile.Net] != 205*ms {
		t.Error("ToProto shares memory with its input")
	}

	if pb := ToProto(&profile.Profile{}); pb.GetStartTime() != nil || pb.GetDiagnosis() == nil {
		t.Errorf("zero profile: start_time %v, diagnosis %v; want unset time and a present diagnosis", pb.GetStartTime(), pb.GetDiagnosis())
	}
}

func TestFromProtoTolerates(t *testing.T) {
	tests := []struct {
		name string
		in   *tracecamv1.Profile
		want *profile.Profile
	}{
		{name: "empty message", in: &tracecamv1.Profile{}, want: &profile.Profile{}},
		{
			name: "nil elements",
			in: &tracecamv1.Profile{
				Timeline: []*tracecamv1.Segment{nil}, Dns: []*tracecamv1.DNSQuery{nil}, Network: []*tracecamv1.NetworkPeer{nil},
			},
			want: &profile.Profile{
				Timeline: []profile.Segment{{}}, DNS: []profile.DNSQuery{{}}, Network: []profile.NetworkPeer{{}},
			},
		},
		{
			name: "epoch is not the zero time",
			in:   &tracecamv1.Profile{StartTime: &timestamppb.Timestamp{}},
			want: &profile.Profile{StartTime: time.Unix(0, 0).UTC()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FromProto(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
	if FromProto(nil) != nil || ToProto(nil) != nil {
		t.Error("nil must convert to nil")
	}
}

func TestFromProtoCopies(t *testing.T) {
	pb := ToProto(full())
	p := FromProto(pb)
	pb.Diagnosis.Evidence[0] = "changed"
	pb.Timeline[0].Syscall = "changed"
	if p.Diagnosis.Evidence[0] != "a" || p.Timeline[0].Syscall != "futex" {
		t.Error("FromProto shares memory with its input")
	}
}
