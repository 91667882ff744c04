package webhook

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Annotations read (and, for the status, written) on pods.
const (
	AnnotationPrefix = "tracecam.io/"

	AnnotationInject           = AnnotationPrefix + "inject"
	AnnotationStatus           = AnnotationPrefix + "status"
	AnnotationSegmentThreshold = AnnotationPrefix + "segment-threshold"
	AnnotationCPURequest       = AnnotationPrefix + "cpu-request"
	AnnotationCPULimit         = AnnotationPrefix + "cpu-limit"
	AnnotationMemoryRequest    = AnnotationPrefix + "memory-request"
	AnnotationMemoryLimit      = AnnotationPrefix + "memory-limit"
	AnnotationRedisAddr        = AnnotationPrefix + "redis-addr"
	AnnotationLogLevel         = AnnotationPrefix + "log-level"
	AnnotationPrivileged       = AnnotationPrefix + "privileged"
)

// Names and numbers of what Inject adds.
const (
	ContainerName = "tracecam"

	CgroupVolumeName        = "tracecam-cgroup"
	BTFVolumeName           = "tracecam-btf"
	RedisPasswordVolumeName = "tracecam-redis-password"

	CgroupPath = "/sys/fs/cgroup"
	BTFPath    = "/sys/kernel/btf"
	// RedisPasswordDir is where the Secret is mounted; the key "password"
	// is the file RedisPasswordFile the sidecar reads.
	RedisPasswordDir  = "/var/run/secrets/tracecam/redis"
	RedisPasswordKey  = "password"
	RedisPasswordFile = RedisPasswordDir + "/" + RedisPasswordKey

	// Port names carry the tracecam- prefix: a pod's ports share one name
	// space across containers, and apps commonly name theirs "http"; a
	// Service with targetPort: http would then reach the sidecar (the API
	// server warns "duplicate port name", as the e2e test saw).
	GRPCPortName = "tracecam-grpc"
	HTTPPortName = "tracecam-http"
	GRPCPort     = 7070
	HTTPPort     = 7071

	// MaxSegmentThreshold bounds tracecam.io/segment-threshold: longer
	// thresholds would hide nearly every wait.
	MaxSegmentThreshold = 10 * time.Second
)

// Defaults used for empty Config fields and rejected overrides.
const (
	DefaultSegmentThreshold = "1ms"
	DefaultLogLevel         = "info"
)

// DefaultResources is the sidecar's default resource requirements:
// requests cpu 50m, memory 64Mi; limits cpu 500m, memory 256Mi (the sidecar
// caps its Go heap at 256 MiB by itself).
func DefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("50m"),
			corev1.ResourceMemory: resource.MustParse("64Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("500m"),
			corev1.ResourceMemory: resource.MustParse("256Mi"),
		},
	}
}

// Config is the webhook's cluster-wide configuration of the sidecar.
//
// Start from DefaultConfig: NativeSidecar is documented as defaulting to
// true, which a Go bool cannot do by itself, so a zero Config injects a
// legacy (regular) container. Other empty fields get their defaults inside
// Inject; Validate reports misconfiguration at start-up.
type Config struct {
	Image           string
	ImagePullPolicy corev1.PullPolicy
	// NativeSidecar (DefaultConfig: true) injects an init container with
	// restartPolicy Always (Kubernetes >= 1.29): it starts before the app
	// and outlives it, and does not keep Jobs from completing. False
	// injects a regular container, for older clusters.
	NativeSidecar bool
	// SegmentThreshold: waits at least this long become timeline segments
	// (default "1ms").
	SegmentThreshold string
	// RedisAddr is host:port[,host:port…]; empty: in-memory store only.
	RedisAddr string
	// ClusterName names the cluster in Redis keys; empty: the sidecar's
	// default ("default").
	ClusterName string
	// LogLevel is debug, info, warn or error (default "info").
	LogLevel string
	// RedisPasswordSecret optionally names a Secret, in the pod's
	// namespace, whose key "password" is mounted read-only and passed as
	// TRACECAM_REDIS_PASSWORD_FILE. It is used only when a Redis address is
	// set. The volume is optional: a missing Secret does not keep the pod
	// from starting (the sidecar then reports the missing file).
	RedisPasswordSecret string
	// Resources of the sidecar; with neither requests nor limits set,
	// DefaultResources.
	Resources corev1.ResourceRequirements
	// Version is written into the tracecam.io/status annotation.
	Version string
}

// DefaultConfig returns the defaults: native sidecar, pull policy
// IfNotPresent, segment threshold 1ms, log level info, DefaultResources.
// Image and Version are left for the caller.
func DefaultConfig() Config {
	return Config{
		ImagePullPolicy:  corev1.PullIfNotPresent,
		NativeSidecar:    true,
		SegmentThreshold: DefaultSegmentThreshold,
		LogLevel:         DefaultLogLevel,
		Resources:        DefaultResources(),
	}
}

// Validate reports what is wrong with a Config; call it at start-up.
// (Inject copes with a bad Config too, by falling back to defaults with a
// warning, but an operator should learn of it before the first pod.)
func (c Config) Validate() error {
	_, warnings, err := c.effective()
	if err != nil {
		return err
	}
	if len(warnings) > 0 {
		return fmt.Errorf("%s", strings.Join(warnings, "; "))
	}
	return nil
}

// Report says what Inject did.
type Report struct {
	Injected bool
	// Reason is "injected", or why the pod was left alone.
	Reason string
	// Warnings are for the pod's author (they become admission warnings):
	// rejected override annotations, unknown tracecam.io/ annotations and
	// conflicts the sidecar may run into.
	Warnings []string
}

// ReasonInjected is Report.Reason when the sidecar was added.
const ReasonInjected = "injected"

// Status is the JSON stored in the tracecam.io/status annotation.
type Status struct {
	Version       string `json:"version"`
	Image         string `json:"image"`
	NativeSidecar bool   `json:"native_sidecar"`
	Container     string `json:"container"`
}

// Inject returns a deep copy of pod with the tracecam sidecar added, or an
// unchanged deep copy and the reason it was skipped. namespace is the
// admission request's namespace (pod.Namespace is often still empty at
// admission); it is used only in messages. Inject does no I/O, never
// modifies pod and never panics; a nil pod gives a nil pod.
func Inject(pod *corev1.Pod, namespace string, cfg Config) (*corev1.Pod, Report) {
	if pod == nil {
		return nil, Report{Reason: "no pod"}
	}
	out := pod.DeepCopy()
	ann := out.Annotations

	v, ok := ann[AnnotationInject]
	if !ok {
		return out, Report{Reason: "annotation " + AnnotationInject + " not set"}
	}
	if !strings.EqualFold(strings.TrimSpace(v), "true") {
		return out, Report{Reason: fmt.Sprintf("annotation %s is %s, not \"true\"", AnnotationInject, quote(v))}
	}
	if _, ok := ann[AnnotationStatus]; ok {
		return out, Report{Reason: "already injected (annotation " + AnnotationStatus + " present)"}
	}
	for _, list := range [][]corev1.Container{out.Spec.InitContainers, out.Spec.Containers} {
		for i := range list {
			if list[i].Name == ContainerName {
				return out, Report{Reason: fmt.Sprintf("already injected (a container named %q exists)", ContainerName)}
			}
		}
	}

	eff, warnings, err := cfg.effective()
	if err != nil {
		where := ""
		if namespace != "" {
			where = " in namespace " + namespace
		}
		return out, Report{Reason: "webhook misconfigured" + where + ": " + err.Error(), Warnings: warnings}
	}
	warnings = append(warnings, eff.applyOverrides(ann)...)
	warnings = append(warnings, unknownAnnotations(ann)...)
	warnings = append(warnings, conflicts(out, eff)...)

	// Each of the pod's own containers carries its name in its
	// environment: the sidecar reads it from /proc/<pid>/environ to say
	// which container served a request (the runtime's container IDs in
	// the cgroup paths are not names, and the sidecar has no API access).
	labelContainers(out.Spec.InitContainers)
	labelContainers(out.Spec.Containers)
	c := eff.container()
	// That environment is readable only to a sidecar allowed to read
	// another user's files (the app runs as its own user, /proc/<pid>/environ
	// is 0400): with one app container, the sidecar is simply told its name.
	if len(out.Spec.Containers) == 1 {
		c.Env = append(c.Env, corev1.EnvVar{Name: "TRACECAM_CONTAINER", Value: out.Spec.Containers[0].Name})
	}
	if eff.native {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
		out.Spec.InitContainers = append(out.Spec.InitContainers, c)
	} else {
		out.Spec.Containers = append(out.Spec.Containers, c)
	}
	for _, vol := range eff.volumes() {
		warnings = append(warnings, addVolume(&out.Spec, vol)...)
	}
	// Sharing the PID namespace lets the sidecar read the app's /proc.
	// hostPID already shows every process, and the API server rejects the
	// two together.
	if !out.Spec.HostPID {
		t := true
		out.Spec.ShareProcessNamespace = &t
	}

	status, _ := json.Marshal(Status{Version: eff.version, Image: eff.image, NativeSidecar: eff.native, Container: ContainerName})
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[AnnotationStatus] = string(status)
	return out, Report{Injected: true, Reason: ReasonInjected, Warnings: warnings}
}

// ContainerNameEnv names a container in its own environment (see Inject).
const ContainerNameEnv = "TRACECAM_CONTAINER_NAME"

func labelContainers(cs []corev1.Container) {
	for i := range cs {
		found := false
		for _, e := range cs[i].Env {
			found = found || e.Name == ContainerNameEnv
		}
		if !found {
			cs[i].Env = append(cs[i].Env, corev1.EnvVar{Name: ContainerNameEnv, Value: cs[i].Name})
		}
	}
}

// effective is a Config with defaults applied and overrides resolved.
type effective struct {
	image       string
	pullPolicy  corev1.PullPolicy
	native      bool
	threshold   string
	redisAddr   string
	clusterName string
	logLevel    string
	redisSecret string
	resources   corev1.ResourceRequirements
	privileged  bool
	version     string
}

// effective applies defaults. A missing image is an error (nothing can be
// injected); other bad values fall back to their defaults with a warning.
func (c Config) effective() (effective, []string, error) {
	var warnings []string
	bad := func(field, v, why, fallback string) {
		warnings = append(warnings, fmt.Sprintf("webhook config %s %s %s; using %s", field, quote(v), why, fallback))
	}
	e := effective{
		image:       c.Image,
		pullPolicy:  c.ImagePullPolicy,
		native:      c.NativeSidecar,
		clusterName: c.ClusterName,
		version:     c.Version,
	}
	if strings.TrimSpace(c.Image) == "" {
		return e, nil, fmt.Errorf("no sidecar image configured")
	}
	if strings.TrimSpace(c.Image) != c.Image {
		return e, nil, fmt.Errorf("sidecar image %s has surrounding white space", quote(c.Image))
	}
	switch c.ImagePullPolicy {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		bad("ImagePullPolicy", string(c.ImagePullPolicy), "is not Always, IfNotPresent or Never", "the cluster default")
		e.pullPolicy = ""
	}
	e.threshold = DefaultSegmentThreshold
	if c.SegmentThreshold != "" {
		if d, why := parseThreshold(c.SegmentThreshold); why != "" {
			bad("SegmentThreshold", c.SegmentThreshold, why, DefaultSegmentThreshold)
		} else {
			e.threshold = d
		}
	}
	e.logLevel = DefaultLogLevel
	if c.LogLevel != "" {
		if l, ok := parseLogLevel(c.LogLevel); ok {
			e.logLevel = l
		} else {
			bad("LogLevel", c.LogLevel, "is not debug, info, warn or error", DefaultLogLevel)
		}
	}
	if c.RedisAddr != "" {
		if a, why := parseRedisAddr(c.RedisAddr); why != "" {
			bad("RedisAddr", c.RedisAddr, why, "no Redis")
		} else {
			e.redisAddr = a
		}
	}
	if c.RedisPasswordSecret != "" {
		if errs := validation.IsDNS1123Subdomain(c.RedisPasswordSecret); len(errs) > 0 {
			bad("RedisPasswordSecret", c.RedisPasswordSecret, "is not a valid Secret name", "no password")
		} else {
			e.redisSecret = c.RedisPasswordSecret
		}
	}
	e.resources = DefaultResources()
	if len(c.Resources.Requests) > 0 || len(c.Resources.Limits) > 0 {
		if why := checkResources(c.Resources); why != "" {
			warnings = append(warnings, "webhook config Resources "+why+"; using the defaults")
		} else {
			e.resources = *c.Resources.DeepCopy()
		}
	}
	return e, warnings, nil
}

// checkResources requires positive quantities and requests within limits.
func checkResources(r corev1.ResourceRequirements) string {
	for _, l := range []corev1.ResourceList{r.Requests, r.Limits} {
		for name, q := range l {
			if q.Sign() < 0 {
				return fmt.Sprintf("%s %s is negative", name, q.String())
			}
		}
	}
	for name, req := range r.Requests {
		if lim, ok := r.Limits[name]; ok && req.Cmp(lim) > 0 {
			return fmt.Sprintf("%s request %s exceeds its limit %s", name, req.String(), lim.String())
		}
	}
	return ""
}

// applyOverrides applies the per-pod annotations to e, returning a warning
// for every rejected value.
func (e *effective) applyOverrides(ann map[string]string) []string {
	var warnings []string
	reject := func(key, v, why, fallback string) {
		warnings = append(warnings, fmt.Sprintf("%s: %s %s; using %s", key, quote(v), why, fallback))
	}

	if v, ok := ann[AnnotationSegmentThreshold]; ok {
		if d, why := parseThreshold(v); why != "" {
			reject(AnnotationSegmentThreshold, v, why, "the default "+e.threshold)
		} else {
			e.threshold = d
		}
	}

	for _, r := range []struct {
		name           corev1.ResourceName
		reqKey, limKey string
	}{
		{corev1.ResourceCPU, AnnotationCPURequest, AnnotationCPULimit},
		{corev1.ResourceMemory, AnnotationMemoryRequest, AnnotationMemoryLimit},
	} {
		warnings = append(warnings, e.overrideResource(ann, r.name, r.reqKey, r.limKey)...)
	}

	if v, ok := ann[AnnotationRedisAddr]; ok {
		if a, why := parseRedisAddr(v); why != "" {
			fallback := "the default"
			if e.redisAddr == "" {
				fallback += " (no Redis)"
			} else {
				fallback += " " + e.redisAddr
			}
			reject(AnnotationRedisAddr, v, why, fallback)
		} else {
			e.redisAddr = a
		}
	}

	if v, ok := ann[AnnotationLogLevel]; ok {
		if l, ok := parseLogLevel(v); ok {
			e.logLevel = l
		} else {
			reject(AnnotationLogLevel, v, "is not debug, info, warn or error", "the default "+e.logLevel)
		}
	}

	if v, ok := ann[AnnotationPrivileged]; ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true":
			e.privileged = true
		case "false":
			e.privileged = false
		default:
			reject(AnnotationPrivileged, v, `is not "true" or "false"`, `the default "false"`)
		}
	}
	return warnings
}

// overrideResource applies the request and limit annotations of one
// resource. A value that does not parse, is not positive, or breaks
// request ≤ limit is rejected with a warning.
func (e *effective) overrideResource(ann map[string]string, name corev1.ResourceName, reqKey, limKey string) []string {
	var warnings []string
	parse := func(key string) (resource.Quantity, string, bool) {
		v, ok := ann[key]
		if !ok {
			return resource.Quantity{}, "", false
		}
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		switch {
		case err != nil:
			warnings = append(warnings, fmt.Sprintf("%s: %s is not a resource quantity; using the default%s", key, quote(v), current(e.resources, name, key == reqKey)))
			return q, v, false
		case q.Sign() <= 0:
			warnings = append(warnings, fmt.Sprintf("%s: %s is not positive; using the default%s", key, quote(v), current(e.resources, name, key == reqKey)))
			return q, v, false
		}
		return q, v, true
	}
	req, reqRaw, haveReq := parse(reqKey)
	lim, limRaw, haveLim := parse(limKey)

	baseReq, baseHaveReq := e.resources.Requests[name]
	baseLim, baseHaveLim := e.resources.Limits[name]
	switch {
	case haveReq && haveLim && req.Cmp(lim) > 0:
		warnings = append(warnings, fmt.Sprintf("%s: %s exceeds %s %s; using the defaults for both", reqKey, quote(reqRaw), limKey, quote(limRaw)))
		haveReq, haveLim = false, false
	case haveReq && !haveLim && baseHaveLim && req.Cmp(baseLim) > 0:
		warnings = append(warnings, fmt.Sprintf("%s: %s exceeds the limit %s; using the default %s", reqKey, quote(reqRaw), baseLim.String(), qstr(baseReq, baseHaveReq)))
		haveReq = false
	case haveLim && !haveReq && baseHaveReq && lim.Cmp(baseReq) < 0:
		warnings = append(warnings, fmt.Sprintf("%s: %s is below the request %s; using the default %s", limKey, quote(limRaw), baseReq.String(), qstr(baseLim, baseHaveLim)))
		haveLim = false
	}
	if haveReq {
		if e.resources.Requests == nil {
			e.resources.Requests = corev1.ResourceList{}
		}
		e.resources.Requests[name] = req
	}
	if haveLim {
		if e.resources.Limits == nil {
			e.resources.Limits = corev1.ResourceList{}
		}
		e.resources.Limits[name] = lim
	}
	return warnings
}

// current names the value a rejected resource annotation falls back to.
func current(r corev1.ResourceRequirements, name corev1.ResourceName, request bool) string {
	l := r.Limits
	if request {
		l = r.Requests
	}
	if q, ok := l[name]; ok {
		return " " + q.String()
	}
	return " (none)"
}

func qstr(q resource.Quantity, ok bool) string {
	if !ok {
		return "(none)"
	}
	return q.String()
}

// parseThreshold accepts a Go duration in (0, MaxSegmentThreshold] and
// returns it as written (less surrounding space: the sidecar parses it the
// same way), or why not.
func parseThreshold(v string) (string, string) {
	v = strings.TrimSpace(v)
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		return "", "is not a Go duration like 1ms"
	case d <= 0:
		return "", "is not positive"
	case d > MaxSegmentThreshold:
		return "", "is longer than " + MaxSegmentThreshold.String()
	}
	return v, ""
}

// parseLogLevel accepts debug, info, warn and error in any case.
func parseLogLevel(v string) (string, bool) {
	l := strings.ToLower(strings.TrimSpace(v))
	switch l {
	case "debug", "info", "warn", "error":
		return l, true
	}
	return "", false
}

// maxRedisAddrs bounds the comma-separated list (a cluster's seed nodes or
// a few sentinels, not thousands).
const maxRedisAddrs = 64

// parseRedisAddr accepts host:port[,host:port…] (spaces around the commas
// are dropped) and returns it normalized, or why not.
func parseRedisAddr(v string) (string, string) {
	parts := strings.Split(v, ",")
	if len(parts) > maxRedisAddrs {
		return "", fmt.Sprintf("lists more than %d addresses", maxRedisAddrs)
	}
	for i, p := range parts {
		p = strings.TrimSpace(p)
		host, port, err := net.SplitHostPort(p)
		if err != nil || host == "" || strings.ContainsAny(host, " \t\r\n/") {
			return "", "is not host:port[,host:port…]"
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", "is not host:port[,host:port…] (bad port)"
		}
		parts[i] = p
	}
	return strings.Join(parts, ","), ""
}

var knownAnnotations = map[string]bool{
	AnnotationInject: true, AnnotationStatus: true, AnnotationSegmentThreshold: true,
	AnnotationCPURequest: true, AnnotationCPULimit: true, AnnotationMemoryRequest: true,
	AnnotationMemoryLimit: true, AnnotationRedisAddr: true, AnnotationLogLevel: true,
	AnnotationPrivileged: true,
}

// maxListed bounds how many unknown annotation keys one warning names.
const maxListed = 5

// unknownAnnotations warns, once, about tracecam.io/ keys that mean
// nothing (most likely typos of an override).
func unknownAnnotations(ann map[string]string) []string {
	var unknown []string
	for k := range ann {
		if strings.HasPrefix(k, AnnotationPrefix) && !knownAnnotations[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	names := make([]string, 0, maxListed)
	for _, k := range unknown[:min(len(unknown), maxListed)] {
		names = append(names, quote(k))
	}
	more := ""
	if n := len(unknown) - maxListed; n > 0 {
		more = fmt.Sprintf(" and %d more", n)
	}
	return []string{fmt.Sprintf("unknown annotation %s%s ignored", strings.Join(names, ", "), more)}
}

// conflicts warns about what may keep the sidecar from working in this pod.
func conflicts(pod *corev1.Pod, e effective) []string {
	var warnings []string
	if pod.Spec.HostNetwork {
		warnings = append(warnings, fmt.Sprintf("pod uses hostNetwork: the tracecam sidecar listens on the node's ports %d and %d", GRPCPort, HTTPPort))
	}
	for _, port := range []int32{GRPCPort, HTTPPort} {
		if name, ok := portUser(pod, port); ok {
			warnings = append(warnings, fmt.Sprintf("container %s already uses port %d, which the tracecam sidecar listens on", quote(name), port))
		}
	}
	if !e.native && (pod.Spec.RestartPolicy == corev1.RestartPolicyNever || pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure) {
		warnings = append(warnings, "tracecam runs as a regular (non-native) sidecar, which keeps this pod from completing")
	}
	if s := pod.Spec.ShareProcessNamespace; s != nil && !*s && !pod.Spec.HostPID {
		warnings = append(warnings, "shareProcessNamespace changed from false to true so the tracecam sidecar can read the app's /proc")
	}
	return warnings
}

// portUser finds the first container that declares port as container or
// host port.
func portUser(pod *corev1.Pod, port int32) (string, bool) {
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			for _, p := range list[i].Ports {
				if p.ContainerPort == port || p.HostPort == port {
					return list[i].Name, true
				}
			}
		}
	}
	return "", false
}

// addVolume adds vol unless a volume of that name exists; one that exists
// but differs is kept, with a warning.
func addVolume(spec *corev1.PodSpec, vol corev1.Volume) []string {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name != vol.Name {
			continue
		}
		old := spec.Volumes[i].VolumeSource
		if sameSource(old, vol.VolumeSource) {
			return nil
		}
		return []string{fmt.Sprintf("the pod's own volume %q is kept, though tracecam expects a different source", vol.Name)}
	}
	spec.Volumes = append(spec.Volumes, vol)
	return nil
}

func sameSource(a, b corev1.VolumeSource) bool {
	switch {
	case b.HostPath != nil:
		return a.HostPath != nil && a.HostPath.Path == b.HostPath.Path
	case b.Secret != nil:
		return a.Secret != nil && a.Secret.SecretName == b.Secret.SecretName
	}
	return false
}

// volumes the sidecar needs.
func (e effective) volumes() []corev1.Volume {
	dir, dirOrCreate := corev1.HostPathDirectory, corev1.HostPathDirectoryOrCreate
	vols := []corev1.Volume{
		{Name: CgroupVolumeName, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: CgroupPath, Type: &dir}}},
		{Name: BTFVolumeName, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: BTFPath, Type: &dirOrCreate}}},
	}
	if e.redisPassword() {
		mode, optional := int32(0o400), true
		vols = append(vols, corev1.Volume{Name: RedisPasswordVolumeName, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName:  e.redisSecret,
			Items:       []corev1.KeyToPath{{Key: RedisPasswordKey, Path: RedisPasswordKey}},
			DefaultMode: &mode,
			Optional:    &optional,
		}}})
	}
	return vols
}

func (e effective) redisPassword() bool { return e.redisSecret != "" && e.redisAddr != "" }

// container builds the sidecar.
func (e effective) container() corev1.Container {
	env := []corev1.EnvVar{
		{Name: "TRACECAM_SEGMENT_THRESHOLD", Value: e.threshold},
		{Name: "TRACECAM_LOG_LEVEL", Value: e.logLevel},
		{Name: "TRACECAM_GRPC_ADDR", Value: ":" + strconv.Itoa(GRPCPort)},
		{Name: "TRACECAM_HTTP_ADDR", Value: ":" + strconv.Itoa(HTTPPort)},
		// A sidecar that cannot watch (old kernel, a policy denying BPF)
		// must not take the app out of service: its readiness counts
		// toward the pod's. It stays up, ready, and says why it is idle.
		{Name: "TRACECAM_ON_ERROR", Value: "idle"},
	}
	if e.clusterName != "" {
		env = append(env, corev1.EnvVar{Name: "TRACECAM_CLUSTER_NAME", Value: e.clusterName})
	}
	if e.redisAddr != "" {
		env = append(env, corev1.EnvVar{Name: "TRACECAM_REDIS_ADDR", Value: e.redisAddr})
	}
	if e.redisPassword() {
		env = append(env, corev1.EnvVar{Name: "TRACECAM_REDIS_PASSWORD_FILE", Value: RedisPasswordFile})
	}
	for _, f := range []struct{ name, path string }{
		{"POD_NAME", "metadata.name"},
		{"POD_NAMESPACE", "metadata.namespace"},
		{"POD_UID", "metadata.uid"},
		{"NODE_NAME", "spec.nodeName"},
	} {
		env = append(env, corev1.EnvVar{Name: f.name, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: f.path},
		}})
	}

	mounts := []corev1.VolumeMount{
		{Name: CgroupVolumeName, MountPath: CgroupPath, ReadOnly: true},
		{Name: BTFVolumeName, MountPath: BTFPath, ReadOnly: true},
	}
	if e.redisPassword() {
		mounts = append(mounts, corev1.VolumeMount{Name: RedisPasswordVolumeName, MountPath: RedisPasswordDir, ReadOnly: true})
	}

	return corev1.Container{
		Name:            ContainerName,
		Image:           e.image,
		ImagePullPolicy: e.pullPolicy,
		Env:             env,
		Ports: []corev1.ContainerPort{
			{Name: GRPCPortName, ContainerPort: GRPCPort, Protocol: corev1.ProtocolTCP},
			{Name: HTTPPortName, ContainerPort: HTTPPort, Protocol: corev1.ProtocolTCP},
		},
		Resources:    *e.resources.DeepCopy(),
		VolumeMounts: mounts,
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:     httpGet("/readyz"),
			PeriodSeconds:    10,
			TimeoutSeconds:   2,
			SuccessThreshold: 1,
			FailureThreshold: 3,
		},
		// Generous: loading the eBPF programs can take a while on a busy
		// node, and restarting the sidecar loses its in-memory profiles.
		LivenessProbe: &corev1.Probe{
			ProbeHandler:        httpGet("/healthz"),
			InitialDelaySeconds: 15,
			PeriodSeconds:       20,
			TimeoutSeconds:      5,
			SuccessThreshold:    1,
			FailureThreshold:    6,
		},
		// The sidecar states a failed start (no BTF, missing capability) in
		// one line on stderr; this puts it into the container status.
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext:          e.securityContext(),
	}
}

func httpGet(path string) corev1.ProbeHandler {
	return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
		Path:   path,
		Port:   intstr.FromString(HTTPPortName),
		Scheme: corev1.URISchemeHTTP,
	}}
}

func (e effective) securityContext() *corev1.SecurityContext {
	root, nonRoot, readOnly := int64(0), false, true
	sc := &corev1.SecurityContext{
		// Root, because it reads the host's /sys/fs/cgroup and loads eBPF.
		// RunAsNonRoot false overrides a pod-level runAsNonRoot, which
		// would otherwise keep the container (and, as a native sidecar,
		// the whole pod) from starting.
		RunAsUser:              &root,
		RunAsNonRoot:           &nonRoot,
		ReadOnlyRootFilesystem: &readOnly,
	}
	if e.privileged {
		// Privileged implies every capability; the API server rejects
		// allowPrivilegeEscalation: false together with privileged.
		p := true
		sc.Privileged = &p
		return sc
	}
	p, escalate := false, false
	sc.Privileged = &p
	sc.AllowPrivilegeEscalation = &escalate
	sc.Capabilities = &corev1.Capabilities{
		Add: []corev1.Capability{
			"BPF",     // bpf(2): load programs, create and read maps
			"PERFMON", // tracing programs (tp_btf) and BTF-typed kernel pointer reads
			// Read the app's binary through /proc/<pid>/exe (and its
			// environment): the goroutine probes attach to the Go runtime
			// in it. The kernel guards another user's /proc/<pid>/exe as
			// it guards ptrace; the sidecar never traces anything.
			"SYS_PTRACE",
			// Not SYS_RESOURCE: RLIMIT_MEMLOCK bounds eBPF maps only before
			// 5.11, and the sidecar needs 6.3. Asking for it anyway is not
			// harmless: where the node's runtime lacks it in its bounding
			// set (a node that is itself a container), runc refuses the
			// container ("unable to apply caps"), and a native sidecar that
			// cannot start keeps the app container from starting too.
		},
		Drop: []corev1.Capability{"ALL"},
	}
	return sc
}

// maxQuoted bounds a value quoted into a message: annotation values can be
// large, and the API server truncates long warnings anyway.
const maxQuoted = 64

// quote quotes v for a message, shortened to maxQuoted bytes.
func quote(v string) string {
	if len(v) > maxQuoted {
		return strconv.Quote(v[:maxQuoted]) + fmt.Sprintf("… (%d bytes)", len(v))
	}
	return strconv.Quote(v)
}
