package webhook

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func annotated(ann map[string]string) *corev1.Pod {
	a := map[string]string{AnnotationInject: "true"}
	for k, v := range ann {
		a[k] = v
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: a},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
	}
}

// sidecar returns the injected container, wherever it is.
func sidecar(t *testing.T, pod *corev1.Pod) *corev1.Container {
	t.Helper()
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			if list[i].Name == ContainerName {
				return &list[i]
			}
		}
	}
	t.Fatal("no tracecam container")
	return nil
}

func env(c *corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			m[e.Name] = "fieldRef:" + e.ValueFrom.FieldRef.FieldPath
		} else {
			m[e.Name] = e.Value
		}
	}
	return m
}

func TestInjectOptIn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ann    map[string]string
		inject bool
		reason string
	}{
		{"no annotations", nil, false, "not set"},
		{"true", map[string]string{AnnotationInject: "true"}, true, ReasonInjected},
		{"True", map[string]string{AnnotationInject: "True"}, true, ReasonInjected},
		{"TRUE with spaces", map[string]string{AnnotationInject: " TRUE "}, true, ReasonInjected},
		{"false", map[string]string{AnnotationInject: "false"}, false, `is "false"`},
		{"empty", map[string]string{AnnotationInject: ""}, false, `is ""`},
		{"yes", map[string]string{AnnotationInject: "yes"}, false, `is "yes"`},
		{"1", map[string]string{AnnotationInject: "1"}, false, `is "1"`},
		{"status present", map[string]string{AnnotationInject: "true", AnnotationStatus: "{}"}, false, "already injected"},
		{"status garbage", map[string]string{AnnotationInject: "true", AnnotationStatus: "x"}, false, "already injected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: tc.ann}}
			out, rep := Inject(pod, "ns", testConfig())
			if rep.Injected != tc.inject || !strings.Contains(rep.Reason, tc.reason) {
				t.Fatalf("got %+v, want injected=%v reason containing %q", rep, tc.inject, tc.reason)
			}
			if out == pod {
				t.Fatal("returned the input, not a copy")
			}
		})
	}
}

func TestInjectSkipsExistingContainer(t *testing.T) {
	for _, init := range []bool{false, true} {
		pod := annotated(nil)
		c := corev1.Container{Name: ContainerName, Image: "other"}
		if init {
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, c)
		} else {
			pod.Spec.Containers = append(pod.Spec.Containers, c)
		}
		out, rep := Inject(pod, "", testConfig())
		if rep.Injected || !strings.Contains(rep.Reason, "already injected") {
			t.Fatalf("init=%v: %+v", init, rep)
		}
		if !reflect.DeepEqual(out, pod) {
			t.Fatalf("init=%v: skipped pod changed", init)
		}
	}
}

func TestInjectNilAndEmpty(t *testing.T) {
	out, rep := Inject(nil, "", testConfig())
	if out != nil || rep.Injected {
		t.Fatalf("nil pod: %v %+v", out, rep)
	}
	// Annotated but otherwise empty: no containers, volumes, anything.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationInject: "true"}}}
	out, rep = Inject(pod, "", testConfig())
	if !rep.Injected || len(out.Spec.InitContainers) != 1 || len(out.Spec.Volumes) != 2 {
		t.Fatalf("empty pod: %+v %+v", rep, out.Spec)
	}
	if len(pod.Spec.InitContainers) != 0 || len(pod.Spec.Volumes) != 0 || len(pod.Annotations) != 1 {
		t.Fatal("input modified")
	}
}

// TestInjectDoesNotModifyInput compares a deep snapshot of a busy pod
// before and after, including the backing arrays Inject appends to.
func TestInjectDoesNotModifyInput(t *testing.T) {
	pod := annotated(map[string]string{AnnotationCPURequest: "100m", AnnotationPrivileged: "true"})
	// Spare capacity: a careless append would write into it.
	pod.Spec.InitContainers = make([]corev1.Container, 1, 8)
	pod.Spec.InitContainers[0] = corev1.Container{Name: "init", Image: "i"}
	pod.Spec.Volumes = make([]corev1.Volume, 1, 8)
	pod.Spec.Volumes[0] = corev1.Volume{Name: "v"}
	before, _ := json.Marshal(pod)
	snapshot := pod.DeepCopy()

	out, rep := Inject(pod, "ns", testConfig())
	if !rep.Injected {
		t.Fatal(rep)
	}
	after, _ := json.Marshal(pod)
	if string(before) != string(after) || !reflect.DeepEqual(pod, snapshot) {
		t.Fatal("input modified")
	}
	if extra := pod.Spec.InitContainers[:2]; extra[1].Name != "" {
		t.Fatal("append wrote into the input's backing array")
	}
	out.Annotations["x"] = "y"
	out.Spec.Containers[0].Name = "changed"
	if pod.Annotations["x"] != "" || pod.Spec.Containers[0].Name != "app" {
		t.Fatal("output shares memory with input")
	}
}

func TestInjectContainer(t *testing.T) {
	for _, native := range []bool{true, false} {
		t.Run(fmt.Sprintf("native=%v", native), func(t *testing.T) {
			cfg := testConfig()
			cfg.NativeSidecar = native
			out, rep := Inject(annotated(nil), "ns", cfg)
			if !rep.Injected || len(rep.Warnings) != 0 {
				t.Fatalf("%+v", rep)
			}
			c := sidecar(t, out)
			if native {
				if len(out.Spec.InitContainers) != 1 || len(out.Spec.Containers) != 1 ||
					c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
					t.Fatalf("native sidecar misplaced: %+v", out.Spec)
				}
			} else if len(out.Spec.Containers) != 2 || out.Spec.Containers[1].Name != ContainerName || c.RestartPolicy != nil {
				t.Fatalf("legacy sidecar misplaced: %+v", out.Spec)
			}
			if c.Image != cfg.Image || c.ImagePullPolicy != corev1.PullIfNotPresent || len(c.Args) != 0 || len(c.Command) != 0 {
				t.Errorf("image/args: %+v", c)
			}
			want := map[string]string{
				"TRACECAM_SEGMENT_THRESHOLD": "1ms",
				"TRACECAM_ON_ERROR":          "idle",
				"TRACECAM_LOG_LEVEL":         "info",
				"TRACECAM_GRPC_ADDR":         ":7070",
				"TRACECAM_HTTP_ADDR":         ":7071",
				"TRACECAM_CLUSTER_NAME":      "test",
				"TRACECAM_CONTAINER":         "app",
				"POD_NAME":                   "fieldRef:metadata.name",
				"POD_NAMESPACE":              "fieldRef:metadata.namespace",
				"POD_UID":                    "fieldRef:metadata.uid",
				"NODE_NAME":                  "fieldRef:spec.nodeName",
			}
			if got := env(c); !reflect.DeepEqual(got, want) {
				t.Errorf("env %v, want %v", got, want)
			}
			if len(c.Ports) != 2 || c.Ports[0] != (corev1.ContainerPort{Name: "tracecam-grpc", ContainerPort: 7070, Protocol: corev1.ProtocolTCP}) ||
				c.Ports[1] != (corev1.ContainerPort{Name: "tracecam-http", ContainerPort: 7071, Protocol: corev1.ProtocolTCP}) {
				t.Errorf("ports %+v", c.Ports)
			}
			if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.StrVal != "tracecam-http" {
				t.Errorf("readiness %+v", p)
			}
			if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.FailureThreshold < 3 || p.TimeoutSeconds < 2 {
				t.Errorf("liveness %+v", p)
			}
			if !reflect.DeepEqual(c.Resources, DefaultResources()) {
				t.Errorf("resources %+v", c.Resources)
			}
			sc := c.SecurityContext
			if sc == nil || sc.Capabilities == nil ||
				!reflect.DeepEqual(sc.Capabilities.Add, []corev1.Capability{"BPF", "PERFMON", "SYS_PTRACE"}) ||
				!reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
				*sc.Privileged || *sc.AllowPrivilegeEscalation || *sc.RunAsUser != 0 || *sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("securityContext %+v", sc)
			}
			if len(c.VolumeMounts) != 2 {
				t.Fatalf("mounts %+v", c.VolumeMounts)
			}
			for i, m := range c.VolumeMounts {
				if !m.ReadOnly || m.Name != out.Spec.Volumes[i].Name || m.MountPath != out.Spec.Volumes[i].HostPath.Path {
					t.Errorf("mount %+v for volume %+v", m, out.Spec.Volumes[i])
				}
			}
			if *out.Spec.Volumes[0].HostPath.Type != corev1.HostPathDirectory || *out.Spec.Volumes[1].HostPath.Type != corev1.HostPathDirectoryOrCreate {
				t.Errorf("volume types %+v", out.Spec.Volumes)
			}
			if out.Spec.ShareProcessNamespace == nil || !*out.Spec.ShareProcessNamespace {
				t.Error("shareProcessNamespace not set")
			}
			var st Status
			if err := json.Unmarshal([]byte(out.Annotations[AnnotationStatus]), &st); err != nil {
				t.Fatal(err)
			}
			if st != (Status{Version: cfg.Version, Image: cfg.Image, NativeSidecar: native, Container: ContainerName}) {
				t.Errorf("status %+v", st)
			}
		})
	}
}

func TestInjectPrivileged(t *testing.T) {
	for _, tc := range []struct {
		value      string
		privileged bool
		warn       bool
	}{
		{"true", true, false}, {"TRUE", true, false}, {"false", false, false}, {"False", false, false},
		{"1", false, true}, {"yes", false, true}, {"", false, true},
	} {
		out, rep := Inject(annotated(map[string]string{AnnotationPrivileged: tc.value}), "", testConfig())
		sc := sidecar(t, out).SecurityContext
		if *sc.Privileged != tc.privileged || (len(rep.Warnings) > 0) != tc.warn {
			t.Errorf("%q: privileged %v, warnings %q", tc.value, *sc.Privileged, rep.Warnings)
		}
		if tc.privileged && (sc.Capabilities != nil || sc.AllowPrivilegeEscalation != nil) {
			t.Errorf("%q: privileged with caps or allowPrivilegeEscalation: %+v", tc.value, sc)
		}
		if !tc.privileged && (sc.Capabilities == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation) {
			t.Errorf("%q: unprivileged without caps: %+v", tc.value, sc)
		}
	}
}

// TestInjectOverrides checks each override annotation: a valid value
// changes the sidecar, a bad one leaves the default and warns naming the
// annotation and the value.
func TestInjectOverrides(t *testing.T) {
	for _, tc := range []struct {
		key, value string
		envKey     string // checked when set: the env value wanted
		envWant    string
		warn       string // the warning must contain this; empty: none
	}{
		{AnnotationSegmentThreshold, "5ms", "TRACECAM_SEGMENT_THRESHOLD", "5ms", ""},
		{AnnotationSegmentThreshold, " 10s ", "TRACECAM_SEGMENT_THRESHOLD", "10s", ""},
		{AnnotationSegmentThreshold, "1ns", "TRACECAM_SEGMENT_THRESHOLD", "1ns", ""},
		{AnnotationSegmentThreshold, "10.001s", "TRACECAM_SEGMENT_THRESHOLD", "1ms", "longer than 10s"},
		{AnnotationSegmentThreshold, "0", "TRACECAM_SEGMENT_THRESHOLD", "1ms", "not positive"},
		{AnnotationSegmentThreshold, "-1ms", "TRACECAM_SEGMENT_THRESHOLD", "1ms", "not positive"},
		{AnnotationSegmentThreshold, "5", "TRACECAM_SEGMENT_THRESHOLD", "1ms", "not a Go duration"},
		{AnnotationSegmentThreshold, "", "TRACECAM_SEGMENT_THRESHOLD", "1ms", "not a Go duration"},
		{AnnotationSegmentThreshold, "9999999999999999h", "TRACECAM_SEGMENT_THRESHOLD", "1ms", "not a Go duration"},
		{AnnotationLogLevel, "warn", "TRACECAM_LOG_LEVEL", "warn", ""},
		{AnnotationLogLevel, "Error", "TRACECAM_LOG_LEVEL", "error", ""},
		{AnnotationLogLevel, "trace", "TRACECAM_LOG_LEVEL", "info", "not debug, info, warn or error"},
		{AnnotationLogLevel, "info+2", "TRACECAM_LOG_LEVEL", "info", "not debug"},
		{AnnotationRedisAddr, "redis:6379", "TRACECAM_REDIS_ADDR", "redis:6379", ""},
		{AnnotationRedisAddr, "a:1,b:2, c:3", "TRACECAM_REDIS_ADDR", "a:1,b:2,c:3", ""},
		{AnnotationRedisAddr, "10.0.0.1:6379", "TRACECAM_REDIS_ADDR", "10.0.0.1:6379", ""},
		{AnnotationRedisAddr, "[::1]:6379", "TRACECAM_REDIS_ADDR", "[::1]:6379", ""},
		{AnnotationRedisAddr, "redis", "TRACECAM_REDIS_ADDR", "", "not host:port"},
		{AnnotationRedisAddr, ":6379", "TRACECAM_REDIS_ADDR", "", "not host:port"},
		{AnnotationRedisAddr, "redis:0", "TRACECAM_REDIS_ADDR", "", "bad port"},
		{AnnotationRedisAddr, "redis:65536", "TRACECAM_REDIS_ADDR", "", "bad port"},
		{AnnotationRedisAddr, "a:1,", "TRACECAM_REDIS_ADDR", "", "not host:port"},
		{AnnotationRedisAddr, "", "TRACECAM_REDIS_ADDR", "", "not host:port"},
		{AnnotationRedisAddr, "redis://r:6379", "TRACECAM_REDIS_ADDR", "", "not host:port"},
		{AnnotationRedisAddr, strings.Repeat("a:1,", 64) + "a:1", "TRACECAM_REDIS_ADDR", "", "more than 64"},
	} {
		t.Run(tc.key+"="+clip(tc.value), func(t *testing.T) {
			out, rep := Inject(annotated(map[string]string{tc.key: tc.value}), "", testConfig())
			if !rep.Injected {
				t.Fatalf("not injected: %+v", rep)
			}
			if got := env(sidecar(t, out))[tc.envKey]; got != tc.envWant {
				t.Errorf("%s = %q, want %q", tc.envKey, got, tc.envWant)
			}
			checkWarning(t, rep.Warnings, tc.key, tc.value, tc.warn)
		})
	}
}

func checkWarning(t *testing.T, warnings []string, key, value, want string) {
	t.Helper()
	if want == "" {
		if len(warnings) != 0 {
			t.Errorf("unexpected warnings %q", warnings)
		}
		return
	}
	if len(warnings) != 1 {
		t.Fatalf("want one warning containing %q, got %q", want, warnings)
	}
	w := warnings[0]
	if !strings.Contains(w, want) || !strings.HasPrefix(w, key+":") || !strings.Contains(w, quote(value)) {
		t.Errorf("warning %q should name %s, the value %s and say %q", w, key, quote(value), want)
	}
}

func TestInjectResourceOverrides(t *testing.T) {
	q := func(s string) *resource.Quantity { r := resource.MustParse(s); return &r }
	type res struct{ cpuReq, cpuLim, memReq, memLim string }
	def := res{"50m", "500m", "64Mi", "256Mi"}
	for _, tc := range []struct {
		name  string
		ann   map[string]string
		want  res
		warns []string // substrings, one per warning, in order
	}{
		{"none", nil, def, nil},
		{"all valid", map[string]string{AnnotationCPURequest: "100m", AnnotationCPULimit: "2", AnnotationMemoryRequest: "100Mi", AnnotationMemoryLimit: "1Gi"},
			res{"100m", "2", "100Mi", "1Gi"}, nil},
		{"request equals limit", map[string]string{AnnotationCPURequest: "1", AnnotationCPULimit: "1"}, res{"1", "1", "64Mi", "256Mi"}, nil},
		{"request only, within default limit", map[string]string{AnnotationMemoryRequest: "200Mi"}, res{"50m", "500m", "200Mi", "256Mi"}, nil},
		{"limit only, above default request", map[string]string{AnnotationCPULimit: "100m"}, res{"50m", "100m", "64Mi", "256Mi"}, nil},
		{"request above default limit", map[string]string{AnnotationCPURequest: "1"}, def,
			[]string{`tracecam.io/cpu-request: "1" exceeds the limit 500m; using the default 50m`}},
		{"limit below default request", map[string]string{AnnotationMemoryLimit: "32Mi"}, def,
			[]string{`tracecam.io/memory-limit: "32Mi" is below the request 64Mi; using the default 256Mi`}},
		{"request above given limit", map[string]string{AnnotationCPURequest: "2", AnnotationCPULimit: "1"}, def,
			[]string{`tracecam.io/cpu-request: "2" exceeds tracecam.io/cpu-limit "1"; using the defaults for both`}},
		{"unparsable", map[string]string{AnnotationCPURequest: "fast", AnnotationMemoryLimit: "1 Gi"}, def,
			[]string{`tracecam.io/cpu-request: "fast" is not a resource quantity; using the default 50m`,
				`tracecam.io/memory-limit: "1 Gi" is not a resource quantity; using the default 256Mi`}},
		{"zero and negative", map[string]string{AnnotationCPULimit: "0", AnnotationMemoryRequest: "-64Mi"}, def,
			[]string{`tracecam.io/cpu-limit: "0" is not positive`, `tracecam.io/memory-request: "-64Mi" is not positive`}},
		{"bad request, good limit", map[string]string{AnnotationCPURequest: "x", AnnotationCPULimit: "2"}, res{"50m", "2", "64Mi", "256Mi"},
			[]string{`tracecam.io/cpu-request: "x"`}},
		{"good request, bad limit above default", map[string]string{AnnotationCPURequest: "1", AnnotationCPULimit: "x"}, def,
			[]string{`tracecam.io/cpu-limit: "x"`, `tracecam.io/cpu-request: "1" exceeds the limit 500m`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rep := Inject(annotated(tc.ann), "", testConfig())
			r := sidecar(t, out).Resources
			got := res{r.Requests.Cpu().String(), r.Limits.Cpu().String(), r.Requests.Memory().String(), r.Limits.Memory().String()}
			want := res{q(tc.want.cpuReq).String(), q(tc.want.cpuLim).String(), q(tc.want.memReq).String(), q(tc.want.memLim).String()}
			if got != want {
				t.Errorf("resources %+v, want %+v", got, want)
			}
			if len(rep.Warnings) != len(tc.warns) {
				t.Fatalf("warnings %q, want %d", rep.Warnings, len(tc.warns))
			}
			for i, w := range tc.warns {
				if !strings.Contains(rep.Warnings[i], w) {
					t.Errorf("warning %q does not contain %q", rep.Warnings[i], w)
				}
			}
		})
	}
}

func TestInjectUnknownAnnotations(t *testing.T) {
	ann := map[string]string{}
	for i := range 8 {
		ann[fmt.Sprintf("tracecam.io/typo-%d", i)] = "x"
	}
	ann["other.io/inject"] = "true" // another prefix: none of our business
	_, rep := Inject(annotated(ann), "", testConfig())
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], `"tracecam.io/typo-0"`) ||
		!strings.Contains(rep.Warnings[0], "and 3 more") || strings.Contains(rep.Warnings[0], "other.io") {
		t.Fatalf("warnings %q", rep.Warnings)
	}
}

func TestInjectConflictWarnings(t *testing.T) {
	f := false
	for _, tc := range []struct {
		name   string
		change func(*corev1.Pod, *Config)
		warn   string
	}{
		{"host network", func(p *corev1.Pod, _ *Config) { p.Spec.HostNetwork = true }, "hostNetwork"},
		{"app port", func(p *corev1.Pod, _ *Config) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 7070}}
		}, `container "app" already uses port 7070`},
		{"init host port", func(p *corev1.Pod, _ *Config) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Ports: []corev1.ContainerPort{{ContainerPort: 80, HostPort: 7071}}}}
		}, `container "init" already uses port 7071`},
		{"legacy job", func(p *corev1.Pod, c *Config) {
			c.NativeSidecar = false
			p.Spec.RestartPolicy = corev1.RestartPolicyNever
		}, "keeps this pod from completing"},
		{"shareProcessNamespace false", func(p *corev1.Pod, _ *Config) { p.Spec.ShareProcessNamespace = &f }, "shareProcessNamespace changed"},
		{"own volume differs", func(p *corev1.Pod, _ *Config) {
			p.Spec.Volumes = []corev1.Volume{{Name: BTFVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, `volume "tracecam-btf" is kept`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod, cfg := annotated(nil), testConfig()
			tc.change(pod, &cfg)
			out, rep := Inject(pod, "", cfg)
			if !rep.Injected || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], tc.warn) {
				t.Fatalf("%+v, want one warning containing %q", rep, tc.warn)
			}
			names := map[string]int{}
			for _, v := range out.Spec.Volumes {
				names[v.Name]++
			}
			for n, c := range names {
				if c > 1 {
					t.Errorf("volume %s %d times", n, c)
				}
			}
		})
	}
	// No warning for a legacy sidecar in a long-running pod, nor a native
	// one in a job.
	for _, native := range []bool{true, false} {
		pod, cfg := annotated(nil), testConfig()
		cfg.NativeSidecar = native
		if native {
			pod.Spec.RestartPolicy = corev1.RestartPolicyNever
		}
		if _, rep := Inject(pod, "", cfg); len(rep.Warnings) != 0 {
			t.Errorf("native=%v: %q", native, rep.Warnings)
		}
	}
}

func TestInjectHostPID(t *testing.T) {
	pod := annotated(nil)
	pod.Spec.HostPID = true
	out, rep := Inject(pod, "", testConfig())
	if !rep.Injected || out.Spec.ShareProcessNamespace != nil || len(rep.Warnings) != 0 {
		t.Fatalf("hostPID: %+v, shareProcessNamespace %v", rep, out.Spec.ShareProcessNamespace)
	}
}

func TestInjectRedisPassword(t *testing.T) {
	cfg := testConfig()
	cfg.RedisPasswordSecret = "redis-auth"
	// No Redis address: the Secret is not mounted.
	out, _ := Inject(annotated(nil), "", cfg)
	if len(out.Spec.Volumes) != 2 || env(sidecar(t, out))["TRACECAM_REDIS_PASSWORD_FILE"] != "" {
		t.Fatalf("password without Redis: %+v", out.Spec.Volumes)
	}
	// An address from the annotation is enough.
	out, rep := Inject(annotated(map[string]string{AnnotationRedisAddr: "r:6379"}), "", cfg)
	c := sidecar(t, out)
	if len(rep.Warnings) != 0 || env(c)["TRACECAM_REDIS_PASSWORD_FILE"] != RedisPasswordFile {
		t.Fatalf("env %v, warnings %q", env(c), rep.Warnings)
	}
	v := out.Spec.Volumes[2]
	if v.Name != RedisPasswordVolumeName || v.Secret == nil || v.Secret.SecretName != "redis-auth" ||
		v.Secret.Optional == nil || !*v.Secret.Optional || v.Secret.Items[0].Key != "password" {
		t.Fatalf("volume %+v", v)
	}
	m := c.VolumeMounts[2]
	if m.Name != RedisPasswordVolumeName || !m.ReadOnly || m.MountPath+"/"+v.Secret.Items[0].Path != RedisPasswordFile {
		t.Fatalf("mount %+v", m)
	}
}

func TestConfig(t *testing.T) {
	if err := testConfig().Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	d := DefaultConfig()
	if !d.NativeSidecar || d.SegmentThreshold != "1ms" || d.LogLevel != "info" || !reflect.DeepEqual(d.Resources, DefaultResources()) {
		t.Fatalf("defaults %+v", d)
	}
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "image") {
		t.Fatalf("default config without image: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		err    string
	}{
		{"threshold", func(c *Config) { c.SegmentThreshold = "1h" }, "SegmentThreshold"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "LogLevel"},
		{"redis", func(c *Config) { c.RedisAddr = "nope" }, "RedisAddr"},
		{"secret", func(c *Config) { c.RedisPasswordSecret = "Not_A_Name" }, "RedisPasswordSecret"},
		{"pull policy", func(c *Config) { c.ImagePullPolicy = "Sometimes" }, "ImagePullPolicy"},
		{"resources", func(c *Config) {
			c.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
				Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}}
		}, "exceeds its limit"},
		{"image spaces", func(c *Config) { c.Image = " img" }, "white space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Validate: %v, want %q", err, tc.err)
			}
			// Inject still copes: it injects with the defaults (bad config
			// values warn), or skips when there is no usable image.
			out, rep := Inject(annotated(nil), "", cfg)
			if tc.name == "image spaces" {
				if rep.Injected || !strings.Contains(rep.Reason, "misconfigured") {
					t.Fatalf("%+v", rep)
				}
				return
			}
			if !rep.Injected || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "webhook config") {
				t.Fatalf("%+v", rep)
			}
			c := sidecar(t, out)
			if c.ImagePullPolicy == "Sometimes" || checkResources(c.Resources) != "" {
				t.Fatalf("bad config leaked into the sidecar: %+v", c)
			}
		})
	}
	// Zero config (legacy, no image): skipped, not a panic.
	if _, rep := Inject(annotated(nil), "", Config{}); rep.Injected || !strings.Contains(rep.Reason, "no sidecar image") {
		t.Fatalf("zero config: %+v", rep)
	}
	// Custom resources are used as given.
	cfg := testConfig()
	cfg.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}}
	out, _ := Inject(annotated(nil), "", cfg)
	if r := sidecar(t, out).Resources; !reflect.DeepEqual(r, cfg.Resources) {
		t.Fatalf("resources %+v", r)
	}
}

// TestInjectHugePod: 500 containers and 1 MiB of annotations, including
// huge bad values that must come back shortened in the warnings.
func TestInjectHugePod(t *testing.T) {
	pod := hugePod(500, 1<<20)
	out, rep := Inject(pod, "ns", testConfig())
	if !rep.Injected || len(out.Spec.Containers) != 500 || len(out.Spec.InitContainers) != 1 {
		t.Fatalf("%+v", rep)
	}
	for _, w := range rep.Warnings {
		if len(w) > 300 {
			t.Errorf("warning of %d bytes: %.100s…", len(w), w)
		}
	}
	if len(rep.Warnings) != 2 {
		t.Errorf("warnings %q", rep.Warnings)
	}
}

// hugePod builds a pod with n containers and about annBytes of
// annotations, among them a huge bad segment threshold and many unknown
// tracecam.io/ keys.
func hugePod(n, annBytes int) *corev1.Pod {
	pod := annotated(map[string]string{AnnotationSegmentThreshold: strings.Repeat("9", 64<<10)})
	pod.Spec.Containers = nil
	for i := range n {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
			Name: fmt.Sprintf("c%d", i), Image: "app:1",
			Ports: []corev1.ContainerPort{{ContainerPort: int32(8000 + i)}},
			Env:   []corev1.EnvVar{{Name: "I", Value: fmt.Sprint(i)}},
		})
	}
	chunk := strings.Repeat("x", 1000)
	for i := 0; annBytes > 64<<10+len(chunk); i++ {
		prefix := "example.com/"
		if i%2 == 0 {
			prefix = AnnotationPrefix
		}
		pod.Annotations[fmt.Sprintf("%sk%d", prefix, i)] = chunk
		annBytes -= len(chunk) + 20
	}
	return pod
}
