package redistest

import (
	"strings"
	"testing"
	"time"
)

// Two sentinels watch a master with one replica: they name the master,
// the replica follows it, and the sentinels' ports are not the defaults.
func TestStartSentinel(t *testing.T) {
	t0 := time.Now()
	st := StartSentinel(t, SentinelOptions{Replicas: 1, Sentinels: 2})
	t.Logf("%v ready in %v", st, time.Since(t0))
	if len(st.Addrs()) != 2 || len(st.Replicas()) != 1 || st.MasterName() != "mymaster" {
		t.Fatalf("%v", st)
	}
	for i, a := range st.Addrs() {
		if strings.HasSuffix(a, ":26379") || strings.HasSuffix(a, ":6379") {
			t.Errorf("sentinel on a default port: %s", a)
		}
		got, err := st.MasterAddr(i)
		if err != nil || got != st.Master().Addr() {
			t.Errorf("sentinel %s names master %q (%v), want %s", a, got, err, st.Master().Addr())
		}
		if mode, err := st.Sentinels()[i].Do("INFO", "server"); err != nil || !strings.Contains(mode, "redis_mode:sentinel") {
			t.Errorf("sentinel %s: not in sentinel mode (%v)", a, err)
		}
	}
	if st.Server(st.Master().Addr()) != st.Master() || st.Server(st.Replicas()[0].Addr()) != st.Replicas()[0] || st.Server("127.0.0.1:1") != nil {
		t.Error("Server does not find the servers by address")
	}
	if _, err := st.Master().Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Master().Do("WAIT", "1", "5000"); err != nil || n != "1" {
		t.Fatalf("WAIT: %q %v", n, err)
	}
	if v, err := st.Replicas()[0].Do("GET", "k"); err != nil || v != "v" {
		t.Fatalf("replica GET: %q %v", v, err)
	}
}
