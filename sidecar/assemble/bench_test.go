package assemble

import (
	"net/netip"
	"testing"

	"github.com/tracecam/tracecam/sidecar/event"
	"github.com/tracecam/tracecam/sidecar/profile"
)

// BenchmarkKeepAliveRequest measures the user-space cost of one request as
// nginx produces it: a request read, a header writev and a sendfile body.
func BenchmarkKeepAliveRequest(b *testing.B) {
	n := 0
	a := New(Config{}, func(*profile.Profile) { n++ })
	sock := event.Sock{Family: 2, Proto: 6,
		Local: netip.MustParseAddrPort("127.0.0.1:8080"), Remote: netip.MustParseAddrPort("127.0.0.1:40000")}
	reqBytes := []byte("GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n\r\n")
	head := []byte("HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: 612\r\nConnection: keep-alive\r\n\r\n")
	var ts uint64 = 1e9
	var cnt [event.NumCategories]uint64
	hdr := func() event.Header {
		ts += 10000
		cnt[event.CatCPU] += 10000
		return event.Header{Type: event.TypeData, PID: 10, TID: 10, TS: ts}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.Handle(&event.Data{Header: hdr(), Counters: cnt, Ret: int64(len(reqBytes)), Socket: 0xffff888001234000, FD: 7, Sock: sock, Comm: "nginx", Bytes: reqBytes})
		a.Handle(&event.Data{Header: hdr(), Counters: cnt, Ret: int64(len(head)), Socket: 0xffff888001234000, FD: 7, Out: true, Sock: sock, Comm: "nginx", Bytes: head})
		a.Handle(&event.Data{Header: hdr(), Counters: cnt, Ret: 612, Socket: 0xffff888001234000, FD: 7, Out: true, Sock: sock, Comm: "nginx"})
	}
	if n != b.N {
		b.Fatalf("%d profiles for %d requests", n, b.N)
	}
}
