// Package rediscache shares profiles between sidecars through Redis, so
// that any sidecar can answer "all profiles of trace X" for requests served
// by other pods.
//
// # Key layout
//
// Every trace is one Redis HASH:
//
//	key   tracecam:<cluster>:trace:{<trace_id>}      (see [Key])
//	field <namespace>/<pod>/<span_id>                (see [Field])
//	value proto.Marshal(profilepb.ToProto(profile))  (tracecam.v1.Profile, binary)
//
// <cluster> is [Config.Cluster], a namespace so that one Redis can serve the
// sidecars of several Kubernetes clusters. The braces are a Redis Cluster
// hash tag: only the trace ID is hashed, so a trace's key lives in one slot
// whatever the prefix, and the key of trace X is the same for every sidecar.
// Because a trace is a single key, one HGETALL returns every pod's profiles
// of that trace in one round trip, on a standalone server, behind Sentinel
// and on a Redis Cluster alike.
//
// A profile is stored once per (trace, pod, span): writing it again
// overwrites the field. Every write is HSET followed by PEXPIRE(TTL) in the
// same pipeline, so a trace disappears TTL after its last profile was
// written; Redis memory is bounded by write rate × TTL and nothing needs
// to be deleted by hand. Values are compact protobuf, not JSON; a value that
// does not decode (written by a broken or far newer sidecar, or by hand) is
// skipped by [Cache.Lookup] and counted in [Stats.Undecodable], never fatal.
//
// # Write path and failure model
//
// [Cache.Enqueue] puts the profile on a bounded queue ([Config.QueueSize])
// and returns at once: it never blocks and never allocates beyond the
// queue. When the queue is full the profile is dropped and counted in
// [Stats.DroppedQueueFull]. The one writer goroutine ([Cache.Run]) takes up
// to [Config.BatchSize] profiles at a time (waiting at most
// [Config.FlushInterval] for a batch to fill) and writes them in one
// pipeline, grouped per trace; go-redis splits a cluster pipeline by node.
//
// Redis being slow, down, restarted, out of memory or refusing our
// password never blocks the caller and never grows memory past the queue:
//
//   - Every write is bounded by [Config.WriteTimeout] (dial, read and write
//     timeouts of the client, and the pipeline's context); go-redis retries
//     a failed pipeline at most once (MaxRetries 1), which covers a pooled
//     connection that died with a restarted server.
//   - A profile whose write fails is dropped and counted in
//     [Stats.DroppedWriteErrors]. The cache never retries a batch itself, so
//     every profile handed to Enqueue is counted exactly once: at any
//     quiescent point Enqueued == Written + DroppedQueueFull +
//     DroppedWriteErrors + Pending. A batch normally succeeds or fails as a
//     whole; when only part of it fails (one node of a cluster down, OOM
//     mid-batch) the profiles are counted individually.
//   - After a failed batch the writer backs off exponentially, 100 ms
//     doubling up to 5 s, before it takes the next batch. Meanwhile the
//     queue fills and Enqueue drops and counts what does not fit, so a dead
//     Redis costs a bounded queue and a write attempt every few seconds.
//   - [Stats.State] says what the writer last saw: "connecting" until the
//     first answer, "ok", "unavailable: <reason>" (connection refused,
//     timeout, auth failed, ...) or "full: <reason>" when Redis refuses
//     writes with OOM (maxmemory reached with a noeviction policy).
//     [Stats.LastError] keeps the full error. State returns to "ok" after
//     the next successful batch; while idle the writer also PINGs (after
//     the back-off when unavailable, every few seconds otherwise) so State
//     does not go stale without traffic. A PING cannot clear "full": only a
//     successful write can.
//   - Lookups are independent of the writer: one HGETALL bounded by
//     [Config.LookupTimeout]; an error is returned to the caller and counted
//     in [Stats.LookupErrors].
//
// A write whose HSET succeeded but whose PEXPIRE failed (the connection
// died between the two) leaves a key without TTL; it is counted as a failed
// write, and the next profile of the same trace sets the TTL again.
//
// Enqueue keeps the pointer it is given and marshals it later in the
// writer: callers must not modify a profile after enqueueing it (the
// assembler never does; profiles are immutable once completed).
package rediscache
