// Package webhook is the core of tracecam's mutating admission webhook: it
// adds the tracecam sidecar to pods that ask for it.
//
// A pod opts in with the annotation
//
//	tracecam.io/inject: "true"
//
// (the value is matched case-insensitively; anything else leaves the pod
// alone). The package has three layers, each usable on its own:
//
//   - [Inject] is a pure function from a pod and a [Config] to a mutated
//     deep copy of the pod and a [Report] (injected or why not, plus
//     warnings). It does no I/O and never modifies its input.
//   - [Patch] turns the original and the mutated pod into the RFC 6902 JSON
//     patch an admission response carries.
//   - [Review] answers one admission.k8s.io/v1 AdmissionReview (bytes in,
//     status and bytes out, still pure), and [Handler] wraps it in an
//     http.Handler with logging and counters.
//
// # What is injected
//
// One container named "tracecam" running the sidecar, configured through
// TRACECAM_* environment variables only (the sidecar reads every flag from
// TRACECAM_<FLAG>), plus POD_NAME, POD_NAMESPACE, POD_UID and NODE_NAME from
// the downward API. With Config.NativeSidecar (the default, Kubernetes ≥
// 1.29) it is appended to spec.initContainers with restartPolicy Always, so
// it starts before the application and outlives it; otherwise it is appended
// to spec.containers. It serves gRPC on port 7070 ("tracecam-grpc") and HTTP on 7071
// ("tracecam-http", with /readyz and /healthz probes), mounts the host's
// /sys/fs/cgroup and /sys/kernel/btf read-only (volumes tracecam-cgroup and
// tracecam-btf), and runs as root with only CAP_BPF, CAP_PERFMON and
// CAP_SYS_PTRACE. Each of the pod's own containers gets
// TRACECAM_CONTAINER_NAME (its name) in its environment, and the sidecar
// TRACECAM_CONTAINER when there is one app container. The pod gets shareProcessNamespace (unless it uses
// hostPID, which already shows every process and may not be combined with
// it) and the annotation tracecam.io/status recording what was injected; its
// presence makes a second injection a no-op.
//
// # Per-pod overrides
//
// These annotations tune one pod; each is validated, and a bad value never
// blocks the pod: the default is used and a warning naming the annotation
// and the value is returned (the admission response carries it to kubectl):
//
//	tracecam.io/segment-threshold  Go duration, > 0 and ≤ 10s
//	tracecam.io/cpu-request        resource quantity > 0, ≤ the limit
//	tracecam.io/cpu-limit
//	tracecam.io/memory-request
//	tracecam.io/memory-limit
//	tracecam.io/redis-addr         host:port[,host:port…]
//	tracecam.io/log-level          debug, info, warn or error
//	tracecam.io/privileged         "true" or "false"
//
// Unknown tracecam.io/ annotations (typos) are reported as warnings too.
//
// # Failing open
//
// The webhook is meant to be registered with failurePolicy: Ignore. Every
// pod it cannot handle (undecodable, malformed annotations) is allowed
// unchanged, with a warning where one helps; only a request that is not an
// AdmissionReview at all gets an HTTP error.
package webhook
