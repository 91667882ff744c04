package redistest

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartDoKillRestart(t *testing.T) {
	s := Start(t, Options{})
	if strings.HasSuffix(s.Addr(), ":6379") {
		t.Fatalf("server on the default port: %s", s.Addr())
	}
	if _, err := s.Do("SET", "k", "v w"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Do("GET", "k"); err != nil || v != "v w" {
		t.Fatalf("GET: %q %v", v, err)
	}
	if v, _ := s.Do("CONFIG", "GET", "save"); v != "save\n" {
		t.Errorf("save config %q, want empty", v)
	}
	pid := s.PID()
	s.Kill()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("process %d still exists after Kill", pid)
	}
	s.Restart()
	if v, err := s.Do("GET", "k"); err != nil || v != "" {
		t.Fatalf("after restart: %q %v (want no data, nothing persisted)", v, err)
	}
	s.Stop()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Restart()
	if _, err := s.Do("PING"); err != nil {
		t.Fatal(err)
	}
}

func TestPauseResume(t *testing.T) {
	s := Start(t, Options{})
	s.Pause()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err) // the kernel still accepts
	}
	defer c.Close()
	c.Write([]byte("PING\r\n"))
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Read(make([]byte, 16)); err == nil {
		t.Fatal("a paused server answered")
	}
	s.Resume()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "+PONG") {
		t.Fatalf("after resume: %q %v", buf[:n], err)
	}
}

func TestPassword(t *testing.T) {
	s := Start(t, Options{Password: "s3cret"})
	if _, err := s.Do("PING"); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("*1\r\n$4\r\nPING\r\n"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "-NOAUTH") {
		t.Fatalf("unauthenticated PING answered %q, want NOAUTH", buf[:n])
	}
}

func TestTLS(t *testing.T) {
	s := Start(t, Options{TLS: true})
	if _, err := os.Stat(s.CAFile()); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Do("PING"); err != nil || v != "PONG" {
		t.Fatalf("PING over TLS: %q %v", v, err)
	}
	// Plain text is refused: the server speaks TLS only.
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("*1\r\n$4\r\nPING\r\n"))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	if n, _ := c.Read(buf); strings.Contains(string(buf[:n]), "PONG") {
		t.Fatal("plain-text PING answered on the TLS port")
	}
}

func TestMaxMemory(t *testing.T) {
	s := Start(t, Options{MaxMemory: "2mb"})
	if v, _ := s.Do("CONFIG", "GET", "maxmemory-policy"); v != "maxmemory-policy\nnoeviction" {
		t.Fatalf("policy %q", v)
	}
	big := strings.Repeat("x", 64<<10)
	for i := range 200 {
		if _, err := s.Do("SET", "k"+string(rune('a'+i%26))+strings.Repeat("z", i), big); err != nil {
			if strings.HasPrefix(err.Error(), "OOM") {
				return
			}
			t.Fatal(err)
		}
	}
	t.Fatal("12 MiB written into a 2 MiB server without OOM")
}

func TestCluster(t *testing.T) {
	c := StartCluster(t, 3)
	if len(c.Addrs()) != 3 {
		t.Fatalf("addrs %v", c.Addrs())
	}
	for _, n := range c.Nodes() {
		info, err := n.Do("CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			t.Fatalf("%s: %v %s", n.Addr(), err, info)
		}
	}
	// Every master owns some slots.
	for _, n := range c.Nodes() {
		out, err := n.Do("CLUSTER", "COUNTKEYSINSLOT", "0")
		if err != nil {
			t.Fatal(err, out)
		}
	}
	shards, err := c.Nodes()[0].Do("CLUSTER", "SLOTS")
	if err != nil || strings.Count(shards, "127.0.0.1") != 3 {
		t.Fatalf("CLUSTER SLOTS: %v\n%s", err, shards)
	}
}
