package manifests

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/tracecam/tracecam/webhook"
)

// Names the rest of tracecam relies on.
const (
	systemNamespace = "tracecam-system"
	demoNamespace   = "tracecam-demo"
	webhookName     = "tracecam-webhook" // Deployment, Service, ServiceAccount, Roles
	webhookConfig   = "tracecam"         // the MutatingWebhookConfiguration
	webhookEntry    = "inject.tracecam.io"
	tlsSecret       = "tracecam-webhook-tls" // --secret-name, self mode
	redisName       = "tracecam-redis"
	webhookPort     = 8443
	partOfLabel     = "app.kubernetes.io/part-of"
	webhookImage    = "ghcr.io/tracecam/tracecam-webhook"
	sidecarImage    = "ghcr.io/tracecam/tracecam-sidecar"
	certManagerDir  = "cert-manager"
	exampleDir      = "example"
)

// ownDirs are the folders these tests own, with the namespace of their
// namespaced objects. (Others, such as monitoring/, get the generic checks
// only.)
var ownDirs = map[string]string{".": systemNamespace, exampleDir: demoNamespace, certManagerDir: systemNamespace}

// TestEveryObject: every document of every manifest decodes strictly (in
// loadAll) and names itself; namespaced objects carry their namespace
// (the files are also applied one by one, without kustomize), cluster-scoped
// ones none; objects of this folder, example/ and cert-manager/ are in the
// right namespace and labelled part of tracecam.
func TestEveryObject(t *testing.T) {
	s := loadAll(t)
	for _, o := range s.objects {
		t.Run(fmt.Sprintf("%s#%d", o.file, o.index), func(t *testing.T) {
			gvk := o.gvk()
			if gvk.Version == "" || gvk.Kind == "" {
				t.Fatalf("%s: no apiVersion or kind", o)
			}
			if o.u.GetName() == "" {
				t.Errorf("%s: no metadata.name", o)
			}
			ns := o.u.GetNamespace()
			if clusterScoped[gvk.GroupKind()] {
				if ns != "" {
					t.Errorf("%s: %s is cluster-scoped but has namespace %q", o, gvk.Kind, ns)
				}
			} else if ns == "" {
				t.Errorf("%s: namespaced %s without metadata.namespace", o, gvk.Kind)
			}
			if o.typed == nil && gvk.Group != "cert-manager.io" && !strings.HasPrefix(o.file, "monitoring/") {
				t.Errorf("%s: %s is not a Kubernetes API type client-go knows (CRDs other than cert-manager.io belong elsewhere)", o, gvk)
			}
			want, own := ownDirs[path.Dir(o.file)]
			if !own {
				return
			}
			if ns != "" && ns != want {
				t.Errorf("%s: namespace %q, want %q", o, ns, want)
			}
			if got := o.u.GetLabels()[partOfLabel]; got != "tracecam" {
				t.Errorf("%s: label %s=%q, want tracecam", o, partOfLabel, got)
			}
			if path.Dir(o.file) == certManagerDir && gvk.Group != "cert-manager.io" {
				t.Errorf("%s: cert-manager/ holds cert-manager.io objects only (changes to the base are patches in its kustomization)", o)
			}
		})
	}
}

// TestMutatingWebhookConfiguration: the webhook fails open, is called only
// for the creation of annotated pods outside the system namespaces, through
// the Service, and leaves its caBundle to the webhook.
func TestMutatingWebhookConfiguration(t *testing.T) {
	s := loadAll(t)
	if docs := s.files[MutatingWebhookConfigurationFile]; len(docs) != 1 {
		t.Fatalf("%s holds %d documents, want exactly 1 (tests load it as one object)", MutatingWebhookConfigurationFile, len(docs))
	}
	cfg := find[*admissionregistrationv1.MutatingWebhookConfiguration](t, s, ".", webhookConfig)
	if len(cfg.Webhooks) != 1 {
		t.Fatalf("%d webhooks, want 1", len(cfg.Webhooks))
	}
	w := cfg.Webhooks[0]
	svc := find[*corev1.Service](t, s, ".", webhookName)

	deref := func(p *int32) int32 {
		if p == nil {
			return -1
		}
		return *p
	}
	checks := []struct {
		name string
		ok   bool
		got  any
	}{
		{"name is " + webhookEntry, w.Name == webhookEntry, w.Name},
		{"admissionReviewVersions [v1]", slices.Equal(w.AdmissionReviewVersions, []string{"v1"}), w.AdmissionReviewVersions},
		{"failurePolicy Ignore (fail open)", w.FailurePolicy != nil && *w.FailurePolicy == admissionregistrationv1.Ignore, w.FailurePolicy},
		{"timeoutSeconds set, 1..10", w.TimeoutSeconds != nil && *w.TimeoutSeconds >= 1 && *w.TimeoutSeconds <= 10, deref(w.TimeoutSeconds)},
		{"sideEffects None", w.SideEffects != nil && *w.SideEffects == admissionregistrationv1.SideEffectClassNone, w.SideEffects},
		{"reinvocationPolicy IfNeeded", w.ReinvocationPolicy != nil && *w.ReinvocationPolicy == admissionregistrationv1.IfNeededReinvocationPolicy, w.ReinvocationPolicy},
		{"no caBundle (the webhook or cert-manager sets it)", len(w.ClientConfig.CABundle) == 0, len(w.ClientConfig.CABundle)},
		{"clientConfig is a service, not a URL", w.ClientConfig.URL == nil && w.ClientConfig.Service != nil, w.ClientConfig},
		{"no objectSelector (matchConditions select)", w.ObjectSelector == nil, w.ObjectSelector},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: got %s", c.name, toJSON(c.got))
		}
	}
	if ref := w.ClientConfig.Service; ref != nil {
		if ref.Namespace != systemNamespace || ref.Name != svc.Name || ref.Path == nil || *ref.Path != "/mutate-v1-pod" {
			t.Errorf("clientConfig.service = %s/%s path %s, want %s/%s path /mutate-v1-pod", ref.Namespace, ref.Name, toJSON(ref.Path), systemNamespace, svc.Name)
		}
		port := int32(443)
		if ref.Port != nil {
			port = *ref.Port
		}
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == port }) {
			t.Errorf("clientConfig.service port %d is not a port of Service %s", port, svc.Name)
		}
	}

	// Only CREATE of core v1 pods.
	want := admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
			Scope: ptr(admissionregistrationv1.NamespacedScope),
		},
	}
	if len(w.Rules) != 1 || !equalJSON(w.Rules[0], want) {
		t.Errorf("rules = %s, want exactly %s", toJSON(w.Rules), toJSON(want))
	}

	// The namespace selector leaves out the system namespaces and only them.
	sel, err := metav1.LabelSelectorAsSelector(w.NamespaceSelector)
	if err != nil || w.NamespaceSelector == nil {
		t.Fatalf("namespaceSelector %v: %v", w.NamespaceSelector, err)
	}
	nsLabels := func(name string) labels.Set { return labels.Set{"kubernetes.io/metadata.name": name} }
	for ns, wantMatch := range map[string]bool{"kube-system": false, systemNamespace: false, "default": true, demoNamespace: true} {
		if got := sel.Matches(nsLabels(ns)); got != wantMatch {
			t.Errorf("namespaceSelector matches namespace %s: %v, want %v", ns, got, wantMatch)
		}
	}

	// matchConditions: the API server checks the annotation itself.
	if len(w.MatchConditions) == 0 {
		t.Fatal("no matchConditions: the webhook would be called for every pod")
	}
	var inject bool
	for _, mc := range w.MatchConditions {
		if strings.Contains(mc.Expression, "'"+webhook.AnnotationInject+"'") && strings.Contains(mc.Expression, "lowerAscii()") {
			inject = true
		}
	}
	if !inject {
		t.Errorf("no matchCondition tests %s case-insensitively (lowerAscii): %s", webhook.AnnotationInject, toJSON(w.MatchConditions))
	}

	// The embedded copy decodes the same.
	embedded, err := MutatingWebhookConfiguration()
	if err != nil {
		t.Fatal(err)
	}
	if !equalJSON(embedded, cfg) {
		t.Error("MutatingWebhookConfiguration() differs from the file")
	}
}

// webhookContainer returns the webhook Deployment and its one container.
func webhookContainer(t *testing.T, s *set) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	d := find[*appsv1.Deployment](t, s, ".", webhookName)
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("webhook Deployment has %d containers, want 1", n)
	}
	return d, d.Spec.Template.Spec.Containers[0]
}

// flagArgs parses --name=value arguments (every argument of the webhook is
// written that way).
func flagArgs(t *testing.T, args []string) map[string]string {
	t.Helper()
	flags := map[string]string{}
	for _, a := range args {
		name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok || name == "" {
			t.Errorf("argument %q is not --name=value", a)
			continue
		}
		if _, dup := flags[name]; dup {
			t.Errorf("flag --%s given twice", name)
		}
		flags[name] = value
	}
	return flags
}

// TestWebhookDeployment: two replicas spread over nodes, non-root with a
// read-only root filesystem and no capabilities, HTTPS probes on its port,
// resources, its namespace from the downward API, a writable cert dir.
func TestWebhookDeployment(t *testing.T) {
	s := loadAll(t)
	d, c := webhookContainer(t, s)
	spec := d.Spec.Template.Spec
	flags := flagArgs(t, c.Args)

	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("replicas %s, want 2", toJSON(d.Spec.Replicas))
	}
	if spec.ServiceAccountName != webhookName {
		t.Errorf("serviceAccountName %q, want %s", spec.ServiceAccountName, webhookName)
	}
	checkSelects(t, "the Deployment's selector", d.Spec.Selector, d.Spec.Template.Labels)
	checkRestricted(t, spec, c)
	if sc := c.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
		if ps := spec.SecurityContext; ps == nil || ps.RunAsUser == nil || *ps.RunAsUser != 65532 {
			t.Error("the webhook does not run as uid 65532 (distroless nonroot)")
		}
	}

	// Spread over nodes: a topology spread constraint or anti-affinity on
	// the hostname that selects the webhook's own pods.
	spread := false
	for _, tsc := range spec.TopologySpreadConstraints {
		if tsc.TopologyKey == "kubernetes.io/hostname" && selects(tsc.LabelSelector, d.Spec.Template.Labels) {
			spread = true
		}
	}
	if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, term := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			if term.PodAffinityTerm.TopologyKey == "kubernetes.io/hostname" && selects(term.PodAffinityTerm.LabelSelector, d.Spec.Template.Labels) {
				spread = true
			}
		}
	}
	if !spread {
		t.Error("replicas are not spread over nodes (topologySpreadConstraints or podAntiAffinity on kubernetes.io/hostname)")
	}

	// Port and probes.
	if got := flags["port"]; got != strconv.Itoa(webhookPort) {
		t.Errorf("--port=%q, want %d", got, webhookPort)
	}
	if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == webhookPort }) {
		t.Errorf("container port %d not declared", webhookPort)
	}
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, "/readyz"}, {"livenessProbe", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe", p.what)
			continue
		}
		g := p.probe.HTTPGet
		if g.Scheme != corev1.URISchemeHTTPS || g.Path != p.path || containerPort(c, g.Port) != webhookPort {
			t.Errorf("%s: %s %s port %s, want HTTPS %s port %d", p.what, g.Scheme, g.Path, g.Port.String(), p.path, webhookPort)
		}
	}

	// Resources: requests and limits for CPU and memory.
	for _, l := range []struct {
		what string
		list corev1.ResourceList
	}{{"requests", c.Resources.Requests}, {"limits", c.Resources.Limits}} {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := l.list[r]; !ok || q.Sign() <= 0 {
				t.Errorf("resources.%s.%s not set", l.what, r)
			}
		}
	}

	// POD_NAMESPACE from the downward API (the default of --namespace).
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	}) {
		t.Error("env POD_NAMESPACE is not the downward API's metadata.namespace")
	}

	// TLS: self mode, the key pair in a writable emptyDir at --cert-dir,
	// the Secret and webhook configuration RBAC grants access to.
	if flags["tls-mode"] != "self" {
		t.Errorf("--tls-mode=%q, want self in the base (cert-manager/ switches it to files)", flags["tls-mode"])
	}
	if v := certVolume(t, d, c, flags["cert-dir"]); v != nil && v.EmptyDir == nil {
		t.Errorf("the cert dir volume %q is not an emptyDir", v.Name)
	}
	if got := flags["secret-name"]; got != "" && got != tlsSecret {
		t.Errorf("--secret-name=%q, but RBAC grants %s", got, tlsSecret)
	}
	if got := flags["webhook-config-name"]; got != "" && got != webhookConfig {
		t.Errorf("--webhook-config-name=%q, but the configuration is %s", got, webhookConfig)
	}
	if got := flags["service-name"]; got != "" && got != webhookName {
		t.Errorf("--service-name=%q, but the Service is %s", got, webhookName)
	}

	// Images.
	if name, _ := splitImage(c.Image); name != webhookImage {
		t.Errorf("image %q, want %s", c.Image, webhookImage)
	}
	if name, _ := splitImage(flags["sidecar-image"]); name != sidecarImage {
		t.Errorf("--sidecar-image=%q, want %s", flags["sidecar-image"], sidecarImage)
	}

	// Redis: the Service of redis.yaml, by a name that resolves from any
	// namespace (the sidecars run in the application pods').
	redis := find[*corev1.Service](t, s, ".", redisName)
	wantRedis := fmt.Sprintf("%s.%s.svc.cluster.local:%d", redis.Name, redis.Namespace, redis.Spec.Ports[0].Port)
	if got := flags["redis-addr"]; got != wantRedis {
		t.Errorf("--redis-addr=%q, want %q", got, wantRedis)
	}

	// The sidecar configuration is one the webhook accepts.
	if err := sidecarConfig(t, flags).Validate(); err != nil {
		t.Errorf("the webhook would reject its sidecar configuration: %v", err)
	}
}

// certVolume returns the volume mounted at dir, failing without one.
func certVolume(t *testing.T, d *appsv1.Deployment, c corev1.Container, dir string) *corev1.Volume {
	t.Helper()
	if dir == "" {
		dir = "/var/run/tracecam-webhook/certs" // the webhook's default
	}
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return path.Clean(m.MountPath) == path.Clean(dir) })
	if i < 0 {
		t.Errorf("nothing is mounted at the cert dir %s (the root filesystem is read-only)", dir)
		return nil
	}
	for j := range d.Spec.Template.Spec.Volumes {
		if v := &d.Spec.Template.Spec.Volumes[j]; v.Name == c.VolumeMounts[i].Name {
			return v
		}
	}
	t.Errorf("volume %q of the cert dir mount is not declared", c.VolumeMounts[i].Name)
	return nil
}

// sidecarConfig builds the webhook's injection Config from its flags, the
// way the webhook does.
func sidecarConfig(t *testing.T, flags map[string]string) webhook.Config {
	t.Helper()
	cfg := webhook.DefaultConfig()
	cfg.Image = flags["sidecar-image"]
	if v, ok := flags["sidecar-image-pull-policy"]; ok {
		cfg.ImagePullPolicy = corev1.PullPolicy(v)
	}
	if v, ok := flags["native-sidecar"]; ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			t.Errorf("--native-sidecar=%q: %v", v, err)
		}
		cfg.NativeSidecar = b
	}
	for flag, field := range map[string]*string{
		"segment-threshold": &cfg.SegmentThreshold, "redis-addr": &cfg.RedisAddr, "cluster-name": &cfg.ClusterName,
		"sidecar-log-level": &cfg.LogLevel, "redis-password-secret": &cfg.RedisPasswordSecret,
	} {
		if v, ok := flags[flag]; ok {
			*field = v
		}
	}
	for flag, where := range map[string]struct {
		list *corev1.ResourceList
		name corev1.ResourceName
	}{
		"sidecar-cpu-request": {&cfg.Resources.Requests, corev1.ResourceCPU}, "sidecar-cpu-limit": {&cfg.Resources.Limits, corev1.ResourceCPU},
		"sidecar-memory-request": {&cfg.Resources.Requests, corev1.ResourceMemory}, "sidecar-memory-limit": {&cfg.Resources.Limits, corev1.ResourceMemory},
	} {
		if v, ok := flags[flag]; ok {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				t.Errorf("--%s=%q: %v", flag, v, err)
				continue
			}
			(*where.list)[where.name] = q
		}
	}
	return cfg
}

// checkRestricted checks what the "restricted" Pod Security Standard asks
// of a pod and its container, and a read-only root filesystem.
func checkRestricted(t *testing.T, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	ps, cs := spec.SecurityContext, c.SecurityContext
	if ps == nil {
		ps = &corev1.PodSecurityContext{}
	}
	if cs == nil {
		t.Fatalf("container %s: no securityContext", c.Name)
	}
	nonRoot := (cs.RunAsNonRoot != nil && *cs.RunAsNonRoot) || (cs.RunAsNonRoot == nil && ps.RunAsNonRoot != nil && *ps.RunAsNonRoot)
	seccomp := cs.SeccompProfile
	if seccomp == nil {
		seccomp = ps.SeccompProfile
	}
	for _, c2 := range []struct {
		what string
		ok   bool
	}{
		{"runAsNonRoot", nonRoot},
		{"readOnlyRootFilesystem", cs.ReadOnlyRootFilesystem != nil && *cs.ReadOnlyRootFilesystem},
		{"allowPrivilegeEscalation false", cs.AllowPrivilegeEscalation != nil && !*cs.AllowPrivilegeEscalation},
		{"not privileged", cs.Privileged == nil || !*cs.Privileged},
		{"capabilities drop ALL, add none", cs.Capabilities != nil && slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) && len(cs.Capabilities.Add) == 0},
		{"seccomp RuntimeDefault", seccomp != nil && seccomp.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"no host namespaces", !spec.HostNetwork && !spec.HostPID && !spec.HostIPC},
	} {
		if !c2.ok {
			t.Errorf("container %s: want %s", c.Name, c2.what)
		}
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			t.Errorf("volume %s is a hostPath", v.Name)
		}
	}
}

// containerPort resolves a probe's or Service's target port in c; 0 when
// it names no port of c.
func containerPort(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

func selects(sel *metav1.LabelSelector, l map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(l))
}

func checkSelects(t *testing.T, what string, sel *metav1.LabelSelector, l map[string]string) {
	t.Helper()
	if !selects(sel, l) {
		t.Errorf("%s %s does not select the pods (labels %v)", what, toJSON(sel), l)
	}
}

// TestPDBAndServices: the PodDisruptionBudget keeps one webhook pod, and
// each Service selects its Deployment's pods on a port they declare.
func TestPDBAndServices(t *testing.T) {
	s := loadAll(t)
	d, c := webhookContainer(t, s)
	pdb := find[*policyv1.PodDisruptionBudget](t, s, ".", webhookName)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.String() != "1" || pdb.Spec.MaxUnavailable != nil {
		t.Errorf("PodDisruptionBudget: minAvailable %s maxUnavailable %s, want minAvailable 1", toJSON(pdb.Spec.MinAvailable), toJSON(pdb.Spec.MaxUnavailable))
	}
	checkSelects(t, "the PodDisruptionBudget's selector", pdb.Spec.Selector, d.Spec.Template.Labels)

	for _, dir := range []string{".", exampleDir} {
		for _, svc := range all[*corev1.Service](s, dir) {
			t.Run(path.Join(dir, svc.Name), func(t *testing.T) {
				var deps []*appsv1.Deployment
				for _, dep := range all[*appsv1.Deployment](s, dir) {
					if selects(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, dep.Spec.Template.Labels) {
						deps = append(deps, dep)
					}
				}
				if len(deps) != 1 {
					t.Fatalf("Service %s selects the pods of %d Deployments, want 1", svc.Name, len(deps))
				}
				spec := deps[0].Spec.Template.Spec
				for _, p := range svc.Spec.Ports {
					found := false
					for _, cc := range append(slices.Clone(spec.Containers), spec.InitContainers...) {
						if containerPort(cc, p.TargetPort) != 0 && slices.ContainsFunc(cc.Ports, func(cp corev1.ContainerPort) bool {
							return cp.ContainerPort == containerPort(cc, p.TargetPort)
						}) {
							found = true
						}
					}
					// The demo's Service also exposes the injected sidecar's ports.
					injected := dir == exampleDir && (p.TargetPort.IntValue() == webhook.GRPCPort || p.TargetPort.IntValue() == webhook.HTTPPort)
					if !found && !injected {
						t.Errorf("Service port %s: target %s is no container port of %s", p.Name, p.TargetPort.String(), deps[0].Name)
					}
				}
			})
		}
	}
	svc := find[*corev1.Service](t, s, ".", webhookName)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || containerPort(c, svc.Spec.Ports[0].TargetPort) != webhookPort {
		t.Errorf("Service %s ports %s, want 443 -> %d", webhookName, toJSON(svc.Spec.Ports), webhookPort)
	}
}

// TestRBAC: exactly the minimal rules the webhook's certificate management
// needs, bound to its ServiceAccount; no wildcard anywhere.
func TestRBAC(t *testing.T) {
	s := loadAll(t)
	for _, r := range all[*rbacv1.Role](s, "") {
		checkNoWildcards(t, "Role "+r.Name, r.Rules)
	}
	for _, r := range all[*rbacv1.ClusterRole](s, "") {
		checkNoWildcards(t, "ClusterRole "+r.Name, r.Rules)
		if r.AggregationRule != nil {
			t.Errorf("ClusterRole %s aggregates other roles", r.Name)
		}
	}

	role := find[*rbacv1.Role](t, s, ".", webhookName)
	wantRole := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{tlsSecret}, Verbs: []string{"get", "update"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}}, // create cannot be limited by name
	}
	if !equalJSON(role.Rules, wantRole) {
		t.Errorf("Role %s rules = %s\nwant %s", role.Name, toJSON(role.Rules), toJSON(wantRole))
	}
	cr := find[*rbacv1.ClusterRole](t, s, ".", webhookName)
	wantCluster := []rbacv1.PolicyRule{
		{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, ResourceNames: []string{webhookConfig}, Verbs: []string{"get", "update", "patch"}},
	}
	if !equalJSON(cr.Rules, wantCluster) {
		t.Errorf("ClusterRole %s rules = %s\nwant %s", cr.Name, toJSON(cr.Rules), toJSON(wantCluster))
	}

	sa := find[*corev1.ServiceAccount](t, s, ".", webhookName)
	wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: sa.Namespace}}
	rb := find[*rbacv1.RoleBinding](t, s, ".", webhookName)
	if rb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}) || !equalJSON(rb.Subjects, wantSubjects) {
		t.Errorf("RoleBinding %s: roleRef %v subjects %v, want Role %s and %v", rb.Name, rb.RoleRef, rb.Subjects, role.Name, wantSubjects)
	}
	crb := find[*rbacv1.ClusterRoleBinding](t, s, ".", webhookName)
	if crb.RoleRef != (rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}) || !equalJSON(crb.Subjects, wantSubjects) {
		t.Errorf("ClusterRoleBinding %s: roleRef %v subjects %v, want ClusterRole %s and %v", crb.Name, crb.RoleRef, crb.Subjects, cr.Name, wantSubjects)
	}
	// Nothing else in the base is bound to anyone.
	if n := len(all[*rbacv1.RoleBinding](s, ".")) + len(all[*rbacv1.ClusterRoleBinding](s, ".")); n != 2 {
		t.Errorf("%d bindings in the base, want 2", n)
	}
}

func checkNoWildcards(t *testing.T, what string, rules []rbacv1.PolicyRule) {
	t.Helper()
	for _, r := range rules {
		for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs} {
			for _, v := range list {
				if strings.Contains(v, "*") {
					t.Errorf("%s: wildcard %q in rule %s", what, v, toJSON(r))
				}
			}
		}
	}
}

// TestRedis: one non-root Redis in tracecam-system behind its Service.
func TestRedis(t *testing.T) {
	s := loadAll(t)
	d := find[*appsv1.Deployment](t, s, ".", redisName)
	svc := find[*corev1.Service](t, s, ".", redisName)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("Redis replicas %s, want 1 (a second instance would not share the data)", toJSON(d.Spec.Replicas))
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("Redis has %d containers", len(d.Spec.Template.Spec.Containers))
	}
	c := d.Spec.Template.Spec.Containers[0]
	checkRestricted(t, d.Spec.Template.Spec, c)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 6379 || containerPort(c, svc.Spec.Ports[0].TargetPort) != 6379 {
		t.Errorf("Service %s ports %s, want 6379 -> 6379", redisName, toJSON(svc.Spec.Ports))
	}
	if c.ReadinessProbe == nil {
		t.Error("Redis has no readiness probe")
	}
}

// TestKustomizations: every folder with manifests has a kustomization;
// each lists exactly the files of its folder (no orphan), every entry
// exists; the base sets the part-of label and pins both images, the
// sidecar's equal to the webhook's --sidecar-image.
func TestKustomizations(t *testing.T) {
	s := loadAll(t)
	for dir := range ownDirs {
		if s.kustomizations[dir] == nil {
			t.Errorf("%s/ has no kustomization.yaml", dir)
		}
	}
	for _, dir := range sortedKeys(s.kustomizations) {
		k := s.kustomizations[dir]
		t.Run(dir, func(t *testing.T) {
			switch {
			case k.APIVersion == "kustomize.config.k8s.io/v1beta1" && k.Kind == "Kustomization":
			case k.APIVersion == "kustomize.config.k8s.io/v1alpha1" && k.Kind == "Component":
			default:
				t.Errorf("apiVersion %q kind %q: want a kustomize.config.k8s.io/v1beta1 Kustomization or v1alpha1 Component", k.APIVersion, k.Kind)
			}
			listed := map[string]bool{}
			for _, r := range k.Resources {
				p := path.Join(dir, r)
				fi, err := os.Stat(filepath.FromSlash(p))
				switch {
				case strings.Contains(r, "://") || strings.HasPrefix(r, "github.com/"):
					t.Errorf("resource %q is remote; the manifests must build offline", r)
				case err != nil:
					t.Errorf("resource %q: %v", r, err)
				case fi.IsDir():
					if s.kustomizations[p] == nil {
						t.Errorf("resource %q is a folder without a kustomization", r)
					}
					if strings.HasPrefix(dir, p+"/") || p == "." && dir != "." {
						t.Errorf("resource %q contains this folder: kustomize refuses such a cycle (use a Component)", r)
					}
				default:
					listed[p] = true
				}
			}
			for _, c := range k.Components {
				ck := s.kustomizations[path.Join(dir, c)]
				if ck == nil || ck.Kind != "Component" {
					t.Errorf("component %q is not a folder with a kustomize Component", c)
				}
			}
			for _, p := range k.Patches {
				if p.Path != "" {
					listed[path.Join(dir, p.Path)] = true
				}
				if (p.Path == "") == (p.Patch == "") {
					t.Errorf("a patch needs exactly one of path and patch: %+v", p)
				}
			}
			for _, f := range sortedKeys(s.files) {
				if path.Dir(f) == dir && !listed[f] {
					t.Errorf("%s is not listed in %s/kustomization.yaml", f, dir)
				}
			}
			if k.Namespace != "" {
				t.Errorf("namespace: %s: leave namespaces to the objects (each file must also apply alone)", k.Namespace)
			}
		})
	}

	base := s.kustomizations["."]
	if base == nil {
		t.FailNow()
	}
	for _, r := range base.Resources {
		if path.Clean(r) == exampleDir || path.Clean(r) == certManagerDir {
			t.Errorf("the base lists %s/, which is installed separately", r)
		}
	}
	part := base.CommonLabels[partOfLabel] == "tracecam"
	for _, l := range base.Labels {
		part = part || l.Pairs[partOfLabel] == "tracecam"
	}
	if !part {
		t.Errorf("the base kustomization does not label everything %s: tracecam", partOfLabel)
	}

	_, c := webhookContainer(t, s)
	flags := flagArgs(t, c.Args)
	images := map[string]string{} // name -> the image kustomize makes of it
	for _, im := range base.Images {
		name := im.Name
		if im.NewName != "" {
			name = im.NewName
		}
		switch {
		case im.Digest != "":
			images[im.Name] = name + "@" + im.Digest
		case im.NewTag != "":
			images[im.Name] = name + ":" + im.NewTag
		default:
			images[im.Name] = name
		}
	}
	for _, name := range []string{webhookImage, sidecarImage} {
		if images[name] == "" {
			t.Errorf("the base kustomization has no images: entry for %s", name)
		}
	}
	if got, want := flags["sidecar-image"], images[sidecarImage]; got != want {
		t.Errorf("--sidecar-image=%s but the kustomization pins %s: kustomize does not rewrite flags, change both", got, want)
	}
	_, webhookTag := splitImage(images[webhookImage])
	_, sidecarTag := splitImage(images[sidecarImage])
	if webhookTag != sidecarTag {
		t.Errorf("the webhook (%s) and sidecar (%s) images are pinned to different versions", images[webhookImage], images[sidecarImage])
	}
}

// splitImage splits "name:tag" (or "name@digest") into name and tag.
func splitImage(image string) (string, string) {
	if name, digest, ok := strings.Cut(image, "@"); ok {
		return name, digest
	}
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[:i], image[i+1:]
	}
	return image, ""
}

// webhookFlags is the webhook's command line as the manifests may use it
// (the contract of cmd/tracecam-webhook).
var webhookFlags = []string{
	"port", "tls-mode", "cert-dir", "secret-name", "webhook-config-name", "namespace", "service-name", "kubeconfig",
	"sidecar-image", "sidecar-image-pull-policy", "native-sidecar", "segment-threshold", "redis-addr",
	"redis-password-secret", "cluster-name", "sidecar-log-level", "sidecar-cpu-request", "sidecar-cpu-limit",
	"sidecar-memory-request", "sidecar-memory-limit", "log-level",
	"bind-address", "cert-check-interval", "cert-ips", "shutdown-delay",
}

// TestWebhookFlags: every flag the Deployment passes is one the webhook
// has: in the contract above, and, when cmd/tracecam-webhook exists (and
// not -short), in the real binary's -h output.
func TestWebhookFlags(t *testing.T) {
	s := loadAll(t)
	_, c := webhookContainer(t, s)
	flags := flagArgs(t, c.Args)
	for _, name := range sortedKeys(flags) {
		if !slices.Contains(webhookFlags, name) {
			t.Errorf("--%s is not a flag of tracecam-webhook", name)
		}
	}
	if flags["sidecar-image"] == "" {
		t.Error("--sidecar-image (required) is not set")
	}
	if m := flags["tls-mode"]; m != "self" && m != "files" {
		t.Errorf("--tls-mode=%q, want self or files", m)
	}

	t.Run("binary", func(t *testing.T) {
		help := webhookHelp(t)
		for _, name := range sortedKeys(flags) {
			if !help[name] {
				t.Errorf("--%s is not in tracecam-webhook -h", name)
			}
		}
	})
}

// webhookHelp builds cmd/tracecam-webhook and returns the flags its -h
// lists; it skips when there is no such command or no go tool, or in
// -short mode.
func webhookHelp(t *testing.T) map[string]bool {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: not building cmd/tracecam-webhook")
	}
	src := filepath.Join("..", "cmd", "tracecam-webhook")
	if m, _ := filepath.Glob(filepath.Join(src, "*.go")); len(m) == 0 {
		t.Skip("cmd/tracecam-webhook does not exist yet")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool in PATH")
	}
	bin := filepath.Join(t.TempDir(), "tracecam-webhook")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goTool, "build", "-o", bin, "./cmd/tracecam-webhook")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tracecam-webhook: %v\n%s", err, out)
	}
	// -h exits 0 or 2 depending on the flag package; only the text matters.
	out, _ := exec.CommandContext(ctx, bin, "-h").CombinedOutput()
	help := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w,\s+)?--?([a-z0-9][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
		help[m[1]] = true
	}
	if len(help) == 0 {
		t.Fatalf("tracecam-webhook -h lists no flags:\n%s", out)
	}
	return help
}

// TestCertManagerComponent applies the Component's patches to the base the
// way kustomize does and checks the result: --tls-mode=files, the
// Certificate's Secret mounted at the cert dir, and the webhook
// configuration annotated with that Certificate.
func TestCertManagerComponent(t *testing.T) {
	s := loadAll(t)
	k := s.kustomizations[certManagerDir]
	if k == nil {
		t.Fatal("no cert-manager/kustomization.yaml")
	}
	if k.Kind != "Component" {
		t.Errorf("cert-manager/ is a %s; it must be a Component (kustomize refuses an overlay inside its base)", k.Kind)
	}
	var cert, issuer *objectRef
	for _, o := range s.objects {
		if path.Dir(o.file) != certManagerDir {
			continue
		}
		switch o.gvk() {
		case schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}:
			cert = &objectRef{o: o}
		case schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Issuer"}:
			issuer = &objectRef{o: o}
		}
	}
	if cert == nil || issuer == nil {
		t.Fatal("cert-manager/ needs a cert-manager.io/v1 Certificate and Issuer")
	}
	secretName := cert.str(t, "spec", "secretName")
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.o.u.Object, "spec", "dnsNames")
	if want := webhookName + "." + systemNamespace + ".svc"; !slices.Contains(dnsNames, want) {
		t.Errorf("Certificate dnsNames %v lack %s", dnsNames, want)
	}
	if got := cert.str(t, "spec", "issuerRef", "name"); got != issuer.o.u.GetName() {
		t.Errorf("Certificate issuerRef %q, want the Issuer %s", got, issuer.o.u.GetName())
	}
	if secretName == tlsSecret {
		t.Errorf("the Certificate's Secret is %s, the webhook's own in self mode: use another name", tlsSecret)
	}

	base, _ := webhookContainer(t, s)
	cfg := find[*admissionregistrationv1.MutatingWebhookConfiguration](t, s, ".", webhookConfig)
	patchedDeployment, patchedConfig := false, false
	for _, p := range k.Patches {
		if p.Patch == "" {
			continue
		}
		if p.Target != nil && p.Target.Kind == "Deployment" {
			if p.Target.Name != webhookName {
				t.Errorf("patch targets Deployment %q", p.Target.Name)
				continue
			}
			patchedDeployment = true
			d := applyJSONPatch(t, base, p.Patch)
			c := d.Spec.Template.Spec.Containers[0]
			flags := flagArgs(t, c.Args)
			if flags["tls-mode"] != "files" {
				t.Errorf("patched --tls-mode=%q, want files", flags["tls-mode"])
			}
			if v := certVolume(t, d, c, flags["cert-dir"]); v != nil && (v.Secret == nil || v.Secret.SecretName != secretName) {
				t.Errorf("patched cert dir volume %s, want the Secret %s", toJSON(v), secretName)
			}
			continue
		}
		// A strategic-merge patch names its target itself.
		u := map[string]any{}
		if err := yaml.Unmarshal([]byte(p.Patch), &u); err != nil {
			t.Errorf("patch %q: %v", p.Patch, err)
			continue
		}
		if u["kind"] == "MutatingWebhookConfiguration" {
			patchedConfig = true
			var got struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(p.Patch), &got); err != nil {
				t.Fatal(err)
			}
			if got.Metadata.Name != cfg.Name {
				t.Errorf("patch targets MutatingWebhookConfiguration %q, want %s", got.Metadata.Name, cfg.Name)
			}
			want := cert.o.u.GetNamespace() + "/" + cert.o.u.GetName()
			if a := got.Metadata.Annotations["cert-manager.io/inject-ca-from"]; a != want {
				t.Errorf("cert-manager.io/inject-ca-from %q, want %q", a, want)
			}
		}
	}
	if !patchedDeployment || !patchedConfig {
		t.Errorf("want patches of the webhook Deployment (deployment: %v) and its configuration (configuration: %v)", patchedDeployment, patchedConfig)
	}
}

type objectRef struct{ o *object }

func (r *objectRef) str(t *testing.T, fields ...string) string {
	t.Helper()
	v, ok, err := unstructured.NestedString(r.o.u.Object, fields...)
	if !ok || err != nil || v == "" {
		t.Errorf("%s: %s not set", r.o, strings.Join(fields, "."))
	}
	return v
}

// applyJSONPatch applies an RFC 6902 patch written in YAML to d and decodes
// the result strictly.
func applyJSONPatch(t *testing.T, d *appsv1.Deployment, patchYAML string) *appsv1.Deployment {
	t.Helper()
	pj, err := yaml.YAMLToJSON([]byte(patchYAML))
	if err != nil {
		t.Fatalf("patch: %v", err)
	}
	patch, err := jsonpatch.DecodePatch(pj)
	if err != nil {
		t.Fatalf("patch: %v", err)
	}
	doc, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	out, err := patch.Apply(doc)
	if err != nil {
		t.Fatalf("patch does not apply to deployment.yaml (a test op failed?): %v", err)
	}
	obj, _, err := strict.Decode(out, nil, nil)
	if err != nil {
		t.Fatalf("patched Deployment: %v", err)
	}
	return obj.(*appsv1.Deployment)
}

// TestExample: the demo app opts in, its overrides are all valid (the
// webhook injects it without a warning), its namespace allows the sidecar
// (Pod Security "privileged") and is one the webhook serves.
func TestExample(t *testing.T) {
	s := loadAll(t)
	d := find[*appsv1.Deployment](t, s, exampleDir, "demo-http")
	ns := find[*corev1.Namespace](t, s, exampleDir, demoNamespace)
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "" && got != "privileged" {
		t.Errorf("namespace %s enforces Pod Security %q; the sidecar needs privileged", ns.Name, got)
	}
	if got := d.Spec.Template.Annotations[webhook.AnnotationInject]; !strings.EqualFold(got, "true") {
		t.Errorf("the demo pods are not annotated %s: \"true\" (got %q)", webhook.AnnotationInject, got)
	}
	overrides := 0
	for k := range d.Spec.Template.Annotations {
		if strings.HasPrefix(k, webhook.AnnotationPrefix) && k != webhook.AnnotationInject {
			overrides++
		}
	}
	if overrides == 0 {
		t.Error("the demo shows no per-pod override annotation")
	}

	_, c := webhookContainer(t, s)
	cfg := sidecarConfig(t, flagArgs(t, c.Args))
	pod := &corev1.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: d.Spec.Template.Spec}
	pod.Namespace = d.Namespace
	out, rep := webhook.Inject(pod, d.Namespace, cfg)
	if !rep.Injected || len(rep.Warnings) > 0 {
		t.Errorf("injecting the demo pod: injected %v (%s), warnings %q", rep.Injected, rep.Reason, rep.Warnings)
	}
	// The injected pod is still a valid pod.
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var back corev1.Pod
	if err := yaml.UnmarshalStrict(b, &back); err != nil {
		t.Errorf("the injected pod: %v", err)
	}

	mwc := find[*admissionregistrationv1.MutatingWebhookConfiguration](t, s, ".", webhookConfig)
	sel, err := metav1.LabelSelectorAsSelector(mwc.Webhooks[0].NamespaceSelector)
	if err != nil || !sel.Matches(labels.Merge(ns.Labels, labels.Set{"kubernetes.io/metadata.name": ns.Name})) {
		t.Errorf("the webhook's namespaceSelector leaves out %s", ns.Name)
	}
}

// TestEmbedded: Files holds every manifest of this folder, example/ and
// cert-manager/.
func TestEmbedded(t *testing.T) {
	s := loadAll(t)
	want := map[string]bool{}
	for f := range s.files {
		if _, own := ownDirs[path.Dir(f)]; own {
			want[f] = true
		}
	}
	for dir := range s.kustomizations {
		if _, own := ownDirs[dir]; own {
			want[path.Join(dir, "kustomization.yaml")] = true
		}
	}
	got := map[string]bool{}
	err := fs.WalkDir(Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got[p] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range sortedKeys(want) {
		if !got[f] {
			t.Errorf("%s is not embedded in Files (extend the go:embed line)", f)
		}
	}
}

// TestKustomizeBuild builds the base, the example and the base with the
// cert-manager Component with kubectl's kustomize (skipped without
// kubectl) and decodes the output strictly.
func TestKustomizeBuild(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not installed")
	}
	// A kustomization outside manifests/ using the Component, as
	// docs/kubernetes.md shows. kustomize wants relative paths.
	abs, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	withCM := t.TempDir()
	rel, err := filepath.Rel(withCM, abs)
	if err != nil {
		t.Fatal(err)
	}
	rel = filepath.ToSlash(rel)
	k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [%q]\ncomponents: [%q]\n", rel, rel+"/"+certManagerDir)
	if err := os.WriteFile(filepath.Join(withCM, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, b := range []struct{ name, dir string }{{"base", "."}, {"example", exampleDir}, {"cert-manager", withCM}} {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, kubectl, "kustomize", b.dir)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", b.dir, err, stderr.String())
			}
			objs, errs := decodeFile("kustomize-"+b.name, out)
			for _, err := range errs {
				t.Error(err)
			}
			for _, o := range objs {
				if o.u.GetLabels()[partOfLabel] != "tracecam" {
					t.Errorf("%s: no %s label", o, partOfLabel)
				}
			}
			if b.name == "example" {
				return
			}
			var d *appsv1.Deployment
			for _, o := range objs {
				if v, ok := o.typed.(*appsv1.Deployment); ok && v.Name == webhookName {
					d = v
				}
			}
			if d == nil {
				t.Fatalf("no Deployment %s in the build", webhookName)
			}
			flags := flagArgs(t, d.Spec.Template.Spec.Containers[0].Args)
			want := map[string]string{"base": "self", "cert-manager": "files"}[b.name]
			if flags["tls-mode"] != want {
				t.Errorf("--tls-mode=%q, want %s", flags["tls-mode"], want)
			}
		})
	}
}

// Helpers.

func ptr[T any](v T) *T { return &v }

func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%#v", v)
	}
	return string(b)
}

func equalJSON(a, b any) bool { return toJSON(a) == toJSON(b) }

// TestDocsSidecarImagePatch: the JSON patch docs/kubernetes.md shows for
// changing the sidecar image still applies to deployment.yaml (its test op
// names the argument by index).
func TestDocsSidecarImagePatch(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "kubernetes.md"))
	if err != nil {
		t.Skipf("no docs: %v", err)
	}
	var block string
	for _, part := range strings.Split(string(b), "```yaml\n")[1:] {
		if body, _, ok := strings.Cut(part, "```"); ok && strings.Contains(body, "--sidecar-image=") && strings.Contains(body, "op: test") {
			block = body
		}
	}
	if block == "" {
		t.Fatal("docs/kubernetes.md has no yaml block patching --sidecar-image")
	}
	var k struct {
		Patches []struct {
			Patch string `json:"patch"`
		} `json:"patches"`
	}
	// Only patches is read: the snippet's other fields do not matter here.
	if err := yaml.Unmarshal([]byte(block), &k); err != nil || len(k.Patches) != 1 {
		t.Fatalf("the docs' snippet: %v (%d patches)\n%s", err, len(k.Patches), block)
	}
	s := loadAll(t)
	d, _ := webhookContainer(t, s)
	patched := applyJSONPatch(t, d, k.Patches[0].Patch)
	flags := flagArgs(t, patched.Spec.Template.Spec.Containers[0].Args)
	if name, _ := splitImage(flags["sidecar-image"]); name == sidecarImage {
		t.Errorf("the docs' patch leaves --sidecar-image=%s", flags["sidecar-image"])
	}
}
