// Package tracectx extracts distributed-trace context from HTTP request
// headers so that a profiled request can be joined with the spans the
// application itself reports to its tracing backend.
//
// Services in one cluster commonly mix propagation formats (W3C Trace
// Context, Zipkin B3 in single- and multi-header form, Jaeger), so
// FromHeaders accepts all of them in a fixed precedence order and
// normalises trace ids to 32 lowercase hex digits. Malformed headers are
// skipped rather than reported: they come from arbitrary clients, and a bad
// header in one format must not hide a good one in another. When no header
// carries a context, Generate supplies a fresh trace id so every request
// profile can still be addressed by one.
package tracectx
