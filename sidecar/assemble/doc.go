// Package assemble turns the decoded kernel event stream into request
// profiles. It is pure and single-threaded: events in (in ring-buffer
// order), completed profiles out through a callback; time only moves when
// an event or a Flush says so, which is what makes it table-testable.
//
// A request on a connection (process, fd) starts at the exit of the read
// that returned its first bytes (they look like an HTTP request line) and
// ends at the exit of the write that sent the last byte of the response
// (Content-Length or chunked terminator reached; otherwise the next request,
// EOF, close or an idle timeout ends it). Both events carry a snapshot of
// the serving thread's cumulative category counters; the breakdown is their
// difference, so it sums exactly to the duration. Waits longer than the
// threshold arrive as segments of the thread and are clipped to the window.
//
// Profiles come out without a diagnosis: callers that hand a profile to a
// reader run diagnose.Diagnose (see agent), so unread profiles cost less.
package assemble
