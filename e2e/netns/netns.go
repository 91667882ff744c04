// Package netns builds small networks of Linux network namespaces for
// end-to-end tests — "pods" with their own interfaces and addresses, joined
// by veth pairs to a bridge in a "node" namespace — with the iproute2 `ip`
// command, and takes every piece down again when the test ends.
//
// Nothing is created in the caller's own network namespace: both ends of
// every veth pair are created directly in their namespaces. A namespace may
// carry its own resolv.conf (/etc/netns/NAME/resolv.conf), which `ip netns
// exec` bind-mounts over /etc/resolv.conf for the program it runs, as a
// pod's /etc/resolv.conf is its own.
//
// It needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and `ip` (Debian's iproute2).
package netns

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Require says why namespaces cannot be made here, or nil when they can.
func Require() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("network namespaces need the ip command (Debian package iproute2)")
	}
	return nil
}

// NS is a network namespace made by New.
type NS struct {
	// Name is the namespace's name under /run/netns.
	Name string
	// madeEtcNetns is set when this namespace created /etc/netns.
	madeEtcNetns bool
}

// New creates a namespace named prefix-<random>, with its loopback up, and
// deletes it (with its /etc/netns/NAME directory) when the test ends; the
// test's processes inside it must be gone by then (register their cleanup
// after this). The test fails if anything is left behind.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	if err := Require(); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	n := &NS{Name: prefix + "-" + hex.EncodeToString(b)}
	if err := run("ip", "netns", "add", n.Name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.delete(t); err != nil {
			t.Error(err)
		}
	})
	n.IP(t, "link", "set", "lo", "up")
	return n
}

// IP runs `ip -n NAME args...` and fails the test on error.
func (n *NS) IP(t testing.TB, args ...string) {
	t.Helper()
	if err := run("ip", append([]string{"-n", n.Name}, args...)...); err != nil {
		t.Fatal(err)
	}
}

// Exec returns the command line that runs name args... inside the
// namespace (and with its resolv.conf, if it has one): `ip netns exec`
// enters it and execs the program, so the process started is the program.
func (n *NS) Exec(name string, args ...string) []string {
	return append([]string{"ip", "netns", "exec", n.Name, name}, args...)
}

// SetResolvConf gives the programs run with Exec their own
// /etc/resolv.conf.
func (n *NS) SetResolvConf(t testing.TB, content string) {
	t.Helper()
	if _, err := os.Stat("/etc/netns"); os.IsNotExist(err) {
		n.madeEtcNetns = true
	}
	dir := filepath.Join("/etc/netns", n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Bridge creates a bridge named name in the namespace, with the given
// addresses (CIDR), up.
func (n *NS) Bridge(t testing.TB, name string, addrs ...string) {
	t.Helper()
	n.IP(t, "link", "add", name, "type", "bridge")
	for _, a := range addrs {
		n.IP(t, "addr", "add", a, "dev", name)
	}
	n.IP(t, "link", "set", name, "up")
}

// Attach plugs n into bridge (in namespace node) with a veth pair: ifName
// in n, with address addr (CIDR), and port in node, enslaved to bridge.
func (n *NS) Attach(t testing.TB, ifName, addr string, node *NS, bridge, port string) {
	t.Helper()
	n.IP(t, "link", "add", ifName, "type", "veth", "peer", "name", port, "netns", node.Name)
	n.IP(t, "addr", "add", addr, "dev", ifName)
	n.IP(t, "link", "set", ifName, "up")
	node.IP(t, "link", "set", port, "master", bridge)
	node.IP(t, "link", "set", port, "up")
}

// delete kills whatever still runs inside the namespace (a test that
// failed midway), deletes it and checks that it is gone.
func (n *NS) delete(t testing.TB) error {
	out, _ := exec.Command("ip", "netns", "pids", n.Name).Output()
	var killed []string
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == os.Getpid() || pid <= 1 {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, f)
		}
	}
	if len(killed) > 0 {
		t.Logf("netns: killed processes left in %s: %s", n.Name, strings.Join(killed, " "))
		time.Sleep(50 * time.Millisecond)
	}
	var errs []error
	if err := run("ip", "netns", "del", n.Name); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(filepath.Join("/etc/netns", n.Name)); err != nil {
		errs = append(errs, err)
	}
	if n.madeEtcNetns {
		os.Remove("/etc/netns") // only if empty: another user may have added to it
	}
	out, _ = exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == n.Name {
			errs = append(errs, fmt.Errorf("netns %s still listed after deletion", n.Name))
		}
	}
	if _, err := os.Stat(filepath.Join("/run/netns", n.Name)); err == nil {
		errs = append(errs, fmt.Errorf("/run/netns/%s still there after deletion", n.Name))
	}
	return errors.Join(errs...)
}

func run(name string, args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
