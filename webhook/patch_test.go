package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPatch(t *testing.T) {
	tr := true
	for _, tc := range []struct {
		name   string
		pod    *corev1.Pod
		mutate func(*corev1.Pod)
	}{
		{"inject into plain pod", annotated(nil), nil},
		{"inject into empty pod", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationInject: "true"}}}, nil},
		{"inject next to init containers and volumes", func() *corev1.Pod {
			p := annotated(nil)
			p.Spec.InitContainers = []corev1.Container{{Name: "a"}, {Name: "b"}}
			p.Spec.Volumes = []corev1.Volume{{Name: "v"}, {Name: CgroupVolumeName, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: CgroupPath}}}}
			p.Spec.ShareProcessNamespace = &tr
			return p
		}(), nil},
		{"annotation keys needing escapes", annotated(map[string]string{"a/b~c": "1"}), nil},
		{"removal and replace", annotated(nil), func(p *corev1.Pod) {
			p.Spec.Containers = nil
			p.Labels = map[string]string{"x": "y"}
			p.Spec.NodeName = "n1"
		}},
		{"huge pod", hugePod(500, 1<<20), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mutated *corev1.Pod
			if tc.mutate != nil {
				mutated = tc.pod.DeepCopy()
				tc.mutate(mutated)
			} else {
				var rep Report
				mutated, rep = Inject(tc.pod, "", testConfig())
				if !rep.Injected {
					t.Fatal(rep)
				}
			}
			patch, err := Patch(tc.pod, mutated)
			if err != nil {
				t.Fatal(err)
			}
			orig, _ := json.Marshal(tc.pod)
			want, _ := json.Marshal(mutated)
			if got := applyPatch(t, orig, patch); !samePod(t, got, want) {
				t.Fatalf("patched:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestPatchEqualAndNil(t *testing.T) {
	pod := annotated(nil)
	p, err := Patch(pod, pod.DeepCopy())
	if err != nil || string(p) != "[]" {
		t.Fatalf("equal pods: %s, %v", p, err)
	}
	if _, err := Patch(nil, pod); err == nil {
		t.Fatal("nil original: no error")
	}
	if _, err := Patch(pod, nil); err == nil {
		t.Fatal("nil mutated: no error")
	}
}

// TestPatchKeepsUnknownFields: applied to the API server's raw object,
// which may carry fields this build's k8s.io/api does not know, the patch
// adds the sidecar and leaves those fields alone.
func TestPatchKeepsUnknownFields(t *testing.T) {
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"tracecam.io/inject":"true"},"futureMeta":"keep"},
		"spec":{"futureSpec":{"a":1},"containers":[{"name":"app","image":"app:1","futureContainer":true}]}}`)
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		t.Fatal(err)
	}
	mutated, rep := Inject(&pod, "", testConfig())
	if !rep.Injected {
		t.Fatal(rep)
	}
	patch, err := Patch(&pod, mutated)
	if err != nil {
		t.Fatal(err)
	}
	got := applyPatch(t, raw, patch)
	for _, keep := range []string{`"futureMeta":"keep"`, `"futureSpec":{"a":1}`, `"futureContainer":true`} {
		if !strings.Contains(string(got), keep) {
			t.Errorf("patch dropped %s: %s", keep, got)
		}
	}
	want, _ := json.Marshal(mutated)
	if !samePod(t, got, want) {
		t.Fatalf("patched:\n%s\nwant:\n%s", got, want)
	}
}
