package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracecam/tracecam/sidecar/cgroup"
)

// The real one-node cluster (e2e/cluster/cluster.sh): etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kubelet built from the Go
// module proxy, Debian's containerd and runc, the CNI bridge. The test
// brings it up, and down again when it ends (TRACECAM_CLUSTER_KEEP=1 keeps
// it running for a look afterwards), so the timing-sensitive tests around
// it never share the machine with a kubelet.

type kubeCluster struct {
	root, dir string
}

func startCluster(t *testing.T) *kubeCluster {
	t.Helper()
	caseRequireTools(t, "containerd", "runc", "ctr", "buildah", "openssl", "gcc", "curl")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	c := &kubeCluster{root: root, dir: filepath.Join(root, ".cache", "cluster")}
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl", "etcd"} {
		if _, err := os.Stat(filepath.Join(root, ".cache", "kube", b)); err != nil {
			t.Fatalf("%s not built: run make kube-binaries (e2e/kubeapi/build.sh): %v", b, err)
		}
	}
	began := time.Now()
	out, err := c.script(t, 6*time.Minute, "up")
	if err != nil {
		c.dumpLogs(t)
		t.Fatalf("cluster.sh up: %v\n%s", err, out)
	}
	t.Logf("cluster up in %s", time.Since(began).Round(100*time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpLogs(t)
		}
		if os.Getenv("TRACECAM_CLUSTER_KEEP") != "" {
			t.Logf("TRACECAM_CLUSTER_KEEP: left running; KUBECONFIG=%s; e2e/cluster/cluster.sh down stops it", c.kubeconfig())
			return
		}
		if out, err := c.script(t, 2*time.Minute, "down"); err != nil {
			t.Errorf("cluster.sh down: %v\n%s", err, out)
		}
	})
	return c
}

func (c *kubeCluster) kubeconfig() string { return filepath.Join(c.dir, "kubeconfig") }

func (c *kubeCluster) script(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.root, "e2e", "cluster", "cluster.sh"), args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kubectl runs bin/kubectl against the cluster.
func (c *kubeCluster) kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.root, ".cache", "kube", "kubectl"), append([]string{"--kubeconfig", c.kubeconfig()}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (c *kubeCluster) mustKubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := c.kubectl(t, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// importStatic builds an image FROM scratch holding one static binary
// (e2e/cluster/images.sh) and imports it into the cluster's containerd.
func (c *kubeCluster) importStatic(t *testing.T, tag, bin string) {
	t.Helper()
	sh := fmt.Sprintf("%q static %q %q | ctr --address /run/tracecam-cluster/containerd.sock -n k8s.io images import -",
		filepath.Join(c.root, "e2e", "cluster", "images.sh"), tag, bin)
	if out, err := exec.Command("bash", "-o", "pipefail", "-c", sh).CombinedOutput(); err != nil {
		t.Fatalf("building and importing %s: %v\n%s", tag, err, out)
	}
}

func (c *kubeCluster) dumpLogs(t *testing.T) {
	for _, d := range []string{"kubelet", "containerd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"} {
		path := filepath.Join(c.dir, "logs", d+".log")
		t.Logf("%s (last lines):\n%s", path, tailFile(path, 30))
	}
	if out, err := c.kubectl(t, "", "get", "events", "-A", "--sort-by=.lastTimestamp"); err == nil {
		t.Logf("events:\n%s", lastLines(out, 30))
	}
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestKubernetesCluster: the one-node cluster runs a Deployment of an
// image built here from a static Go server; the pod answers at its pod IP
// on the bridge, and its container's cgroup sits where the sidecar looks
// for it: <cgroup2>/kubepods/<qos>/pod<uid>/<container id>, beside the
// pause container's.
func TestKubernetesCluster(t *testing.T) {
	c := startCluster(t)

	bin := filepath.Join(t.TempDir(), "goserver")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(c.root, "e2e", "workloads", "goserver")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building goserver: %v\n%s", err, out)
	}
	c.importStatic(t, "localhost/tracecam-e2e-goserver:dev", bin)

	const ns = "tracecam-e2e"
	c.mustKubectl(t, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: goserver, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: goserver}}
  template:
    metadata: {labels: {app: goserver}}
    spec:
      containers:
      - name: app
        image: localhost/tracecam-e2e-goserver:dev
        imagePullPolicy: Never
        args: ["--port", "8080", "--bind", "0.0.0.0"]
        readinessProbe:
          httpGet: {path: /fast, port: 8080}
          periodSeconds: 1
`, ns), "apply", "-f", "-")
	c.mustKubectl(t, "", "-n", ns, "rollout", "status", "deployment/goserver", "--timeout=120s")

	var pods struct {
		Items []struct {
			Metadata struct{ UID string }
			Status   struct {
				PodIP             string `json:"podIP"`
				QOSClass          string `json:"qosClass"`
				ContainerStatuses []struct {
					Name        string
					ContainerID string `json:"containerID"`
				} `json:"containerStatuses"`
			}
		}
	}
	if err := json.Unmarshal([]byte(c.mustKubectl(t, "", "-n", ns, "get", "pods", "-l", "app=goserver", "-o", "json")), &pods); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || len(pods.Items[0].Status.ContainerStatuses) != 1 {
		t.Fatalf("want one pod with one container, got %+v", pods)
	}
	pod := pods.Items[0]

	// At its pod IP, as a user would curl it.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + pod.Status.PodIP + ":8080/fast")
	if err != nil {
		t.Fatalf("GET the pod at %s: %v", pod.Status.PodIP, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "fast" {
		t.Fatalf("GET the pod: %d %q", resp.StatusCode, body)
	}

	// Its cgroup, where the sidecar finds the pod: the app container's
	// directory under the pod's, holding the server.
	root, err := cgroup.Resolve("/")
	if err != nil {
		t.Fatal(err)
	}
	id := pod.Status.ContainerStatuses[0].ContainerID
	id = id[strings.Index(id, "://")+3:]
	podDir := filepath.Join(root.Path, "kubepods", strings.ToLower(pod.Status.QOSClass), "pod"+pod.Metadata.UID)
	procs, err := os.ReadFile(filepath.Join(podDir, id, "cgroup.procs"))
	if err != nil {
		entries, _ := os.ReadDir(podDir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("the app container's cgroup: %v (the pod's directory holds %v)", err, names)
	}
	if strings.TrimSpace(string(procs)) == "" {
		t.Errorf("the app container's cgroup %s has no process", filepath.Join(podDir, id))
	}
	entries, err := os.ReadDir(podDir)
	if err != nil {
		t.Fatal(err)
	}
	var dirs int
	for _, e := range entries {
		if e.IsDir() {
			dirs++
		}
	}
	if dirs != 2 {
		t.Errorf("the pod's cgroup %s holds %d container directories, want 2 (pause and app)", podDir, dirs)
	}
	t.Logf("pod %s at %s; app container cgroup %s (processes %s)", pod.Metadata.UID, pod.Status.PodIP,
		filepath.Join(podDir, id), strings.Join(strings.Fields(string(procs)), ","))
	c.mustKubectl(t, "", "delete", "namespace", ns, "--wait=false")
}
