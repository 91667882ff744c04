package profile

import "time"

// Category is where a slice of a serving thread's wall-clock time went.
type Category string

// The breakdown categories (contract: DESIGN.md "Categories").
const (
	CPU   Category = "cpu"   // on CPU, user or kernel
	Runq  Category = "runq"  // runnable, waiting for a CPU
	Net   Category = "net"   // blocked in socket I/O or connect
	File  Category = "file"  // blocked in file/storage I/O, fsync
	Lock  Category = "lock"  // blocked in futex / lock wait
	Epoll Category = "epoll" // idle in epoll/poll/select
	Sleep Category = "sleep" // in a sleep syscall
	Queue Category = "queue" // request waited before a worker picked it up
	// Loop: the request was ready (its bytes, its reply or its timer had
	// come) but its event loop was busy with other requests' work.
	Loop Category = "loop"
	// GC (Go, goroutine accounting): the goroutine was parked for the
	// garbage collector (GC assist wait, sweep wait, …).
	GC    Category = "gc"
	Other Category = "other" // any other off-CPU time
)

// Categories lists every category in display order.
var Categories = []Category{CPU, Runq, Net, File, Lock, Epoll, Sleep, Queue, Loop, GC, Other}

// Accounting is how a profile's breakdown was measured.
type Accounting string

// Accounting models (contract: DESIGN.md, the proto's Profile.accounting).
const (
	// AccountingThread: the serving thread's kernel counters between the
	// request's read and its response: exact for a thread per request.
	AccountingThread Accounting = "thread"
	// AccountingEventLoop: one thread served many requests; its time was
	// cut at socket events and idle waits and given to the request it
	// worked for or that waited (sidecar/assemble/loop.go).
	AccountingEventLoop Accounting = "event_loop"
	// AccountingGoroutine: Go, the request's goroutine on whatever threads
	// ran it.
	AccountingGoroutine Accounting = "goroutine"
	// AccountingEstimated: the camera could not follow the request's work
	// exactly; PartialReason says what is missing.
	AccountingEstimated Accounting = "estimated"
)

// Cause is the diagnosed root cause of a slow request.
type Cause string

// Diagnosis causes (contract: DESIGN.md).
const (
	CauseCPU       Cause = "cpu"
	CauseRunq      Cause = "runq"
	CauseNet       Cause = "net"
	CauseDNS       Cause = "dns"
	CauseTCPWindow Cause = "tcp_window"
	CauseFile      Cause = "file"
	CauseLock      Cause = "lock"
	CauseGC        Cause = "gc"
	CauseQueue     Cause = "queue"
	CauseLoop      Cause = "loop"
	CauseSleep     Cause = "sleep"
	CauseUnknown   Cause = "unknown"
)

// Profile is one request served by the pod: where its time went and why.
type Profile struct {
	TraceID string `json:"trace_id"`
	SpanID  string `json:"span_id"`
	// ParentSpanID is the caller's span from the incoming trace header.
	ParentSpanID string `json:"parent_span_id,omitempty"`
	// TraceIDGenerated is true when the request carried no trace header and
	// tracecam made the ID up.
	TraceIDGenerated bool `json:"trace_id_generated,omitempty"`
	// TraceSource names the header the trace ID came from (traceparent, b3, ...).
	TraceSource string `json:"trace_source,omitempty"`

	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Container string `json:"container,omitempty"`

	PID        uint32 `json:"pid"`
	TID        uint32 `json:"tid"`
	ThreadName string `json:"thread_name"`

	Method     string `json:"method"`
	Path       string `json:"path"`
	Host       string `json:"host,omitempty"`
	StatusCode int    `json:"status_code"`
	// Client is the remote address:port of the connection the request came on.
	Client string `json:"client,omitempty"`
	// Server is the local address:port the request was served on.
	Server string `json:"server,omitempty"`

	StartTime  time.Time `json:"start_time"`
	DurationNS int64     `json:"duration_ns"`
	// RequestBytes and ResponseBytes count payload seen on the socket.
	RequestBytes  int64 `json:"request_bytes"`
	ResponseBytes int64 `json:"response_bytes"`

	// Breakdown maps a category to nanoseconds; it sums to DurationNS.
	Breakdown map[Category]int64 `json:"breakdown"`
	Timeline  []Segment          `json:"timeline"`
	DNS       []DNSQuery         `json:"dns"`
	Network   []NetworkPeer      `json:"network"`
	Diagnosis Diagnosis          `json:"diagnosis"`

	// Partial is true when the capture lost events during the request, or
	// the request could not be observed whole; PartialReason says why.
	Partial       bool   `json:"partial"`
	PartialReason string `json:"partial_reason,omitempty"`

	// Baseline is what the endpoint's requests typically looked like just
	// before this one (learned by the sidecar, sidecar/metrics); nil when
	// the endpoint is not tracked. It is shared between profiles: never
	// modify it.
	Baseline *Baseline `json:"baseline,omitempty"`
	// TCP is the client connection's send side while the response went out,
	// when the kernel saw it (TCP only).
	TCP *TCPSend `json:"tcp,omitempty"`
	// StealNS is the part of Breakdown[Runq] the serving thread spent on a
	// CPU the hypervisor did not run (a VM's steal clock): a busy host, not
	// the service. Its own CPU clock leaves that time out too.
	StealNS int64 `json:"steal_ns,omitempty"`
	// Accounting says how the breakdown was measured.
	Accounting Accounting `json:"accounting,omitempty"`
	// GoroutineID (goroutine accounting) is the goroutine that served the
	// request; TID is then the thread that read it.
	GoroutineID uint64 `json:"goroutine_id,omitempty"`
}

// Segment is one wait of the serving thread longer than the segment
// threshold, with what it waited for.
type Segment struct {
	Category Category `json:"category"`
	// StartOffsetNS is the segment's start relative to the profile start.
	StartOffsetNS int64 `json:"start_offset_ns"`
	DurationNS    int64 `json:"duration_ns"`
	// RunqNS is the time after the wake-up until the thread ran again; it is
	// counted under runq in the breakdown, not in DurationNS.
	RunqNS int64 `json:"runq_ns,omitempty"`
	// Count is how many consecutive waits of the same kind (syscall, fd)
	// this segment stands for: short waits are coalesced until their sum
	// passes the threshold, so 20 fsyncs of 0.4 ms still show up.
	Count   int    `json:"count,omitempty"`
	Syscall string `json:"syscall,omitempty"`
	// FDKind is socket, file, pipe, ... for fd-based syscalls.
	FDKind string `json:"fd_kind,omitempty"`
	FD     int32  `json:"fd,omitempty"`
	Peer   string `json:"peer,omitempty"` // address:port for sockets
	File   string `json:"file,omitempty"` // path for files
	Bytes  int64  `json:"bytes,omitempty"`
	// WakerTID and WakerName name the thread that woke the waiter (lock
	// holder for futex waits).
	WakerTID  uint32 `json:"waker_tid,omitempty"`
	WakerName string `json:"waker_name,omitempty"`
	Detail    string `json:"detail,omitempty"`
	// HolderTraceID (loop segments) is the trace of the request the event
	// loop was busy with.
	HolderTraceID string `json:"holder_trace_id,omitempty"`
}

// DNSQuery is one DNS lookup made while serving the request.
type DNSQuery struct {
	Name          string `json:"name"`
	Type          string `json:"type"`
	Rcode         string `json:"rcode"`
	Server        string `json:"server"`
	StartOffsetNS int64  `json:"start_offset_ns"`
	LatencyNS     int64  `json:"latency_ns"`
	// Answered is false when no response was seen before the request ended.
	Answered bool `json:"answered"`
	// Attempt counts the resolver's tries of this name and type: 1 for the
	// first query, 2 for the same query sent again (a retry), …
	Attempt int32 `json:"attempt"`
}

// NetworkPeer summarises the traffic the serving thread exchanged with one
// peer (other than the client) while serving the request.
type NetworkPeer struct {
	Peer          string `json:"peer"`
	Protocol      string `json:"protocol"` // tcp or udp
	BytesSent     int64  `json:"bytes_sent"`
	BytesReceived int64  `json:"bytes_received"`
	// WaitNS is the time the thread was blocked on this peer (sum of its net
	// segments), the latency this peer added to the request.
	WaitNS        int64 `json:"wait_ns"`
	StartOffsetNS int64 `json:"start_offset_ns"`
	Calls         int   `json:"calls"`
}

// Diagnosis is the likely root cause and the facts that point to it.
type Diagnosis struct {
	Cause    Cause    `json:"cause"`
	Summary  string   `json:"summary"`
	Evidence []string `json:"evidence"`
	// Deviation compares the request with its endpoint's baseline; nil when
	// the profile carries no baseline.
	Deviation *Deviation `json:"deviation,omitempty"`
}

// BaselineMinSamples is how many requests an endpoint's baseline must have
// seen (in its window) before a request is judged against it: fewer, and a
// median says little.
const BaselineMinSamples = 20

// Baseline is the typical request of one endpoint (method and normalised
// route): medians over a sliding window of recent requests, robust to the
// slow outliers it is meant to reveal. The per-category medians do not sum
// to the median duration; each says what that category typically holds.
type Baseline struct {
	Method string `json:"method"`
	Route  string `json:"route"`
	// Samples is the number of requests in the window it was computed from.
	Samples int64 `json:"samples"`
	// Warm is true from BaselineMinSamples samples on: only then is a
	// request judged against the baseline.
	Warm bool `json:"warm"`
	// DurationNS is the median duration, DurationP90NS the 90th percentile.
	DurationNS    int64 `json:"duration_ns"`
	DurationP90NS int64 `json:"duration_p90_ns"`
	// Breakdown holds the median time of each category (categories whose
	// median is zero are left out).
	Breakdown map[Category]int64 `json:"breakdown"`
	// DNSNS is the median time spent in DNS lookups (part of net or epoll).
	DNSNS int64 `json:"dns_ns"`
}

// Verdict is how a request compares with its endpoint's baseline.
type Verdict string

// Verdicts.
const (
	// VerdictWarmingUp: the baseline has too few samples to judge.
	VerdictWarmingUp Verdict = "warming_up"
	// VerdictTypical: the request is not markedly slower than usual.
	VerdictTypical Verdict = "typical"
	// VerdictDeviates: slower than usual, and the excess sits in one
	// category (Deviation.Category) more than the usual mix explains.
	VerdictDeviates Verdict = "deviates"
	// VerdictProportional: slower than usual with the usual mix: every
	// category grew in proportion, none explains the excess alone.
	VerdictProportional Verdict = "proportional"
)

// Deviation is what stands out when a request is compared with its
// endpoint's baseline (step 3 of the drill).
type Deviation struct {
	Verdict Verdict `json:"verdict"`
	// Category holds the largest part of the excess (set for deviates and
	// proportional); ActualNS is its time in this request, TypicalNS its
	// median, ExcessNS the difference.
	Category  Category `json:"category,omitempty"`
	ActualNS  int64    `json:"actual_ns"`
	TypicalNS int64    `json:"typical_ns"`
	ExcessNS  int64    `json:"excess_ns"`
	// TotalExcessNS sums every category's time above its median: the
	// share of the excess is ExcessNS / TotalExcessNS.
	TotalExcessNS int64 `json:"total_excess_ns"`
}

// TCPSend is what held back sending the response on the client connection:
// the peer's advertised receive window.
type TCPSend struct {
	// WindowLimitedNS is the time during the request when response bytes
	// were waiting to go out and the client's advertised receive window did
	// not let them (its buffer was full, or too small for the path).
	WindowLimitedNS int64 `json:"window_limited_ns"`
	// PeerWindowMinBytes is the smallest window the client advertised while
	// the response was being sent; PeerWindowBytes the last one seen.
	PeerWindowMinBytes int64 `json:"peer_window_min_bytes"`
	PeerWindowBytes    int64 `json:"peer_window_bytes"`
	// DeliveryNS is how long after the last write the client acknowledged
	// the last byte of the response: the part of the client's wait the
	// serving thread no longer sees (the response was in the send buffer
	// and in flight). Not part of DurationNS.
	DeliveryNS int64 `json:"delivery_ns"`
}
