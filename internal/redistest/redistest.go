// Package redistest starts real redis-server processes for tests: a
// standalone server (optionally with a password, TLS or a memory limit), a
// Redis Cluster of several masters, or a master with replicas watched by
// Sentinel ([StartSentinel]). Every server listens on a free
// loopback port (never 6379), keeps its files in the test's temp dir,
// persists nothing (--save "" --appendonly no) and is killed by t.Cleanup,
// also when the test binary dies (SIGKILL on parent death).
//
// Tests are skipped, with a message saying what to install, when
// redis-server (or, for clusters, redis-cli) is not on PATH.
package redistest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options configure a standalone server.
type Options struct {
	// Password, when set, is required (requirepass).
	Password string
	// TLS serves TLS only (plain port 0) with a certificate for 127.0.0.1
	// signed by a CA generated for this server; see [Server.CAFile].
	TLS bool
	// MaxMemory, e.g. "2mb", sets maxmemory with the noeviction policy, so
	// writes fail with OOM once it is reached.
	MaxMemory string

	// extra arguments (cluster mode, replicas).
	extra []string
	// sentinelConf, when set, runs the process as a Sentinel with this
	// config file (which Sentinel rewrites).
	sentinelConf string
}

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 15 * time.Second

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	opts Options
	dir  string
	port int

	caFile, certFile, keyFile string
	tlsConf                   *tls.Config

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been reaped
	log  *os.File
}

// Start starts a standalone redis-server and waits until it answers PING.
// It skips the test when redis-server is not installed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	requireBinary(t, "redis-server")
	s := &Server{t: t, opts: opts, dir: t.TempDir()}
	if opts.TLS {
		if err := s.makeCerts(); err != nil {
			t.Fatalf("redistest: generating TLS certificates: %v", err)
		}
	}
	t.Cleanup(s.Kill)
	// A free port can be taken by someone else before redis binds it:
	// try a few.
	var err error
	for range 5 {
		s.port, err = freePort(false)
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if err = s.start(); err == nil {
			return s
		}
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	t.Fatalf("redistest: %v", err)
	return nil
}

func requireBinary(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("redistest: %s not found on PATH; install it with `apt-get install -y redis-server redis-tools` to run this test", name)
	}
}

// freePort returns a loopback port nobody listens on. With bus, the port
// is below 55536 and port+10000 (the cluster bus port) is free too.
func freePort(bus bool) (int, error) {
	if !bus {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	for range 200 {
		p := 20000 + mrand.IntN(10000)
		l1, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		l1.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p, nil
	}
	return 0, errors.New("no free port pair (port, port+10000) found")
}

func (s *Server) args() []string {
	if s.opts.sentinelConf != "" {
		// The config file must come first. A sentinel has no dataset:
		// it persists nothing but its (rewritten) config file.
		return []string{s.opts.sentinelConf, "--sentinel",
			"--bind", "127.0.0.1",
			"--port", strconv.Itoa(s.port),
			"--dir", s.dir,
			"--daemonize", "no",
			"--logfile", "",
		}
	}
	a := []string{
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--logfile", "",
		"--databases", "1",
	}
	if s.opts.TLS {
		a = append(a, "--port", "0", "--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", s.certFile, "--tls-key-file", s.keyFile,
			"--tls-ca-cert-file", s.caFile, "--tls-auth-clients", "no")
	} else {
		a = append(a, "--port", strconv.Itoa(s.port))
	}
	if s.opts.Password != "" {
		a = append(a, "--requirepass", s.opts.Password)
	}
	if s.opts.MaxMemory != "" {
		a = append(a, "--maxmemory", s.opts.MaxMemory, "--maxmemory-policy", "noeviction")
	}
	return append(a, s.opts.extra...)
}

// start starts the process on s.port and waits for PING.
func (s *Server) start() error {
	log, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("redis-server", s.args()...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("starting redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.log = cmd, done, log
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server on port %d exited at start (%v):\n%s", s.port, cmd.ProcessState, s.logTail())
		default:
		}
		if _, err := s.Do("PING"); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redis-server on port %d does not answer PING after %v: %v\n%s", s.port, startTimeout, err, s.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// CAFile is the PEM file of the CA that signed the server's certificate
// ("" without TLS).
func (s *Server) CAFile() string { return s.caFile }

// Password is the password the server requires ("" for none).
func (s *Server) Password() string { return s.opts.Password }

// PID is the server's process ID (0 when not running).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.exited() {
		return 0
	}
	return s.cmd.Process.Pid
}

func (s *Server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// signal sends sig and, with wait, waits up to timeout for the process to
// exit, then SIGKILLs it.
func (s *Server) signal(sig syscall.Signal, timeout time.Duration) {
	s.mu.Lock()
	cmd, done, log := s.cmd, s.done, s.log
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	if sig != syscall.SIGKILL {
		cmd.Process.Signal(syscall.SIGCONT) // a paused server must see the TERM
	}
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
	}
	log.Close()
}

// Kill SIGKILLs the server (no shutdown at all: clients see their
// connections reset) and waits until it is gone. Safe to call twice.
func (s *Server) Kill() { s.signal(syscall.SIGKILL, 5*time.Second) }

// Stop shuts the server down gracefully (SIGTERM) and waits until it is
// gone.
func (s *Server) Stop() { s.signal(syscall.SIGTERM, 5*time.Second) }

// Restart starts the server again on the same port with the same options
// (stopping it first if it runs) and waits until it answers PING. The data
// is gone: nothing is persisted.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	// The old socket may linger a moment; redis-server sets SO_REUSEADDR,
	// but retry on "in use" anyway.
	for range 20 {
		if err = s.start(); err == nil || !strings.Contains(err.Error(), "in use") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

// Pause stops the process (SIGSTOP): connections stay open and the kernel
// still accepts new ones, but nothing answers, like a hung or overloaded
// server. Resume continues it.
func (s *Server) Pause() { s.sendSignal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() { s.sendSignal(syscall.SIGCONT) }

func (s *Server) sendSignal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.cmd.Process.Signal(sig)
	}
}

// Do runs one command on a new connection (authenticating first when the
// server has a password) and returns the reply as text: simple strings,
// bulk strings and integers as is, arrays one element per line, nil as "".
// A Redis error reply is returned as an error.
func (s *Server) Do(args ...string) (string, error) {
	conn, err := s.dial()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	if s.opts.Password != "" {
		if err := writeCommand(conn, "AUTH", s.opts.Password); err != nil {
			return "", err
		}
		if _, err := readReply(r); err != nil {
			return "", fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := writeCommand(conn, args...); err != nil {
		return "", err
	}
	return readReply(r)
}

func (s *Server) dial() (net.Conn, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	if s.opts.TLS {
		return tls.DialWithDialer(d, "tcp", s.Addr(), s.tlsConf)
	}
	return d.Dial("tcp", s.Addr())
}

func writeCommand(w io.Writer, args ...string) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// readReply reads one RESP2 reply.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad bulk length %q", line)
		}
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad array length %q", line)
		}
		parts := make([]string, 0, max(n, 0))
		for range n {
			p, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// makeCerts writes ca.pem, server.pem and server-key.pem into the server's
// dir: a throwaway CA and a certificate for 127.0.0.1 and localhost.
func (s *Server) makeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	s.caFile = filepath.Join(s.dir, "ca.pem")
	s.certFile = filepath.Join(s.dir, "server.pem")
	s.keyFile = filepath.Join(s.dir, "server-key.pem")
	files := []struct {
		path, typ string
		der       []byte
	}{
		{s.caFile, "CERTIFICATE", caDER},
		{s.certFile, "CERTIFICATE", der},
		{s.keyFile, "EC PRIVATE KEY", keyDER},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	s.tlsConf = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return nil
}
