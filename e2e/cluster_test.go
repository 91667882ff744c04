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
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/cgroup"
	"github.com/tracecam/tracecam/sidecar/profile"
	"github.com/tracecam/tracecam/sidecar/profilepb"
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

// staticBuild builds a package of the repository (dir, relative to its
// root) as a static binary.
func (c *kubeCluster) staticBuild(t *testing.T, dir, pkg, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Dir = filepath.Join(c.root, dir)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// TestKubernetesCluster: the one-node cluster runs a Deployment of an
// image built here from a static Go server; the pod answers at its pod IP
// on the bridge, and its container's cgroup sits where the sidecar looks
// for it: <cgroup2>/kubepods/<qos>/pod<uid>/<container id>, beside the
// pause container's.
func TestKubernetesCluster(t *testing.T) {
	c := startCluster(t)
	if !t.Run("a Deployment answers at its pod IP", func(t *testing.T) { clusterPlainDeployment(t, c) }) {
		return
	}
	if !t.Run("tracecam from manifests/ profiles an annotated pod", func(t *testing.T) { clusterTracecam(t, c) }) {
		return
	}
	t.Run("a sidecar that cannot watch leaves its app serving", func(t *testing.T) { clusterSidecarCannotWatch(t, c) })
	t.Run("the example app of manifests/example", func(t *testing.T) { clusterExampleApp(t, c) })
}

// clusterExampleApp: kubectl apply -k manifests/example/ (through an
// overlay naming the demo app's image: a Debian rootfs with python3 built
// here), then a traced /sleep to the demo pod is profiled by its sidecar:
// sleep, at least the 150 ms the handler sleeps (time.sleep's floor) and
// no more than the client waited.
func clusterExampleApp(t *testing.T, c *kubeCluster) {
	overlay := filepath.Join(c.dir, "overlay-example") // written by cluster.sh images
	const ns = "tracecam-demo"
	c.freshNamespace(t, ns)
	c.mustKubectl(t, "", "apply", "-k", overlay)
	c.mustKubectl(t, "", "-n", ns, "rollout", "status", "deployment/demo-http", "--timeout=180s")
	pod := c.podOf(t, ns, "app.kubernetes.io/name=demo-http")
	id := newTraceID()
	began := time.Now()
	get(t, "http://"+pod.Status.PodIP+":8080/sleep?ms=150", id)
	client := time.Since(began)
	p := waitRemoteProfile(t, &http.Client{Timeout: 10 * time.Second}, "http://"+pod.Status.PodIP+":7071", id, 1)[0]
	t.Logf("demo /sleep: %s (client %s), sleep %.1f ms, accounting %s, container %q: %s", profile.FormatDuration(p.DurationNS),
		client.Round(100*time.Microsecond), ms(p.Breakdown[profile.Sleep]), p.Accounting, p.Container, p.Diagnosis.Summary)
	sleep := time.Duration(p.Breakdown[profile.Sleep])
	if p.Diagnosis.Cause != profile.CauseSleep || sleep < 150*time.Millisecond*95/100 || sleep > client {
		t.Errorf("demo /sleep?ms=150: cause %s, sleep %s (the client waited %s):\n%s", p.Diagnosis.Cause, sleep, client, dump(p))
	}
	if p.Pod != pod.Metadata.Name || p.Namespace != ns || p.Container != "app" {
		t.Errorf("profile says pod %q namespace %q container %q", p.Pod, p.Namespace, p.Container)
	}
}

func clusterPlainDeployment(t *testing.T, c *kubeCluster) {
	bin := c.staticBuild(t, "e2e/workloads/goserver", ".", "goserver")
	c.importStatic(t, "localhost/tracecam-e2e-goserver:dev", bin)

	const ns = "tracecam-e2e"
	c.freshNamespace(t, ns)
	c.mustKubectl(t, namespaceYAML(ns, false), "apply", "-f", "-")
	c.deploy(t, ns, "goserver", goServerDeployment(ns, "goserver", false, ""))
	pod := c.podOf(t, ns, "app=goserver")
	if len(pod.Status.ContainerStatuses) != 1 {
		t.Fatalf("want one pod with one container, got %+v", pod)
	}

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
}

// freshNamespace waits until a namespace left by an earlier run (the
// cluster keeps its etcd between ups) is gone, and deletes this one when
// the test ends.
func (c *kubeCluster) freshNamespace(t *testing.T, ns string) {
	t.Helper()
	c.mustKubectl(t, "", "delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=120s")
	t.Cleanup(func() {
		if out, err := c.kubectl(t, "", "delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=120s"); err != nil {
			t.Errorf("deleting namespace %s: %v\n%s", ns, err, out)
		}
	})
}

// clusterTracecam: what a user does, through the real manifests. tracecam
// is installed with kubectl apply -k (the webhook's two replicas become
// Ready on their self-managed certificate; Redis), the images built here
// from this tree: the webhook and the sidecar FROM scratch with their
// static binaries, Redis from Debian's redis-server (an overlay names it,
// as a user names a mirror). Then an annotated Deployment gets the sidecar,
// a traced request to the pod IP is profiled, and the sidecar answers for
// it at <pod IP>:7071 with the pod, namespace and container filled in.
func clusterTracecam(t *testing.T, c *kubeCluster) {
	// The images a user would push, from the same Dockerfiles (their
	// bases cannot be pulled here: this tree's static binaries on
	// scratch), Redis and the demo app from Debian, and the overlays that
	// name the last two: what make cluster gives a user.
	if out, err := c.script(t, 10*time.Minute, "images"); err != nil {
		t.Fatalf("cluster.sh images: %v\n%s", err, out)
	}
	overlay := filepath.Join(c.dir, "overlay")
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := c.kubectl(t, "", "-n", "tracecam-system", "get", "pods", "-o", "wide")
			t.Logf("tracecam-system pods:\n%s", out)
			out, _ = c.kubectl(t, "", "-n", "tracecam-system", "logs", "-l", "app.kubernetes.io/name=tracecam-webhook", "--tail=30")
			t.Logf("webhook logs:\n%s", out)
		}
	})
	c.mustKubectl(t, "", "apply", "-k", overlay)
	// A cluster kept from an earlier run (TRACECAM_CLUSTER_KEEP) runs an
	// older webhook under the same tag: start it again on this one.
	c.mustKubectl(t, "", "-n", "tracecam-system", "rollout", "restart", "deployment/tracecam-webhook")
	c.mustKubectl(t, "", "-n", "tracecam-system", "rollout", "status", "deployment/tracecam-webhook", "--timeout=180s")
	c.mustKubectl(t, "", "-n", "tracecam-system", "rollout", "status", "deployment/tracecam-redis", "--timeout=180s")

	// The app: catalog, and frontend calling it; both opted in. A plain
	// pod beside them stays as it is.
	const ns = "tracecam-e2e-shop"
	c.freshNamespace(t, ns)
	c.mustKubectl(t, namespaceYAML(ns, true)+fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: %[1]s}
spec:
  selector: {app: catalog}
  ports: [{port: 8080, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: plain, namespace: %[1]s}
spec:
  containers:
  - {name: app, image: localhost/tracecam-e2e-goserver:dev, imagePullPolicy: Never, args: ["--port", "8080"]}
`, ns), "apply", "-f", "-")
	c.deploy(t, ns, "catalog", goServerDeployment(ns, "catalog", true, ""))
	c.deploy(t, ns, "frontend", goServerDeployment(ns, "frontend", true, "", "--http-downstream", "catalog."+ns+".svc.cluster.local:8080"))
	plain := c.pod(t, ns, "plain")
	if len(plain.Spec.InitContainers)+len(plain.Spec.Containers) != 1 {
		t.Errorf("the plain pod was changed: %d init containers, %d containers", len(plain.Spec.InitContainers), len(plain.Spec.Containers))
	}
	catalog := c.podOf(t, ns, "app=catalog")
	frontend := c.podOf(t, ns, "app=frontend")
	for _, p := range []kubePod{catalog, frontend} {
		if len(p.Spec.InitContainers) != 1 || p.Spec.InitContainers[0].Name != "tracecam" {
			t.Fatalf("pod %s: no tracecam sidecar injected: %+v", p.Metadata.Name, p.Spec.InitContainers)
		}
	}

	// A traced request to the catalog pod's IP: its sidecar answers for it
	// at <pod IP>:7071, as measured in the pod: the Go server's goroutine,
	// its sleep within 10% of the handler's own clock.
	hc := &http.Client{Timeout: 10 * time.Second}
	id := newTraceID()
	get(t, "http://"+catalog.Status.PodIP+":8080/sleep?ms=150", id)
	p := waitRemoteProfile(t, hc, "http://"+catalog.Status.PodIP+":7071", id, 1)[0]
	main := c.truthMainNS(t, ns, "deployment/catalog", id)
	t.Logf("catalog /sleep: %s, sleep %.1f ms (handler %.1f ms), accounting %s, goroutine %d, pod %s/%s container %q: %s",
		profile.FormatDuration(p.DurationNS), ms(p.Breakdown[profile.Sleep]), ms(main), p.Accounting, p.GoroutineID,
		p.Namespace, p.Pod, p.Container, p.Diagnosis.Summary)
	if p.Pod != catalog.Metadata.Name || p.Namespace != ns || p.Container != "app" {
		t.Errorf("profile says pod %q namespace %q container %q, want %q %q %q", p.Pod, p.Namespace, p.Container, catalog.Metadata.Name, ns, "app")
	}
	if p.Accounting != profile.AccountingGoroutine {
		t.Errorf("accounting %q, want goroutine (the sidecar follows the pod's Go program):\n%s", p.Accounting, dump(p))
	}
	if !within(float64(p.Breakdown[profile.Sleep]), float64(main), 0.10) || p.Diagnosis.Cause != profile.CauseSleep {
		t.Errorf("sleep %.1f ms (cause %s), the handler's clock says %.1f ms:\n%s", ms(p.Breakdown[profile.Sleep]), p.Diagnosis.Cause, ms(main), dump(p))
	}

	// What the sidecar watches: the pod's cgroup (the app's, pause's and
	// its own containers below it; the programs leave out its own).
	var st struct{ Cgroup string }
	if resp, err := hc.Get("http://" + catalog.Status.PodIP + ":7071/v1/status"); err != nil {
		t.Errorf("sidecar status: %v", err)
	} else {
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		want := filepath.Join("kubepods", strings.ToLower(catalog.Status.QOSClass), "pod"+catalog.Metadata.UID)
		if !strings.HasSuffix(st.Cgroup, want) {
			t.Errorf("the sidecar watches %q, want the pod's cgroup …/%s", st.Cgroup, want)
		}
	}

	// The whole trace across the two pods, from either sidecar, through
	// the in-cluster Redis: frontend's request and the catalog request it
	// made.
	id = newTraceID()
	get(t, "http://"+frontend.Status.PodIP+":8080/client?ms=120", id)
	for _, pod := range []kubePod{frontend, catalog} {
		ps := waitRemoteProfile(t, hc, "http://"+pod.Status.PodIP+":7071", id, 2)
		pods := map[string]string{}
		for _, q := range ps {
			pods[q.Pod] = q.Path
		}
		if pods[frontend.Metadata.Name] != "/client" || pods[catalog.Metadata.Name] != "/sleep" {
			t.Errorf("trace %s from %s's sidecar: %v, want frontend's /client and catalog's /sleep", id, pod.Metadata.Name, pods)
		}
	}

	// gRPC, as a user would ask it: grpcurl (built from the module proxy)
	// against <pod IP>:7070, through the server's reflection.
	grpcOut, err := exec.Command(filepath.Join(c.root, ".cache", "kube", "grpcurl"), "-plaintext",
		"-d", fmt.Sprintf(`{"trace_id": %q}`, id), catalog.Status.PodIP+":7070", "tracecam.v1.Profiler/GetTrace").CombinedOutput()
	if err != nil {
		t.Errorf("grpcurl GetTrace: %v\n%s", err, grpcOut)
	} else if !strings.Contains(string(grpcOut), `"/client"`) || !strings.Contains(string(grpcOut), `"/sleep"`) {
		t.Errorf("grpcurl GetTrace of %s lacks /client or /sleep:\n%s", id, grpcOut)
	}

	// /metrics, scraped from the pod.
	resp, err := hc.Get("http://" + catalog.Status.PodIP + ":7071/metrics")
	if err != nil {
		t.Fatalf("scraping /metrics: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "tracecam_profiles_total") {
		t.Errorf("/metrics has no tracecam_profiles_total:\n%s", lastLines(string(body), 20))
	}

	// Admission keeps working with one webhook replica gone.
	webhooks := c.mustKubectl(t, "", "-n", "tracecam-system", "get", "pods", "-l", "app.kubernetes.io/name=tracecam-webhook", "-o", "name")
	c.mustKubectl(t, "", "-n", "tracecam-system", "delete", strings.Fields(webhooks)[0], "--wait=false")
	c.mustKubectl(t, "", "-n", ns, "scale", "deployment/catalog", "--replicas=2")
	c.mustKubectl(t, "", "-n", ns, "rollout", "status", "deployment/catalog", "--timeout=180s")
	var list struct{ Items []kubePod }
	if err := json.Unmarshal([]byte(c.mustKubectl(t, "", "-n", ns, "get", "pods", "-l", "app=catalog", "-o", "json")), &list); err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Items {
		if len(p.Spec.InitContainers) != 1 {
			t.Errorf("catalog pod %s created with a webhook replica gone has no sidecar", p.Metadata.Name)
		}
	}
}

// clusterSidecarCannotWatch: a pod whose sidecar cannot watch (here, its
// tracecam-btf volume is the pod's own empty directory, so the kernel's
// BTF is missing) still serves: the sidecar stays up and ready, idle, and
// its /v1/status says why.
func clusterSidecarCannotWatch(t *testing.T, c *kubeCluster) {
	const ns = "tracecam-e2e-nobtf"
	c.freshNamespace(t, ns)
	c.mustKubectl(t, namespaceYAML(ns, true), "apply", "-f", "-")
	c.deploy(t, ns, "nobtf", goServerDeployment(ns, "nobtf", true, `
      volumes:
      - name: tracecam-btf
        emptyDir: {}`))
	pod := c.podOf(t, ns, "app=nobtf")
	if len(pod.Spec.InitContainers) != 1 {
		out, _ := c.kubectl(t, "", "-n", ns, "get", "pod", pod.Metadata.Name, "-o", "yaml")
		t.Fatalf("pod %s has no sidecar:\n%s", pod.Metadata.Name, out)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + pod.Status.PodIP + ":8080/fast")
	if err != nil {
		t.Fatalf("the app behind a sidecar that cannot watch: %v", err)
	}
	resp.Body.Close()
	// (Until its server listens, a moment after the pod is Ready.)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err = hc.Get("http://" + pod.Status.PodIP + ":7071/v1/status")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the idle sidecar's status: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("idle sidecar: /v1/status %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "BTF") {
		t.Errorf("/v1/status of a sidecar without BTF: %d %s, want 503 saying BTF is missing", resp.StatusCode, body)
	}
}

type kubePod struct {
	Metadata struct{ Name, UID string }
	Spec     struct {
		InitContainers []struct{ Name string } `json:"initContainers"`
		Containers     []struct{ Name string }
	}
	Status struct {
		PodIP             string `json:"podIP"`
		QOSClass          string `json:"qosClass"`
		ContainerStatuses []struct {
			Name        string
			ContainerID string `json:"containerID"`
		} `json:"containerStatuses"`
	}
}

// namespaceYAML is a namespace, allowing the privileged Pod Security level
// where its pods get the sidecar.
func namespaceYAML(ns string, privileged bool) string {
	labels := ""
	if privileged {
		labels = "\n  labels: {pod-security.kubernetes.io/enforce: privileged}"
	}
	return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s%s\n", ns, labels)
}

// goServerDeployment is a Deployment of one e2e Go server (the image the
// first subtest imports) listening on 8080 on the pod IP, ready once /fast
// answers; inject opts it in, podSpec adds to its pod spec (indented as a
// field of it), args go after its listening flags.
func goServerDeployment(ns, name string, inject bool, podSpec string, args ...string) string {
	annotations := ""
	if inject {
		annotations = "\n      annotations: {tracecam.io/inject: \"true\"}"
	}
	argv, _ := json.Marshal(append([]string{"--port", "8080", "--bind", "0.0.0.0"}, args...))
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata:
      labels: {app: %[2]s}%[3]s
    spec:%[4]s
      containers:
      - name: app
        image: localhost/tracecam-e2e-goserver:dev
        imagePullPolicy: Never
        args: %[5]s
        readinessProbe:
          httpGet: {path: /fast, port: 8080}
          periodSeconds: 1
`, ns, name, annotations, podSpec, argv)
}

// deploy applies a Deployment and waits for its rollout.
func (c *kubeCluster) deploy(t *testing.T, ns, name, yaml string) {
	t.Helper()
	c.mustKubectl(t, yaml, "apply", "-f", "-")
	c.mustKubectl(t, "", "-n", ns, "rollout", "status", "deployment/"+name, "--timeout=180s")
}

func (c *kubeCluster) pod(t *testing.T, ns, name string) kubePod {
	t.Helper()
	var p kubePod
	if err := json.Unmarshal([]byte(c.mustKubectl(t, "", "-n", ns, "get", "pod", name, "-o", "json")), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// podOf is the one running pod of a selector.
func (c *kubeCluster) podOf(t *testing.T, ns, selector string) kubePod {
	t.Helper()
	var list struct{ Items []kubePod }
	out := c.mustKubectl(t, "", "-n", ns, "get", "pods", "-l", selector, "--field-selector=status.phase=Running", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("%d running pods for %s, want 1", len(list.Items), selector)
	}
	return list.Items[0]
}

// truthMainNS is the goserver's TRUTH main_ns for a trace, from its log.
func (c *kubeCluster) truthMainNS(t *testing.T, ns, what, traceID string) int64 {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := c.kubectl(t, "", "-n", ns, "logs", what, "-c", "app")
		for _, line := range strings.Split(out, "\n") {
			if tr, ok := parseTruth(line); ok && tr.Trace == traceID {
				v, err := strconv.ParseInt(tr.Extra["main_ns"], 10, 64)
				if err != nil {
					t.Fatalf("TRUTH line %q: %v", line, err)
				}
				return v
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TRUTH line for %s in %s's log", traceID, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitRemoteProfile asks a sidecar's REST API for a trace until it holds
// n profiles.
func waitRemoteProfile(t *testing.T, hc *http.Client, base, traceID string, n int) []*profile.Profile {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for {
		resp, err := hc.Get(base + "/v1/traces/" + traceID)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
			if resp.StatusCode == 200 {
				var tr struct{ Profiles []json.RawMessage }
				if json.Unmarshal(body, &tr) == nil && len(tr.Profiles) >= n {
					var ps []*profile.Profile
					for _, raw := range tr.Profiles {
						p, err := decodeRESTProfile(raw)
						if err != nil {
							t.Fatalf("decoding a profile of %s: %v", traceID, err)
						}
						ps = append(ps, p)
					}
					return ps
				}
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no %d profiles of trace %s: %s", base, n, traceID, last)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// decodeRESTProfile reads one profile of the REST API (protojson of
// tracecam.v1.Profile) into the profile model.
func decodeRESTProfile(raw []byte) (*profile.Profile, error) {
	var pb tracecamv1.Profile
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, &pb); err != nil {
		return nil, err
	}
	return profilepb.FromProto(&pb), nil
}
