// Package diagnose names the likely root cause of one request from its
// profile: the breakdown of the serving thread's wall-clock time, the timeline
// of long waits, the DNS lookups and the downstream peers.
//
// It exists so that every consumer of a profile (the sidecar's log line, the
// terminal camera view, the collector) tells the user the same story about a
// slow request, and so that story can be tested without a kernel. Diagnose is
// pure: it reads the profile, never changes it, and does no I/O.
//
// # Rules
//
// The diagnosis is deliberately simple, because a user has to be able to
// check it against the breakdown printed next to it:
//
//  1. The dominant category — the one holding the most nanoseconds — decides
//     the cause. Time is the only currency that matters to the person waiting
//     for the response, so the largest bucket is where the fix has the most
//     leverage. Ties go to the earlier category in [profile.Categories], so the
//     result never depends on map iteration order.
//
//  2. Categories map to causes one to one (cpu, runq, net, file, lock, sleep,
//     queue), with five refinements:
//
//     - net becomes dns when the request's DNS lookups account for at least
//     half of the net time. Resolver waits show up as socket waits, and a
//     slow or failing lookup (search-domain expansion, an NXDOMAIN, a lost UDP
//     packet waiting for the 5 s retry) is fixed in a completely different
//     place from a slow downstream.
//
//     - epoll is promoted to net only when the profile shows the thread
//     waiting on a peer other than the client: a timeline segment naming such
//     a peer, or a network peer with wait time. An event-loop server sits in
//     epoll_wait while an async downstream call is in flight, so that idle time
//     is really the downstream's latency. Without such a peer the idle time
//     cannot be attributed, and the cause is unknown rather than a guess.
//     When promoted, the dns rule above applies to the epoll time as well.
//
//     - other is unknown: it is off-CPU time tracecam could not classify, and
//     naming a cause for it would be a guess.
//
//     - lock becomes gc when at least half of the lock time (or of its excess
//     over the baseline) was spent in waits ended by the runtime's own
//     collector threads: a JVM stops its threads at a safepoint, each waits on
//     a futex, and the VM thread wakes them when the collection is done, so the
//     waker names the stop-the-world pause (HotSpot's "VM Thread", "GC
//     Thread#N", G1's, ZGC's and Shenandoah's threads). The evidence names
//     the collector threads, the number of pauses and their total.
//
//     - net (and epoll, for an event loop waiting to write) becomes
//     tcp_window when, for at least half of that time (or of its excess),
//     response bytes were waiting to go out and the client's advertised
//     receive window did not let them (the kernel samples the window at every
//     segment the socket receives: profile.TCP). A response slow to send for
//     that reason is fixed at the receiver — its receive buffer, or how fast
//     it reads — not in the network.
//
//  3. If the dominant category holds less than 40% of the duration, no single
//     fix will make the request fast. The cause is still the largest
//     category — it remains the best single place to look — but the summary
//     starts with "mixed" and names the top two categories with their shares
//     so the user is not misled into thinking there is one culprit.
//
//  4. The detail in the summary comes from the timeline segments of the
//     dominant category, aggregated so that many short waits on the same
//     thing add up: net by peer, file by path, lock by the waking (holder)
//     thread, sleep by syscall. The largest aggregate is named; the rest are
//     counted.
//
//  5. Requests shorter than 1 ms are diagnosed the same way: the breakdown is
//     exact even when no wait was long enough to become a segment.
//
//  6. A profile with zero duration or an empty breakdown has nothing to
//     attribute: the cause is unknown and the summary says which of the two
//     it was. Nil maps and slices are treated as empty.
//
// Shares are computed against the request duration (or the breakdown's sum,
// if a partial capture made that larger), so the percentages printed in a
// summary match the ones in the breakdown.
//
// # Against the baseline
//
// A profile may carry its endpoint's baseline (profile.Baseline: medians of
// recent requests, learned by sidecar/metrics). Then the diagnosis also
// compares the request with it ([Compare]) — step 3 of the drill:
//
//   - With fewer than profile.BaselineMinSamples samples the verdict is
//     warming_up, and the rules above decide alone.
//   - A request under 1.5× the median duration, or less than 1 ms over it,
//     is typical: the rules above decide, and the evidence says it is as
//     usual.
//   - Otherwise each category's excess is its time above its median. The
//     category holding the most excess decides the cause (with the same
//     refinements: dns when the lookups, above their median, hold half the
//     net excess; epoll only with a downstream peer), even when another
//     category is larger: "lock 412.0 ms vs typical 3.0 ms (+409.0 ms) —
//     93% of the excess". Below half of the excess, the summary is mixed.
//   - Unless the excess is spread like the typical request's time (total
//     variation distance ≤ 0.25) and no category holds 80% of it: then the
//     request is the usual request, only slower — proportional, cause
//     unknown, and the summary says so instead of blaming the largest
//     category.
//
// [Cause] gives Diagnose's cause without building the text (and without
// allocating), so the sidecar can count causes for every request.
package diagnose
