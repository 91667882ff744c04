package cgroup

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

const v1Lines = `sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,nosuid,nodev,noexec,relatime,xattr,name=systemd 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0
`

func TestMountFrom(t *testing.T) {
	tests := []struct {
		name   string
		mounts string
		want   string
		err    error
	}{
		{
			name: "unified",
			mounts: `sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0
/dev/sda1 / ext4 rw,relatime 0 0
`,
			want: "/sys/fs/cgroup",
		},
		{
			name:   "hybrid",
			mounts: v1Lines + "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0\n",
			want:   "/sys/fs/cgroup/unified",
		},
		{
			name:   "first of several cgroup2 mounts",
			mounts: "none /a cgroup2 rw 0 0\nnone /b cgroup2 rw 0 0\n",
			want:   "/a",
		},
		{
			name:   "no trailing newline",
			mounts: "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0",
			want:   "/sys/fs/cgroup",
		},
		{
			name:   "escaped space",
			mounts: `cgroup2 /mnt/my\040cgroups cgroup2 rw 0 0` + "\n",
			want:   "/mnt/my cgroups",
		},
		{
			name:   "escape at the very end",
			mounts: `cgroup2 /mnt/cg\040 cgroup2 rw 0 0` + "\n",
			want:   "/mnt/cg ",
		},
		{
			name:   "tab, newline and backslash escapes",
			mounts: `cgroup2 /mnt/a\011b\012c\134d cgroup2 rw 0 0` + "\n",
			want:   "/mnt/a\tb\nc\\d",
		},
		{
			name:   "not an octal escape is kept",
			mounts: `cgroup2 /mnt/x\09y\4 cgroup2 rw 0 0` + "\n",
			want:   `/mnt/x\09y\4`,
		},
		{
			name:   "source named cgroup2 with another fstype",
			mounts: "cgroup2 /sys/fs/cgroup/x cgroup rw 0 0\n",
			err:    ErrNoCgroup2,
		},
		{
			name:   "none (v1 only)",
			mounts: v1Lines,
			err:    ErrNoCgroup2,
		},
		{
			name:   "empty",
			mounts: "",
			err:    ErrNoCgroup2,
		},
		{
			name:   "short lines",
			mounts: "cgroup2\ncgroup2 /x\n\n",
			err:    ErrNoCgroup2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mountFrom(strings.NewReader(tc.mounts))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("mountFrom = %q, %v; want error %v", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("mountFrom = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestMountFromReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := mountFrom(iotest.ErrReader(boom))
	if !errors.Is(err, boom) || errors.Is(err, ErrNoCgroup2) {
		t.Errorf("err = %v, want the read error", err)
	}
}

// Overlay mounts of images with many layers make very long /proc/mounts
// lines; one before the cgroup2 line must not hide it.
func TestMountFromLongLine(t *testing.T) {
	var lower []string
	for i := 0; i < 1200; i++ {
		lower = append(lower, fmt.Sprintf("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/%d/fs", i))
	}
	mounts := "overlay / overlay rw,relatime,lowerdir=" + strings.Join(lower, ":") + " 0 0\n" +
		"cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"
	got, err := mountFrom(strings.NewReader(mounts))
	if err != nil || got != "/sys/fs/cgroup" {
		t.Fatalf("regression: a %d-byte /proc/mounts line before the cgroup2 entry gives %q, %v: mountFrom uses bufio.Scanner with its default 64 KiB token limit (use sc.Buffer with a larger max, or bufio.Reader.ReadString)", len(mounts), got, err)
	}
}

func TestUnifiedPath(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            bool
	}{
		{"v2 only", "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope\n", "/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope", false},
		{"root", "0::/\n", "/", false},
		{"no newline", "0::/a", "/a", false},
		{"hybrid", "12:pids:/user.slice\n4:memory:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n0::/user.slice/session-1.scope\n", "/user.slice/session-1.scope", false},
		{"v1 line with 0 hierarchy and controllers is not v2", "0:cpu:/x\n0::/y\n", "/y", false},
		{"v1 only", "12:pids:/\n1:name=systemd:/\n", "", true},
		{"empty", "", "", true},
		{"10:: is not 0::", "10::/x\n", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := unifiedPath(tc.in)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("unifiedPath = %q, %v; want %q (error %v)", got, err, tc.want, tc.err)
			}
		})
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// resolveUnder on an ordinary directory tree standing in for a cgroup2 root.
func TestResolveUnder(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "kubepods", "pod1", "ctr"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "cgroup.procs"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		rel        string
		level      int
		err        bool
	}{
		{"root by /", "/", "/", 0, false},
		{"root by absolute path", root, "/", 0, false},
		{"root by empty path", "", "/", 0, false},
		{"relative to root", "/kubepods/pod1", "/kubepods/pod1", 2, false},
		{"relative without leading slash", "kubepods", "/kubepods", 1, false},
		{"absolute", filepath.Join(root, "kubepods/pod1/ctr"), "/kubepods/pod1/ctr", 3, false},
		{"uncleaned", "/kubepods//pod1/./ctr/", "/kubepods/pod1/ctr", 3, false},
		{"escapes the root", "/../..", "", 0, true},
		{"missing", "/kubepods/nope", "", 0, true},
		{"a file", "/cgroup.procs", "", 0, true},
		{"sibling sharing the root's prefix", root + "x", "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolveUnder(root, tc.path)
			if tc.err {
				if err == nil {
					t.Fatalf("resolveUnder(%q) = %+v, want an error", tc.path, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			abs := filepath.Join(root, tc.rel)
			want := Target{Root: root, Path: abs, Rel: tc.rel, ID: inode(t, abs), Level: tc.level}
			if got != want {
				t.Errorf("resolveUnder(%q) = %+v, want %+v", tc.path, got, want)
			}
		})
	}

	ctr, err := resolveUnder(root, "/kubepods/pod1/ctr")
	if err != nil {
		t.Fatal(err)
	}
	pod, err := Parent(ctr)
	if err != nil || pod.Rel != "/kubepods/pod1" || pod.Level != 2 || pod.ID != inode(t, filepath.Join(root, "kubepods/pod1")) {
		t.Errorf("Parent = %+v, %v", pod, err)
	}
	top, err := Parent(pod)
	if err == nil {
		top, err = Parent(top)
	}
	if err != nil || top.Rel != "/" || top.Level != 0 || top.Path != root {
		t.Errorf("Parent twice = %+v, %v", top, err)
	}
	if _, err := Parent(top); err == nil {
		t.Error("Parent of the root: no error")
	}
}

// TestRealCgroup creates cgroups on the host's cgroup2 mount and moves a
// process into one.
func TestRealCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	root, err := Mount()
	if errors.Is(err, ErrNoCgroup2) {
		t.Skip("no cgroup2 mount")
	}
	if err != nil {
		t.Fatal(err)
	}
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if self.Root != root || self.ID != inode(t, self.Path) {
		t.Errorf("Self = %+v (mount %s)", self, root)
	}
	rootT, err := Resolve("/")
	if err != nil || rootT.Level != 0 || rootT.Rel != "/" || rootT.Path != filepath.Clean(root) {
		t.Fatalf("Resolve(/) = %+v, %v", rootT, err)
	}

	parent, err := Create(rootT, fmt.Sprintf("tracecam-test-%d", os.Getpid()))
	if err != nil {
		t.Skipf("cannot create a cgroup here: %v", err)
	}
	t.Cleanup(func() { removeRetry(t, parent) })
	child, err := Create(parent, "child")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeRetry(t, child) })

	if child.Level != 2 || child.Rel != parent.Rel+"/child" || child.ID != inode(t, child.Path) || child.Root != root {
		t.Errorf("child = %+v (parent %+v)", child, parent)
	}
	if again, err := Create(parent, "child"); err != nil || again != child {
		t.Errorf("Create of an existing cgroup = %+v, %v; want %+v", again, err, child)
	}
	if p, err := Parent(child); err != nil || p != parent {
		t.Errorf("Parent(child) = %+v, %v; want %+v", p, err, parent)
	}
	if r, err := Resolve(child.Rel); err != nil || r != child {
		t.Errorf("Resolve(%q) = %+v, %v", child.Rel, r, err)
	}
	if r, err := Resolve(child.Path); err != nil || r != child {
		t.Errorf("Resolve(%q) = %+v, %v", child.Path, r, err)
	}

	cmd := exec.Command("sleep", "5")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	done := false
	defer func() {
		if !done {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	pid := cmd.Process.Pid
	if err := AddProcess(child, pid); err != nil {
		t.Fatal(err)
	}
	got, err := OfPID(pid)
	if err != nil {
		t.Fatal(err)
	}
	if got != child {
		t.Errorf("OfPID(sleep) = %+v, want %+v", got, child)
	}
	procs, _ := os.ReadFile(filepath.Join(child.Path, "cgroup.procs"))
	if strings.TrimSpace(string(procs)) != fmt.Sprint(pid) {
		t.Errorf("cgroup.procs = %q, want %d", procs, pid)
	}
	// A populated cgroup cannot be removed.
	if err := Remove(child); err == nil {
		t.Error("Remove of a cgroup with a process: no error")
	}
	if err := AddProcess(child, 1<<30); err == nil {
		t.Error("AddProcess of a missing pid: no error")
	}

	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	done = true
	removeRetry(t, child)
	if _, err := os.Stat(child.Path); !os.IsNotExist(err) {
		t.Errorf("child still exists: %v", err)
	}
	if err := Remove(child); err != nil {
		t.Errorf("Remove of a removed cgroup: %v", err)
	}
	if _, err := OfPID(pid); err == nil {
		t.Error("OfPID of an exited process: no error")
	}
}

// removeRetry removes t, waiting briefly for the kernel to notice that its
// last process is gone.
func removeRetry(t *testing.T, tg Target) {
	t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		if err = Remove(tg); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("Remove(%s): %v", tg.Path, err)
}

func TestFindPod(t *testing.T) {
	const uid = "0f3c8e2a-9b1d-4e5f-8a7b-6c5d4e3f2a1b"
	layouts := map[string]string{
		"cgroupfs driver": "kubepods/burstable/pod" + uid + "/0123abcd",
		"systemd driver":  "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-0123.scope",
		"guaranteed":      "kubepods.slice/kubepods-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-0123.scope",
	}
	for name, layout := range layouts {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "system.slice/other"), 0o755)
			os.MkdirAll(filepath.Join(root, "kubepods/burstable/podffffffff-0000-0000-0000-000000000000"), 0o755)
			if err := os.MkdirAll(filepath.Join(root, layout), 0o755); err != nil {
				t.Fatal(err)
			}
			got, err := FindPod(root, uid)
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(root, filepath.Dir(layout))
			if got.Path != want || got.Level != strings.Count(filepath.Dir(layout), "/")+1 {
				t.Errorf("FindPod = %+v, want %s", got, want)
			}
		})
	}
	if _, err := FindPod(t.TempDir(), uid); err == nil {
		t.Error("found a pod in an empty tree")
	}
	if _, err := FindPod(t.TempDir(), ""); err == nil {
		t.Error("no UID accepted")
	}
}
