package webhook

import (
	"fmt"
	"testing"
)

// BenchmarkReview is the pure cost of one pod CREATE review: decode, inject,
// diff, encode (the HTTP and TLS around it are measured by make bench).
func BenchmarkReview(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Image = "ghcr.io/tracecam/tracecam-sidecar:bench"
	body := reviewJSON(b, "CREATE", "Pod", []byte(plainPod))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		status, resp := Review(body, cfg)
		if status != 200 || len(resp) == 0 {
			b.Fatal(fmt.Sprintf("status %d", status))
		}
	}
}
