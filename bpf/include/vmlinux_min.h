/* Minimal kernel type definitions for tracecam's CO-RE programs.
 *
 * Only the fields the programs read are declared; preserve_access_index
 * makes every access a CO-RE relocation resolved against the running
 * kernel's BTF at load time, so one object runs on any kernel with BTF and
 * the build needs no kernel headers (and no vmlinux.h dumped from the build
 * host's kernel, which would make the generated object host-dependent).
 */
#ifndef TRACECAM_VMLINUX_MIN_H
#define TRACECAM_VMLINUX_MIN_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

enum bpf_map_type {
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
	BPF_MAP_TYPE_SK_STORAGE = 24,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
};

enum {
	BPF_F_NO_PREALLOC = (1U << 0),
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
};

enum {
	BPF_LOCAL_STORAGE_GET_F_CREATE = (1ULL << 0),
};

enum {
	BPF_RB_NO_WAKEUP = (1ULL << 0),
	BPF_RB_FORCE_WAKEUP = (1ULL << 1),
};

enum {
	BPF_RB_AVAIL_DATA = 0,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di;
	unsigned long orig_ax;
	unsigned long ip, cs, flags, sp, ss;
};

struct qstr {
	union {
		struct {
			u32 hash;
			u32 len;
		};
		u64 hash_len;
	};
	const unsigned char *name;
};

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
};

struct inode {
	unsigned short i_mode;
	unsigned long i_ino;
};

struct vfsmount {
	struct dentry *mnt_root;
};

struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct file {
	struct path f_path;
	struct inode *f_inode;
	void *private_data;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct in6_addr {
	union {
		u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
};

struct sock_common {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			u16 skc_num;
		};
	};
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
};

struct kernfs_node {
	u64 id;
};

struct cgroup;

struct cgroup_subsys_state {
	struct cgroup *cgroup;
	struct cgroup_subsys_state *parent;
};

struct cgroup {
	struct cgroup_subsys_state self;
	int level;
	struct kernfs_node *kn;
};

struct sock_cgroup_data {
	struct cgroup *cgroup;
};

struct sock {
	struct sock_common __sk_common;
	u16 sk_protocol;
	u16 sk_type;
	struct sock_cgroup_data sk_cgrp_data;
	struct socket *sk_socket;
};

struct tcp_sock {
	u32 srtt_us; /* smoothed RTT << 3 */
	u32 rate_delivered;
	u32 rate_interval_us;
	u32 snd_wnd;
	u32 mss_cache;
	u32 write_seq;
	u32 snd_nxt;
	u32 snd_una;
};

struct sk_buff {
	unsigned int len;
	unsigned char *data;
};

struct socket {
	short type;
	unsigned long flags;
	struct sock *sk;
};

/* The CPU's run queue: the hypervisor's steal clock as of its last clock
 * update (CONFIG_PARAVIRT_TIME_ACCOUNTING), which the scheduler takes out
 * of the tasks' CPU clocks. */
struct rq {
	u64 prev_steal_time_rq;
};

struct cfs_rq {
	struct rq *rq;
};

struct sched_entity {
	struct cfs_rq *cfs_rq;
};

struct thread_struct {
	unsigned long fsbase;
};

struct task_struct {
	int pid;
	int tgid;
	char comm[16];
	struct files_struct *files;
	unsigned int in_iowait : 1;
	struct sched_entity se;
	struct thread_struct thread;
};

#pragma clang attribute pop

/* Not kernel structs the programs relocate against: user-space ABI. */
struct iovec_abi {
	u64 iov_base;
	u64 iov_len;
};

struct msghdr_abi {
	u64 msg_name;
	s32 msg_namelen;
	s32 pad0;
	u64 msg_iov;
	u64 msg_iovlen;
	u64 msg_control;
	u64 msg_controllen;
	u32 msg_flags;
	u32 pad1;
};

#endif
