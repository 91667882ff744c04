package redistest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sentinel timings: a master is subjectively down after SentinelDownAfter
// without an answer, and a failover attempt that stalls is retried after
// twice SentinelFailoverTimeout. With quorum 1, one sentinel seeing the
// master down is enough to start a failover.
const (
	SentinelDownAfter       = 1000 * time.Millisecond
	SentinelFailoverTimeout = 3000 * time.Millisecond
)

// SentinelOptions configure [StartSentinel].
type SentinelOptions struct {
	// MasterName is the name the sentinels monitor the master under;
	// "" means "mymaster".
	MasterName string
	// Replicas is the number of replicas of the master (0 or more).
	// Without one a failover cannot happen.
	Replicas int
	// Sentinels is the number of sentinels (1 when 0).
	Sentinels int
}

// Sentinel is a master, its replicas and the sentinels monitoring it.
type Sentinel struct {
	t         testing.TB
	name      string
	master    *Server
	replicas  []*Server
	sentinels []*Server
}

// StartSentinel starts a standalone master ([Start]), opts.Replicas
// replicas of it (--replicaof) and opts.Sentinels sentinels (`redis-server
// sentinel.conf --sentinel`, each with its own dir and config file)
// monitoring it with quorum 1, down-after-milliseconds
// [SentinelDownAfter] and failover-timeout [SentinelFailoverTimeout].
// It returns once every replica is in sync and every sentinel sees the
// master up, knows every replica and every other sentinel, so that a
// failover can start as soon as the master dies. Everything is killed by
// t.Cleanup. It skips the test when redis-server is not installed.
func StartSentinel(t testing.TB, opts SentinelOptions) *Sentinel {
	t.Helper()
	requireBinary(t, "redis-server")
	if opts.MasterName == "" {
		opts.MasterName = "mymaster"
	}
	if opts.Sentinels <= 0 {
		opts.Sentinels = 1
	}
	if opts.Replicas < 0 {
		t.Fatalf("redistest: %d replicas", opts.Replicas)
	}
	st := &Sentinel{t: t, name: opts.MasterName, master: Start(t, Options{})}
	// A replica's first full sync would otherwise wait 5 s for more
	// replicas to share the diskless transfer.
	if _, err := st.master.Do("CONFIG", "SET", "repl-diskless-sync-delay", "0"); err != nil {
		t.Fatalf("redistest: master %s: %v", st.master.Addr(), err)
	}
	for i := range opts.Replicas {
		st.replicas = append(st.replicas, st.startReplica(i))
	}
	// Sentinels learn the replicas from the master's INFO, which they ask
	// for at once on connecting and then only every 10 s: the replicas
	// must be attached first.
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range st.replicas {
		for {
			info, err := r.Do("INFO", "replication")
			if err == nil && strings.Contains(info, "master_link_status:up") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: replica %s not in sync with %s: %v\n%s\n%s", r.Addr(), st.master.Addr(), err, info, r.logTail())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for {
		info, err := st.master.Do("INFO", "replication")
		if err == nil && strings.Contains(info, "connected_slaves:"+strconv.Itoa(opts.Replicas)+"\r") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: master %s does not list its %d replicas: %v\n%s", st.master.Addr(), opts.Replicas, err, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range opts.Sentinels {
		st.sentinels = append(st.sentinels, st.startSentinel(i))
	}
	st.waitReady(deadline)
	return st
}

func (st *Sentinel) startReplica(i int) *Server {
	t := st.t
	t.Helper()
	_, mport, _ := net.SplitHostPort(st.master.Addr())
	s := &Server{t: t, dir: t.TempDir()}
	s.opts.extra = []string{"--replicaof", "127.0.0.1", mport}
	st.startNode(s, fmt.Sprintf("replica %d", i))
	return s
}

func (st *Sentinel) startSentinel(i int) *Server {
	t := st.t
	t.Helper()
	host, mport, _ := net.SplitHostPort(st.master.Addr())
	s := &Server{t: t, dir: t.TempDir()}
	s.opts.sentinelConf = filepath.Join(s.dir, "sentinel.conf")
	conf := fmt.Sprintf(`sentinel monitor %[1]s %[2]s %[3]s 1
sentinel down-after-milliseconds %[1]s %[4]d
sentinel failover-timeout %[1]s %[5]d
sentinel parallel-syncs %[1]s 1
`, st.name, host, mport, SentinelDownAfter.Milliseconds(), SentinelFailoverTimeout.Milliseconds())
	if err := os.WriteFile(s.opts.sentinelConf, []byte(conf), 0o644); err != nil {
		t.Fatalf("redistest: sentinel %d: %v", i, err)
	}
	st.startNode(s, fmt.Sprintf("sentinel %d", i))
	return s
}

// startNode starts s on a free port, retrying when the port was taken
// meanwhile, and registers its Kill with t.Cleanup.
func (st *Sentinel) startNode(s *Server, what string) {
	t := st.t
	t.Helper()
	t.Cleanup(s.Kill)
	var err error
	for range 5 {
		s.port, err = freePort(false)
		if err != nil {
			t.Fatalf("redistest: %s: %v", what, err)
		}
		if err = s.start(); err == nil {
			return
		}
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	t.Fatalf("redistest: %s: %v", what, err)
}

// waitReady waits until every sentinel sees the master up (flags exactly
// "master"), with every replica and every other sentinel known, and every
// replica connected (flags exactly "slave").
func (st *Sentinel) waitReady(deadline time.Time) {
	t := st.t
	t.Helper()
	wantReplicas := strconv.Itoa(len(st.replicas))
	wantOthers := strconv.Itoa(len(st.sentinels) - 1)
	for _, s := range st.sentinels {
		var why string
		for {
			why = st.notReady(s, wantReplicas, wantOthers)
			if why == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: sentinel %s not ready: %s\n%s", s.Addr(), why, s.logTail())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// notReady says why sentinel s is not ready, "" when it is.
func (st *Sentinel) notReady(s *Server, wantReplicas, wantOthers string) string {
	m, err := doMap(s, "SENTINEL", "MASTER", st.name)
	if err != nil {
		return err.Error()
	}
	if m["flags"] != "master" || m["ip"]+":"+m["port"] != st.master.Addr() ||
		m["num-slaves"] != wantReplicas || m["num-other-sentinels"] != wantOthers {
		return fmt.Sprintf("SENTINEL MASTER %s: flags %q, addr %s:%s, %s replicas (want %s), %s other sentinels (want %s)",
			st.name, m["flags"], m["ip"], m["port"], m["num-slaves"], wantReplicas, m["num-other-sentinels"], wantOthers)
	}
	out, err := s.Do("SENTINEL", "REPLICAS", st.name)
	if err != nil {
		return err.Error()
	}
	// One replica is 40-odd lines of name/value pairs; "name" starts each.
	lines := strings.Split(out, "\n")
	var reps []map[string]string
	for i := 0; i+1 < len(lines); i += 2 {
		if lines[i] == "name" {
			reps = append(reps, map[string]string{})
		}
		if len(reps) > 0 {
			reps[len(reps)-1][lines[i]] = lines[i+1]
		}
	}
	for _, r := range reps {
		// Not master-link-status: Sentinel learns it from the replica's
		// INFO, which can take seconds, and asks again every second
		// once the master is down, before it picks a replica.
		if r["flags"] != "slave" {
			return fmt.Sprintf("replica %s: flags %q", r["name"], r["flags"])
		}
	}
	return ""
}

// doMap runs a command whose reply is a flat array of name/value pairs.
func doMap(s *Server, args ...string) (map[string]string, error) {
	out, err := s.Do(args...)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(out, "\n")
	m := make(map[string]string, len(lines)/2)
	for i := 0; i+1 < len(lines); i += 2 {
		m[lines[i]] = lines[i+1]
	}
	return m, nil
}

// MasterName is the name the sentinels monitor the master under.
func (st *Sentinel) MasterName() string { return st.name }

// Addrs are the sentinels' host:port, in start order: what a client's
// sentinel address list is.
func (st *Sentinel) Addrs() []string {
	out := make([]string, len(st.sentinels))
	for i, s := range st.sentinels {
		out[i] = s.Addr()
	}
	return out
}

// Master is the master the sentinels started with; after a failover it
// is no longer the master (see [Sentinel.MasterAddr]).
func (st *Sentinel) Master() *Server { return st.master }

// Replicas are the master's replicas, in start order.
func (st *Sentinel) Replicas() []*Server { return st.replicas }

// Sentinels are the sentinel processes, in start order. Their Do talks
// to the sentinel (SENTINEL commands).
func (st *Sentinel) Sentinels() []*Server { return st.sentinels }

// Server returns the master or replica listening on addr, nil if none.
func (st *Sentinel) Server(addr string) *Server {
	for _, s := range append([]*Server{st.master}, st.replicas...) {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// MasterAddr is the master's host:port according to sentinel i
// (SENTINEL GET-MASTER-ADDR-BY-NAME).
func (st *Sentinel) MasterAddr(i int) (string, error) {
	out, err := st.sentinels[i].Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", st.name)
	if err != nil {
		return "", err
	}
	hp := strings.Split(out, "\n")
	if len(hp) != 2 {
		return "", fmt.Errorf("SENTINEL GET-MASTER-ADDR-BY-NAME %s: %q", st.name, out)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// WaitForFailover polls, at most timeout, until every sentinel names a
// master other than old and that server says it is a master (role:master),
// and returns it.
func (st *Sentinel) WaitForFailover(old string, timeout time.Duration) *Server {
	t := st.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for {
		why = st.failedOver(old)
		if why == "" {
			addr, _ := st.MasterAddr(0)
			return st.Server(addr)
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for _, s := range st.sentinels {
				fmt.Fprintf(&logs, "--- sentinel %s:\n%s\n", s.Addr(), s.logTail())
			}
			t.Fatalf("redistest: no failover away from %s after %v: %s\n%s", old, timeout, why, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failedOver says why the failover away from old is not done, "" when it is.
func (st *Sentinel) failedOver(old string) string {
	var addr string
	for i := range st.sentinels {
		a, err := st.MasterAddr(i)
		if err != nil {
			return err.Error()
		}
		if a == old {
			return fmt.Sprintf("sentinel %s still names %s", st.sentinels[i].Addr(), old)
		}
		if addr != "" && a != addr {
			return fmt.Sprintf("sentinels disagree: %s and %s", addr, a)
		}
		addr = a
	}
	s := st.Server(addr)
	if s == nil {
		return "sentinels name an unknown master " + addr
	}
	info, err := s.Do("INFO", "replication")
	if err != nil {
		return fmt.Sprintf("new master %s: %v", addr, err)
	}
	if !strings.Contains(info, "role:master\r") {
		return fmt.Sprintf("new master %s is not a master yet", addr)
	}
	return ""
}

// String describes the setup for test logs.
func (st *Sentinel) String() string {
	reps := make([]string, len(st.replicas))
	for i, r := range st.replicas {
		reps[i] = r.Addr()
	}
	return fmt.Sprintf("redis sentinel %q: master %s, replicas %v, sentinels %v", st.name, st.master.Addr(), reps, st.Addrs())
}
