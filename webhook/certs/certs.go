package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Keys of the Secret's data.
const (
	KeyCACert = "ca.crt"        // the CA that signs serving certificates
	KeyCAKey  = "ca.key"        // its private key
	KeyBundle = "ca-bundle.crt" // what caBundle must hold: the current CA, plus the previous one during a rotation
	KeyCert   = "tls.crt"       // the serving certificate
	KeyKey    = "tls.key"       // its private key
)

// Material is the content of the Secret, PEM-encoded.
type Material struct {
	CACert, CAKey, Bundle, Cert, Key []byte
}

// FromData reads Material from a Secret's data (missing keys stay empty).
func FromData(d map[string][]byte) Material {
	return Material{CACert: d[KeyCACert], CAKey: d[KeyCAKey], Bundle: d[KeyBundle], Cert: d[KeyCert], Key: d[KeyKey]}
}

// Data is the Secret's data for m.
func (m Material) Data() map[string][]byte {
	return map[string][]byte{KeyCACert: m.CACert, KeyCAKey: m.CAKey, KeyBundle: m.Bundle, KeyCert: m.Cert, KeyKey: m.Key}
}

// Equal reports whether a and b hold the same bytes.
func (m Material) Equal(o Material) bool {
	return bytes.Equal(m.CACert, o.CACert) && bytes.Equal(m.CAKey, o.CAKey) &&
		bytes.Equal(m.Bundle, o.Bundle) && bytes.Equal(m.Cert, o.Cert) && bytes.Equal(m.Key, o.Key)
}

// Policy says how long certificates live.
type Policy struct {
	CAValidity   time.Duration // default 5 years
	CertValidity time.Duration // default 1 year
}

// DefaultPolicy: a CA for 5 years, serving certificates for 1 year, each
// renewed when less than a third of its lifetime is left.
func DefaultPolicy() Policy {
	return Policy{CAValidity: 5 * 365 * 24 * time.Hour, CertValidity: 365 * 24 * time.Hour}
}

func (p Policy) withDefaults() Policy {
	d := DefaultPolicy()
	if p.CAValidity <= 0 {
		p.CAValidity = d.CAValidity
	}
	if p.CertValidity <= 0 {
		p.CertValidity = d.CertValidity
	}
	if p.CertValidity > p.CAValidity {
		p.CertValidity = p.CAValidity
	}
	return p
}

// Request is what Plan needs besides the stored material.
type Request struct {
	// DNSNames the serving certificate must cover; the first is its
	// common name.
	DNSNames []string
	// IPs the serving certificate must cover too (tests reach the webhook
	// by a loopback address).
	IPs    []string
	Now    time.Time
	Policy Policy
	// CAInstalled: the API server's caBundle already trusts the stored CA.
	// Until it does, a serving certificate that is still valid is not
	// replaced by one from a new CA.
	CAInstalled bool
}

// Changes says what Plan did and why.
type Changes struct {
	NewCA     bool
	NewCert   bool
	NewBundle bool // the bundle changed without a new CA
	// CertPending: the serving certificate is still signed by a previous
	// CA and should be reissued once caBundle trusts the current one.
	CertPending bool
	Reasons     []string
}

// Changed reports whether anything must be stored.
func (c Changes) Changed() bool { return c.NewCA || c.NewCert || c.NewBundle }

// Plan decides, from the stored material, what to store. It is pure apart
// from drawing random keys and serial numbers. Unparseable material is
// treated as missing (and said so in the reasons), never as an error: the
// only errors are failures to generate keys.
func Plan(stored Material, req Request) (Material, Changes, error) {
	pol := req.Policy.withDefaults()
	now := req.Now
	out := stored
	var ch Changes

	ca, caKey, why := parseCA(stored)
	if why == "" && renewDue(ca, now) {
		why = fmt.Sprintf("CA expires %s", ca.NotAfter.UTC().Format(time.RFC3339))
	}
	if why != "" {
		certPEM, keyPEM, newCA, newKey, err := newCA(now, pol.CAValidity)
		if err != nil {
			return stored, Changes{}, fmt.Errorf("creating a CA: %w", err)
		}
		ch.NewCA = true
		ch.Reasons = append(ch.Reasons, "new CA: "+why)
		out.CACert, out.CAKey = certPEM, keyPEM
		// The previous CA stays trusted while replicas may still serve
		// certificates it signed.
		prev := append([]*x509.Certificate{newCA}, parseBundle(stored.Bundle, now)...)
		if ca != nil && now.Before(ca.NotAfter) {
			prev = append(prev, ca)
		}
		out.Bundle = encodeBundle(prev)
		ca, caKey = newCA, newKey
		req.CAInstalled = false
	} else {
		// Keep the bundle to the current CA plus unexpired others.
		b := encodeBundle(append([]*x509.Certificate{ca}, parseBundle(stored.Bundle, now)...))
		if !bytes.Equal(b, stored.Bundle) {
			out.Bundle = b
			ch.NewBundle = true
			ch.Reasons = append(ch.Reasons, "CA bundle tidied (current CA first, expired CAs dropped)")
		}
	}

	cert, certWhy := checkCert(stored, ca, req, now)
	switch {
	case certWhy == "":
	case cert != nil && !req.CAInstalled && !signedBy(cert, ca) && signedByAny(cert, parseBundle(out.Bundle, now)):
		// Still valid and signed by a CA the bundle keeps (the previous
		// one): keep it until caBundle trusts the new CA.
		ch.CertPending = true
	default:
		certPEM, keyPEM, err := issue(ca, caKey, req.DNSNames, req.IPs, now, pol.CertValidity, ca.NotAfter)
		if err != nil {
			return stored, Changes{}, fmt.Errorf("issuing the serving certificate: %w", err)
		}
		out.Cert, out.Key = certPEM, keyPEM
		ch.NewCert = true
		ch.Reasons = append(ch.Reasons, "new serving certificate: "+certWhy)
	}
	return out, ch, nil
}

// Trusts reports whether bundle (PEM, as in caBundle) holds the CA in
// caPEM.
func Trusts(bundle, caPEM []byte) bool {
	ca, err := parseCert(caPEM)
	if err != nil {
		return false
	}
	for _, c := range parseAll(bundle) {
		if bytes.Equal(c.Raw, ca.Raw) {
			return true
		}
	}
	return false
}

// KeyPair is the serving certificate and key as a tls.Certificate, with
// its leaf parsed.
func KeyPair(m Material) (*tls.Certificate, error) {
	kp, err := tls.X509KeyPair(m.Cert, m.Key)
	if err != nil {
		return nil, fmt.Errorf("loading the serving key pair: %w", err)
	}
	if kp.Leaf == nil {
		if kp.Leaf, err = x509.ParseCertificate(kp.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parsing the serving certificate: %w", err)
		}
	}
	return &kp, nil
}

// renewDue: less than a third of the lifetime is left (or it has not
// started yet, which means a clock problem: renew rather than serve a
// certificate clients reject).
func renewDue(c *x509.Certificate, now time.Time) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return now.Before(c.NotBefore) || c.NotAfter.Sub(now) < life/3
}

func parseCA(m Material) (*x509.Certificate, crypto.Signer, string) {
	if len(m.CACert) == 0 || len(m.CAKey) == 0 {
		return nil, nil, "none stored"
	}
	kp, err := tls.X509KeyPair(m.CACert, m.CAKey)
	if err != nil {
		return nil, nil, "stored CA unusable: " + err.Error()
	}
	c, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		return nil, nil, "stored CA unusable: " + err.Error()
	}
	if !c.IsCA {
		return nil, nil, "stored CA is not a CA certificate"
	}
	signer, ok := kp.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, nil, "stored CA key cannot sign"
	}
	return c, signer, ""
}

// checkCert returns the parsed serving certificate (nil when unusable) and
// why it must be replaced ("" when it is fine).
func checkCert(m Material, ca *x509.Certificate, req Request, now time.Time) (*x509.Certificate, string) {
	if len(m.Cert) == 0 || len(m.Key) == 0 {
		return nil, "none stored"
	}
	kp, err := KeyPair(m)
	if err != nil {
		return nil, err.Error()
	}
	c := kp.Leaf
	if !now.Before(c.NotAfter) || now.Before(c.NotBefore) {
		return nil, "expired or not yet valid"
	}
	for _, n := range req.DNSNames {
		if !slices.Contains(c.DNSNames, n) {
			return nil, "does not cover " + n
		}
	}
	for _, ip := range req.IPs {
		want := net.ParseIP(ip)
		if !slices.ContainsFunc(c.IPAddresses, func(a net.IP) bool { return a.Equal(want) }) {
			return nil, "does not cover " + ip
		}
	}
	if !signedBy(c, ca) {
		return c, "signed by a previous CA"
	}
	if renewDue(c, now) {
		return c, fmt.Sprintf("expires %s", c.NotAfter.UTC().Format(time.RFC3339))
	}
	return c, ""
}

func signedByAny(c *x509.Certificate, cas []*x509.Certificate) bool {
	return slices.ContainsFunc(cas, func(ca *x509.Certificate) bool { return signedBy(c, ca) })
}

func signedBy(c, ca *x509.Certificate) bool {
	return ca != nil && c.CheckSignatureFrom(ca) == nil
}

var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

func newCA(now time.Time, validity time.Duration) (certPEM, keyPEM []byte, cert *x509.Certificate, key crypto.Signer, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, serialLimit)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("tracecam-webhook-ca@%d", now.Unix()), Organization: []string{"tracecam"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew between nodes
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	keyPEM, err = encodeKey(k)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return pemCert(der), keyPEM, cert, k, nil
}

func issue(ca *x509.Certificate, caKey crypto.Signer, dnsNames, ips []string, now time.Time, validity time.Duration, caNotAfter time.Time) (certPEM, keyPEM []byte, err error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return nil, nil, errors.New("no names to certify")
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, serialLimit)
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(validity)
	if notAfter.After(caNotAfter) {
		notAfter = caNotAfter
	}
	cn := ""
	if len(dnsNames) > 0 {
		cn = dnsNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"tracecam"}},
		DNSNames:     dnsNames,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, ip := range ips {
		parsed := net.ParseIP(ip)
		if parsed == nil {
			return nil, nil, fmt.Errorf("bad IP address %q", ip)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, parsed)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKey(k)
	if err != nil {
		return nil, nil, err
	}
	return pemCert(der), keyPEM, nil
}

func encodeKey(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func parseCert(p []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

func parseAll(p []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, p = pem.Decode(p)
		if b == nil {
			return out
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

// parseBundle returns the unexpired CA certificates in a bundle.
func parseBundle(p []byte, now time.Time) []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range parseAll(p) {
		if c.IsCA && now.Before(c.NotAfter) {
			out = append(out, c)
		}
	}
	return out
}

// encodeBundle writes certificates once each, in order (current CA first).
func encodeBundle(cs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	var seen [][]byte
	for _, c := range cs {
		if c == nil || slices.ContainsFunc(seen, func(r []byte) bool { return bytes.Equal(r, c.Raw) }) {
			continue
		}
		seen = append(seen, c.Raw)
		buf.Write(pemCert(c.Raw))
	}
	return buf.Bytes()
}
