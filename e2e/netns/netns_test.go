package netns

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Two namespaces on a bridge in a third reach each other; a namespace's
// resolv.conf is what its programs see; nothing is left afterwards.
func TestBridgeResolvConfAndCleanup(t *testing.T) {
	if err := Require(); err != nil {
		t.Skip(err)
	}
	var names []string
	t.Run("build", func(t *testing.T) {
		node := New(t, "tcnt-node")
		a := New(t, "tcnt-a")
		b := New(t, "tcnt-b")
		names = []string{node.Name, a.Name, b.Name}
		node.Bridge(t, "br0", "10.79.0.1/24")
		a.Attach(t, "eth0", "10.79.0.2/24", node, "br0", "veth-a")
		b.Attach(t, "eth0", "10.79.0.3/24", node, "br0", "veth-b")
		a.SetResolvConf(t, "nameserver 10.79.0.1\noptions ndots:5\n")

		// A TCP connection from a to b across the bridge.
		if _, err := exec.LookPath("python3"); err != nil {
			t.Skip("no python3")
		}
		lArgs := b.Exec("python3", "-c", "import socket; s=socket.create_server(('10.79.0.3', 7777)); print('up', flush=True); c,_=s.accept(); c.sendall(b'hello')")
		listener := exec.Command(lArgs[0], lArgs[1:]...)
		lout, _ := listener.StdoutPipe()
		if err := listener.Start(); err != nil {
			t.Fatal(err)
		}
		defer listener.Wait()
		defer listener.Process.Kill()
		buf := make([]byte, 3)
		lout.Read(buf) // "up\n": listening
		cArgs := a.Exec("python3", "-c", "import socket; print(socket.create_connection(('10.79.0.3', 7777), timeout=5).recv(5).decode())")
		if out, err := exec.Command(cArgs[0], cArgs[1:]...).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "hello" {
			t.Errorf("a -> b over the bridge: %q %v", out, err)
		}
		args := a.Exec("cat", "/etc/resolv.conf")
		out, err := exec.Command(args[0], args[1:]...).Output()
		if err != nil || !strings.Contains(string(out), "ndots:5") {
			t.Errorf("resolv.conf inside %s: %q %v", a.Name, out, err)
		}
		// The caller's namespace gained no interface.
		if out, _ := exec.Command("ip", "link").Output(); strings.Contains(string(out), "veth-a") || strings.Contains(string(out), "br0:") {
			t.Errorf("interfaces leaked into the caller's namespace:\n%s", out)
		}
	})
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, n := range names {
		if strings.Contains(string(out), n) {
			t.Errorf("%s still listed", n)
		}
		if _, err := os.Stat(filepath.Join("/etc/netns", n)); err == nil {
			t.Errorf("/etc/netns/%s left behind", n)
		}
	}
}
