package kubeapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	sigyaml "sigs.k8s.io/yaml"
)

// FieldManager is the server-side apply field manager Apply uses.
const FieldManager = "tracecam-e2e"

const (
	adminUser = "tracecam-admin"
	// The tests run under `go test -timeout`; stopping the build and the
	// readiness waits a little before it leaves time for cleanups, where
	// the timeout's panic would leave no trace of why.
	deadlineMargin = 30 * time.Second
	etcdReady      = 30 * time.Second
	apiserverReady = 90 * time.Second // measured 2.3–3.5 s idle; generous for a loaded CI machine
	stopGrace      = 15 * time.Second // kube-apiserver exits ~1.1 s after SIGTERM
	startAttempts  = 3
	logTailLines   = 40
)

// Server is a running etcd plus kube-apiserver, stopped when the test ends.
type Server struct {
	Config     *rest.Config // admin: bearer token, CA = the apiserver's self-signed serving cert
	Client     kubernetes.Interface
	Dynamic    dynamic.Interface
	Mapper     meta.RESTMapper // deferred discovery mapper (meta.ResettableRESTMapper) for applying arbitrary manifests
	URL        string
	Kubeconfig string // path to a kubeconfig file (token auth) for binaries started by tests
	Dir        string

	procs []*proc // in start order; stopped in reverse
}

// Binaries returns the paths of kube-apiserver and etcd, building them with
// build.sh when missing (cached in <repo>/.cache/kube; KUBE_BINARIES_DIR
// overrides the folder). The build's progress goes to stderr. A cold build
// takes about 8 minutes; ctx bounds it.
func Binaries(ctx context.Context) (apiserver, etcd string, err error) {
	return binaries(ctx, os.Stderr)
}

// buildMu serialises builds within one test binary; build.sh itself takes a
// file lock against other processes (several test packages run at once).
var buildMu sync.Mutex

func binaries(ctx context.Context, progress io.Writer) (apiserver, etcd string, err error) {
	script, err := buildScript()
	if err != nil {
		return "", "", err
	}
	dir := os.Getenv("KUBE_BINARIES_DIR")
	if dir == "" {
		dir = filepath.Join(filepath.Dir(script), "..", "..", ".cache", "kube")
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", "", fmt.Errorf("binaries folder: %w", err)
	}
	apiserver = filepath.Join(dir, "kube-apiserver")
	etcd = filepath.Join(dir, "etcd")
	// Binaries put there by hand (no build.sh stamp) are used as they are;
	// otherwise build.sh decides, as it rebuilds when the wanted versions
	// changed and returns at once when they did not.
	if _, err := os.Stat(filepath.Join(dir, "versions")); errors.Is(err, os.ErrNotExist) &&
		isExecutable(apiserver) && isExecutable(etcd) {
		return apiserver, etcd, nil
	}

	buildMu.Lock()
	defer buildMu.Unlock()
	cmd := exec.CommandContext(ctx, "bash", script, dir)
	cmd.Stdout = progress
	cmd.Stderr = progress
	// The script's go commands are its children: on cancellation kill the
	// whole process group, not just bash.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return "", "", fmt.Errorf("building kube-apiserver and etcd with %s: %w", script, err)
	}
	for _, b := range []string{apiserver, etcd} {
		if !isExecutable(b) {
			return "", "", fmt.Errorf("%s succeeded but %s is not an executable", script, b)
		}
	}
	return apiserver, etcd, nil
}

// buildScript finds build.sh: next to this source file, or, when the test
// binary was built elsewhere (-trimpath), below the working directory's
// module root.
func buildScript() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		p := filepath.Join(filepath.Dir(file), "build.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding build.sh: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "e2e", "kubeapi", "build.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("finding build.sh: not next to kubeapi.go nor in e2e/kubeapi above %s", wd)
		}
	}
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Start starts etcd (fresh data dir in t.TempDir()) and kube-apiserver on
// free loopback ports, waits until /readyz is 200, creates the `default`
// ServiceAccount in namespace `default` (the controller-manager normally
// does; pods are rejected without it) and stops both when the test ends,
// printing the last lines of their logs if it failed. It skips the test when
// the binaries cannot be built, unless TRACECAM_REQUIRE_KUBE is set.
func Start(t testing.TB) *Server {
	t.Helper()
	ctx := t.Context()
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, ok := d.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline.Add(-deadlineMargin))
			defer cancel()
		}
	}

	lw := &logWriter{t: t, prefix: "build.sh: "}
	apiserverBin, etcdBin, err := binaries(ctx, lw)
	lw.flush()
	if err != nil {
		if os.Getenv("TRACECAM_REQUIRE_KUBE") != "" {
			t.Fatalf("kube-apiserver and etcd are required (TRACECAM_REQUIRE_KUBE is set): %v", err)
		}
		t.Skipf("no kube-apiserver and etcd (set TRACECAM_REQUIRE_KUBE=1 to fail instead): %v", err)
	}

	s := &Server{Dir: t.TempDir()}
	t.Cleanup(func() {
		// What the servers logged up to now explains a failure; what they
		// log while shutting down does not.
		sizes := make([]int64, len(s.procs))
		for i, p := range s.procs {
			if fi, err := os.Stat(p.log); err == nil {
				sizes[i] = fi.Size()
			}
		}
		for i := len(s.procs) - 1; i >= 0; i-- {
			s.procs[i].stop(stopGrace)
		}
		if t.Failed() {
			for i, p := range s.procs {
				t.Logf("last lines of %s's log %s before it was stopped:\n%s", p.name, p.log, tail(p.log, sizes[i], logTailLines))
			}
		}
	})

	token, err := s.writeCredentials()
	if err != nil {
		t.Fatalf("kubeapi: %v", err)
	}
	etcdURL, err := s.startEtcd(ctx, t, etcdBin)
	if err != nil {
		t.Fatalf("kubeapi: %v", err)
	}
	began := time.Now()
	ca, err := s.startAPIServer(ctx, t, apiserverBin, etcdURL, token)
	if err != nil {
		t.Fatalf("kubeapi: %v", err)
	}
	t.Logf("kube-apiserver at %s ready %.1f s after start (etcd at %s, files in %s)", s.URL, time.Since(began).Seconds(), etcdURL, s.Dir)

	if err := s.connect(token, ca); err != nil {
		t.Fatalf("kubeapi: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.EnsureNamespace(ctx, metav1.NamespaceDefault); err != nil {
		t.Fatalf("kubeapi: %v", err)
	}
	return s
}

// writeCredentials writes the static token file (a random admin token in
// system:masters) and the service-account key pair; it returns the token.
func (s *Server) writeCredentials() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	token := hex.EncodeToString(b)
	// token,user,uid,"group1,group2"
	line := fmt.Sprintf("%s,%s,%s,\"system:masters\"\n", token, adminUser, adminUser)
	if err := os.WriteFile(filepath.Join(s.Dir, "tokens.csv"), []byte(line), 0o600); err != nil {
		return "", fmt.Errorf("writing token file: %w", err)
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", fmt.Errorf("service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", fmt.Errorf("service-account public key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	if err := os.WriteFile(filepath.Join(s.Dir, "sa.key"), keyPEM, 0o600); err != nil {
		return "", fmt.Errorf("writing service-account key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "sa.pub"), pubPEM, 0o644); err != nil {
		return "", fmt.Errorf("writing service-account public key: %w", err)
	}
	return token, nil
}

// startEtcd starts etcd on free ports, again on others when one was taken
// between choosing and binding it; it returns the client URL.
func (s *Server) startEtcd(ctx context.Context, t testing.TB, bin string) (string, error) {
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(2)
		if err != nil {
			return "", err
		}
		client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		p, err := s.startProc("etcd", attempt, bin,
			"--name=tracecam-e2e",
			"--data-dir="+filepath.Join(s.Dir, fmt.Sprintf("etcd-data-%d", attempt)),
			"--listen-client-urls="+client,
			"--advertise-client-urls="+client,
			"--listen-peer-urls="+peer,
			"--initial-advertise-peer-urls="+peer,
			"--initial-cluster=tracecam-e2e="+peer,
			"--log-level=warn",
			// The data dies with the test: no need to wait for the disk.
			"--unsafe-no-fsync",
		)
		if err != nil {
			return "", err
		}
		hc := &http.Client{}
		err = p.waitReady(ctx, etcdReady, func(ctx context.Context) error {
			return httpGetOK(ctx, hc, client+"/health", "")
		})
		if err == nil {
			return client, nil
		}
		p.stop(stopGrace)
		if attempt < startAttempts && portTaken(p.log) {
			t.Logf("kubeapi: etcd lost a port to another process, retrying: %v", err)
			continue
		}
		return "", err
	}
}

// startAPIServer starts kube-apiserver against etcdURL on a free port (again
// on another when it was taken meanwhile) and returns its serving
// certificate, self-signed into --cert-dir, once /readyz answers 200.
func (s *Server) startAPIServer(ctx context.Context, t testing.TB, bin, etcdURL, token string) ([]byte, error) {
	certDir := filepath.Join(s.Dir, "certs")
	certFile := filepath.Join(certDir, "apiserver.crt")
	for attempt := 1; ; attempt++ {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		url := "https://127.0.0.1:" + strconv.Itoa(ports[0])
		p, err := s.startProc("kube-apiserver", attempt, bin,
			"--etcd-servers="+etcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port="+strconv.Itoa(ports[0]),
			"--cert-dir="+certDir,
			// The default reconciler refuses a loopback advertise address.
			"--endpoint-reconciler-type=none",
			"--service-account-issuer=https://kubernetes.default.svc",
			"--service-account-key-file="+filepath.Join(s.Dir, "sa.pub"),
			"--service-account-signing-key-file="+filepath.Join(s.Dir, "sa.key"),
			"--service-cluster-ip-range=10.0.0.0/24",
			"--token-auth-file="+filepath.Join(s.Dir, "tokens.csv"),
			"--authorization-mode=RBAC",
		)
		if err != nil {
			return nil, err
		}
		var ca []byte
		err = p.waitReady(ctx, apiserverReady, func(ctx context.Context) error {
			// The certificate is written early in start-up, possibly not in
			// one piece: read it again on every try until it verifies.
			b, err := os.ReadFile(certFile)
			if err != nil {
				return fmt.Errorf("no serving certificate yet: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				return fmt.Errorf("no certificate in %s yet", certFile)
			}
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			defer hc.CloseIdleConnections()
			if err := httpGetOK(ctx, hc, url+"/readyz", token); err != nil {
				return err
			}
			ca = b
			return nil
		})
		if err == nil {
			s.URL = url
			return ca, nil
		}
		p.stop(stopGrace)
		if attempt < startAttempts && portTaken(p.log) {
			t.Logf("kubeapi: kube-apiserver lost its port to another process, retrying: %v", err)
			continue
		}
		return nil, err
	}
}

// connect builds the admin clients, the mapper and the kubeconfig file.
func (s *Server) connect(token string, ca []byte) error {
	s.Config = &rest.Config{
		Host:            s.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		// The default 5 qps throttles tests that apply many objects.
		QPS:   100,
		Burst: 200,
	}
	client, err := kubernetes.NewForConfig(s.Config)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	s.Client, s.Dynamic = client, dyn
	s.Mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))

	const name = "tracecam-e2e"
	kc := clientcmdapi.Config{
		Clusters:       map[string]*clientcmdapi.Cluster{name: {Server: s.URL, CertificateAuthorityData: ca}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{adminUser: {Token: token}},
		Contexts:       map[string]*clientcmdapi.Context{name: {Cluster: name, AuthInfo: adminUser, Namespace: metav1.NamespaceDefault}},
		CurrentContext: name,
	}
	s.Kubeconfig = filepath.Join(s.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(kc, s.Kubeconfig); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// EnsureNamespace creates namespace ns if missing, and in it the ServiceAccount
// "default" (made by the controller-manager in a cluster; pods are rejected
// without it). Note that without the controller-manager a deleted namespace
// stays Terminating forever.
func (s *Server) EnsureNamespace(ctx context.Context, ns string) error {
	_, err := s.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns}}
	_, err = s.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating service account default in namespace %s: %w", ns, err)
	}
	return nil
}

// Apply creates or updates (or with dryRun, server-side dry-runs) every
// object in a multi-document YAML, in order, through the dynamic client and
// Mapper, and returns the objects as the server answered them. Objects with
// a name use server-side apply (field manager FieldManager, forced), so
// applying the same YAML twice is fine; objects with only generateName are
// created. Fields are validated strictly. Namespaced objects without a
// namespace go to "default". With dryRun nothing is stored, not even
// Namespaces in the YAML: create those first (EnsureNamespace).
func (s *Server) Apply(ctx context.Context, yaml []byte, dryRun bool) ([]*unstructured.Unstructured, error) {
	objs, err := Decode(yaml)
	if err != nil {
		return nil, err
	}
	var dry []string
	if dryRun {
		dry = []string{metav1.DryRunAll}
	}
	force := true
	applied := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		ri, err := s.ResourceFor(obj)
		if err != nil {
			return applied, err
		}
		var out *unstructured.Unstructured
		if obj.GetName() == "" && obj.GetGenerateName() != "" {
			out, err = ri.Create(ctx, obj, metav1.CreateOptions{DryRun: dry, FieldManager: FieldManager, FieldValidation: metav1.FieldValidationStrict})
		} else {
			var data []byte
			if data, err = obj.MarshalJSON(); err != nil {
				return applied, fmt.Errorf("encoding %s: %w", Describe(obj), err)
			}
			out, err = ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
				DryRun: dry, Force: &force, FieldManager: FieldManager, FieldValidation: metav1.FieldValidationStrict,
			})
		}
		if err != nil {
			return applied, fmt.Errorf("applying %s: %w", Describe(obj), err)
		}
		applied = append(applied, out)
	}
	return applied, nil
}

// ResourceFor returns the dynamic client for obj's resource, in obj's
// namespace ("default" when it has none) if the resource is namespaced.
// When the kind is unknown it refreshes the discovery cache once (a CRD may
// just have been created); the error then satisfies meta.IsNoMatchError.
func (s *Server) ResourceFor(obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := obj.GroupVersionKind()
	m, err := s.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		if r, ok := s.Mapper.(meta.ResettableRESTMapper); ok {
			r.Reset()
			m, err = s.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("finding the resource of %s: %w", Describe(obj), err)
	}
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		return s.Dynamic.Resource(m.Resource), nil
	}
	ns := obj.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	return s.Dynamic.Resource(m.Resource).Namespace(ns), nil
}

// Decode splits a multi-document YAML (or JSON) into objects, expanding
// `kind: List` documents; empty documents are skipped, and a document
// without apiVersion or kind is an error.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading YAML document %d: %w", i, err)
		}
		j, err := sigyaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("YAML document %d: %w", i, err)
		}
		if t := bytes.TrimSpace(j); len(t) == 0 || string(t) == "null" {
			continue // only comments or "---" separators
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(j); err != nil {
			return nil, fmt.Errorf("YAML document %d is not a Kubernetes object: %w", i, err)
		}
		if obj.GetAPIVersion() == "" || obj.GetKind() == "" {
			return nil, fmt.Errorf("YAML document %d has no apiVersion or kind", i)
		}
		if !obj.IsList() {
			objs = append(objs, obj)
			continue
		}
		list, err := obj.ToList()
		if err != nil {
			return nil, fmt.Errorf("YAML document %d (a %s): %w", i, obj.GetKind(), err)
		}
		for k := range list.Items {
			objs = append(objs, &list.Items[k])
		}
	}
}

// Describe names an object for messages: "Kind namespace/name (apiVersion)".
func Describe(obj *unstructured.Unstructured) string {
	name := obj.GetName()
	if name == "" {
		name = obj.GetGenerateName() + "*"
	}
	if ns := obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s %s (%s)", obj.GetKind(), name, obj.GetAPIVersion())
}

// freePorts returns n distinct loopback ports that were free a moment ago
// (the listeners are held together so the ports differ, then closed).
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func portTaken(logPath string) bool {
	b, err := os.ReadFile(logPath)
	return err == nil && bytes.Contains(b, []byte("address already in use"))
}

// httpGetOK returns nil when GET url answers 200.
func httpGetOK(ctx context.Context, hc *http.Client, url, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// proc is a started etcd or kube-apiserver with its output in a log file.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when it exited; err is set then
	err  error
}

func (s *Server) startProc(name string, attempt int, bin string, args ...string) (*proc, error) {
	logName := name + ".log"
	if attempt > 1 {
		logName = fmt.Sprintf("%s-%d.log", name, attempt)
	}
	p := &proc{name: name, log: filepath.Join(s.Dir, logName), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = s.Dir
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// Should the test binary die (a -timeout panic skips cleanups), the
	// kernel stops the servers rather than leaving them running.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	s.procs = append(s.procs, p)
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// waitReady calls check until it succeeds, the process exits, or timeout.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		err := check(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			// The test's cleanup prints the log's last lines.
			return fmt.Errorf("%s exited before it was ready (%v); log in %s", p.name, p.err, p.log)
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (%w): %w", p.name, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the last n lines of a file's first size bytes.
func tail(path string, size int64, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	if size < int64(len(b)) {
		b = b[:size]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logWriter sends whole lines to the test log (build progress).
type logWriter struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.t.Log(w.prefix + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.t.Log(w.prefix + string(w.buf))
		w.buf = nil
	}
}
