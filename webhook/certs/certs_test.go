package certs

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

var names = []string{"tracecam-webhook.tracecam-system.svc", "tracecam-webhook.tracecam-system.svc.cluster.local"}

const year = 365 * 24 * time.Hour

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func plan(t *testing.T, m Material, now time.Time, installed bool) (Material, Changes) {
	t.Helper()
	out, ch, err := Plan(m, Request{DNSNames: names, IPs: []string{"127.0.0.1"}, Now: now, CAInstalled: installed})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return out, ch
}

// verifies checks that the serving certificate is trusted by the bundle for
// every name at time now, as the API server would check it.
func verifies(t *testing.T, m Material, now time.Time) {
	t.Helper()
	kp, err := KeyPair(m)
	if err != nil {
		t.Fatalf("key pair: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(m.Bundle) {
		t.Fatal("bundle holds no certificate")
	}
	for _, n := range append(names, "127.0.0.1") {
		if _, err := kp.Leaf.Verify(x509.VerifyOptions{DNSName: n, Roots: pool, CurrentTime: now}); err != nil {
			t.Errorf("certificate not trusted for %s at %s: %v", n, now, err)
		}
	}
}

func bundleLen(m Material) int { return len(parseAll(m.Bundle)) }

func TestPlanFromNothing(t *testing.T) {
	m, ch := plan(t, Material{}, t0, false)
	if !ch.NewCA || !ch.NewCert || ch.CertPending {
		t.Fatalf("changes = %+v, want a new CA and a new certificate", ch)
	}
	if bundleLen(m) != 1 || !Trusts(m.Bundle, m.CACert) {
		t.Fatalf("bundle should hold exactly the new CA")
	}
	verifies(t, m, t0)
	kp, _ := KeyPair(m)
	if got := kp.Leaf.NotAfter.Sub(t0); got != year {
		t.Errorf("serving certificate lives %s, want 1 year", got)
	}

	// Nothing to do the next minute, nor 7 months later.
	for _, now := range []time.Time{t0.Add(time.Minute), t0.Add(7 * 30 * 24 * time.Hour)} {
		again, ch := plan(t, m, now, true)
		if ch.Changed() || !again.Equal(m) {
			t.Errorf("at %s: changes = %+v, want none", now, ch)
		}
	}
}

func TestPlanRenewsServingCertificate(t *testing.T) {
	m, _ := plan(t, Material{}, t0, false)
	now := t0.Add(9 * 30 * 24 * time.Hour) // less than a third of a year left
	r, ch := plan(t, m, now, true)
	if ch.NewCA || !ch.NewCert {
		t.Fatalf("changes = %+v, want only a new certificate", ch)
	}
	if string(r.CACert) != string(m.CACert) || string(r.Bundle) != string(m.Bundle) {
		t.Error("the CA and bundle must not change when only the certificate is renewed")
	}
	verifies(t, r, now)
}

func TestPlanRotatesCAInTwoSteps(t *testing.T) {
	m, _ := plan(t, Material{}, t0, false)
	// Keep the serving certificate fresh on the way, as a running webhook would.
	for now := t0; now.Before(t0.Add(3*year + 100*24*time.Hour)); now = now.Add(30 * 24 * time.Hour) {
		m, _ = plan(t, m, now, true)
	}
	now := t0.Add(3*year + 130*24*time.Hour) // CA (5 years) has < 1/3 left
	step1, ch := plan(t, m, now, true)
	if !ch.NewCA || ch.NewCert || !ch.CertPending {
		t.Fatalf("step 1 changes = %+v, want a new CA, the certificate kept pending", ch)
	}
	if bundleLen(step1) != 2 || !Trusts(step1.Bundle, m.CACert) || !Trusts(step1.Bundle, step1.CACert) {
		t.Fatal("during the rotation the bundle must trust both the old and the new CA")
	}
	if string(step1.Cert) != string(m.Cert) {
		t.Fatal("the serving certificate must be kept until caBundle trusts the new CA")
	}
	verifies(t, step1, now) // the old certificate is still trusted by the bundle

	// caBundle not updated yet: still pending, nothing changes.
	same, ch := plan(t, step1, now, false)
	if ch.Changed() || !ch.CertPending || !same.Equal(step1) {
		t.Fatalf("before caBundle is installed: changes = %+v, want pending only", ch)
	}

	step2, ch := plan(t, step1, now, true)
	if ch.NewCA || !ch.NewCert || ch.CertPending {
		t.Fatalf("step 2 changes = %+v, want a new certificate", ch)
	}
	kp, _ := KeyPair(step2)
	ca, _ := parseCert(step2.CACert)
	if kp.Leaf.CheckSignatureFrom(ca) != nil {
		t.Fatal("step 2 certificate is not signed by the new CA")
	}
	verifies(t, step2, now)

	// Once the old CA expires it leaves the bundle.
	later := t0.Add(5*year + 24*time.Hour)
	tidy, ch := plan(t, step2, later, true)
	if !ch.NewBundle || bundleLen(tidy) != 1 || !Trusts(tidy.Bundle, step2.CACert) {
		t.Fatalf("after the old CA expired: changes = %+v, bundle has %d CAs; want just the current one", ch, bundleLen(tidy))
	}
}

func TestPlanRepairsBadMaterial(t *testing.T) {
	good, _ := plan(t, Material{}, t0, false)
	other, _ := plan(t, Material{}, t0, false)
	cases := []struct {
		name       string
		m          Material
		wantCA     bool
		wantCert   bool
		wantReason string
	}{
		{"garbage everywhere", Material{CACert: []byte("x"), CAKey: []byte("y"), Cert: []byte("z"), Key: []byte("w")}, true, true, "stored CA unusable"},
		{"key of another certificate", Material{CACert: good.CACert, CAKey: good.CAKey, Bundle: good.Bundle, Cert: good.Cert, Key: other.Key}, false, true, "serving certificate"},
		// The serving certificate is still valid under the old CA, which
		// stays in the bundle: it is kept until caBundle trusts the new CA.
		{"CA key of another CA", Material{CACert: good.CACert, CAKey: other.CAKey, Bundle: good.Bundle, Cert: good.Cert, Key: good.Key}, true, false, "stored CA unusable"},
		{"no serving certificate", Material{CACert: good.CACert, CAKey: good.CAKey, Bundle: good.Bundle}, false, true, "none stored"},
		{"serving cert is the CA", Material{CACert: good.CACert, CAKey: good.CAKey, Bundle: good.Bundle, Cert: good.CACert, Key: good.CAKey}, false, true, "does not cover"},
		{"cert from a foreign CA", Material{CACert: good.CACert, CAKey: good.CAKey, Bundle: good.Bundle, Cert: other.Cert, Key: other.Key}, false, true, "signed by a previous CA"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ch := plan(t, c.m, t0, c.name != "cert from a foreign CA") // a foreign certificate is replaced even before caBundle is installed
			if ch.NewCA != c.wantCA || ch.NewCert != c.wantCert || ch.CertPending == c.wantCert {
				t.Fatalf("changes = %+v, want NewCA=%v NewCert=%v", ch, c.wantCA, c.wantCert)
			}
			if !strings.Contains(strings.Join(ch.Reasons, "; "), c.wantReason) {
				t.Errorf("reasons %q do not mention %q", ch.Reasons, c.wantReason)
			}
			verifies(t, r, t0)
		})
	}
}

func TestPlanCoversRenamedService(t *testing.T) {
	m, _ := plan(t, Material{}, t0, false)
	r, ch, err := Plan(m, Request{DNSNames: []string{"webhook.other.svc"}, Now: t0, CAInstalled: true})
	if err != nil || !ch.NewCert || ch.NewCA {
		t.Fatalf("changes = %+v, err %v; want a new certificate only", ch, err)
	}
	kp, _ := KeyPair(r)
	if kp.Leaf.DNSNames[0] != "webhook.other.svc" {
		t.Errorf("names = %v", kp.Leaf.DNSNames)
	}
}

func TestPlanNeedsNames(t *testing.T) {
	if _, _, err := Plan(Material{}, Request{Now: t0}); err == nil {
		t.Fatal("Plan without names should fail")
	}
}
