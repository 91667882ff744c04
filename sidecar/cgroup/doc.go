// Package cgroup finds cgroup v2 directories and their kernel ids: the
// target the eBPF programs filter on is a cgroup2 directory's inode number
// (what bpf_get_current_ancestor_cgroup_id returns) plus its depth.
//
// The cgroup2 mount point is read from /proc/mounts, never assumed: hosts
// mount it at /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid).
package cgroup
