package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tracecam/tracecam/gateway"
	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/agent"
	"github.com/tracecam/tracecam/sidecar/api"
	"github.com/tracecam/tracecam/sidecar/diagnose"
	"github.com/tracecam/tracecam/sidecar/profile"
	"github.com/tracecam/tracecam/sidecar/store"
)

// apiLatency is the query side: GetTrace and ListProfiles against a store
// holding storeSize profiles, over loopback, through gRPC and REST.
type apiLatency struct {
	name     string
	p50, p99 time.Duration
}

const (
	apiStoreSize = 10000
	apiCalls     = 2000
)

func runAPILatency(ctx context.Context) ([]apiLatency, error) {
	st := store.New(store.Config{KeptProfiles: apiStoreSize})
	var traceID string
	base := time.Now().Add(-time.Minute)
	for i := 0; i < apiStoreSize; i++ {
		p := syntheticProfile(i, base)
		if p.DurationNS >= agent.EagerDiagnosis.Nanoseconds() {
			p.Diagnosis = diagnose.Diagnose(p) // as the agent stores them
		}
		if i == apiStoreSize/2 {
			traceID = p.TraceID
		}
		st.Add(p)
	}
	srv := &api.Server{Store: st, Hub: api.NewHub()}

	gs := grpc.NewServer()
	tracecamv1.RegisterProfilerServer(gs, srv)
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go gs.Serve(gl)
	defer gs.Stop()

	mux, err := gateway.NewMux(ctx, srv, gateway.Options{})
	if err != nil {
		return nil, err
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: gateway.Handler(mux, nil)}
	go hs.Serve(hl)
	defer hs.Close()

	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := tracecamv1.NewProfilerClient(conn)
	httpc := &http.Client{}
	rest := func(path string) func() error {
		return func() error {
			resp, err := httpc.Get("http://" + hl.Addr().String() + path)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if _, err := io.Copy(io.Discard, resp.Body); err != nil {
				return err
			}
			if resp.StatusCode != 200 {
				return fmt.Errorf("GET %s: %s", path, resp.Status)
			}
			return nil
		}
	}
	cases := []struct {
		name string
		call func() error
	}{
		{"gRPC GetTrace", func() error {
			_, err := client.GetTrace(ctx, &tracecamv1.GetTraceRequest{TraceId: traceID})
			return err
		}},
		{"REST GET /v1/traces/{id}", rest("/v1/traces/" + traceID)},
		{"gRPC ListProfiles limit=20", func() error {
			_, err := client.ListProfiles(ctx, &tracecamv1.ListProfilesRequest{Limit: 20})
			return err
		}},
		{"REST GET /v1/profiles?limit=20", rest("/v1/profiles?limit=20")},
		{"REST GET /v1/profiles?limit=20&min_duration_ms=100&path=/api", rest("/v1/profiles?limit=20&min_duration_ms=100&path=/api")},
	}
	var out []apiLatency
	for _, c := range cases {
		for i := 0; i < 50; i++ { // warm up connections and caches
			if err := c.call(); err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
		}
		lat := make([]time.Duration, apiCalls)
		for i := range lat {
			t0 := time.Now()
			if err := c.call(); err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			lat[i] = time.Since(t0)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		out = append(out, apiLatency{name: c.name, p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]})
		logf("api: %s p50 %v p99 %v", c.name, lat[len(lat)/2], lat[len(lat)*99/100])
	}
	return out, nil
}

// syntheticProfile is a realistic stored profile: breakdown, a few
// segments, a downstream peer.
func syntheticProfile(i int, base time.Time) *profile.Profile {
	d := int64(1+i%400) * 1e6
	return &profile.Profile{
		TraceID: fmt.Sprintf("%032x", 0xabc0000+i), SpanID: fmt.Sprintf("%016x", i+1),
		TraceSource: "traceparent", PID: 100, TID: uint32(200 + i%16), ThreadName: "worker",
		Method: "GET", Path: []string{"/api/orders", "/api/cart", "/health"}[i%3], Host: "shop", StatusCode: 200,
		Client: "10.0.0.9:40000", Server: "10.0.0.2:8080", StartTime: base.Add(time.Duration(i) * time.Millisecond),
		DurationNS: d, RequestBytes: 300, ResponseBytes: 2000,
		Breakdown: map[profile.Category]int64{profile.CPU: d / 4, profile.Net: d / 2, profile.Lock: d - d/4 - d/2},
		Timeline: []profile.Segment{
			{Category: profile.Net, StartOffsetNS: 1e5, DurationNS: d / 2, Syscall: "recvfrom", FDKind: "socket", Peer: "10.0.0.7:5432", Bytes: 512},
			{Category: profile.Lock, StartOffsetNS: d / 2, DurationNS: d / 4, Syscall: "futex", WakerTID: 201, WakerName: "worker"},
		},
		Network: []profile.NetworkPeer{{Peer: "10.0.0.7:5432", Protocol: "tcp", BytesSent: 100, BytesReceived: 512, WaitNS: d / 2, Calls: 1}},
	}
}

func writeAPILatency(b *strings.Builder, rows []apiLatency) {
	fmt.Fprintf(b, "## API latency\n\n%d sequential calls each over loopback, %s profiles stored (target: p99 < 2 ms).\n\n", apiCalls, commas(float64(apiStoreSize)))
	b.WriteString("| call | p50 | p99 |\n|---|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s | %s |\n", r.name, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond))
	}
	b.WriteString("\n")
}
