package gobin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Wait classes returned by WaitClass.
const (
	ClassNet   = "net"   // the network poller: IO wait
	ClassSleep = "sleep" // time.Sleep and timers
	ClassLock  = "lock"  // sync primitives and runtime semaphores
	ClassChan  = "chan"  // channel operations and select
	ClassGC    = "gc"    // the garbage collector, finalizers, stop-the-world
	ClassIdle  = "idle"  // everything else
)

// waitClasses maps every wait reason name any supported release uses (and
// a few older ones) to its class. TestWaitClassCoversTables fails when a
// table gains a name missing here, so a new reason gets a conscious class
// rather than silently falling into "idle".
var waitClasses = map[string]string{
	"IO wait": ClassNet,

	"sleep":                  ClassSleep,
	"timer goroutine (idle)": ClassSleep,

	"semacquire":                    ClassLock,
	"sync.Mutex.Lock":               ClassLock,
	"sync.RWMutex.RLock":            ClassLock,
	"sync.RWMutex.Lock":             ClassLock,
	"sync.Cond.Wait":                ClassLock,
	"sync.WaitGroup.Wait":           ClassLock,
	"sync.WaitGroup.Wait (durable)": ClassLock,

	"chan receive":            ClassChan,
	"chan send":               ClassChan,
	"select":                  ClassChan,
	"select (no cases)":       ClassChan,
	"chan receive (nil chan)": ClassChan,
	"chan send (nil chan)":    ClassChan,
	"chan receive (synctest)": ClassChan,
	"chan send (synctest)":    ClassChan,
	"select (synctest)":       ClassChan,
	"chan receive (durable)":  ClassChan,
	"chan send (durable)":     ClassChan,
	"select (durable)":        ClassChan,

	"GC assist marking":       ClassGC,
	"GC assist wait":          ClassGC,
	"GC sweep wait":           ClassGC,
	"GC scavenge wait":        ClassGC,
	"GC worker (idle)":        ClassGC,
	"GC worker (active)":      ClassGC,
	"GC mark termination":     ClassGC,
	"GC weak to strong wait":  ClassGC,
	"garbage collection":      ClassGC,
	"garbage collection scan": ClassGC,
	"wait for GC cycle":       ClassGC,
	"force gc (idle)":         ClassGC,
	"finalizer wait":          ClassGC,
	"cleanup wait":            ClassGC,
	"stopping the world":      ClassGC,
	"flushing proc caches":    ClassGC,
	"dumping heap":            ClassGC, // runtime/debug.WriteHeapDump stops the world

	"":                          ClassIdle,
	"GOMAXPROCS updater (idle)": ClassIdle,
	"coroutine":                 ClassIdle,
	"debug call":                ClassIdle,
	"page trace flush":          ClassIdle,
	"panicwait":                 ClassIdle,
	"preempted":                 ClassIdle,
	"synctest.Run":              ClassIdle,
	"synctest.Wait":             ClassIdle,
	"trace goroutine status":    ClassIdle,
	"trace proc status":         ClassIdle,
	"trace reader (blocked)":    ClassIdle,
}

// WaitClass maps a wait reason name (as in WaitReasons) to one of the
// Class* constants; unknown names are "idle".
func WaitClass(name string) string {
	if c, ok := waitClasses[name]; ok {
		return c
	}
	return ClassIdle
}

// WaitReasonsForVersion returns the wait reason names of Go major.minor,
// indexed by value, from the table.
func WaitReasonsForVersion(major, minor int) ([]string, bool) {
	if major != 1 {
		return nil, false
	}
	t, ok := waitReasonTable[minor]
	return t, ok
}

func (b *Binary) readWaitReasons(im *image) {
	if s, ok := im.syms["runtime.waitReasonStrings"]; ok {
		names, err := im.readStringArray(s.Value, s.Size)
		if err == nil {
			b.waitReasons, b.WaitReasonsFrom = names, "binary"
			return
		}
	}
	if t, ok := WaitReasonsForVersion(b.Major, b.Minor); ok {
		b.waitReasons, b.WaitReasonsFrom = t, "table"
		return
	}
	var known []int
	for m := range waitReasonTable {
		known = append(known, m)
	}
	sort.Ints(known)
	b.waitReasonsErr = fmt.Errorf("%w: wait reasons of %s unknown and the binary has no symbol table (table covers go1.%v)",
		ErrUnknownVersion, b.GoVersion, known)
}

// readStringArray reads a [N]string variable (runtime.waitReasonStrings) of
// size bytes at addr: N string headers {ptr, len} pointing into .rodata.
func (im *image) readStringArray(addr, size uint64) ([]string, error) {
	// waitReason is a uint8, so more than 256 entries means a bad symbol.
	if size == 0 || size%16 != 0 || size/16 > 256 {
		return nil, fmt.Errorf("gobin: string array of %d bytes", size)
	}
	hdrs, err := im.read(addr, size)
	if err != nil {
		return nil, err
	}
	out := make([]string, size/16)
	for i := range out {
		n := binary.LittleEndian.Uint64(hdrs[i*16+8:])
		if n == 0 {
			continue
		}
		if n > 256 {
			return nil, fmt.Errorf("gobin: string %d of the array at %#x has length %d", i, addr, n)
		}
		p, err := im.ptr(addr + uint64(i)*16)
		if err != nil {
			return nil, err
		}
		if p == 0 {
			return nil, errors.New("gobin: nil string pointer (unrelocated?)")
		}
		s, err := im.read(p, n)
		if err != nil {
			return nil, err
		}
		out[i] = string(s)
	}
	return out, nil
}

// waitReasonTable holds, per Go 1.x minor release, runtime2.go's
// waitReasonStrings in waitReason order, read from each release's source
// (the patch release named in the comment). Values index the slices: g's
// waitreason field holds the index. The order changes between releases
// (1.26 moved the channel reasons together), so a value means nothing
// without the binary's release.
var waitReasonTable = map[int][]string{
	20: { // go1.20.14
		"",                        // 0
		"GC assist marking",       // 1
		"IO wait",                 // 2
		"chan receive (nil chan)", // 3
		"chan send (nil chan)",    // 4
		"dumping heap",            // 5
		"garbage collection",      // 6
		"garbage collection scan", // 7
		"panicwait",               // 8
		"select",                  // 9
		"select (no cases)",       // 10
		"GC assist wait",          // 11
		"GC sweep wait",           // 12
		"GC scavenge wait",        // 13
		"chan receive",            // 14
		"chan send",               // 15
		"finalizer wait",          // 16
		"force gc (idle)",         // 17
		"semacquire",              // 18
		"sleep",                   // 19
		"sync.Cond.Wait",          // 20
		"sync.Mutex.Lock",         // 21
		"sync.RWMutex.RLock",      // 22
		"sync.RWMutex.Lock",       // 23
		"trace reader (blocked)",  // 24
		"wait for GC cycle",       // 25
		"GC worker (idle)",        // 26
		"GC worker (active)",      // 27
		"preempted",               // 28
		"debug call",              // 29
		"GC mark termination",     // 30
		"stopping the world",      // 31
	},
	21: { // go1.21.13
		"",                        // 0
		"GC assist marking",       // 1
		"IO wait",                 // 2
		"chan receive (nil chan)", // 3
		"chan send (nil chan)",    // 4
		"dumping heap",            // 5
		"garbage collection",      // 6
		"garbage collection scan", // 7
		"panicwait",               // 8
		"select",                  // 9
		"select (no cases)",       // 10
		"GC assist wait",          // 11
		"GC sweep wait",           // 12
		"GC scavenge wait",        // 13
		"chan receive",            // 14
		"chan send",               // 15
		"finalizer wait",          // 16
		"force gc (idle)",         // 17
		"semacquire",              // 18
		"sleep",                   // 19
		"sync.Cond.Wait",          // 20
		"sync.Mutex.Lock",         // 21
		"sync.RWMutex.RLock",      // 22
		"sync.RWMutex.Lock",       // 23
		"trace reader (blocked)",  // 24
		"wait for GC cycle",       // 25
		"GC worker (idle)",        // 26
		"GC worker (active)",      // 27
		"preempted",               // 28
		"debug call",              // 29
		"GC mark termination",     // 30
		"stopping the world",      // 31
	},
	22: { // go1.22.12
		"",                        // 0
		"GC assist marking",       // 1
		"IO wait",                 // 2
		"chan receive (nil chan)", // 3
		"chan send (nil chan)",    // 4
		"dumping heap",            // 5
		"garbage collection",      // 6
		"garbage collection scan", // 7
		"panicwait",               // 8
		"select",                  // 9
		"select (no cases)",       // 10
		"GC assist wait",          // 11
		"GC sweep wait",           // 12
		"GC scavenge wait",        // 13
		"chan receive",            // 14
		"chan send",               // 15
		"finalizer wait",          // 16
		"force gc (idle)",         // 17
		"semacquire",              // 18
		"sleep",                   // 19
		"sync.Cond.Wait",          // 20
		"sync.Mutex.Lock",         // 21
		"sync.RWMutex.RLock",      // 22
		"sync.RWMutex.Lock",       // 23
		"trace reader (blocked)",  // 24
		"wait for GC cycle",       // 25
		"GC worker (idle)",        // 26
		"GC worker (active)",      // 27
		"preempted",               // 28
		"debug call",              // 29
		"GC mark termination",     // 30
		"stopping the world",      // 31
		"flushing proc caches",    // 32
		"trace goroutine status",  // 33
		"trace proc status",       // 34
		"page trace flush",        // 35
		"coroutine",               // 36
	},
	23: { // go1.23.12
		"",                        // 0
		"GC assist marking",       // 1
		"IO wait",                 // 2
		"chan receive (nil chan)", // 3
		"chan send (nil chan)",    // 4
		"dumping heap",            // 5
		"garbage collection",      // 6
		"garbage collection scan", // 7
		"panicwait",               // 8
		"select",                  // 9
		"select (no cases)",       // 10
		"GC assist wait",          // 11
		"GC sweep wait",           // 12
		"GC scavenge wait",        // 13
		"chan receive",            // 14
		"chan send",               // 15
		"finalizer wait",          // 16
		"force gc (idle)",         // 17
		"semacquire",              // 18
		"sleep",                   // 19
		"sync.Cond.Wait",          // 20
		"sync.Mutex.Lock",         // 21
		"sync.RWMutex.RLock",      // 22
		"sync.RWMutex.Lock",       // 23
		"trace reader (blocked)",  // 24
		"wait for GC cycle",       // 25
		"GC worker (idle)",        // 26
		"GC worker (active)",      // 27
		"preempted",               // 28
		"debug call",              // 29
		"GC mark termination",     // 30
		"stopping the world",      // 31
		"flushing proc caches",    // 32
		"trace goroutine status",  // 33
		"trace proc status",       // 34
		"page trace flush",        // 35
		"coroutine",               // 36
		"GC weak to strong wait",  // 37
	},
	24: { // go1.24.13
		"",                        // 0
		"GC assist marking",       // 1
		"IO wait",                 // 2
		"chan receive (nil chan)", // 3
		"chan send (nil chan)",    // 4
		"dumping heap",            // 5
		"garbage collection",      // 6
		"garbage collection scan", // 7
		"panicwait",               // 8
		"select",                  // 9
		"select (no cases)",       // 10
		"GC assist wait",          // 11
		"GC sweep wait",           // 12
		"GC scavenge wait",        // 13
		"chan receive",            // 14
		"chan send",               // 15
		"finalizer wait",          // 16
		"force gc (idle)",         // 17
		"semacquire",              // 18
		"sleep",                   // 19
		"sync.Cond.Wait",          // 20
		"sync.Mutex.Lock",         // 21
		"sync.RWMutex.RLock",      // 22
		"sync.RWMutex.Lock",       // 23
		"sync.WaitGroup.Wait",     // 24
		"trace reader (blocked)",  // 25
		"wait for GC cycle",       // 26
		"GC worker (idle)",        // 27
		"GC worker (active)",      // 28
		"preempted",               // 29
		"debug call",              // 30
		"GC mark termination",     // 31
		"stopping the world",      // 32
		"flushing proc caches",    // 33
		"trace goroutine status",  // 34
		"trace proc status",       // 35
		"page trace flush",        // 36
		"coroutine",               // 37
		"GC weak to strong wait",  // 38
		"synctest.Run",            // 39
		"synctest.Wait",           // 40
		"chan receive (synctest)", // 41
		"chan send (synctest)",    // 42
		"select (synctest)",       // 43
	},
	25: { // go1.25.14
		"",                              // 0
		"GC assist marking",             // 1
		"IO wait",                       // 2
		"chan receive (nil chan)",       // 3
		"chan send (nil chan)",          // 4
		"dumping heap",                  // 5
		"garbage collection",            // 6
		"garbage collection scan",       // 7
		"panicwait",                     // 8
		"select",                        // 9
		"select (no cases)",             // 10
		"GC assist wait",                // 11
		"GC sweep wait",                 // 12
		"GC scavenge wait",              // 13
		"chan receive",                  // 14
		"chan send",                     // 15
		"finalizer wait",                // 16
		"force gc (idle)",               // 17
		"GOMAXPROCS updater (idle)",     // 18
		"semacquire",                    // 19
		"sleep",                         // 20
		"sync.Cond.Wait",                // 21
		"sync.Mutex.Lock",               // 22
		"sync.RWMutex.RLock",            // 23
		"sync.RWMutex.Lock",             // 24
		"sync.WaitGroup.Wait",           // 25
		"trace reader (blocked)",        // 26
		"wait for GC cycle",             // 27
		"GC worker (idle)",              // 28
		"GC worker (active)",            // 29
		"preempted",                     // 30
		"debug call",                    // 31
		"GC mark termination",           // 32
		"stopping the world",            // 33
		"flushing proc caches",          // 34
		"trace goroutine status",        // 35
		"trace proc status",             // 36
		"page trace flush",              // 37
		"coroutine",                     // 38
		"GC weak to strong wait",        // 39
		"synctest.Run",                  // 40
		"synctest.Wait",                 // 41
		"chan receive (durable)",        // 42
		"chan send (durable)",           // 43
		"select (durable)",              // 44
		"sync.WaitGroup.Wait (durable)", // 45
		"cleanup wait",                  // 46
	},
	26: { // go1.26.8
		"",                              // 0
		"GC assist marking",             // 1
		"IO wait",                       // 2
		"dumping heap",                  // 3
		"garbage collection",            // 4
		"garbage collection scan",       // 5
		"panicwait",                     // 6
		"GC assist wait",                // 7
		"GC sweep wait",                 // 8
		"GC scavenge wait",              // 9
		"finalizer wait",                // 10
		"force gc (idle)",               // 11
		"GOMAXPROCS updater (idle)",     // 12
		"semacquire",                    // 13
		"sleep",                         // 14
		"chan receive (nil chan)",       // 15
		"chan send (nil chan)",          // 16
		"select (no cases)",             // 17
		"select",                        // 18
		"chan receive",                  // 19
		"chan send",                     // 20
		"sync.Cond.Wait",                // 21
		"sync.Mutex.Lock",               // 22
		"sync.RWMutex.RLock",            // 23
		"sync.RWMutex.Lock",             // 24
		"sync.WaitGroup.Wait",           // 25
		"trace reader (blocked)",        // 26
		"wait for GC cycle",             // 27
		"GC worker (idle)",              // 28
		"GC worker (active)",            // 29
		"preempted",                     // 30
		"debug call",                    // 31
		"GC mark termination",           // 32
		"stopping the world",            // 33
		"flushing proc caches",          // 34
		"trace goroutine status",        // 35
		"trace proc status",             // 36
		"page trace flush",              // 37
		"coroutine",                     // 38
		"GC weak to strong wait",        // 39
		"synctest.Run",                  // 40
		"synctest.Wait",                 // 41
		"chan receive (durable)",        // 42
		"chan send (durable)",           // 43
		"select (durable)",              // 44
		"sync.WaitGroup.Wait (durable)", // 45
		"cleanup wait",                  // 46
	},
	27: { // go1.27.3
		"",                              // 0
		"GC assist marking",             // 1
		"IO wait",                       // 2
		"dumping heap",                  // 3
		"garbage collection",            // 4
		"garbage collection scan",       // 5
		"panicwait",                     // 6
		"GC assist wait",                // 7
		"GC sweep wait",                 // 8
		"GC scavenge wait",              // 9
		"finalizer wait",                // 10
		"force gc (idle)",               // 11
		"GOMAXPROCS updater (idle)",     // 12
		"semacquire",                    // 13
		"sleep",                         // 14
		"chan receive (nil chan)",       // 15
		"chan send (nil chan)",          // 16
		"select (no cases)",             // 17
		"select",                        // 18
		"chan receive",                  // 19
		"chan send",                     // 20
		"sync.Cond.Wait",                // 21
		"sync.Mutex.Lock",               // 22
		"sync.RWMutex.RLock",            // 23
		"sync.RWMutex.Lock",             // 24
		"sync.WaitGroup.Wait",           // 25
		"trace reader (blocked)",        // 26
		"wait for GC cycle",             // 27
		"GC worker (idle)",              // 28
		"GC worker (active)",            // 29
		"preempted",                     // 30
		"debug call",                    // 31
		"GC mark termination",           // 32
		"stopping the world",            // 33
		"flushing proc caches",          // 34
		"trace goroutine status",        // 35
		"trace proc status",             // 36
		"page trace flush",              // 37
		"coroutine",                     // 38
		"GC weak to strong wait",        // 39
		"synctest.Run",                  // 40
		"synctest.Wait",                 // 41
		"chan receive (durable)",        // 42
		"chan send (durable)",           // 43
		"select (durable)",              // 44
		"sync.WaitGroup.Wait (durable)", // 45
		"cleanup wait",                  // 46
	},
}
