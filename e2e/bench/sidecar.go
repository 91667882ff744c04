package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tracecam/tracecam/sidecar/cgroup"
)

// sidecar is a running tracecam-sidecar. It runs in our own cgroup, i.e.
// outside the one it watches, as on a real node.
type sidecar struct {
	proc   *child
	base   string // http://127.0.0.1:PORT
	client *http.Client
}

// sidecarStatus is the part of /v1/status the benchmark reads.
type sidecarStatus struct {
	Events    map[string]uint64 `json:"events_seen"`
	LostTotal uint64            `json:"events_lost_total"`
	Assembler struct {
		Profiles     uint64 `json:"profiles"`
		Partial      uint64 `json:"partial"`
		DroppedStale uint64 `json:"dropped_stale"`
		DroppedConns uint64 `json:"dropped_conns"`
		ParseErrors  uint64 `json:"parse_errors"`
		Incomplete   uint64 `json:"incomplete"`
	} `json:"assembler"`
}

func (s sidecarStatus) eventsTotal() uint64 {
	var n uint64
	for _, v := range s.Events {
		n += v
	}
	return n
}

// startSidecar starts the sidecar watching cg and waits until its probes
// are attached (/readyz). The caller must stop it; it is also registered
// with the cleaner in case the caller never gets there.
func startSidecar(ctx context.Context, cl *cleaner, bin string, cg cgroup.Target, extra ...string) (*sidecar, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{bin, "--cgroup", cg.Path, "--output", "none", "--http-addr", addr, "--grpc-addr", ""}, extra...)
	proc, err := startChild("tracecam-sidecar", nil, args...)
	if err != nil {
		return nil, err
	}
	foreignSidecars.addOurs(proc.pid())
	s := &sidecar{proc: proc, base: "http://" + addr, client: &http.Client{Timeout: 2 * time.Second}}
	cl.add(s.stop)
	if err := s.waitReady(ctx); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *sidecar) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		if s.proc.exited() {
			return s.proc.describeExit()
		}
		err := getOK(ctx, s.client, s.base+"/readyz")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sidecar not ready after 60s: %w", err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// stop ends the sidecar and waits for it to exit, so its probes are
// detached before the next "without" trial starts.
func (s *sidecar) stop() { s.proc.stop(10 * time.Second) }

func (s *sidecar) status(ctx context.Context) (sidecarStatus, error) {
	var st sidecarStatus
	if s.proc.exited() {
		return st, s.proc.describeExit()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return st, fmt.Errorf("sidecar /v1/status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("sidecar /v1/status: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("decoding sidecar /v1/status: %w", err)
	}
	return st, nil
}

// settledStatus waits until the sidecar has caught up, i.e. the completed
// profile count stops moving: the agent reads its ring buffer and flushes
// finished requests only every 200 ms, so reading right after the load
// ends would undercount.
func (s *sidecar) settledStatus(ctx context.Context) (sidecarStatus, error) {
	prev, err := s.status(ctx)
	if err != nil {
		return prev, err
	}
	for range 20 {
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return prev, err
		}
		cur, err := s.status(ctx)
		if err != nil {
			return cur, err
		}
		if cur.Assembler.Profiles == prev.Assembler.Profiles && cur.eventsTotal() == prev.eventsTotal() {
			return cur, nil
		}
		prev = cur
	}
	return prev, nil
}

// cpuTicks is utime+stime of the whole process (all threads), in clock ticks.
func (s *sidecar) cpuTicks() (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.proc.pid()))
	if err != nil {
		return 0, fmt.Errorf("reading sidecar CPU time: %w", err)
	}
	// The comm field may hold spaces and parens: split after the last ')'.
	// Fields from there: state(3) ... utime(14) stime(15).
	rest := string(data)
	rest = rest[strings.LastIndexByte(rest, ')')+1:]
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat: %q", s.proc.pid(), data)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %q", s.proc.pid(), data)
	}
	return utime + stime, nil
}

// maxRSS is the peak resident set (VmHWM) in KiB.
func (s *sidecar) maxRSS() (uint64, error) { return s.procKB("status", "VmHWM:") }

// pss is the proportional set size in KiB (/proc/PID/smaps_rollup): unlike
// RSS it counts the BPF ring buffer's data pages once (the kernel maps
// them twice so a record can wrap), and is what the memory holds.
func (s *sidecar) pss() (uint64, error) { return s.procKB("smaps_rollup", "Pss:") }

// procKB reads a "key: N kB" line of /proc/PID/file.
func (s *sidecar) procKB(file, key string) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", s.proc.pid(), file))
	if err != nil {
		return 0, fmt.Errorf("reading sidecar memory: %w", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parsing %s %q: %w", key, v, err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/%s", key, s.proc.pid(), file)
}
