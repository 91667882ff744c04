package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tracecam/tracecam/webhook/certs"
)

// webhookBench is the admission webhook's cost: latency of one review on an
// idle server, and throughput with the server held to one core.
type webhookBench struct {
	p50, p99, p999   time.Duration // sequential reviews, keep-alive
	perSecOneCore    float64       // concurrent clients, server pinned to one CPU with GOMAXPROCS=1
	clients          int
	throughputWindow time.Duration
	reviewBytes      int
}

const (
	webhookLatencyCalls = 3000
	webhookClients      = 8
	webhookLoadFor      = 5 * time.Second
)

// A realistic review: a Deployment-made pod with two containers, probes,
// env and volumes (what the API server sends for each pod CREATE).
const webhookReviewPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"checkout-7d9f8c6b5-","namespace":"shop","labels":{"app":"checkout","pod-template-hash":"7d9f8c6b5"},"annotations":{"tracecam.io/inject":"true","tracecam.io/segment-threshold":"2ms"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"checkout-7d9f8c6b5","uid":"3f6f4f0e-9a51-4a49-8a53-0c7c9d3c1b11","controller":true,"blockOwnerDeletion":true}]},"spec":{"serviceAccountName":"checkout","containers":[{"name":"checkout","image":"registry.example/shop/checkout:2.14.1","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}],"env":[{"name":"DB_HOST","value":"postgres.shop.svc"},{"name":"LOG_LEVEL","value":"info"}],"resources":{"requests":{"cpu":"250m","memory":"256Mi"},"limits":{"memory":"512Mi"}},"readinessProbe":{"httpGet":{"path":"/ready","port":"http"},"periodSeconds":5},"volumeMounts":[{"name":"config","mountPath":"/etc/checkout","readOnly":true}]},{"name":"envoy","image":"envoyproxy/envoy:v1.31.0","ports":[{"name":"admin","containerPort":9901}]}],"volumes":[{"name":"config","configMap":{"name":"checkout"}}]}}`

func webhookReview(i int) []byte {
	return []byte(fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"bench-%d","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},"namespace":"shop","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller"},"object":%s,"dryRun":false}}`, i, webhookReviewPod))
}

func runWebhookBench(ctx context.Context, cl *cleaner, work string) (webhookBench, error) {
	var res webhookBench
	root, err := moduleRoot()
	if err != nil {
		return res, err
	}
	bin := filepath.Join(work, "tracecam-webhook")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/tracecam-webhook")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return res, fmt.Errorf("building tracecam-webhook: %v\n%s", err, out)
	}
	certDir := filepath.Join(work, "webhook-certs")
	mat, _, err := certs.Plan(certs.Material{}, certs.Request{DNSNames: []string{"tracecam-webhook.tracecam-system.svc"}, IPs: []string{"127.0.0.1"}, Now: time.Now()})
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return res, err
	}
	if err := os.WriteFile(filepath.Join(certDir, "tls.crt"), mat.Cert, 0o600); err != nil {
		return res, err
	}
	if err := os.WriteFile(filepath.Join(certDir, "tls.key"), mat.Key, 0o600); err != nil {
		return res, err
	}
	port, err := freePort()
	if err != nil {
		return res, err
	}
	// One core, as the issue asks: taskset pins the process to CPU 0 and
	// GOMAXPROCS=1 keeps the Go scheduler to one thread running Go code.
	args := []string{"taskset", "-c", "0", bin, "--tls-mode=files", "--cert-dir=" + certDir, "--bind-address=127.0.0.1",
		fmt.Sprintf("--port=%d", port), "--sidecar-image=ghcr.io/tracecam/tracecam-sidecar:bench", "--log-level=warn", "--shutdown-delay=0s"}
	os.Setenv("GOMAXPROCS", "1")
	srv, err := startChild("tracecam-webhook", nil, args...)
	os.Unsetenv("GOMAXPROCS")
	if err != nil {
		return res, fmt.Errorf("starting the webhook: %w", err)
	}
	cl.add(func() { srv.stop(5 * time.Second) })
	defer srv.stop(5 * time.Second)

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mat.Bundle)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: webhookClients}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	url := fmt.Sprintf("https://127.0.0.1:%d/mutate-v1-pod", port)
	post := func(i int) error {
		resp, err := client.Post(url, "application/json", bytes.NewReader(webhookReview(i)))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		var out struct {
			Response struct {
				Allowed bool
				Patch   []byte
			}
		}
		if err := json.Unmarshal(body, &out); err != nil || !out.Response.Allowed || len(out.Response.Patch) == 0 {
			return fmt.Errorf("not an injecting response (%v): %.200s", err, body)
		}
		return nil
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := post(0); err == nil {
			break
		} else if time.Now().After(deadline) {
			return res, fmt.Errorf("webhook not answering after 15 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.reviewBytes = len(webhookReview(0))

	logf("webhook: %d sequential reviews", webhookLatencyCalls)
	for i := 0; i < 200; i++ { // warm up
		if err := post(i); err != nil {
			return res, err
		}
	}
	lat := make([]time.Duration, 0, webhookLatencyCalls)
	for i := 0; i < webhookLatencyCalls; i++ {
		t0 := time.Now()
		if err := post(i); err != nil {
			return res, err
		}
		lat = append(lat, time.Since(t0))
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	res.p50, res.p99, res.p999 = q(0.50), q(0.99), q(0.999)

	logf("webhook: %d clients for %s", webhookClients, webhookLoadFor)
	var n atomic.Int64
	var firstErr atomic.Pointer[error]
	lctx, cancel := context.WithTimeout(ctx, webhookLoadFor)
	defer cancel()
	var wg sync.WaitGroup
	began := time.Now()
	for c := 0; c < webhookClients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; lctx.Err() == nil; i++ {
				if err := post(i); err != nil {
					if lctx.Err() == nil {
						firstErr.CompareAndSwap(nil, &err)
					}
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return res, fmt.Errorf("under load: %w", *e)
	}
	res.throughputWindow = time.Since(began)
	res.perSecOneCore = float64(n.Load()) / res.throughputWindow.Seconds()
	res.clients = webhookClients
	return res, nil
}

func writeWebhookBench(b *strings.Builder, r webhookBench) {
	fmt.Fprintf(b, "## Admission webhook\n\ntracecam-webhook over TLS on loopback, a %d-byte AdmissionReview of a two-container pod (injected: the answer carries the JSON patch).\n\n", r.reviewBytes)
	b.WriteString("| measure | value | target |\n|---|---:|---:|\n")
	fmt.Fprintf(b, "| latency p50 (%d sequential reviews, keep-alive) | %s | |\n", webhookLatencyCalls, r.p50.Round(time.Microsecond))
	fmt.Fprintf(b, "| latency p99 | %s | < 5 ms |\n", r.p99.Round(time.Microsecond))
	fmt.Fprintf(b, "| latency p99.9 | %s | |\n", r.p999.Round(time.Microsecond))
	fmt.Fprintf(b, "| reviews/s, server on one core (taskset -c 0, GOMAXPROCS=1), %d clients | %s | |\n\n", r.clients, commas(r.perSecOneCore))
}
