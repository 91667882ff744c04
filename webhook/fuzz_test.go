package webhook

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// FuzzReview: whatever the body, Review does not panic, answers 200, 400
// or 413, and a 200 is a well-formed response for the request's UID that
// allows the object, with a patch (if any) that applies to the pod and
// gives what Inject gives.
//
//	go test ./webhook -run '^$' -fuzz FuzzReview -fuzztime 20s
func FuzzReview(f *testing.F) {
	ins, _ := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	for _, in := range ins {
		raw, _ := readPod(f, in)
		f.Add(reviewJSON(f, "CREATE", "Pod", raw))
	}
	create := reviewJSON(f, "CREATE", "Pod", []byte(plainPod))
	for _, seed := range [][]byte{
		create,
		reviewJSON(f, "UPDATE", "Pod", []byte(plainPod)),
		reviewJSON(f, "DELETE", "Pod", []byte(plainPod)),
		reviewJSON(f, "CREATE", "Deployment", []byte(`{"kind":"Deployment"}`)),
		reviewJSON(f, "CREATE", "Pod", []byte(`{"metadata":{"annotations":{"tracecam.io/inject":"true","tracecam.io/cpu-request":"9Ei","tracecam.io/redis-addr":"[::1]:1,a:b"}},"spec":{"hostPID":true,"volumes":[{"name":"tracecam-btf"}]}}`)),
		reviewJSON(f, "CREATE", "Pod", []byte(`{"spec":"x"}`)),
		reviewJSON(f, "CREATE", "Pod", []byte(`null`)),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u"}}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`),
		[]byte(`{}`), []byte(`null`), []byte(``), []byte(`"x"`), []byte("\xff\xfe"),
	} {
		f.Add(seed)
	}
	cfg := testConfig()
	f.Fuzz(func(t *testing.T, body []byte) {
		status, resp := Review(body, cfg)
		switch status {
		case 400, 413:
			if len(resp) == 0 {
				t.Fatal("error without a message")
			}
			return
		case 200:
		default:
			t.Fatalf("status %d", status)
		}
		var in admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &in); err != nil || in.Request == nil {
			t.Fatalf("200 for a body that is not a review: %v", err)
		}
		r := decodeResponse(t, resp)
		if r.UID != in.Request.UID || !r.Allowed {
			t.Fatalf("uid %q allowed %v, request uid %q", r.UID, r.Allowed, in.Request.UID)
		}
		if r.Patch == nil {
			return
		}
		var pod corev1.Pod
		if err := json.Unmarshal(in.Request.Object.Raw, &pod); err != nil {
			t.Fatalf("patch for an undecodable pod: %v", err)
		}
		want, rep := Inject(&pod, in.Request.Namespace, cfg)
		if !rep.Injected {
			t.Fatalf("patch though Inject skips: %+v", rep)
		}
		got := applyPatch(t, podJSON(t, &pod), r.Patch)
		if !samePod(t, got, podJSON(t, want)) {
			t.Fatalf("patched pod differs from Inject's")
		}
	})
}

// FuzzInject fuzzes the annotation values (and a spec bit) rather than
// JSON syntax: Inject must not panic or modify its input, must keep its
// warnings short, must write only validated values into the sidecar, and
// must not inject twice.
//
//	go test ./webhook -run '^$' -fuzz FuzzInject -fuzztime 20s
func FuzzInject(f *testing.F) {
	f.Add("true", "1ms", "50m", "1", "64Mi", "1Gi", "r:1", "info", "false", false)
	f.Add("True", "10s", "2", "1", "-1", "x", "a:1, b:2,", "DEBUG", "TRUE", true)
	f.Add("true", "0", "", " ", "1e400", "9Ei", "[::1]:65535", "warn ", "yes", false)
	cfg := testConfig()
	f.Fuzz(func(t *testing.T, inject, thr, cpuReq, cpuLim, memReq, memLim, redis, level, priv string, hostPID bool) {
		pod := annotated(map[string]string{
			AnnotationInject: inject, AnnotationSegmentThreshold: thr,
			AnnotationCPURequest: cpuReq, AnnotationCPULimit: cpuLim,
			AnnotationMemoryRequest: memReq, AnnotationMemoryLimit: memLim,
			AnnotationRedisAddr: redis, AnnotationLogLevel: level, AnnotationPrivileged: priv,
			AnnotationPrefix + thr: "unknown key",
		})
		pod.Spec.HostPID = hostPID
		snapshot := pod.DeepCopy()
		out, rep := Inject(pod, "ns", cfg)
		if !reflect.DeepEqual(pod, snapshot) {
			t.Fatal("input modified")
		}
		for _, w := range rep.Warnings {
			if len(w) > 400 {
				t.Fatalf("warning of %d bytes", len(w))
			}
		}
		if !rep.Injected {
			return
		}
		c := sidecar(t, out)
		e := env(c)
		if d, err := time.ParseDuration(e["TRACECAM_SEGMENT_THRESHOLD"]); err != nil || d <= 0 || d > MaxSegmentThreshold {
			t.Fatalf("threshold %q", e["TRACECAM_SEGMENT_THRESHOLD"])
		}
		if _, ok := parseLogLevel(e["TRACECAM_LOG_LEVEL"]); !ok {
			t.Fatalf("log level %q", e["TRACECAM_LOG_LEVEL"])
		}
		if a, ok := e["TRACECAM_REDIS_ADDR"]; ok {
			if _, why := parseRedisAddr(a); why != "" {
				t.Fatalf("redis %q", a)
			}
		}
		if why := checkResources(c.Resources); why != "" {
			t.Fatalf("resources: %s", why)
		}
		for _, l := range []corev1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
			for n, q := range l {
				if q.Sign() <= 0 {
					t.Fatalf("%s %s", n, q.String())
				}
			}
		}
		if hostPID == (out.Spec.ShareProcessNamespace != nil) {
			t.Fatalf("hostPID %v, shareProcessNamespace %v", hostPID, out.Spec.ShareProcessNamespace)
		}
		if _, again := Inject(out, "ns", cfg); again.Injected {
			t.Fatal("injected twice")
		}
		patch, err := Patch(pod, out)
		if err != nil {
			t.Fatal(err)
		}
		if got := applyPatch(t, podJSON(t, pod), patch); !samePod(t, got, podJSON(t, out)) {
			t.Fatal("patch does not reproduce Inject's pod")
		}
	})
}
