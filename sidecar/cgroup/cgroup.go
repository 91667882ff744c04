package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoCgroup2 is returned when no cgroup2 filesystem is mounted.
var ErrNoCgroup2 = errors.New("no cgroup2 filesystem mounted (need cgroup v2, see /proc/mounts)")

// Target is a cgroup2 directory the sidecar watches.
type Target struct {
	Root  string // the cgroup2 mount point
	Path  string // absolute path on the host, e.g. /sys/fs/cgroup/kubepods/pod123
	Rel   string // path relative to the cgroup2 root, "/" for the root
	ID    uint64 // cgroup id == inode number of the directory
	Level int    // depth below the root (root = 0)
}

// Mount returns the cgroup2 mount point listed in /proc/mounts.
func Mount() (string, error) {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return "", fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	return mountFrom(f)
}

func mountFrom(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	// Overlay mounts can have very long option lists.
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "cgroup2" {
			return unescapeMount(fields[1]), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("reading mounts: %w", err)
	}
	return "", ErrNoCgroup2
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Resolve describes the cgroup2 directory at path, which may be absolute on
// the host or relative to the cgroup2 root ("/kubepods/pod1").
func Resolve(path string) (Target, error) {
	root, err := Mount()
	if err != nil {
		return Target{}, err
	}
	return resolveUnder(root, path)
}

func resolveUnder(root, path string) (Target, error) {
	abs := path
	if !strings.HasPrefix(filepath.Clean(path)+"/", filepath.Clean(root)+"/") {
		abs = filepath.Join(root, path)
	}
	abs = filepath.Clean(abs)
	rel, err := filepath.Rel(root, abs)
	if err != nil || strings.HasPrefix(rel, "..") {
		return Target{}, fmt.Errorf("cgroup %q is not under the cgroup2 mount %s", path, root)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(abs, &st); err != nil {
		return Target{}, fmt.Errorf("cgroup %s: %w", abs, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return Target{}, fmt.Errorf("cgroup %s is not a directory", abs)
	}
	t := Target{Root: root, Path: abs, Rel: "/", ID: st.Ino}
	if rel != "." {
		t.Rel = "/" + rel
		t.Level = strings.Count(rel, "/") + 1
	}
	return t, nil
}

// Self returns the cgroup2 directory of the calling process.
func Self() (Target, error) {
	return OfPID(os.Getpid())
}

// OfPID returns the cgroup2 directory of a process (the "0::" line of
// /proc/PID/cgroup).
func OfPID(pid int) (Target, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return Target{}, fmt.Errorf("reading cgroup of pid %d: %w", pid, err)
	}
	rel, err := unifiedPath(string(data))
	if err != nil {
		return Target{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return Resolve(rel)
}

func unifiedPath(procCgroup string) (string, error) {
	for _, line := range strings.Split(procCgroup, "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return rest, nil
		}
	}
	return "", errors.New("no cgroup v2 entry (0::) in /proc/PID/cgroup")
}

// Parent returns the directory above t (the pod when t is a container).
func Parent(t Target) (Target, error) {
	if t.Level == 0 {
		return Target{}, errors.New("cgroup root has no parent")
	}
	return resolveUnder(t.Root, filepath.Dir(t.Path))
}

// Create makes a new child cgroup directory under parent and describes it.
func Create(parent Target, name string) (Target, error) {
	p := filepath.Join(parent.Path, name)
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return Target{}, fmt.Errorf("creating cgroup %s: %w", p, err)
	}
	return resolveUnder(parent.Root, p)
}

// AddProcess moves a process (all its threads) into t.
func AddProcess(t Target, pid int) error {
	f := filepath.Join(t.Path, "cgroup.procs")
	if err := os.WriteFile(f, []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("moving pid %d into %s: %w", pid, t.Path, err)
	}
	return nil
}

// Remove deletes an (empty) cgroup directory; it must hold no processes.
func Remove(t Target) error {
	if err := os.Remove(t.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing cgroup %s: %w", t.Path, err)
	}
	return nil
}

// FindPod looks for the cgroup of the pod with the given UID below root,
// the way the kubelet names them: ".../pod<uid>" (cgroupfs driver) or
// ".../kubepods-<qos>-pod<uid_with_underscores>.slice" (systemd driver).
// A sidecar needs it when a private cgroup namespace hides where it sits
// (its /proc/self/cgroup then reads "0::/").
func FindPod(root, podUID string) (Target, error) {
	if podUID == "" {
		return Target{}, errors.New("no pod UID to look for")
	}
	names := []string{"pod" + podUID, "pod" + strings.ReplaceAll(podUID, "-", "_")}
	matches := func(base string) bool {
		for _, n := range names {
			if base == n || strings.HasSuffix(strings.TrimSuffix(base, ".slice"), "-"+n) {
				return true
			}
		}
		return false
	}
	// Breadth first and bounded: pod cgroups sit a few levels down, and the
	// shallowest match is the pod (its containers are below it).
	level := []string{root}
	for depth := 0; depth < 6 && len(level) > 0; depth++ {
		var next []string
		for _, dir := range level {
			entries, err := os.ReadDir(dir)
			if err != nil {
				continue // a cgroup that vanished while we looked
			}
			for _, e := range entries {
				if !e.IsDir() {
					continue
				}
				p := filepath.Join(dir, e.Name())
				if matches(e.Name()) {
					return resolveUnder(root, p)
				}
				next = append(next, p)
			}
		}
		level = next
	}
	return Target{}, fmt.Errorf("no cgroup for pod %s below %s", podUID, root)
}
