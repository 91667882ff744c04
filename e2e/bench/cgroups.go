package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tracecam/tracecam/sidecar/cgroup"
)

// benchPrefix names our cgroups; the suffix is our pid, so a later run can
// tell a leftover (its creator is dead) from a concurrent run's cgroup.
const benchPrefix = "tracecam-bench-"

// benchCgroups are the cgroups one run creates under the cgroup2 root:
// tracecam-bench-PID/{nginx,nginx-fast,go,node,pod}. The base itself never
// holds a process.
type benchCgroups struct {
	base      cgroup.Target
	nginx     cgroup.Target // nginx master + worker, watched in the throughput trials
	nginxFast cgroup.Target // the same for the nginx-fast section
	gosrv     cgroup.Target // the Go server of the runtime trials
	node      cgroup.Target // the Node.js server of the runtime trials
	pod       cgroup.Target // an idle process, watched in the syscall-tax trials
}

// createCgroups makes fresh cgroups and registers their removal.
func createCgroups(cl *cleaner) (benchCgroups, error) {
	var cgs benchCgroups
	// The mount differs between hosts (/sys/fs/cgroup or .../unified in the
	// hybrid layout); cgroup.Mount reads it from /proc/mounts.
	mnt, err := cgroup.Mount()
	if err != nil {
		return cgs, fmt.Errorf("finding the cgroup2 mount: %w", err)
	}
	root, err := cgroup.Resolve(mnt)
	if err != nil {
		return cgs, fmt.Errorf("resolving cgroup2 root: %w", err)
	}
	removeStaleCgroups(root)
	if cgs.base, err = createCgroup(cl, root, benchPrefix+strconv.Itoa(os.Getpid())); err != nil {
		return cgs, err
	}
	if cgs.nginx, err = createCgroup(cl, cgs.base, "nginx"); err != nil {
		return cgs, err
	}
	if cgs.nginxFast, err = createCgroup(cl, cgs.base, "nginx-fast"); err != nil {
		return cgs, err
	}
	if cgs.pod, err = createCgroup(cl, cgs.base, "pod"); err != nil {
		return cgs, err
	}
	if cgs.gosrv, err = createCgroup(cl, cgs.base, "go"); err != nil {
		return cgs, err
	}
	if cgs.node, err = createCgroup(cl, cgs.base, "node"); err != nil {
		return cgs, err
	}
	return cgs, nil
}

func createCgroup(cl *cleaner, parent cgroup.Target, name string) (cgroup.Target, error) {
	t, err := cgroup.Create(parent, name)
	if err != nil {
		return t, fmt.Errorf("creating bench cgroup: %w", err)
	}
	cl.add(func() {
		if err := destroyCgroup(t); err != nil {
			logf("cleanup: %v", err)
		}
	})
	return t, nil
}

// destroyCgroup kills anything still inside t (a child that escaped its
// stop, e.g. an nginx worker) and removes the directory.
func destroyCgroup(t cgroup.Target) error {
	// cgroup.kill (Linux 5.14+) SIGKILLs every process in the subtree.
	_ = os.WriteFile(filepath.Join(t.Path, "cgroup.kill"), []byte("1"), 0o644)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := cgroup.Remove(t)
		// EBUSY until the killed processes are fully gone.
		if err == nil || !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeStaleCgroups removes cgroups left by runs that were SIGKILLed (no
// cleanup ran). Cgroups of runs still alive are left alone.
func removeStaleCgroups(root cgroup.Target) {
	dirs, _ := filepath.Glob(filepath.Join(root.Path, benchPrefix+"*"))
	for _, dir := range dirs {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(dir), benchPrefix))
		if err != nil || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		logf("removing leftover cgroup %s", dir)
		subs, _ := filepath.Glob(filepath.Join(dir, "*", "cgroup.procs"))
		for _, s := range subs {
			if sub, err := cgroup.Resolve(filepath.Dir(s)); err == nil {
				_ = destroyCgroup(sub)
			}
		}
		if base, err := cgroup.Resolve(dir); err == nil {
			if err := destroyCgroup(base); err != nil {
				logf("could not remove leftover cgroup: %v", err)
			}
		}
	}
}

// cgroupProcs lists the pids in t.
func cgroupProcs(t cgroup.Target) ([]int, error) {
	data, err := os.ReadFile(filepath.Join(t.Path, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("reading %s/cgroup.procs: %w", t.Path, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
