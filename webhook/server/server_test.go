package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/tracecam/tracecam/webhook"
	"github.com/tracecam/tracecam/webhook/certs"
)

const review = `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"shop","operation":"CREATE","object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","annotations":{"tracecam.io/inject":"true"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}`

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func injectConfig() webhook.Config {
	c := webhook.DefaultConfig()
	c.Image = "ghcr.io/tracecam/tracecam-sidecar:test"
	return c
}

// start runs the server until the test ends and returns a client trusting
// the CA in bundle and the base URL.
func start(t *testing.T, o Options, bundle func() []byte) (*http.Client, string, context.CancelFunc, func() error) {
	t.Helper()
	o.Host, o.Port = "127.0.0.1", freePort(t)
	ready := make(chan struct{})
	o.Ready = ready
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var runErr error
	go func() { runErr = Run(ctx, o); close(done) }()
	wait := func() error {
		select {
		case <-done:
			return runErr
		case <-time.After(10 * time.Second):
			return fmt.Errorf("server did not stop within 10 s")
		}
	}
	t.Cleanup(func() {
		cancel()
		if err := wait(); err != nil {
			t.Error(err)
		}
	})
	select {
	case <-ready:
	case <-done:
		t.Fatalf("Run: %v", runErr)
	case <-time.After(10 * time.Second):
		t.Fatal("server not listening after 10 s")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle()) {
		t.Fatal("no CA to trust")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "tracecam-webhook.tracecam-system.svc"}}}
	return c, fmt.Sprintf("https://127.0.0.1:%d", o.Port), cancel, wait
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func admit(t *testing.T, c *http.Client, base string) {
	t.Helper()
	resp, err := c.Post(base+Path, "application/json", strings.NewReader(review))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Response struct {
			UID     string
			Allowed bool
			Patch   []byte
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, decode %v", resp.StatusCode, err)
	}
	if out.Response.UID != "u-1" || !out.Response.Allowed || !bytes.Contains(out.Response.Patch, []byte(`"name":"tracecam"`)) {
		t.Fatalf("response = %+v, want the pod allowed with the sidecar patch", out.Response)
	}
}

// metric returns the value of a counter or gauge with the given labels.
func metric(t *testing.T, c *http.Client, base, name string, labels map[string]string) float64 {
	t.Helper()
	code, body := get(t, c, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	f, ok := fams[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
next:
	for _, m := range f.Metric {
		for k, v := range labels {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("/metrics has no %s%v", name, labels)
	return 0
}

func TestFilesMode(t *testing.T) {
	dir := t.TempDir()
	m, _, err := certs.Plan(certs.Material{}, certs.Request{DNSNames: []string{"tracecam-webhook.tracecam-system.svc"}, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "tls.crt"), m.Cert, 0o600)
	os.WriteFile(filepath.Join(dir, "tls.key"), m.Key, 0o600)

	c, base, cancel, wait := start(t, Options{TLSMode: TLSFiles, CertDir: dir, Inject: injectConfig(), ShutdownDelay: 300 * time.Millisecond},
		func() []byte { return m.Bundle })
	if code, body := get(t, c, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	if code, _ := get(t, c, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	before := metric(t, c, base, "tracecam_webhook_admission_reviews_total", map[string]string{"outcome": "injected"})
	admit(t, c, base)
	if after := metric(t, c, base, "tracecam_webhook_admission_reviews_total", map[string]string{"outcome": "injected"}); after != before+1 {
		t.Errorf("injected counter went %v -> %v", before, after)
	}
	if n := metric(t, c, base, "controller_runtime_webhook_requests_total", map[string]string{"webhook": Path, "code": "200"}); n < 1 {
		t.Errorf("controller-runtime's request counter = %v", n)
	}

	// Shutting down: not ready at once, then stops.
	cancel()
	deadline := time.Now().Add(250 * time.Millisecond)
	sawNotReady := false
	for time.Now().Before(deadline) && !sawNotReady {
		if resp, err := c.Get(base + "/readyz"); err == nil {
			sawNotReady = resp.StatusCode == http.StatusServiceUnavailable
			resp.Body.Close()
		}
	}
	if !sawNotReady {
		t.Error("/readyz did not fail during the shutdown delay")
	}
	if err := wait(); err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestSelfMode(t *testing.T) {
	url := "https://127.0.0.1:1/mutate-v1-pod"
	client := fake.NewClientset(&admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "tracecam"},
		Webhooks:   []admissionregistrationv1.MutatingWebhook{{Name: "inject.tracecam.io", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url}}},
	})
	mgr := &certs.Manager{Client: client, Namespace: "tracecam-system", SecretName: "tracecam-webhook-tls", WebhookConfigName: "tracecam",
		DNSNames: []string{"tracecam-webhook.tracecam-system.svc"}, CertDir: t.TempDir()}
	bundle := func() []byte {
		cfg, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), "tracecam", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Webhooks[0].ClientConfig.CABundle
	}
	c, base, _, _ := start(t, Options{TLSMode: TLSSelf, Certs: mgr, Inject: injectConfig()}, bundle)
	if code, body := get(t, c, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	admit(t, c, base)
	if exp := metric(t, c, base, "tracecam_webhook_certificate_expiry_timestamp_seconds", nil); exp < float64(time.Now().Add(300*24*time.Hour).Unix()) {
		t.Errorf("certificate expiry metric = %v, want about a year from now", exp)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{TLSMode: "tofu", Inject: injectConfig()},
		{TLSMode: TLSSelf, Inject: injectConfig()},
		{TLSMode: TLSFiles, Inject: injectConfig()},
		{TLSMode: TLSFiles, CertDir: "/nonexistent", Inject: webhook.Config{Image: ""}},
	} {
		if err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) = nil, want an error", o)
		}
	}
}
