package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sync/atomic"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// MaxBodyBytes bounds an AdmissionReview request. The API server caps
// objects at about 1.5 MiB in etcd, and a review carries the object once on
// CREATE; 3 MiB leaves room for the envelope and JSON escaping.
const MaxBodyBytes = 3 << 20

const admissionAPIVersion = "admission.k8s.io/v1"

// outcome classifies one review, for logs and counters.
type outcome int

const (
	outcomeError    outcome = iota // not a usable AdmissionReview: HTTP error, or a pod we could not handle
	outcomeIgnored                 // not a pod CREATE: allowed unchanged
	outcomeSkipped                 // a pod CREATE that Inject skipped
	outcomeInjected                // a pod CREATE that got the sidecar
)

func (o outcome) String() string {
	switch o {
	case outcomeIgnored:
		return "ignored"
	case outcomeSkipped:
		return "skipped"
	case outcomeInjected:
		return "injected"
	}
	return "error"
}

// decision is what review decided, for the Handler's log line.
type decision struct {
	outcome   outcome
	uid       string
	namespace string
	pod       string
	optedIn   bool // the pod carries tracecam.io/inject
	reason    string
	warnings  []string
}

// Review answers one admission.k8s.io/v1 AdmissionReview (JSON). It does
// no I/O. A pod CREATE is passed to Inject: when injected, the answer allows
// it with a JSON patch and Inject's warnings; otherwise it allows it
// unchanged (with warnings, if any). Any other request (other kinds,
// UPDATE, DELETE, CONNECT, subresources) is allowed unchanged; dry runs
// are handled like any other request, having no side effects here.
//
// The status is 200 with a response AdmissionReview carrying the request's
// UID. A body that is not an AdmissionReview v1 with a request gets 400
// (413 when larger than MaxBodyBytes) and a plain-text error: the API
// server counts that as a webhook failure, which failurePolicy: Ignore
// turns into admitting the object unchanged. A pod that does not decode is
// allowed unchanged with a warning saying why: a pod is never blocked
// because the webhook cannot handle it.
func Review(body []byte, cfg Config) (status int, resp []byte) {
	status, resp, _ = review(body, cfg)
	return status, resp
}

func review(body []byte, cfg Config) (int, []byte, decision) {
	d := decision{outcome: outcomeError}
	fail := func(status int, format string, args ...any) (int, []byte, decision) {
		d.reason = fmt.Sprintf(format, args...)
		return status, []byte(d.reason + "\n"), d
	}
	if len(body) > MaxBodyBytes {
		return fail(http.StatusRequestEntityTooLarge, "request body of %d bytes exceeds the limit of %d", len(body), MaxBodyBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return fail(http.StatusBadRequest, "empty request body: want an %s AdmissionReview", admissionAPIVersion)
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &ar); err != nil {
		return fail(http.StatusBadRequest, "request body is not an AdmissionReview: %s", clip(err.Error()))
	}
	if ar.APIVersion != admissionAPIVersion || ar.Kind != "AdmissionReview" {
		return fail(http.StatusBadRequest, "want apiVersion %s, kind AdmissionReview; got apiVersion %s, kind %s",
			admissionAPIVersion, quote(ar.APIVersion), quote(ar.Kind))
	}
	req := ar.Request
	if req == nil {
		return fail(http.StatusBadRequest, "AdmissionReview has no request")
	}
	if req.UID == "" {
		return fail(http.StatusBadRequest, "AdmissionReview request has no uid")
	}
	d.uid = clip(string(req.UID))
	d.namespace = clip(req.Namespace)

	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	d.outcome = outcomeIgnored
	d.reason = "not a pod CREATE"
	if isPodCreate(req) {
		d.outcome, d.reason = decidePod(req, cfg, resp, &d)
	}
	d.warnings = resp.Warnings

	out, err := json.Marshal(admissionv1.AdmissionReview{TypeMeta: ar.TypeMeta, Response: resp})
	if err != nil {
		// Cannot happen with these types; answer without patch or warnings.
		d.outcome, d.reason = outcomeError, "encoding the response: "+err.Error()
		out, _ = json.Marshal(admissionv1.AdmissionReview{TypeMeta: ar.TypeMeta,
			Response: &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}})
	}
	return http.StatusOK, out, d
}

func isPodCreate(req *admissionv1.AdmissionRequest) bool {
	return req.Operation == admissionv1.Create &&
		req.SubResource == "" &&
		req.Kind.Group == "" && req.Kind.Version == "v1" && req.Kind.Kind == "Pod" &&
		req.Resource.Group == "" && req.Resource.Resource == "pods"
}

// decidePod fills resp for a pod CREATE; every path allows the pod.
func decidePod(req *admissionv1.AdmissionRequest, cfg Config, resp *admissionv1.AdmissionResponse, d *decision) (o outcome, reason string) {
	if len(bytes.TrimSpace(req.Object.Raw)) == 0 || bytes.Equal(bytes.TrimSpace(req.Object.Raw), []byte("null")) {
		reason = "the request carries no pod"
		resp.Warnings = []string{"tracecam: " + reason + "; sidecar not injected"}
		return outcomeError, reason
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		reason = "cannot decode the pod: " + clip(err.Error())
		resp.Warnings = []string{"tracecam: " + reason + "; sidecar not injected"}
		return outcomeError, reason
	}
	d.pod = podName(&pod)
	_, d.optedIn = pod.Annotations[AnnotationInject]
	ns := req.Namespace
	if ns == "" {
		ns = pod.Namespace
	}

	mutated, rep, panicked := safeInject(&pod, ns, cfg)
	if panicked != nil {
		reason = fmt.Sprintf("internal error: %v", panicked)
		resp.Warnings = []string{"tracecam: internal error; sidecar not injected"}
		return outcomeError, clip(reason)
	}
	resp.Warnings = rep.Warnings
	if !rep.Injected {
		return outcomeSkipped, rep.Reason
	}
	patch, err := Patch(&pod, mutated)
	if err != nil {
		reason = clip(err.Error())
		resp.Warnings = append(resp.Warnings, "tracecam: "+reason+"; sidecar not injected")
		return outcomeError, reason
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	return outcomeInjected, rep.Reason
}

// safeInject is Inject behind a recover: a bug must not turn into an HTTP
// 500 for a pod, let alone a crashed webhook.
func safeInject(pod *corev1.Pod, ns string, cfg Config) (out *corev1.Pod, rep Report, panicked any) {
	defer func() {
		if p := recover(); p != nil {
			out, rep, panicked = nil, Report{}, p
		}
	}()
	out, rep = Inject(pod, ns, cfg)
	return out, rep, nil
}

func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return clip(p.Name)
	}
	if p.GenerateName != "" {
		return clip(p.GenerateName) + "*"
	}
	return ""
}

// clip bounds a string going into a log line or message: names are not
// validated yet when mutating webhooks run.
func clip(s string) string {
	const max = 256
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// Metrics counts the Handler's decisions since it was made.
type Metrics struct {
	Injected uint64 // pods that got the sidecar
	Skipped  uint64 // pod CREATEs left alone (not opted in, already injected, …)
	Ignored  uint64 // other requests (other kinds, operations, subresources)
	Errors   uint64 // requests answered with an HTTP error, and pods that could not be handled
}

// Webhook is the http.Handler Handler returns.
type Webhook struct {
	cfg                                 Config
	log                                 *slog.Logger
	injected, skipped, ignored, errored atomic.Uint64
}

// Handler serves Review over HTTP: POST only (405 otherwise), with
// Content-Type application/json (415 otherwise), the body bounded by
// MaxBodyBytes (413). Each decision is logged: injections and skips of
// opted-in pods at info, other skips and ignored requests at debug, errors
// at warn. A nil log discards.
//
// It returns the concrete *Webhook (an http.Handler) so callers can read
// Metrics.
func Handler(cfg Config, log *slog.Logger) *Webhook {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Webhook{cfg: cfg, log: log}
}

// Metrics returns the counters.
func (h *Webhook) Metrics() Metrics {
	return Metrics{
		Injected: h.injected.Load(),
		Skipped:  h.skipped.Load(),
		Ignored:  h.ignored.Load(),
		Errors:   h.errored.Load(),
	}
}

func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.httpError(w, r, http.StatusMethodNotAllowed, "method "+clip(r.Method)+" not allowed: POST an AdmissionReview")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.httpError(w, r, http.StatusUnsupportedMediaType, "Content-Type "+quote(r.Header.Get("Content-Type"))+" not supported: want application/json")
		return
	}
	if r.ContentLength > MaxBodyBytes {
		h.httpError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes exceeds the limit of %d", r.ContentLength, MaxBodyBytes))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.httpError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds the limit of %d bytes", MaxBodyBytes))
			return
		}
		h.httpError(w, r, http.StatusBadRequest, "reading the request body: "+err.Error())
		return
	}

	status, resp, d := review(body, h.cfg)
	h.count(d.outcome)
	attrs := []any{"outcome", d.outcome.String(), "reason", d.reason}
	if d.uid != "" {
		attrs = append(attrs, "uid", d.uid)
	}
	if d.namespace != "" || d.pod != "" {
		attrs = append(attrs, "namespace", d.namespace, "pod", d.pod)
	}
	if len(d.warnings) > 0 {
		// The text, not just a count: for pods a controller creates (a
		// Deployment's), nobody sees the admission warnings but this log.
		ws := make([]string, len(d.warnings))
		for i, w := range d.warnings {
			ws[i] = clip(w)
		}
		attrs = append(attrs, "warnings", ws)
	}
	switch {
	case d.outcome == outcomeError:
		h.log.Warn("admission review failed", append(attrs, "status", status, "remote", r.RemoteAddr)...)
	case d.outcome == outcomeInjected || (d.outcome == outcomeSkipped && d.optedIn):
		h.log.Info("admission review", attrs...)
	default:
		h.log.Debug("admission review", attrs...)
	}

	if status != http.StatusOK {
		writeText(w, status, string(resp))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(resp)
}

func (h *Webhook) count(o outcome) {
	switch o {
	case outcomeInjected:
		h.injected.Add(1)
	case outcomeSkipped:
		h.skipped.Add(1)
	case outcomeIgnored:
		h.ignored.Add(1)
	default:
		h.errored.Add(1)
	}
}

func (h *Webhook) httpError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.errored.Add(1)
	h.log.Warn("admission review failed", "status", status, "reason", msg, "remote", r.RemoteAddr)
	writeText(w, status, msg+"\n")
}

func writeText(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, msg)
}
