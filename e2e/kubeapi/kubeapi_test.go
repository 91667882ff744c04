package kubeapi

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const configMapYAML = `
# a comment-only document first, as kustomize output often has
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: tracecam-sample
  namespace: kubeapi-test
data:
  answer: "42"
`

func TestServer(t *testing.T) {
	began := time.Now()
	s := Start(t)
	t.Logf("Start took %.1f s", time.Since(began).Seconds())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	v, err := s.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if v.GitVersion != "v1.37.2" {
		t.Errorf("server version %q, want v1.37.2 (build.sh's KUBE_VERSION)", v.GitVersion)
	}

	// The kubeconfig file is what binaries started by tests get.
	kc, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		t.Fatalf("loading %s: %v", s.Kubeconfig, err)
	}
	kcClient, err := kubernetes.NewForConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kcClient.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{}); err != nil {
		t.Fatalf("through the kubeconfig, the default ServiceAccount Start made: %v", err)
	}

	const ns = "kubeapi-test"
	if err := s.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	// Twice: it must tolerate what already exists.
	if err := s.EnsureNamespace(ctx, ns); err != nil {
		t.Fatalf("second EnsureNamespace: %v", err)
	}

	// A pod is admitted (the ServiceAccount admission plugin finds the
	// default account) and stored; nothing schedules it.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sleeper", Namespace: ns, Labels: map[string]string{"app": "sleeper"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "sleep", Image: "busybox:1.37", Command: []string{"sleep", "3600"},
		}}},
	}
	if _, err := s.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	got, err := s.Client.CoreV1().Pods(ns).Get(ctx, "sleeper", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting pod back: %v", err)
	}
	if got.Spec.Containers[0].Image != "busybox:1.37" || got.Labels["app"] != "sleeper" {
		t.Errorf("pod read back differs: image %q labels %v", got.Spec.Containers[0].Image, got.Labels)
	}
	if got.Spec.ServiceAccountName != "default" {
		t.Errorf("pod service account %q, want default (set by admission)", got.Spec.ServiceAccountName)
	}

	// Dry run: answered like a create, not stored.
	objs, err := s.Apply(ctx, []byte(configMapYAML), true)
	if err != nil {
		t.Fatalf("dry-run apply: %v", err)
	}
	if len(objs) != 1 || objs[0].GetKind() != "ConfigMap" || objs[0].GetName() != "tracecam-sample" {
		t.Fatalf("dry-run apply returned %d objects, want the ConfigMap tracecam-sample", len(objs))
	}
	if _, err := s.Client.CoreV1().ConfigMaps(ns).Get(ctx, "tracecam-sample", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("after a dry run the ConfigMap is there or the get failed otherwise: %v", err)
	}

	// For real, twice (server-side apply updates in place).
	for i := range 2 {
		objs, err = s.Apply(ctx, []byte(configMapYAML), false)
		if err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
	}
	cm, err := s.Client.CoreV1().ConfigMaps(ns).Get(ctx, "tracecam-sample", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ConfigMap not stored: %v", err)
	}
	if cm.Data["answer"] != "42" || cm.ResourceVersion != objs[0].GetResourceVersion() {
		t.Errorf("stored ConfigMap data %v rv %s, apply returned rv %s", cm.Data, cm.ResourceVersion, objs[0].GetResourceVersion())
	}

	// Strict field validation rejects a misspelt field.
	bad := []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\ndatta:\n  x: y\n")
	if _, err := s.Apply(ctx, bad, true); err == nil {
		t.Error("apply of a ConfigMap with an unknown field succeeded, want a strict-validation error")
	}
}
