package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	sigyaml "sigs.k8s.io/yaml"

	"github.com/tracecam/tracecam/e2e/kubeapi"
	"github.com/tracecam/tracecam/webhook"
	"github.com/tracecam/tracecam/webhook/certs"
)

const sidecarImage = "ghcr.io/tracecam/tracecam-sidecar:e2e"

var webhookBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tracecam-e2e-webhook")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "tracecam-webhook")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tracecam/tracecam/cmd/tracecam-webhook").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building tracecam-webhook: %v\n%s", err, out)
	}
	return bin, nil
})

// webhookProc is a tracecam-webhook process on loopback.
type webhookProc struct {
	p    *proc
	port int
}

func startWebhook(t *testing.T, s *kubeapi.Server, extra ...string) *webhookProc {
	t.Helper()
	bin, err := webhookBin()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	args := append([]string{
		"--tls-mode=self", "--namespace=tracecam-system", "--kubeconfig=" + s.Kubeconfig,
		fmt.Sprintf("--port=%d", port), "--bind-address=127.0.0.1", "--cert-ips=127.0.0.1",
		"--cert-dir=" + t.TempDir(), "--sidecar-image=" + sidecarImage,
		"--shutdown-delay=0s", "--cert-check-interval=2s", "--log-level=debug",
	}, extra...)
	w := &webhookProc{p: start(t, nil, bin, args...), port: port}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(w.url("/readyz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return w
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not ready after 30 s (last: %v)\n%s", err, w.p.stderr())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *webhookProc) url(path string) string {
	return fmt.Sprintf("https://127.0.0.1:%d%s", w.port, path)
}

func (w *webhookProc) stop(t *testing.T) {
	t.Helper()
	w.p.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- w.p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("webhook exited with %v\n%s", err, w.p.stderr())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("webhook did not stop within 15 s of SIGINT")
	}
}

// servedCert is the leaf certificate the webhook presents.
func (w *webhookProc) servedCert(t *testing.T) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", w.port), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// reviews is how many admission reviews the webhook has answered (its
// Prometheus counters, all outcomes).
func (w *webhookProc) reviews(t *testing.T) int {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Get(w.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the webhook's /metrics: %v", err)
	}
	n := 0
	for _, m := range fams["tracecam_webhook_admission_reviews_total"].GetMetric() {
		n += int(m.GetCounter().GetValue())
	}
	return n
}

// loadWebhookConfig reads the real manifest and points it at a webhook
// on loopback (the API server cannot reach a Service here).
func loadWebhookConfig(t *testing.T, url string) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(caseRepoRoot(t), "manifests", "mutatingwebhookconfiguration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg admissionregistrationv1.MutatingWebhookConfiguration
	if err := sigyaml.UnmarshalStrict(b, &cfg); err != nil {
		t.Fatalf("manifests/mutatingwebhookconfiguration.yaml: %v", err)
	}
	if len(cfg.Webhooks) != 1 {
		t.Fatalf("want one webhook in the configuration, got %d", len(cfg.Webhooks))
	}
	cfg.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
	return &cfg
}

// warnings collects the admission warnings the API server returns.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

func pod(name string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/shop/web:1.0",
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
		}}},
	}
}

func sidecars(p *corev1.Pod) (n int, c *corev1.Container) {
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range list {
			if list[i].Name == webhook.ContainerName {
				n++
				c = &list[i]
			}
		}
	}
	return n, c
}

// TestWebhookAgainstKubeAPIServer registers the real manifests'
// MutatingWebhookConfiguration with a real kube-apiserver, runs the real
// webhook binary managing its own certificate, and creates pods through
// client-go.
func TestWebhookAgainstKubeAPIServer(t *testing.T) {
	s := kubeapi.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	for _, ns := range []string{"tracecam-system", "shop"} {
		if err := s.EnsureNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}

	// The configuration first, as kubectl apply -k orders it last: the
	// webhook must cope with either order; here it finds it at start.
	w := startWebhook(t, s)
	mwcs := s.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := mwcs.Create(ctx, loadWebhookConfig(t, w.url("/mutate-v1-pod")), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the webhook configuration from manifests/: %v", err)
	}
	t.Cleanup(func() { mwcs.Delete(context.Background(), "tracecam", metav1.DeleteOptions{}) })

	// The webhook stores its CA and certificate in a Secret and writes the
	// CA into caBundle (within its retry interval: it started before the
	// configuration existed).
	var secret *corev1.Secret
	waitFor(t, 20*time.Second, "caBundle written and trusting the Secret's CA", func() bool {
		cfg, err := mwcs.Get(ctx, "tracecam", metav1.GetOptions{})
		if err != nil {
			return false
		}
		secret, err = s.Client.CoreV1().Secrets("tracecam-system").Get(ctx, "tracecam-webhook-tls", metav1.GetOptions{})
		return err == nil && certs.Trusts(cfg.Webhooks[0].ClientConfig.CABundle, secret.Data[certs.KeyCACert])
	})
	if string(w.servedCert(t)) != string(mustPEMDER(t, secret.Data[certs.KeyCert])) {
		t.Fatal("the webhook does not serve the certificate stored in the Secret")
	}

	// A second replica shares the Secret: same certificate, nothing reissued.
	w2 := startWebhook(t, s)
	if string(w2.servedCert(t)) != string(w.servedCert(t)) {
		t.Error("a second replica serves a different certificate than the first")
	}

	warn := &warnings{}
	cfg := rest.CopyConfig(s.Config)
	cfg.WarningHandler = warn
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pods := client.CoreV1().Pods("shop")

	t.Run("annotated pod is injected", func(t *testing.T) {
		got, err := pods.Create(ctx, pod("web", map[string]string{webhook.AnnotationInject: "true"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		stored, err := pods.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(stored.UID) != string(got.UID) {
			t.Fatal("stored pod differs from the created one")
		}
		n, c := sidecars(stored)
		if n != 1 {
			t.Fatalf("want one tracecam container, got %d\n%s", n, podYAML(stored))
		}
		if len(stored.Spec.InitContainers) != 1 || stored.Spec.InitContainers[0].RestartPolicy == nil ||
			*stored.Spec.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("want a native sidecar (init container, restartPolicy Always)\n%s", podYAML(stored))
		}
		if c.Image != sidecarImage || c.ReadinessProbe == nil || c.SecurityContext == nil {
			t.Errorf("sidecar image/probe/securityContext wrong: %+v", c)
		}
		var st webhook.Status
		if err := json.Unmarshal([]byte(stored.Annotations[webhook.AnnotationStatus]), &st); err != nil || st.Image != sidecarImage {
			t.Errorf("status annotation %q: %v", stored.Annotations[webhook.AnnotationStatus], err)
		}
		if stored.Spec.ShareProcessNamespace == nil || !*stored.Spec.ShareProcessNamespace {
			t.Error("shareProcessNamespace not set")
		}
		// The app container is untouched.
		if len(stored.Spec.Containers) != 1 || stored.Spec.Containers[0].Name != "app" || stored.Spec.Containers[0].Image != "registry.example/shop/web:1.0" {
			t.Errorf("app container changed:\n%s", podYAML(stored))
		}
		if ws := warn.take(); len(ws) != 0 {
			t.Errorf("unexpected warnings: %q", ws)
		}
	})

	t.Run("plain pod is untouched and never sent to the webhook", func(t *testing.T) {
		before := w.reviews(t) + w2.reviews(t)
		for name, ann := range map[string]map[string]string{
			"plain":       nil,
			"other-ann":   {"team": "shop"},
			"inject-nope": {webhook.AnnotationInject: "false"},
		} {
			stored, err := pods.Create(ctx, pod(name, ann), metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
			if n, _ := sidecars(stored); n != 0 || len(stored.Spec.InitContainers) != 0 || stored.Annotations[webhook.AnnotationStatus] != "" {
				t.Errorf("%s was mutated:\n%s", name, podYAML(stored))
			}
		}
		if after := w.reviews(t) + w2.reviews(t); after != before {
			t.Errorf("the webhook answered %d reviews for pods matchConditions should filter out", after-before)
		}
	})

	t.Run("already injected pod is not doubled", func(t *testing.T) {
		injected, err := pods.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		again := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-again", Annotations: injected.Annotations}, Spec: injected.Spec}
		again.Spec.NodeName = ""
		stored, err := pods.Create(ctx, again, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if n, _ := sidecars(stored); n != 1 || len(stored.Spec.Volumes) != len(injected.Spec.Volumes) {
			t.Errorf("re-created injected pod has %d tracecam containers and %d volumes (want 1 and %d)\n%s",
				n, len(stored.Spec.Volumes), len(injected.Spec.Volumes), podYAML(stored))
		}
		// Without the status annotation but with the container, the webhook
		// is called and still does not add a second one.
		delete(again.Annotations, webhook.AnnotationStatus)
		again.Name = "web-again-2"
		stored, err = pods.Create(ctx, again, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if n, _ := sidecars(stored); n != 1 {
			t.Errorf("pod with a tracecam container but no status got %d tracecam containers", n)
		}
	})

	t.Run("bad annotation values: created with defaults and a warning", func(t *testing.T) {
		warn.take()
		stored, err := pods.Create(ctx, pod("bad", map[string]string{
			webhook.AnnotationInject:           "true",
			webhook.AnnotationSegmentThreshold: "forever",
			webhook.AnnotationCPULimit:         "lots",
			webhook.AnnotationLogLevel:         "loud",
		}), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		n, c := sidecars(stored)
		if n != 1 {
			t.Fatalf("not injected:\n%s", podYAML(stored))
		}
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		if env["TRACECAM_SEGMENT_THRESHOLD"] != webhook.DefaultSegmentThreshold || env["TRACECAM_LOG_LEVEL"] != webhook.DefaultLogLevel {
			t.Errorf("defaults not used: %v", env)
		}
		if q := c.Resources.Limits[corev1.ResourceCPU]; q.String() != "500m" {
			t.Errorf("cpu limit = %s, want the default 500m", q.String())
		}
		ws := strings.Join(warn.take(), "\n")
		for _, a := range []string{webhook.AnnotationSegmentThreshold, webhook.AnnotationCPULimit, webhook.AnnotationLogLevel} {
			if !strings.Contains(ws, a) {
				t.Errorf("no admission warning names %s; warnings:\n%s", a, ws)
			}
		}
	})

	t.Run("dry run creates nothing", func(t *testing.T) {
		got, err := pods.Create(ctx, pod("dry", map[string]string{webhook.AnnotationInject: "true"}), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("dry-run create: %v", err)
		}
		if n, _ := sidecars(got); n != 1 {
			t.Error("dry run not injected")
		}
		if _, err := pods.Get(ctx, "dry", metav1.GetOptions{}); err == nil {
			t.Error("dry run stored a pod")
		}
	})

	t.Run("certificate Secret deleted: both replicas recover", func(t *testing.T) {
		oldCA := secret.Data[certs.KeyCACert]
		if err := s.Client.CoreV1().Secrets("tracecam-system").Delete(ctx, "tracecam-webhook-tls", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// Within the check interval (2 s here) a replica makes a new CA,
		// and both end up serving the one certificate the Secret holds,
		// trusted by caBundle.
		waitFor(t, 30*time.Second, "a new CA in the Secret and caBundle, served by both replicas", func() bool {
			sec, err := s.Client.CoreV1().Secrets("tracecam-system").Get(ctx, "tracecam-webhook-tls", metav1.GetOptions{})
			if err != nil || string(sec.Data[certs.KeyCACert]) == string(oldCA) {
				return false
			}
			cfg, err := mwcs.Get(ctx, "tracecam", metav1.GetOptions{})
			if err != nil || !certs.Trusts(cfg.Webhooks[0].ClientConfig.CABundle, sec.Data[certs.KeyCACert]) {
				return false
			}
			want := string(mustPEMDER(t, sec.Data[certs.KeyCert]))
			return string(w.servedCert(t)) == want && string(w2.servedCert(t)) == want
		})
		stored, err := pods.Create(ctx, pod("after-rotation", map[string]string{webhook.AnnotationInject: "true"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := sidecars(stored); n != 1 {
			t.Error("not injected after the certificate was replaced")
		}
	})

	t.Run("webhook down: pod created without the sidecar", func(t *testing.T) {
		w.stop(t)
		w2.stop(t)
		began := time.Now()
		stored, err := pods.Create(ctx, pod("while-down", map[string]string{webhook.AnnotationInject: "true"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create while the webhook is down: %v (failurePolicy must be Ignore)", err)
		}
		if n, _ := sidecars(stored); n != 0 {
			t.Error("pod injected although the webhook is down")
		}
		t.Logf("pod created %.0f ms after the call, webhook down", float64(time.Since(began).Microseconds())/1000)
	})
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func mustPEMDER(t *testing.T, p []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(p)
	if b == nil {
		t.Fatal("no PEM block in the stored certificate")
	}
	return b.Bytes
}

func podYAML(p *corev1.Pod) string {
	b, _ := sigyaml.Marshal(p)
	return string(b)
}
