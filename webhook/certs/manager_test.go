package certs

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

// The Manager's conversation with a real API server is covered by the
// end-to-end test against kube-apiserver (e2e/webhook_test.go); these
// tests pin its decisions with client-go's fake clientset.

func webhookConfig() *admissionregistrationv1.MutatingWebhookConfiguration {
	url := "https://127.0.0.1:8443/mutate-v1-pod"
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "tracecam"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			{Name: "inject.tracecam.io", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url}},
			{Name: "other.tracecam.io", ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url}},
		},
	}
}

func manager(c kubernetes.Interface, now *time.Time) *Manager {
	return &Manager{Client: c, Namespace: "tracecam-system", SecretName: "tracecam-webhook-tls",
		WebhookConfigName: "tracecam", DNSNames: names, IPs: []string{"127.0.0.1"}, Now: func() time.Time { return *now }}
}

func installedBundle(t *testing.T, c kubernetes.Interface) [][]byte {
	t.Helper()
	cfg, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(context.Background(), "tracecam", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, w := range cfg.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out
}

func stored(t *testing.T, c kubernetes.Interface) Material {
	t.Helper()
	s, err := c.CoreV1().Secrets("tracecam-system").Get(context.Background(), "tracecam-webhook-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return FromData(s.Data)
}

func served(t *testing.T, m *Manager) *x509.Certificate {
	t.Helper()
	c, err := m.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

func TestManagerReplicasShareOneCertificate(t *testing.T) {
	c := fake.NewClientset(webhookConfig())
	now := t0
	dir := t.TempDir()
	ms := []*Manager{manager(c, &now), manager(c, &now), manager(c, &now)}
	ms[0].CertDir = dir
	for _, m := range ms {
		if m.Ready() == nil {
			t.Fatal("ready before the first Ensure")
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	for i, m := range ms {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = m.Ensure(context.Background()) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	st := stored(t, c)
	for i, m := range ms {
		if err := m.Ready(); err != nil {
			t.Errorf("replica %d not ready: %v", i, err)
		}
		if string(served(t, m).Raw) != string(leaf(t, st).Raw) {
			t.Errorf("replica %d serves a certificate other than the stored one", i)
		}
	}
	for i, b := range installedBundle(t, c) {
		if string(b) != string(st.Bundle) {
			t.Errorf("webhook %d caBundle differs from the stored bundle", i)
		}
	}
	verifies(t, st, now)
	if got, _ := os.ReadFile(filepath.Join(dir, KeyCert)); string(got) != string(st.Cert) {
		t.Error("CertDir does not hold the served certificate")
	}
	// A second round changes nothing.
	before := ms[1].Stats()
	if err := ms[1].Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := ms[1].Stats(); after.CARotations != before.CARotations || after.CertRotations != before.CertRotations || after.BundleWrites != before.BundleWrites {
		t.Errorf("steady state rewrote something: %+v -> %+v", before, after)
	}
}

func leaf(t *testing.T, m Material) *x509.Certificate {
	t.Helper()
	kp, err := KeyPair(m)
	if err != nil {
		t.Fatal(err)
	}
	return kp.Leaf
}

func TestManagerServesBeforeTheWebhookConfigurationExists(t *testing.T) {
	c := fake.NewClientset()
	now := t0
	m := manager(c, &now)
	err := m.Ensure(context.Background())
	if !errors.Is(err, ErrNoWebhookConfig) {
		t.Fatalf("Ensure = %v, want ErrNoWebhookConfig", err)
	}
	if err := m.Ready(); err != nil {
		t.Fatalf("the certificate should be served anyway: %v", err)
	}
	first := served(t, m)

	if _, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(context.Background(), webhookConfig(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	if string(served(t, m).Raw) != string(first.Raw) {
		t.Error("the certificate changed although nothing required it")
	}
	for i, b := range installedBundle(t, c) {
		if !Trusts(b, stored(t, c).CACert) {
			t.Errorf("webhook %d caBundle does not trust the CA", i)
		}
	}
}

func TestManagerRotatesTheCA(t *testing.T) {
	c := fake.NewClientset(webhookConfig())
	now := t0
	m := manager(c, &now)
	if err := m.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	oldCA := stored(t, c).CACert

	now = t0.Add(3*year + 130*24*time.Hour)
	if err := m.Ensure(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := stored(t, c)
	if string(st.CACert) == string(oldCA) {
		t.Fatal("CA not rotated")
	}
	for i, b := range installedBundle(t, c) {
		if !Trusts(b, oldCA) || !Trusts(b, st.CACert) {
			t.Errorf("webhook %d caBundle must trust the old and the new CA during the rotation", i)
		}
	}
	ca, _ := parseCert(st.CACert)
	if err := served(t, m).CheckSignatureFrom(ca); err != nil {
		t.Errorf("the served certificate is not signed by the new CA after caBundle was updated: %v", err)
	}
	if s := m.Stats(); s.CARotations != 2 || s.CertRotations != 2 || s.BundleWrites != 2 {
		t.Errorf("stats = %+v, want 2 CAs, 2 certificates, 2 bundle writes", s)
	}
}
