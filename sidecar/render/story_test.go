package render

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// Seed use case 2: the client waited long, the server was quick, the rest
// was DNS.
func TestTraceStoryGolden(t *testing.T) {
	const ms = int64(time.Millisecond)
	t0 := time.Date(2026, 11, 27, 6, 40, 1, 0, time.UTC)
	front := &profile.Profile{
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", Pod: "frontend", Namespace: "default",
		Method: "GET", Path: "/checkout", StartTime: t0, DurationNS: 812 * ms,
		Network: []profile.NetworkPeer{{Peer: "10.96.0.5:8080", Protocol: "tcp", WaitNS: 31 * ms, Calls: 1}},
		DNS: []profile.DNSQuery{
			{Name: "backend.default.svc.cluster.local", Type: "A", Rcode: "NO_ANSWER", LatencyNS: 500 * ms},
			{Name: "backend.default.svc.cluster.local", Type: "A", Rcode: "NOERROR", Answered: true, LatencyNS: 280 * ms},
		},
		Diagnosis: profile.Diagnosis{Cause: profile.CauseDNS},
	}
	back := &profile.Profile{
		TraceID: front.TraceID, Pod: "backend", Namespace: "default", Server: "10.244.1.7:8080",
		Method: "GET", Path: "/price", StartTime: t0.Add(781 * time.Millisecond), DurationNS: 30 * ms,
		Diagnosis: profile.Diagnosis{Cause: profile.CauseCPU, Summary: "cpu: 28.0 ms (93%) on CPU"},
	}
	var buf bytes.Buffer
	if err := TraceStory(&buf, []*profile.Profile{front, back}); err != nil {
		t.Fatal(err)
	}
	golden := "testdata/story_dns.golden"
	if *update {
		os.WriteFile(golden, buf.Bytes(), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("story differs (go test -update after checking):\n--- got\n%s--- want\n%s", buf.Bytes(), want)
	}
}

func TestTraceStoryEmpty(t *testing.T) {
	var buf bytes.Buffer
	TraceStory(&buf, nil)
	if buf.String() != "no profiles\n" {
		t.Errorf("%q", buf.String())
	}
}
