package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of masters only (no replicas).
type Cluster struct {
	nodes []*Server
}

// StartCluster starts masters (at least 3) cluster-enabled servers, joins
// them with `redis-cli --cluster create`, and waits until every node says
// cluster_state:ok and knows every other node. It skips the test when
// redis-server or redis-cli is not installed.
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, got %d", masters)
	}
	requireBinary(t, "redis-server")
	requireBinary(t, "redis-cli")
	c := &Cluster{}
	for i := range masters {
		c.nodes = append(c.nodes, startClusterNode(t, i))
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range c.nodes {
		for {
			info, err := n.Do("CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(masters)+"\r") &&
				strings.Contains(info, "cluster_slots_ok:16384") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redistest: node %s not ready after cluster create: %v\n%s\nredis-cli said:\n%s", n.Addr(), err, info, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return c
}

// startClusterNode starts one cluster-enabled node whose port and bus port
// (port+10000) are free.
func startClusterNode(t testing.TB, i int) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir()}
	s.opts.extra = []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf", // relative to --dir: the node's own
		"--cluster-node-timeout", "5000",
		"--cluster-require-full-coverage", "yes",
	}
	t.Cleanup(s.Kill)
	var err error
	for range 5 {
		s.port, err = freePort(true)
		if err != nil {
			t.Fatalf("redistest: cluster node %d: %v", i, err)
		}
		if err = s.start(); err == nil {
			return s
		}
		if !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	t.Fatalf("redistest: cluster node %d: %v", i, err)
	return nil
}

// Addrs are the nodes' host:port, in start order.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.Addr()
	}
	return out
}

// Nodes are the cluster's servers, in start order.
func (c *Cluster) Nodes() []*Server { return c.nodes }

// String describes the cluster for test logs.
func (c *Cluster) String() string {
	return fmt.Sprintf("redis cluster %v", c.Addrs())
}
