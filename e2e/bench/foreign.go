package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// foreignSidecars records tracecam sidecars we did not start (another
// engineer's e2e test, a leftover). Their probes are global: they tax every
// syscall on the node, our "without sidecar" baseline included, so the
// report must say they were there.
var foreignSidecars = &sidecarCensus{ours: map[int]bool{}, seen: map[int]string{}}

type sidecarCensus struct {
	mu   sync.Mutex
	ours map[int]bool
	seen map[int]string // pid -> command line
}

func (c *sidecarCensus) addOurs(pid int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ours[pid] = true
}

// scan looks through /proc for sidecars that are not ours; called at the
// start of every trial.
func (c *sidecarCensus) scan() {
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range comms {
		comm, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// comm is truncated to 15 bytes: "tracecam-sideca". A sidecar
		// binary built under another name (go build -o /tmp/x/sidecar)
		// still shows "sidecar" in its name.
		name := strings.TrimSpace(string(comm))
		if !strings.HasPrefix(name, "tracecam-side") && !strings.Contains(name, "sidecar") {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if c.ours[pid] || c.seen[pid] != "" {
			continue
		}
		// A zombie (exited, not yet reaped) has an empty cmdline and has
		// already closed its probes.
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(f), "cmdline"))
		if len(cmdline) == 0 {
			continue
		}
		// Under another name, only a process with tracecam's --cgroup flag.
		if !strings.HasPrefix(name, "tracecam-side") && !slices.ContainsFunc(strings.Split(string(cmdline), "\x00"), isCgroupFlag) {
			continue
		}
		c.seen[pid] = strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
}

// summary describes the foreign sidecars seen, "" if none.
func (c *sidecarCensus) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) == 0 {
		return ""
	}
	var lines []string
	for pid, cmd := range c.seen {
		lines = append(lines, fmt.Sprintf("  - pid %d: `%s`", pid, cmd))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// isCgroupFlag matches the sidecar's --cgroup flag in either form.
func isCgroupFlag(arg string) bool {
	return arg == "--cgroup" || arg == "-cgroup" || strings.HasPrefix(arg, "--cgroup=") || strings.HasPrefix(arg, "-cgroup=")
}
