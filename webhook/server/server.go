package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/tracecam/tracecam/webhook"
	"github.com/tracecam/tracecam/webhook/certs"
)

// Path is where admission reviews are served.
const Path = "/mutate-v1-pod"

// TLS modes.
const (
	TLSSelf  = "self"  // certs.Manager keeps the certificate
	TLSFiles = "files" // tls.crt/tls.key in CertDir, kept by someone else (cert-manager), reloaded on change
)

// Options configure Run.
type Options struct {
	Host string // "" = every address
	Port int
	// TLSMode is TLSSelf (Certs required) or TLSFiles (CertDir required).
	TLSMode string
	CertDir string
	Certs   *certs.Manager
	// CertCheckInterval is how often Certs re-checks the Secret and the
	// caBundle (default 1 minute; failures are retried sooner).
	CertCheckInterval time.Duration
	// Inject configures the sidecar (see webhook.Config).
	Inject webhook.Config
	// ShutdownDelay: after the context ends, /readyz fails for this long
	// before the listener closes, so endpoints drop the replica before it
	// stops answering.
	ShutdownDelay time.Duration
	Version       string
	Log           *slog.Logger
	// Ready, when set, is closed once the server is listening.
	Ready chan<- struct{}
}

// Run serves until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, o Options) error {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := o.Inject.Validate(); err != nil {
		return fmt.Errorf("sidecar configuration: %w", err)
	}
	switch o.TLSMode {
	case TLSSelf:
		if o.Certs == nil {
			return errors.New("tls mode self needs a certificate manager")
		}
	case TLSFiles:
		if o.CertDir == "" {
			return errors.New("tls mode files needs a certificate folder")
		}
	default:
		return fmt.Errorf("unknown tls mode %q (want %s or %s)", o.TLSMode, TLSSelf, TLSFiles)
	}

	hook := webhook.Handler(o.Inject, log)
	registerMetrics(hook, o)

	tlsOpts := []func(*tls.Config){func(c *tls.Config) {
		c.NextProtos = []string{"http/1.1"}
		c.MinVersion = tls.VersionTLS12
	}}
	if o.TLSMode == TLSSelf {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.GetCertificate = o.Certs.GetCertificate })
	}
	mux := http.NewServeMux()
	srv := ctrlwebhook.NewServer(ctrlwebhook.Options{
		Host: o.Host, Port: o.Port, CertDir: o.CertDir, TLSOpts: tlsOpts, WebhookMux: mux,
	})
	srv.Register(Path, hook)

	var stopping atomic.Bool
	started := srv.StartedChecker()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(&stopping, o, started, r); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(ctrlmetrics.Registry, promhttp.HandlerOpts{}))

	serveCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	if o.TLSMode == TLSSelf {
		// A first certificate before listening, so the first handshake
		// does not fail; errors (no webhook configuration yet, API server
		// unreachable) are retried by the loop.
		if err := o.Certs.Ensure(ctx); err != nil {
			log.Warn("certificate check failed; retrying in the background", "err", err)
		}
		go o.Certs.Run(serveCtx, o.CertCheckInterval)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Start(serveCtx) }()
	if o.Ready != nil {
		go func() {
			for serveCtx.Err() == nil {
				if started(nil) == nil {
					close(o.Ready)
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	log.Info("webhook serving", "port", o.Port, "path", Path, "tls", o.TLSMode, "image", o.Inject.Image, "native_sidecar", o.Inject.NativeSidecar)

	select {
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("webhook server: %w", err)
		}
		return errors.New("webhook server stopped")
	case <-ctx.Done():
	}
	stopping.Store(true)
	log.Info("shutting down", "not_ready_for", o.ShutdownDelay)
	select {
	case <-time.After(o.ShutdownDelay):
	case err := <-errc:
		return err
	}
	stop()
	if err := <-errc; err != nil {
		return fmt.Errorf("webhook server: %w", err)
	}
	log.Info("stopped")
	return nil
}

func ready(stopping *atomic.Bool, o Options, started func(*http.Request) error, r *http.Request) error {
	if stopping.Load() {
		return errors.New("shutting down")
	}
	if o.TLSMode == TLSSelf {
		if err := o.Certs.Ready(); err != nil {
			return err
		}
	}
	return started(r)
}

var registered atomic.Bool

// registerMetrics adds the webhook's metrics to controller-runtime's
// registry (which already has its webhook latency and request counters).
// Once per process: the collectors read the latest handler and manager.
func registerMetrics(h *webhook.Webhook, o Options) {
	cur.Store(&current{hook: h, certs: o.Certs})
	if !registered.CompareAndSwap(false, true) {
		return
	}
	reg := ctrlmetrics.Registry
	mustRegister(reg, collectors.NewGoCollector())
	mustRegister(reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mustRegister(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tracecam_webhook_build_info", Help: "Always 1; labels say what runs.",
		ConstLabels: prometheus.Labels{"version": o.Version, "sidecar_image": o.Inject.Image},
	}))
	for _, oc := range []struct {
		name string
		get  func(webhook.Metrics) uint64
	}{
		{"injected", func(m webhook.Metrics) uint64 { return m.Injected }},
		{"skipped", func(m webhook.Metrics) uint64 { return m.Skipped }},
		{"ignored", func(m webhook.Metrics) uint64 { return m.Ignored }},
		{"error", func(m webhook.Metrics) uint64 { return m.Errors }},
	} {
		mustRegister(reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "tracecam_webhook_admission_reviews_total",
			Help:        "Admission reviews answered, by outcome: injected, skipped (a pod CREATE left alone), ignored (not a pod CREATE), error (not a usable review, or a pod that could not be handled; always allowed).",
			ConstLabels: prometheus.Labels{"outcome": oc.name},
		}, func() float64 { return float64(oc.get(cur.Load().hook.Metrics())) }))
	}
	certStat := func(f func(certs.Stats) float64) func() float64 {
		return func() float64 {
			if c := cur.Load().certs; c != nil {
				return f(c.Stats())
			}
			return 0
		}
	}
	ts := func(t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return float64(t.Unix())
	}
	for _, m := range []struct {
		name, help string
		counter    bool
		get        func(certs.Stats) float64
	}{
		{"tracecam_webhook_certificate_expiry_timestamp_seconds", "When the served certificate expires (self-managed TLS; 0 otherwise).", false, func(s certs.Stats) float64 { return ts(s.NotAfter) }},
		{"tracecam_webhook_ca_expiry_timestamp_seconds", "When the CA that signs the served certificate expires (self-managed TLS; 0 otherwise).", false, func(s certs.Stats) float64 { return ts(s.CANotAfter) }},
		{"tracecam_webhook_certificate_checks_total", "Checks of the certificate Secret and caBundle.", true, func(s certs.Stats) float64 { return float64(s.Checks) }},
		{"tracecam_webhook_certificate_check_errors_total", "Checks that failed (retried).", true, func(s certs.Stats) float64 { return float64(s.Errors) }},
		{"tracecam_webhook_certificates_issued_total", "Serving certificates this replica issued.", true, func(s certs.Stats) float64 { return float64(s.CertRotations) }},
		{"tracecam_webhook_cas_created_total", "CAs this replica created.", true, func(s certs.Stats) float64 { return float64(s.CARotations) }},
		{"tracecam_webhook_cabundle_updates_total", "caBundle writes to the MutatingWebhookConfiguration by this replica.", true, func(s certs.Stats) float64 { return float64(s.BundleWrites) }},
	} {
		if m.counter {
			mustRegister(reg, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.name, Help: m.help}, certStat(m.get)))
		} else {
			mustRegister(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: m.name, Help: m.help}, certStat(m.get)))
		}
	}
}

type current struct {
	hook  *webhook.Webhook
	certs *certs.Manager
}

var cur atomic.Pointer[current]

func mustRegister(reg prometheus.Registerer, c prometheus.Collector) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			// Only a programming error (a clashing name) gets here.
			slog.Warn("registering a metric", "err", err)
		}
	}
}
