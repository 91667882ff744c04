package certs

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Manager keeps the webhook's certificate: it settles the shared Secret
// with Plan, writes the CA bundle into the MutatingWebhookConfiguration and
// serves the current key pair through GetCertificate.
type Manager struct {
	Client            kubernetes.Interface
	Namespace         string // of the Secret
	SecretName        string
	WebhookConfigName string
	DNSNames          []string
	IPs               []string
	Policy            Policy
	// CertDir, when set, also receives tls.crt and tls.key (written
	// atomically), for tools that read certificates from files.
	CertDir string
	Log     *slog.Logger
	// Now is the clock (tests move it); nil: time.Now.
	Now func() time.Time

	cert      atomic.Pointer[tls.Certificate]
	mu        sync.Mutex // serialises Ensure
	stats     Stats
	statsMu   sync.Mutex
	lastError atomic.Pointer[string]
}

// Stats counts what the Manager did.
type Stats struct {
	Checks        uint64    // Ensure calls
	Errors        uint64    // Ensure calls that failed
	CARotations   uint64    // CAs this replica created
	CertRotations uint64    // serving certificates this replica issued
	BundleWrites  uint64    // caBundle updates of the webhook configuration
	NotAfter      time.Time // of the certificate being served
	CANotAfter    time.Time
}

// Stats returns a copy of the counters.
func (m *Manager) Stats() Stats {
	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	return m.stats
}

// ErrNoWebhookConfig: the MutatingWebhookConfiguration does not exist (yet):
// the certificate is served, but the API server cannot trust it.
var ErrNoWebhookConfig = errors.New("webhook configuration not found")

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.New(slog.DiscardHandler)
}

// GetCertificate is for tls.Config: the current serving key pair.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := m.cert.Load()
	if c == nil {
		return nil, errors.New("no serving certificate yet")
	}
	return c, nil
}

// Ready reports whether a certificate is being served.
func (m *Manager) Ready() error {
	if m.cert.Load() == nil {
		if e := m.lastError.Load(); e != nil {
			return fmt.Errorf("no serving certificate yet: %s", *e)
		}
		return errors.New("no serving certificate yet")
	}
	return nil
}

// Ensure brings the Secret, the caBundle and the served certificate up to
// date. Safe to call from several replicas at once. When the webhook
// configuration is missing it still serves the certificate and returns an
// error wrapping ErrNoWebhookConfig.
func (m *Manager) Ensure(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.ensure(ctx)
	m.statsMu.Lock()
	m.stats.Checks++
	if err != nil {
		m.stats.Errors++
	}
	m.statsMu.Unlock()
	if err != nil {
		s := err.Error()
		m.lastError.Store(&s)
	} else {
		m.lastError.Store(nil)
	}
	return err
}

func (m *Manager) ensure(ctx context.Context) error {
	installed, err := m.installedBundle(ctx)
	if err != nil && !errors.Is(err, ErrNoWebhookConfig) {
		return err
	}
	noConfig := err
	mat, ch, err := m.settleSecret(ctx, func(stored Material) bool { return Trusts(installed, stored.CACert) })
	if err != nil {
		return err
	}
	if err := m.serve(mat); err != nil {
		return err
	}
	if noConfig != nil {
		return noConfig
	}
	if err := m.writeBundle(ctx, mat.Bundle); err != nil {
		return err
	}
	if ch.CertPending {
		// caBundle now trusts the current CA: the certificate it signs can
		// be issued.
		mat, _, err = m.settleSecret(ctx, func(Material) bool { return true })
		if err != nil {
			return err
		}
		return m.serve(mat)
	}
	return nil
}

// settleSecret reads the Secret, plans, and stores the plan; on a race with
// another replica it re-reads and plans again.
func (m *Manager) settleSecret(ctx context.Context, caInstalled func(Material) bool) (Material, Changes, error) {
	secrets := m.Client.CoreV1().Secrets(m.Namespace)
	for attempt := 0; ; attempt++ {
		if attempt == 5 {
			return Material{}, Changes{}, fmt.Errorf("secret %s/%s: gave up after %d conflicting updates", m.Namespace, m.SecretName, attempt)
		}
		sec, err := secrets.Get(ctx, m.SecretName, metav1.GetOptions{})
		notFound := apierrors.IsNotFound(err)
		if err != nil && !notFound {
			return Material{}, Changes{}, fmt.Errorf("reading secret %s/%s: %w", m.Namespace, m.SecretName, err)
		}
		var stored Material
		if !notFound {
			stored = FromData(sec.Data)
		}
		planned, ch, err := Plan(stored, Request{DNSNames: m.DNSNames, IPs: m.IPs, Now: m.now(), Policy: m.Policy, CAInstalled: caInstalled(stored)})
		if err != nil {
			return Material{}, Changes{}, err
		}
		if !ch.Changed() {
			return stored, ch, nil
		}
		if notFound {
			sec = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: m.SecretName, Namespace: m.Namespace,
					Labels: map[string]string{"app.kubernetes.io/part-of": "tracecam", "app.kubernetes.io/component": "webhook"}},
				Type: corev1.SecretTypeOpaque,
				Data: planned.Data(),
			}
			_, err = secrets.Create(ctx, sec, metav1.CreateOptions{})
		} else {
			sec = sec.DeepCopy()
			sec.Data = planned.Data()
			_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{})
		}
		if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
			m.log().Debug("secret changed by another replica; re-reading", "secret", m.SecretName)
			continue
		}
		if err != nil {
			return Material{}, Changes{}, fmt.Errorf("storing secret %s/%s: %w", m.Namespace, m.SecretName, err)
		}
		m.statsMu.Lock()
		if ch.NewCA {
			m.stats.CARotations++
		}
		if ch.NewCert {
			m.stats.CertRotations++
		}
		m.statsMu.Unlock()
		m.log().Info("certificate secret updated", "secret", m.Namespace+"/"+m.SecretName, "reasons", ch.Reasons)
		return planned, ch, nil
	}
}

// serve loads the key pair into GetCertificate (and CertDir).
func (m *Manager) serve(mat Material) error {
	kp, err := KeyPair(mat)
	if err != nil {
		return err
	}
	if cur := m.cert.Load(); cur != nil && bytes.Equal(cur.Certificate[0], kp.Certificate[0]) {
		return nil
	}
	if m.CertDir != "" {
		if err := writeFileAtomic(filepath.Join(m.CertDir, KeyCert), mat.Cert, 0o644); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(m.CertDir, KeyKey), mat.Key, 0o600); err != nil {
			return err
		}
	}
	m.cert.Store(kp)
	var caNotAfter time.Time
	if ca, err := parseCert(mat.CACert); err == nil {
		caNotAfter = ca.NotAfter
	}
	m.statsMu.Lock()
	m.stats.NotAfter, m.stats.CANotAfter = kp.Leaf.NotAfter, caNotAfter
	m.statsMu.Unlock()
	m.log().Info("serving certificate loaded", "not_after", kp.Leaf.NotAfter.UTC().Format(time.RFC3339), "dns_names", kp.Leaf.DNSNames)
	return nil
}

// installedBundle returns the caBundle the API server uses: the bundle
// every webhook of the configuration shares, or the intersection when they
// differ (nil when one has none).
func (m *Manager) installedBundle(ctx context.Context) ([]byte, error) {
	cfg, err := m.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, m.WebhookConfigName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: mutatingwebhookconfiguration %s", ErrNoWebhookConfig, m.WebhookConfigName)
	}
	if err != nil {
		return nil, fmt.Errorf("reading mutatingwebhookconfiguration %s: %w", m.WebhookConfigName, err)
	}
	if len(cfg.Webhooks) == 0 {
		return nil, nil
	}
	first := cfg.Webhooks[0].ClientConfig.CABundle
	for _, w := range cfg.Webhooks[1:] {
		if !bytes.Equal(w.ClientConfig.CABundle, first) {
			return nil, nil // not all trust the same: treat as not installed
		}
	}
	return first, nil
}

// writeBundle sets caBundle on every webhook of the configuration.
func (m *Manager) writeBundle(ctx context.Context, bundle []byte) error {
	api := m.Client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	for attempt := 0; attempt < 5; attempt++ {
		cfg, err := api.Get(ctx, m.WebhookConfigName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("%w: mutatingwebhookconfiguration %s", ErrNoWebhookConfig, m.WebhookConfigName)
		}
		if err != nil {
			return fmt.Errorf("reading mutatingwebhookconfiguration %s: %w", m.WebhookConfigName, err)
		}
		changed := false
		for i := range cfg.Webhooks {
			if !bytes.Equal(cfg.Webhooks[i].ClientConfig.CABundle, bundle) {
				cfg.Webhooks[i].ClientConfig.CABundle = bundle
				changed = true
			}
		}
		if !changed {
			return nil
		}
		_, err = api.Update(ctx, cfg, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("updating caBundle of mutatingwebhookconfiguration %s: %w", m.WebhookConfigName, err)
		}
		m.statsMu.Lock()
		m.stats.BundleWrites++
		m.statsMu.Unlock()
		m.log().Info("caBundle updated", "mutatingwebhookconfiguration", m.WebhookConfigName, "webhooks", len(cfg.Webhooks))
		return nil
	}
	return fmt.Errorf("updating caBundle of mutatingwebhookconfiguration %s: gave up after 5 conflicts", m.WebhookConfigName)
}

// Run calls Ensure every interval until ctx ends, retrying failures sooner
// (from 1 s, doubling up to interval), and logging each failure once per
// distinct message.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Minute
	}
	backoff := time.Second
	var lastErr string
	for {
		wait := interval
		if err := m.Ensure(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if err.Error() != lastErr {
				m.log().Warn("certificate check failed; retrying", "err", err, "in", backoff)
				lastErr = err.Error()
			}
			wait = backoff
			backoff = min(backoff*2, interval)
		} else {
			if lastErr != "" {
				m.log().Info("certificate check recovered")
			}
			lastErr, backoff = "", time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
