package agent

import (
	"debug/buildinfo"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/tracecam/tracecam/sidecar/gobin"
)

// goFollower finds the pod's Go programs and attaches the goroutine probes
// to each distinct binary, so their requests are accounted goroutine by
// goroutine. A process is looked at when it is first seen (an event of
// it, or at start in the cgroup's process list), off the event loop:
// reading a binary takes milliseconds. Requests a process serves before its
// probes are attached stay estimated, and say why.
type goFollower struct {
	follow func(path string, b *gobin.Binary) error // capture.Camera.FollowGo
	// off, when set, is why no Go program is followed at all (the reason
	// every Go profile gives, from its first request on).
	off string

	mu     sync.Mutex
	procs  map[uint32]*goProc
	binary map[fileID]*goBinary
}

type fileID struct{ dev, ino uint64 }

// goProc is what is known of one process.
type goProc struct {
	checked bool // buildinfo read (isGo valid)
	isGo    bool
	bin     *goBinary // once inspected
}

// goBinary is one Go executable: inspected, and followed or why not.
type goBinary struct {
	b        *gobin.Binary
	reasons  []string
	followed bool
	err      error
}

func newGoFollower(follow func(string, *gobin.Binary) error) *goFollower {
	return &goFollower{follow: follow, procs: map[uint32]*goProc{}, binary: map[fileID]*goBinary{}}
}

// see is called for every event's process: cheap once the process is known.
func (f *goFollower) see(pid uint32) {
	f.mu.Lock()
	_, known := f.procs[pid]
	if !known {
		if len(f.procs) >= 4096 { // pids are reused: start over rather than grow
			f.procs = map[uint32]*goProc{}
		}
		f.procs[pid] = &goProc{}
	}
	f.mu.Unlock()
	if !known {
		go f.check(pid)
	}
}

// check reads pid's binary and follows it when it is Go.
func (f *goFollower) check(pid uint32) {
	path := fmt.Sprintf("/proc/%d/exe", pid)
	_, err := buildinfo.ReadFile(path)
	// Never probe ourselves (a sidecar inside its own target): the camera
	// ignores its own events, the traps would still cost.
	isGo := err == nil && int(pid) != os.Getpid()
	f.mu.Lock()
	p := f.procs[pid]
	if p == nil {
		p = &goProc{}
		f.procs[pid] = p
	}
	p.checked, p.isGo = true, isGo
	f.mu.Unlock()
	if !isGo {
		return
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return // exited
	}
	id := fileID{st.Dev, st.Ino}
	f.mu.Lock()
	gb := f.binary[id]
	if gb != nil {
		p.bin = gb
		f.mu.Unlock()
		return
	}
	gb = &goBinary{}
	f.binary[id] = gb
	f.mu.Unlock()

	b, err := gobin.Inspect(path)
	var reasons []string
	if err == nil {
		reasons, _ = b.WaitReasons()
		err = f.follow(path, b)
	}
	f.mu.Lock()
	gb.b, gb.reasons = b, reasons
	gb.followed, gb.err = err == nil, err
	p.bin = gb
	f.mu.Unlock()
	if err != nil {
		slog.Warn("Go program not followed goroutine by goroutine: its requests are estimated", "pid", pid, "err", err)
		return
	}
	slog.Info("following a Go program's goroutines", "pid", pid, "go", b.GoVersion, "stripped", b.Stripped,
		"offsets", b.OffsetsFrom, "exe", exeName(pid))
}

// runtime is the assembler's Config.Runtime: "go" for Go programs.
func (f *goFollower) runtime(pid uint32) string {
	f.mu.Lock()
	p := f.procs[pid]
	checked, isGo := p != nil && p.checked, p != nil && p.isGo
	f.mu.Unlock()
	if !checked {
		// Not looked at yet (an event raced the check): read it now.
		if _, err := buildinfo.ReadFile(fmt.Sprintf("/proc/%d/exe", pid)); err != nil {
			return ""
		}
		return "go"
	}
	if isGo {
		return "go"
	}
	return ""
}

// unfollowed is the assembler's Config.GoUnfollowed.
func (f *goFollower) unfollowed(pid uint32) string {
	if f.off != "" {
		return f.off
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.procs[pid]
	switch {
	case p == nil || p.bin == nil || (p.bin.b == nil && p.bin.err == nil):
		return "its goroutine probes were not attached yet when the request was served"
	case p.bin.err != nil:
		return "its goroutines cannot be followed: " + p.bin.err.Error()
	}
	return "the request's reading and writing goroutines were not both seen"
}

// waitReason is the assembler's Config.GoWaitReason.
func (f *goFollower) waitReason(pid uint32, reason int64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.procs[pid]; p != nil && p.bin != nil && reason >= 0 && reason < int64(len(p.bin.reasons)) {
		return p.bin.reasons[reason]
	}
	return ""
}

// scan looks at every process of the cgroup tree at dir (the target's
// cgroup2 directory): their binaries are followed before their first
// request.
func (f *goFollower) scan(dir string) {
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for _, l := range strings.Fields(string(b)) {
			if pid, err := strconv.ParseUint(l, 10, 32); err == nil {
				f.see(uint32(pid))
			}
		}
		return nil
	})
}

func exeName(pid uint32) string {
	s, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return ""
	}
	return s
}
