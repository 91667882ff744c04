package diagnose

import (
	"fmt"
	"strings"

	"github.com/tracecam/tracecam/sidecar/profile"
)

// Stop-the-world collections do not show as a category of their own: a JVM
// stops its Java threads at a safepoint, where each waits on a futex until
// the VM thread, done collecting, wakes it. So the camera sees lock time
// whose waker is one of the runtime's own threads. Kernel thread names (comm)
// are HotSpot's thread names cut to 15 bytes.
var gcThreadPrefixes = []string{
	"VM Thread",  // HotSpot: runs every safepoint operation (Serial and Parallel GC collect in it)
	"GC Thread#", // Parallel and G1 workers
	"G1 Main Marker", "G1 Conc#", "G1 Refine#", "G1 Service",
	"ZDriver", "ZDirector", "ZWorker#", // ZGC
	"Shenandoah", // Shenandoah's control and worker threads
}

// isGCThread says whether a waker is a garbage collector's (or the VM
// thread running its safepoints).
func isGCThread(name string) bool {
	for _, p := range gcThreadPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// gcNS is the lock time the request spent stopped by the runtime's GC or VM
// threads (segments above the threshold).
func gcNS(p *profile.Profile) (ns int64, pauses int) {
	for _, s := range p.Timeline {
		if s.Category == profile.Lock && isGCThread(s.WakerName) {
			ns += s.DurationNS
			pauses += max(s.Count, 1)
		}
	}
	return ns, pauses
}

// GCTime is the time the request spent stopped by the runtime's collector
// (part of its lock time); 0 when there was none. It does not allocate.
func GCTime(p *profile.Profile) int64 {
	if p == nil {
		return 0
	}
	ns, _ := gcNS(p)
	return ns + p.Breakdown[profile.GC]
}

// isGC is the gc refinement of lock: stops by GC/VM threads hold at least
// half of ns (the lock time, or its excess over the baseline).
func isGC(p *profile.Profile, ns int64) bool {
	g, _ := gcNS(p)
	return g > 0 && g*2 >= ns
}

// gcFinding explains lock time that was really stop-the-world pauses.
func gcFinding(p *profile.Profile) finding {
	var segs []profile.Segment
	for _, s := range p.Timeline {
		if s.Category == profile.Lock && isGCThread(s.WakerName) {
			segs = append(segs, s)
		}
	}
	ns, pauses := gcNS(p)
	var names []string
	for _, g := range group(segs, waker) {
		names = append(names, fmt.Sprintf("%s %s", g.key, profile.FormatDuration(g.ns)))
	}
	return finding{
		cause: profile.CauseGC,
		label: string(profile.CauseGC),
		phrase: fmt.Sprintf("stopped at %s by the runtime's collector (%s): stop-the-world garbage collection",
			profile.Plural(pauses, "safepoint", "safepoints"), strings.Join(names, ", ")),
		details: longest(segs, byDuration, segLine),
		count: fmt.Sprintf("%s totalling %s; the thread was runnable again only when the collector released it",
			profile.Plural(pauses, "pause", "pauses"), profile.FormatDuration(ns)),
	}
}
