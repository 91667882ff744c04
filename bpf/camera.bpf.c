//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/* tracecam's kernel side: per-thread cumulative time counters by category,
 * kept exact at scheduler events, and socket data events that carry a
 * snapshot of them, so user space computes a request's breakdown as a
 * difference of two snapshots instead of summing an event per syscall.
 *
 * Cost to the rest of the node is what shapes the hooks (see
 * docs/architecture.md): no raw sys_enter/sys_exit. The scheduler hooks fire
 * per context switch/wakeup; the syscall hooks are per-syscall tracepoints,
 * so other syscalls pay nothing, and every program first drops tasks outside
 * the target cgroup subtree.
 */
#include "include/vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "camera.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader before load. */
const volatile u64 target_cgid = 0;  /* cgroup2 id (inode) of the pod */
const volatile u32 target_level = 0; /* its depth below the cgroup2 root */
const volatile u64 self_cgid = 0;    /* the sidecar's own cgroup: never watched */
const volatile u32 self_tgid = 0;
const volatile u64 segment_ns = 1000000;
/* Wake the reader only once a CPU has written this much since its last
 * wake-up: a wake-up per event would cost more than the event. The reader
 * also polls on a short timer, so a quiet pod's events are late by at most
 * that period. */
const volatile u64 wakeup_bytes = 128 << 10;
/* A write that leaves at least this much unacknowledged arms an EV_ACKED
 * for when the client has it all (the response's delivery). */
const volatile u32 deliver_min_bytes = 64 << 10;

/* The sidecar's pid namespace, when it is not the initial one (a pod's
 * sidecar shares the pod's): every pid and tid the programs use and report
 * is then the one the sidecar sees in its own /proc, where it reads the
 * pod's binaries and where a user of the pod knows its processes by. 0:
 * the kernel's own numbers. */
const volatile u64 pidns_dev = 0;
const volatile u64 pidns_ino = 0;

struct pidns_info {
	u32 pid;
	u32 tgid;
};

/* bpf_get_current_pid_tgid, in the sidecar's pid namespace (0 for a task
 * outside it, which the sidecar could not look at anyway). */
static __always_inline u64 current_pid_tgid(void)
{
	struct pidns_info ns;
	if (!pidns_ino)
		return bpf_get_current_pid_tgid();
	if (bpf_get_ns_current_pid_tgid(pidns_dev, pidns_ino, (struct bpf_pidns_info *)&ns, sizeof(ns)))
		return 0;
	return (u64)ns.tgid << 32 | ns.pid;
}

static __always_inline u64 min_u64(u64 a, u64 b)
{
	return a < b ? a : b;
}

/* Bumped on every ring-buffer reservation failure; each event carries it so
 * user space knows which requests overlap a loss (partial). */
u64 lost_seq = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

struct thread_state {
	u64 counters[NCAT];
	/* of counters[CAT_RUNQ]: time on CPU that the hypervisor stole from the
	 * vCPU (the kernel's steal clock); cpu is what the thread really ran */
	u64 steal;
	u64 on_ts;   /* on CPU since (0: off CPU) */
	u64 on_steal; /* the CPU's steal clock at on_ts */
	/* the last idle wait in epoll/poll/select (see data_event) */
	u64 loop_sleep_ts, loop_wake_ts, loop_deadline, loop_runq;
	u64 loop_counters[NCAT];
	u64 off_ts;  /* off CPU since (0: on CPU) */
	u64 wake_ts; /* woken at, while off CPU */
	u32 waker_tid;
	u32 waker_tgid;
	u8 off_cat;
	/* the waker was in a futex syscall (a lock release), not interrupted
	 * by a timer that happened to hit it */
	u8 waker_futex;
	u8 _pad[2];
	char waker_comm[16];
	struct wait_detail d;
	/* the run of same-kind short waits being coalesced into a segment */
	u64 agg_start, agg_wake, agg_blocked, agg_runq;
	s64 agg_bytes;
	s64 agg_arg;
	s32 agg_sys;
	u32 agg_n;
	u8 agg_cat;
	/* the run is of timed futex waits that expired (sleep so far): kept,
	 * not emitted, until it is known whether a wait on the same futex that
	 * another thread ends follows (then it was all one lock wait) */
	u8 agg_poll;
	u8 _pad3[6];
	u64 agg_run; /* back on CPU after the run's last wait */
	/* sendmmsg/recvmmsg: the vector and the message of it that this
	 * thread's last socket transfer moved, and how many bytes */
	u64 mmsg_vec;
	s64 mmsg_ret;
	u32 mmsg_idx;
	s32 mmsg_nr;
	/* Go programs (the runtime.execute uprobe): the goroutine on this
	 * thread (0: none known), its g, and the thread's counters when it got
	 * on; 1 + the index of the binary's go_layout once execute was seen. */
	u64 goid;
	u64 gptr;
	u64 g_base[NCAT];
	u64 g_steal_base;
	u32 g_seq; /* the goroutine's run number when it got on this thread */
	u32 go_layout;
	u64 exec_ip; /* where the execute probe hit (the thread's address of it) */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_state);
} threads SEC(".maps");

/* When the task now running on each CPU was switched in, and the CPU's
 * steal clock then: lets every program that runs as the current task
 * account its CPU time without a lookup of the next task at switch time. */
struct cpu_switch {
	u64 ts;
	u64 steal;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct cpu_switch);
} switch_ts SEC(".maps");

/* Index: 0..EV_TYPES-1 events sent by type, EV_TYPES.. lost by type. */
#define STAT_SLOTS (2 * EV_TYPES)
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_SLOTS);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static __always_inline void stat_add(u32 slot)
{
	u64 *v = bpf_map_lookup_elem(&stats, &slot);
	if (v)
		*v += 1;
}

static __always_inline void *reserve(u64 size, u8 type)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);
	if (!e) {
		__sync_fetch_and_add(&lost_seq, 1);
		stat_add(EV_TYPES + type);
		return 0;
	}
	stat_add(type);
	return e;
}

/* Bytes this CPU put on the ring since it last woke the reader. Counted per
 * CPU (an inlined array access) rather than asking the ring how full it is
 * (a helper call per event). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} unread SEC(".maps");

static __always_inline u64 wakeup_flags(u64 size)
{
	u32 k = 0;
	u64 *v = bpf_map_lookup_elem(&unread, &k);
	if (!v)
		return 0;
	*v += size;
	if (*v < wakeup_bytes)
		return BPF_RB_NO_WAKEUP;
	*v = 0;
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline void fill_hdr(struct event_hdr *h, u8 type, u64 now)
{
	u64 id = current_pid_tgid();
	h->type = type;
	h->flags = 0;
	h->cpu = bpf_get_smp_processor_id();
	h->pid = id >> 32;
	h->tid = (u32)id;
	h->_pad = 0;
	h->ts = now;
	h->lost_seq = lost_seq;
	h->goid = 0;
}

/* The pod filter: the current task is inside the target subtree and not in
 * the sidecar's own container. */
static __always_inline bool watched(void)
{
	if (bpf_get_current_ancestor_cgroup_id(target_level) != target_cgid)
		return false;
	/* Set only when the sidecar sits inside the target (as a pod's
	 * sidecar); otherwise the cgroup check already excludes it. */
	if (self_tgid && (current_pid_tgid() >> 32) == self_tgid)
		return false;
	if (self_cgid && bpf_get_current_cgroup_id() == self_cgid)
		return false;
	return true;
}

/* Per TCP socket of the pod, kept by tcp_probe (every segment received):
 * when the oldest unread bytes arrived (taken and cleared by the next read),
 * and the peer's receive window: how long sending was held back by it, its
 * smallest value since the last read. Socket storage lives and dies with
 * the socket. */
struct sk_state {
	u64 arrival;
	u64 rwnd_ns;       /* window-limited time, closed stretches */
	u64 limited_since; /* open stretch (0: not limited) */
	u32 wnd;
	u32 wnd_min1; /* smallest window + 1 since the last read; 0 none */
	u32 deliver_seq; /* write_seq at the last write, awaiting its ACK */
	u32 tgid;        /* the writer */
	u8 deliver_pending;
	u8 _pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sk_state);
} sk_states SEC(".maps");

/* The pod filter for a socket (tcp_probe runs in softirq, in whatever task
 * the packet interrupted): the cgroup the socket was created in (accepted
 * sockets inherit the listener's) lies in the target subtree. Direct BTF
 * loads up the parent chain, no helper call: this runs for every TCP segment
 * the node receives. */
#define MAX_LEVELS_BELOW 8
#define SOCK_NOSPACE 2 /* enum socket_flags: a writer found the send buffer full */
static __always_inline bool sk_watched(struct sock *sk)
{
	struct cgroup *cg = sk->sk_cgrp_data.cgroup;
	int i;

	if (!cg)
		return false;
	for (i = 0; i < MAX_LEVELS_BELOW; i++) {
		int level = cg->level;
		if (level < (int)target_level)
			return false;
		if (level == (int)target_level)
			return cg->kn->id == target_cgid;
		cg = cg->self.parent->cgroup;
		if (!cg)
			return false;
	}
	return false;
}

static __always_inline struct thread_state *state(bool create)
{
	return bpf_task_storage_get(&threads, bpf_get_current_task_btf(), 0,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

static __always_inline struct cpu_switch cpu_switch_now(void)
{
	u32 k = 0;
	struct cpu_switch none = {}, *v = bpf_map_lookup_elem(&switch_ts, &k);
	return v ? *v : none;
}

/* The steal clock of the CPU task runs on: in a VM, how long the
 * hypervisor has kept this vCPU from running, as of the run queue's last
 * clock update (at every switch and tick). 0 where there is no steal
 * clock. Plain loads through the task's scheduling entity, no helper. */
static __always_inline u64 cpu_steal(struct task_struct *task)
{
	struct cfs_rq *cfs;
	struct rq *rq;

	if (!bpf_core_field_exists(struct rq, prev_steal_time_rq))
		return 0;
	cfs = task->se.cfs_rq;
	if (!cfs)
		return 0;
	rq = cfs->rq;
	if (!rq)
		return 0;
	return rq->prev_steal_time_rq;
}

/* ---- fd and socket inspection (only for watched threads) ---- */

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define S_IFBLK 0060000
#define S_IFDIR 0040000
#define S_IFCHR 0020000
#define S_IFIFO 0010000

static __always_inline struct file *fd_file(struct task_struct *task, s64 fd)
{
	struct file **arr;
	struct file *f = 0;
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	arr = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &arr[fd]);
	return f;
}

static __always_inline u8 file_kind(struct file *f)
{
	if (!f)
		return FD_UNKNOWN;
	switch (BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) {
	case S_IFSOCK: return FD_SOCKET;
	case S_IFREG: return FD_FILE;
	case S_IFIFO: return FD_PIPE;
	case S_IFCHR: return FD_CHAR;
	case S_IFBLK: return FD_BLOCK;
	case S_IFDIR: return FD_DIR;
	default: return FD_ANON;
	}
}

static __always_inline void sock_info_of(struct sock *sk, struct sock_info *si)
{
	si->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	si->proto = BPF_CORE_READ(sk, sk_protocol);
	si->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	si->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (si->family == 2 /* AF_INET */) {
		bpf_core_read(si->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(si->raddr, 4, &sk->__sk_common.skc_daddr);
	} else if (si->family == 10 /* AF_INET6 */) {
		bpf_core_read(si->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(si->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/* The same from a trusted (BTF) socket pointer, as tp_btf hands us: plain
 * loads, CO-RE relocated, instead of a probe-read helper call per field —
 * helper calls are the expensive part on kernels with retpolines/SRSO. */
static __always_inline void sock_info_direct(struct sock *sk, struct sock_info *si)
{
	si->family = sk->__sk_common.skc_family;
	si->proto = sk->sk_protocol;
	si->lport = sk->__sk_common.skc_num;
	si->rport = bpf_ntohs(sk->__sk_common.skc_dport);
	if (si->family == 2 /* AF_INET */) {
		*(u32 *)si->laddr = sk->__sk_common.skc_rcv_saddr;
		*(u32 *)si->raddr = sk->__sk_common.skc_daddr;
	} else if (si->family == 10 /* AF_INET6 */) {
		__builtin_memcpy(si->laddr, &sk->__sk_common.skc_v6_rcv_saddr, 16);
		__builtin_memcpy(si->raddr, &sk->__sk_common.skc_v6_daddr, 16);
	}
}

static __always_inline void read_sock(struct file *f, struct sock_info *si)
{
	struct socket *sock = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (sk)
		sock_info_of(sk, si);
}

/* Walk a file's dentries up to the root, crossing mount points, keeping up
 * to PATH_COMPONENTS names. Runs only when a thread blocks on a file. */
static __always_inline void read_file_path(struct file *f, struct wait_detail *d)
{
	struct vfsmount *vmnt = BPF_CORE_READ(f, f_path.mnt);
	struct mount *mnt = (void *)vmnt - bpf_core_field_offset(struct mount, mnt);
	struct dentry *de = BPF_CORE_READ(f, f_path.dentry);
	struct dentry *mroot = BPF_CORE_READ(vmnt, mnt_root);
	u32 n = 0;

	d->ino = BPF_CORE_READ(f, f_inode, i_ino);
	d->path_cut = 1;
	for (int i = 0; i < PATH_COMPONENTS + 4; i++) {
		if (de == mroot) {
			/* At the root of this mount: go on from where it is mounted. */
			struct mount *parent = BPF_CORE_READ(mnt, mnt_parent);
			if (parent == mnt) {
				d->path_cut = 0;
				break;
			}
			de = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = parent;
			mroot = BPF_CORE_READ(mnt, mnt.mnt_root);
			continue;
		}
		struct dentry *up = BPF_CORE_READ(de, d_parent);
		if (up == de) { /* a filesystem root that is not a mount root */
			d->path_cut = 0;
			break;
		}
		if (n >= PATH_COMPONENTS)
			break;
		bpf_probe_read_kernel_str(d->path[n & (PATH_COMPONENTS - 1)], COMPONENT_LEN,
					  BPF_CORE_READ(de, d_name.name));
		n++;
		de = up;
	}
	d->path_depth = n;
}

/* ---- classification of an off-CPU wait ---- */

/* x86_64 syscall numbers. */
enum {
	NR_read = 0, NR_write = 1, NR_poll = 7, NR_pread64 = 17, NR_pwrite64 = 18,
	NR_readv = 19, NR_writev = 20, NR_select = 23, NR_pause = 34,
	NR_nanosleep = 35, NR_sendfile = 40, NR_connect = 42, NR_accept = 43,
	NR_sendto = 44, NR_recvfrom = 45, NR_sendmsg = 46, NR_recvmsg = 47,
	NR_flock = 73, NR_fsync = 74, NR_fdatasync = 75, NR_ftruncate = 77,
	NR_sync = 162, NR_futex = 202, NR_io_getevents = 208,
	NR_epoll_wait = 232, NR_clock_nanosleep = 230, NR_openat = 257,
	NR_pselect6 = 270, NR_ppoll = 271, NR_splice = 275,
	NR_sync_file_range = 277, NR_epoll_pwait = 281, NR_fallocate = 285,
	NR_accept4 = 288, NR_preadv = 295, NR_pwritev = 296, NR_recvmmsg = 299,
	NR_syncfs = 306, NR_sendmmsg = 307, NR_preadv2 = 327, NR_pwritev2 = 328,
	NR_io_uring_enter = 426, NR_epoll_pwait2 = 441, NR_futex_waitv = 449,
};

/* Category of a syscall that does not depend on its fd, or -1 when the fd
 * kind decides. */
static __always_inline int syscall_cat(s32 nr)
{
	switch (nr) {
	case NR_connect: case NR_accept: case NR_accept4:
	case NR_sendto: case NR_recvfrom: case NR_sendmsg: case NR_recvmsg:
	case NR_recvmmsg: case NR_sendmmsg:
		return CAT_NET;
	case NR_fsync: case NR_fdatasync: case NR_sync: case NR_syncfs:
	case NR_sync_file_range: case NR_ftruncate: case NR_fallocate:
	case NR_openat: case NR_io_getevents: case NR_io_uring_enter:
		return CAT_FILE;
	case NR_futex: case NR_futex_waitv: case NR_flock:
		return CAT_LOCK;
	case NR_epoll_wait: case NR_epoll_pwait: case NR_epoll_pwait2:
	case NR_poll: case NR_ppoll: case NR_select: case NR_pselect6:
		return CAT_EPOLL;
	case NR_nanosleep: case NR_clock_nanosleep: case NR_pause:
		return CAT_SLEEP;
	case NR_read: case NR_write: case NR_pread64: case NR_pwrite64:
	case NR_readv: case NR_writev: case NR_preadv: case NR_pwritev:
	case NR_preadv2: case NR_pwritev2: case NR_sendfile: case NR_splice:
		return -1;
	default:
		return CAT_OTHER;
	}
}

/* Syscalls whose first argument is an fd worth describing in a segment. */
static __always_inline bool takes_fd(s32 nr)
{
	switch (nr) {
	case NR_fsync: case NR_fdatasync: case NR_sync_file_range:
	case NR_ftruncate: case NR_fallocate: case NR_flock:
		return true;
	}
	return syscall_cat(nr) == -1 || syscall_cat(nr) == CAT_NET;
}

/* Classify why `task` (the current task, going off CPU voluntarily) waits,
 * from its saved user registers: the syscall it is blocked in and, for fd
 * syscalls, what the fd is. */
static __always_inline u8 classify(struct task_struct *task, struct thread_state *st)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	struct wait_detail *d = &st->d;
	s32 nr = (s32)BPF_CORE_READ(regs, orig_ax);
	int cat;

	d->sysnr = nr;
	d->arg0 = BPF_CORE_READ(regs, di);
	d->fd = -1;
	d->fd_kind = FD_UNKNOWN;
	d->iowait = BPF_CORE_READ_BITFIELD_PROBED(task, in_iowait);
	d->timed = 0;
	d->ino = 0;
	d->path_depth = 0;
	d->path_cut = 0;
	__builtin_memset(&d->sock, 0, sizeof(d->sock));

	if (nr < 0)
		return d->iowait ? CAT_FILE : CAT_OTHER;
	cat = syscall_cat(nr);
	if (nr == NR_futex) {
		/* FUTEX_WAIT, _WAIT_BITSET, _WAIT_REQUEUE_PI with a timeout
		 * (r10 = 4th arg): how JVM Thread.sleep and timed waits look. */
		u32 cmd = BPF_CORE_READ(regs, si) & 127;
		d->timed = (cmd == 0 || cmd == 9 || cmd == 11) && BPF_CORE_READ(regs, r10) != 0;
	}
	/* poll/ppoll on a single fd is how many runtimes do a socket read with
	 * a timeout (CPython, the JDK): waiting for that one socket is network
	 * time, with its peer, not idle multiplexing. */
	s64 fd = d->arg0;
	bool one_poll = false;
	if ((nr == NR_poll || nr == NR_ppoll) && BPF_CORE_READ(regs, si) == 1) {
		s32 pfd = -1;
		one_poll = bpf_probe_read_user(&pfd, sizeof(pfd), (void *)d->arg0) == 0 && pfd >= 0;
		fd = pfd;
	}
	if (takes_fd(nr) || one_poll) {
		struct file *f = fd_file(task, fd);
		d->fd = fd;
		d->fd_kind = file_kind(f);
		if (d->fd_kind == FD_SOCKET)
			read_sock(f, &d->sock);
		else if (d->fd_kind == FD_FILE || d->fd_kind == FD_BLOCK)
			read_file_path(f, d);
		if (cat == -1) {
			if (d->fd_kind == FD_SOCKET)
				cat = CAT_NET;
			else if (d->fd_kind == FD_FILE || d->fd_kind == FD_BLOCK || d->iowait)
				cat = CAT_FILE;
			else
				cat = CAT_OTHER;
		}
		if (one_poll && d->fd_kind == FD_SOCKET)
			cat = CAT_NET;
	}
	if (cat == CAT_OTHER && d->iowait)
		cat = CAT_FILE;
	return cat;
}

/* ---- accounting ---- */

static __always_inline void emit_segment(struct thread_state *st, u64 now)
{
	struct segment_event *e = reserve(sizeof(*e), EV_SEGMENT);
	if (!e)
		return;
	fill_hdr(&e->h, EV_SEGMENT, now);
	e->h.goid = st->goid;
	e->start = st->agg_start;
	e->wake = st->agg_wake;
	e->run = st->agg_run;
	e->blocked_ns = st->agg_blocked;
	e->runq_ns = st->agg_runq;
	e->waker_goid = 0;
	e->bytes = st->agg_bytes;
	e->count = st->agg_n;
	e->waker_tid = st->waker_tid;
	e->cat = st->agg_cat;
	__builtin_memcpy(e->waker_comm, st->waker_comm, sizeof(e->waker_comm));
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__builtin_memcpy(&e->d, &st->d, sizeof(e->d));
	if (st->agg_poll) {
		/* Emitted after later waits replaced st->d and the waker: the run
		 * is of expired timed waits on the futex at agg_arg, no waker. */
		e->d.sysnr = st->agg_sys;
		e->d.arg0 = st->agg_arg;
		e->d.fd = -1;
		e->d.fd_kind = FD_UNKNOWN;
		e->d.iowait = 0;
		e->d.timed = 1;
		e->d.ino = 0;
		e->d.path_depth = 0;
		e->d.path_cut = 0;
		__builtin_memset(&e->d.sock, 0, sizeof(e->d.sock));
		e->waker_tid = 0;
		e->waker_comm[0] = 0;
	}
	bpf_ringbuf_submit(e, wakeup_flags(sizeof(*e)));
}

/* A runq wait of its own (from off_ts to in_ts), leaving the run alone. */
static __always_inline void emit_runq(struct thread_state *st, u64 start, u64 run, u64 now)
{
	struct segment_event *e = reserve(sizeof(*e), EV_SEGMENT);
	if (!e)
		return;
	fill_hdr(&e->h, EV_SEGMENT, now);
	e->h.goid = st->goid;
	e->start = start;
	e->wake = 0;
	e->run = run;
	e->blocked_ns = run - start;
	e->runq_ns = 0;
	e->waker_goid = 0;
	e->bytes = -1;
	e->count = 1;
	e->waker_tid = 0;
	e->cat = CAT_RUNQ;
	e->waker_comm[0] = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__builtin_memcpy(&e->d, &st->d, sizeof(e->d));
	bpf_ringbuf_submit(e, wakeup_flags(sizeof(*e)));
}

/* End the run of short waits: a pending run of expired timed waits is
 * emitted now (as sleep) if it reached the threshold; any other run not
 * emitted yet is shorter than the threshold and dropped. */
static __always_inline void end_run(struct thread_state *st, u64 now)
{
	if (st->agg_n && st->agg_poll && st->agg_blocked >= segment_ns)
		emit_segment(st, now);
	st->agg_n = 0;
	st->agg_poll = 0;
}

/* Add a finished wait to the run of same-kind waits; emit the run once its
 * waiting time reaches the threshold. A wait of another kind starts a new
 * run, dropping a shorter-than-threshold one. */
static __always_inline void add_wait(struct thread_state *st, u8 cat, u64 wait, u64 runq,
				     u64 wake, u64 in_ts, u64 now, s64 bytes, bool expired)
{
	if (cat == CAT_RUNQ && st->agg_n && st->agg_poll) {
		/* Preempted between the timed waits of a pending run (a JVM
		 * monitor's contender spins between its parks): the run goes on;
		 * the runq time is in the counters, and a long one is a segment
		 * of its own. */
		if (wait >= segment_ns)
			emit_runq(st, in_ts - wait, in_ts, now);
		return;
	}
	if (st->agg_n && (st->agg_cat != cat || st->agg_sys != st->d.sysnr ||
			  st->agg_arg != st->d.arg0)) {
		if (st->agg_poll && cat == CAT_LOCK && st->agg_sys == st->d.sysnr &&
		    st->agg_arg == st->d.arg0) {
			/* Timed waits on this futex expired, then a wait on it was
			 * ended by another thread of the process: the expiries were
			 * rechecks of one wait for that thread (a JVM monitor's first
			 * contender parks 1, 8, 64, 512 ms at a time), so all of it
			 * is lock. No socket transfer came in between (that ends the
			 * run), so no snapshot has seen the sleep yet. */
			st->counters[CAT_SLEEP] -= st->agg_blocked;
			st->counters[CAT_LOCK] += st->agg_blocked;
			st->agg_cat = CAT_LOCK;
			st->agg_poll = 0;
		} else {
			end_run(st, now);
		}
	}
	if (!st->agg_n) {
		st->agg_start = st->off_ts;
		st->agg_blocked = 0;
		st->agg_runq = 0;
		st->agg_bytes = -1;
		st->agg_cat = cat;
		st->agg_sys = st->d.sysnr;
		st->agg_arg = st->d.arg0;
		st->agg_poll = expired;
	}
	st->agg_n++;
	st->agg_run = in_ts;
	st->agg_blocked += wait;
	st->agg_runq += runq;
	st->agg_wake = wake;
	if (bytes >= 0)
		st->agg_bytes = st->agg_bytes < 0 ? bytes : st->agg_bytes + bytes;
	if (st->agg_blocked >= segment_ns && !st->agg_poll) {
		emit_segment(st, now);
		st->agg_n = 0;
	}
}

/* The timeout of the epoll/poll/select wait task is entering, in ns
 * (0: none, or unknown), from its saved registers: the event loop's next
 * timer is due when it expires. */
static __always_inline u64 wait_timeout_ns(struct task_struct *task, s32 nr)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	struct { s64 sec; s64 nsec; } ts = {};
	s64 ms = -1;
	u64 ptr = 0;

	switch (nr) {
	case NR_epoll_wait: case NR_epoll_pwait:
		ms = (s32)BPF_CORE_READ(regs, r10);
		break;
	case NR_poll:
		ms = (s32)BPF_CORE_READ(regs, dx);
		break;
	case NR_epoll_pwait2:
		ptr = BPF_CORE_READ(regs, r10);
		break;
	case NR_ppoll:
		ptr = BPF_CORE_READ(regs, dx);
		break;
	}
	if (ptr) {
		/* current is task (switch-out): its memory is readable */
		if (bpf_probe_read_user(&ts, sizeof(ts), (void *)ptr) || ts.sec < 0 || ts.nsec < 0)
			return 0;
		return (u64)ts.sec * 1000000000ULL + (u64)ts.nsec;
	}
	return ms > 0 ? (u64)ms * 1000000ULL : 0;
}

/* The thread goes idle in epoll/poll/select: remember when, its counters
 * then, and the wait's deadline. */
static __always_inline void loop_sleep(struct thread_state *st, struct task_struct *task, u64 now)
{
	u64 t = wait_timeout_ns(task, st->d.sysnr);
	st->loop_sleep_ts = now;
	st->loop_wake_ts = 0;
	st->loop_runq = 0;
	st->loop_deadline = t ? now + t : 0;
	__builtin_memcpy(st->loop_counters, st->counters, sizeof(st->loop_counters));
}

/* Bring the current thread's counters up to `now`. The thread is on CPU; if
 * it was off CPU when last seen, close that wait first: blocked time goes to
 * the category it blocked in, and the time from wake-up to running to runq.
 * `exit_nr`/`bytes` name the syscall being exited, so a wait that ends in it
 * reports how many bytes it moved. */
static __always_inline void settle(struct thread_state *st, struct cpu_switch in, u64 now,
				   u64 steal, s32 exit_nr, s64 bytes)
{
	u64 in_ts = in.ts;

	if (st->off_ts) {
		u64 blocked = 0, runq;
		bool expired = false;
		if (in_ts < st->off_ts)
			in_ts = st->off_ts;
		if (st->wake_ts >= st->off_ts && st->wake_ts <= in_ts)
			blocked = st->wake_ts - st->off_ts;
		else if (st->off_cat != CAT_RUNQ)
			/* Blocked, but no wake-up seen: its sched_waking ran before
			 * this program marked the thread off CPU (the waker raced
			 * the switch-out). The wait is the thread's, not a wait for
			 * a CPU: the scheduler's run delay agrees. */
			blocked = in_ts - st->off_ts;
		runq = in_ts - st->off_ts - blocked;
		/* A timed futex wait ended by something outside the process (the
		 * timer, from whatever task its interrupt hit) expired: nobody
		 * released a lock, the thread slept (e.g. JVM Thread.sleep). */
		/* (A timer interrupt wakes in whatever task it hits: one of the
		 * process's own threads is no releaser unless it is in futex.) */
		if (st->off_cat == CAT_LOCK && st->d.timed &&
		    (st->waker_tgid != (u32)(current_pid_tgid() >> 32) || !st->waker_futex)) {
			st->off_cat = CAT_SLEEP;
			expired = st->d.sysnr == NR_futex;
		}
		if (st->off_cat < NCAT)
			st->counters[st->off_cat & (NCAT - 1)] += blocked;
		st->counters[CAT_RUNQ] += runq;
		if (st->off_cat == CAT_EPOLL && st->loop_sleep_ts == st->off_ts) {
			st->loop_wake_ts = in_ts;
			st->loop_runq = runq;
		}
		if (st->off_cat == CAT_RUNQ)
			add_wait(st, CAT_RUNQ, runq, 0, 0, in_ts, now, -1, false);
		else if (blocked)
			add_wait(st, st->off_cat, blocked, runq, st->wake_ts, in_ts, now,
				 (exit_nr >= 0 && exit_nr == st->d.sysnr) ? bytes : -1, expired);
		st->off_ts = 0;
		st->wake_ts = 0;
		st->on_ts = in_ts;
		st->on_steal = in.steal;
	}
	if (!st->on_ts) {
		st->on_ts = in_ts ? in_ts : now;
		st->on_steal = in_ts ? in.steal : steal;
	}
	if (now > st->on_ts) {
		/* On CPU since on_ts, but the hypervisor may have kept the vCPU
		 * from running for part of it: that is waiting for a (physical)
		 * CPU, not running, and the thread's own CPU clock leaves it out
		 * too. */
		u64 run = now - st->on_ts, stolen = 0;
		if (steal > st->on_steal)
			stolen = min_u64(steal - st->on_steal, run);
		st->counters[CAT_CPU] += run - stolen;
		st->counters[CAT_RUNQ] += stolen;
		st->steal += stolen;
	}
	st->on_ts = now;
	st->on_steal = steal;
}

/* ---- goroutines (Go programs) ----
 *
 * A Go request belongs to a goroutine, and goroutines hop between threads
 * and share them. Each goroutine gets counters like a thread's: while it is
 * on a thread, the thread's counter increments are its own (folded in when
 * it leaves, or at its socket events); while it is off every thread, the
 * time goes to why it left, read from the runtime when it left (its status
 * and wait reason), split at runtime.ready (when it was made runnable) into
 * the wait and the time it then waited to run. Goroutine switches happen in
 * user space, so they are seen by a uprobe on runtime.execute (the one
 * function every switch-in goes through, ~1 µs a hit) and, when a goroutine
 * parks and its thread goes idle without running another, by the thread's
 * current g (read from its TLS) at the switch-out. */

#define G_RUNNABLE 1
#define G_RUNNING 2
#define G_SYSCALL 3
#define G_WAITING 4
#define G_DEAD 6
#define G_PREEMPTED 9
#define G_SCAN 0x1000

#define GO_LAYOUTS 64
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GO_LAYOUTS);
	__type(key, u32);
	__type(value, struct go_layout);
} go_layouts SEC(".maps");

struct g_key {
	u32 tgid;
	u32 _pad;
	u64 goid;
};

struct g_state {
	u64 counters[NCAT];
	u64 steal;
	u64 off_ts;   /* left its thread at (0: on one, or not seen leaving) */
	u64 ready_ts; /* made runnable at, while off */
	u64 waker_goid; /* the goroutine that made it runnable (0: none seen) */
	u32 seq;      /* runs so far (execute calls seen) */
	u8 off_cat;   /* what it left for */
	u8 reason;    /* its wait reason then */
	u8 woken_by_net; /* readied by a goroutine whose last wait was the network */
	u8 last_cat;  /* its own last wait's category (0xff: none yet) */
};

/* Goroutines of the pod's Go programs seen running. Least recently used
 * ones go first when full: a goroutine idle that long has no request in
 * flight that needs its counters. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct g_key);
	__type(value, struct g_state);
} goroutines SEC(".maps");

struct g_state g_zero = {};

static __always_inline struct g_state *g_lookup(u64 goid)
{
	struct g_key k = { .tgid = bpf_get_current_pid_tgid() >> 32, .goid = goid };
	return bpf_map_lookup_elem(&goroutines, &k);
}

static __always_inline struct g_state *g_get(u64 goid)
{
	struct g_key k = { .tgid = bpf_get_current_pid_tgid() >> 32, .goid = goid };
	struct g_state *gs = bpf_map_lookup_elem(&goroutines, &k);
	if (gs)
		return gs;
	bpf_map_update_elem(&goroutines, &k, &g_zero, BPF_NOEXIST);
	gs = bpf_map_lookup_elem(&goroutines, &k);
	if (gs)
		gs->last_cat = 0xff;
	return gs;
}

/* The thread's counters since the goroutine got on it become the
 * goroutine's. */
static __always_inline void g_fold(struct thread_state *st, struct g_state *gs)
{
	for (int i = 0; i < NCAT; i++) {
		gs->counters[i] += st->counters[i] - st->g_base[i];
		st->g_base[i] = st->counters[i];
	}
	gs->steal += st->steal - st->g_steal_base;
	st->g_steal_base = st->steal;
}

static __always_inline struct go_layout *layout_of(struct thread_state *st)
{
	u32 k = st->go_layout - 1;
	if (!st->go_layout)
		return 0;
	return bpf_map_lookup_elem(&go_layouts, &k);
}

/* The goroutine on the thread left it (parked, yielded, or ended; the
 * thread runs another or goes idle): its time on the thread up to now is
 * its own; from now on it is off, for the reason its status says. */
static __always_inline void g_leave(struct thread_state *st, struct go_layout *gl, u64 now)
{
	struct g_state *gs = g_lookup(st->goid);
	u32 status = 0;
	u8 reason = 0;

	if (!gs) {
		st->goid = 0;
		st->gptr = 0;
		return;
	}
	/* Its time on this thread is its own even when another thread already
	 * runs it again (a goroutine back from a blocking syscall without a P
	 * is queued, and another thread may take it before this one is seen
	 * going idle): that time is the syscall's, plus the few µs of the
	 * scheduler since. */
	g_fold(st, gs);
	/* Only if no other thread took it since does its status say why it is
	 * off. */
	if (gs->seq == st->g_seq) {
		bpf_probe_read_user(&status, sizeof(status), (void *)(st->gptr + gl->g_status));
		switch (status & ~G_SCAN) {
		case G_WAITING:
			bpf_probe_read_user(&reason, sizeof(reason), (void *)(st->gptr + gl->g_waitreason));
			gs->off_cat = gl->wait_cat[reason & (WAIT_REASONS - 1)];
			gs->reason = reason;
			gs->off_ts = now;
			gs->ready_ts = 0;
			gs->woken_by_net = 0;
			break;
		case G_RUNNABLE:
		case G_PREEMPTED:
			/* preempted or yielded: waiting to run from now on */
			gs->off_cat = CAT_RUNQ;
			gs->reason = 0;
			gs->off_ts = now;
			gs->ready_ts = now;
			break;
		case G_DEAD: {
			struct g_key k = { .tgid = bpf_get_current_pid_tgid() >> 32, .goid = st->goid };
			bpf_map_delete_elem(&goroutines, &k);
			break;
		}
		default:
			/* running or in a syscall on another thread already */
			break;
		}
	}
	st->goid = 0;
	st->gptr = 0;
}

/* A goroutine's park of at least the threshold, as a segment: the
 * timeline's evidence of what it waited for (wait reason in d.arg0). */
static __always_inline void emit_park(struct g_state *gs, u64 goid, u8 cat, u64 wait, u64 runnable, u64 now)
{
	struct segment_event *e = reserve(sizeof(*e), EV_SEGMENT);
	if (!e)
		return;
	fill_hdr(&e->h, EV_SEGMENT, now);
	e->h.goid = goid;
	e->start = gs->off_ts;
	e->wake = gs->off_ts + wait;
	e->run = now;
	e->blocked_ns = wait;
	e->runq_ns = runnable;
	e->waker_goid = gs->ready_ts ? gs->waker_goid : 0;
	e->bytes = -1;
	e->count = 1;
	e->waker_tid = 0;
	e->cat = cat;
	e->waker_comm[0] = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__builtin_memset(&e->d, 0, sizeof(e->d));
	e->d.sysnr = SYS_GOPARK;
	e->d.arg0 = gs->reason;
	e->d.fd = -1;
	bpf_ringbuf_submit(e, wakeup_flags(sizeof(*e)));
}

/* runtime.execute(gp, inheritTime): gp starts running on this thread. The
 * probe sits after the stack check, on the frame pointer push (an
 * instruction the kernel emulates: no single-step), where gp is still in
 * AX (Go's register ABI). */
SEC("uprobe")
int go_execute(struct pt_regs *ctx)
{
	u32 idx = (u32)bpf_get_attach_cookie(ctx);
	struct go_layout *gl;
	struct thread_state *st;
	struct g_state *gs;
	u64 now, gp, goid = 0;

	if (!watched())
		return 0;
	gl = bpf_map_lookup_elem(&go_layouts, &idx);
	st = state(true);
	if (!gl || !st)
		return 0;
	now = bpf_ktime_get_ns();
	settle(st, cpu_switch_now(), now, cpu_steal(bpf_get_current_task_btf()), -1, -1);
	if (st->goid)
		g_leave(st, gl, now);
	gp = ctx->ax;
	if (bpf_probe_read_user(&goid, sizeof(goid), (void *)(gp + gl->g_goid)) || !goid)
		return 0;
	gs = g_get(goid);
	if (!gs)
		return 0;
	if (gs->off_ts && now > gs->off_ts) {
		u64 ready = gs->ready_ts, wait, runnable;
		u8 cat = gs->off_cat;
		/* no ready() seen (the network poller readies without it): all
		 * of it is the wait's own */
		if (ready < gs->off_ts || ready > now)
			ready = now;
		wait = ready - gs->off_ts;
		runnable = now - ready;
		/* waiting on a channel for a goroutine that was waiting for the
		 * network (net/http's client hands the response over a channel) */
		if (cat == CAT_QUEUE && gs->woken_by_net)
			cat = CAT_NET;
		gs->counters[cat & (NCAT - 1)] += wait;
		gs->counters[CAT_RUNQ] += runnable;
		if (wait) {
			gs->last_cat = cat;
			if (wait >= segment_ns && cat != CAT_RUNQ)
				emit_park(gs, goid, cat, wait, runnable, now);
		}
	}
	gs->off_ts = 0;
	gs->ready_ts = 0;
	gs->seq++;
	st->goid = goid;
	st->gptr = gp;
	st->exec_ip = ctx->ip;
	st->g_seq = gs->seq;
	st->go_layout = idx + 1;
	__builtin_memcpy(st->g_base, st->counters, sizeof(st->g_base));
	st->g_steal_base = st->steal;
	return 0;
}

/* runtime.ready(gp, ...): a parked goroutine is made runnable (timers,
 * channels, sync primitives; the network poller readies without it). */
SEC("uprobe")
int go_ready(struct pt_regs *ctx)
{
	u32 idx = (u32)bpf_get_attach_cookie(ctx);
	struct go_layout *gl;
	struct thread_state *st;
	struct g_state *gs, *w;
	u64 goid = 0;

	if (!watched())
		return 0;
	gl = bpf_map_lookup_elem(&go_layouts, &idx);
	if (!gl)
		return 0;
	if (bpf_probe_read_user(&goid, sizeof(goid), (void *)(ctx->ax + gl->g_goid)) || !goid)
		return 0;
	gs = g_lookup(goid);
	if (!gs || !gs->off_ts)
		return 0;
	gs->ready_ts = bpf_ktime_get_ns();
	gs->woken_by_net = 0;
	gs->waker_goid = 0;
	st = state(false);
	if (st && st->goid) {
		/* The thread's goroutine is the waker only if it is still the
		 * thread's current one (m.curg: ready runs on the g0 stack,
		 * under systemstack; timers are run by the scheduler, with no
		 * current goroutine). */
		u64 fsbase = BPF_CORE_READ(bpf_get_current_task_btf(), thread.fsbase), g = 0, m = 0, curg = 0;
		if (!fsbase || bpf_probe_read_user(&g, sizeof(g), (void *)(fsbase + gl->tls_g)) ||
		    bpf_probe_read_user(&m, sizeof(m), (void *)(g + gl->g_m)) ||
		    bpf_probe_read_user(&curg, sizeof(curg), (void *)(m + gl->m_curg)) || curg != st->gptr)
			return 0;
		gs->waker_goid = st->goid;
		w = g_lookup(st->goid);
		if (w && w->last_cat == CAT_NET)
			gs->woken_by_net = 1;
	}
	return 0;
}

/* At a switch-out: has the goroutine the thread ran left it (parked, and
 * the thread went idle in the scheduler without running another)? It has
 * when it is no longer the thread's current goroutine (m.curg, cleared by
 * the scheduler as a goroutine parks, yields or is preempted) and the
 * thread is on its g0 (the scheduler's stack) outside runtime.execute. Not
 * decided otherwise, until the thread's next switch-out or execute:
 *  - its g (TLS) is still the goroutine;
 *  - the g0 stack while m.curg is it (systemstack, a stack copy);
 *  - a signal handler's g (a signal can come between execute's probe and
 *    m.curg = gp, and the handler runs on its own g);
 *  - in execute between the probe and m.curg = gp (switched out on the
 *    probe's return), or about to enter the signal trampoline from there
 *    (its saved IP is execute's). */
static __always_inline void g_check_left(struct thread_state *st, struct task_struct *task, u64 now)
{
	struct go_layout *gl = layout_of(st);
	u64 fsbase, g = 0, m = 0, curg = 0, g0 = 0, ip, sp;
	struct pt_regs *regs;
	if (!gl)
		return;
	fsbase = BPF_CORE_READ(task, thread.fsbase);
	if (!fsbase || bpf_probe_read_user(&g, sizeof(g), (void *)(fsbase + gl->tls_g)))
		return;
	if (g == st->gptr)
		return;
	if (bpf_probe_read_user(&m, sizeof(m), (void *)(g + gl->g_m)) ||
	    bpf_probe_read_user(&curg, sizeof(curg), (void *)(m + gl->m_curg)) ||
	    bpf_probe_read_user(&g0, sizeof(g0), (void *)(m + gl->m_g0)))
		return;
	if (curg == st->gptr || g != g0)
		return;
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	ip = BPF_CORE_READ(regs, ip);
	if (gl->sigtramp_delta && ip == st->exec_ip + gl->sigtramp_delta) {
		/* the interrupted IP, from the signal frame: rt_sigframe's
		 * ucontext (at +8) holds uc_mcontext at +40, its rip at +128 */
		sp = BPF_CORE_READ(regs, sp);
		if (bpf_probe_read_user(&ip, sizeof(ip), (void *)(sp + 8 + 40 + 128)))
			return;
	}
	if (ip >= st->exec_ip && ip < st->exec_ip + gl->exec_len)
		return;
	g_leave(st, gl, now);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	u32 k = 0;
	u64 now = bpf_ktime_get_ns(), steal = cpu_steal(prev);
	struct cpu_switch *sw = bpf_map_lookup_elem(&switch_ts, &k), in;
	struct thread_state *st;

	if (!sw)
		return 0;
	in = *sw;
	sw->ts = now;
	sw->steal = steal;

	/* prev is current here: the cheap current-task filters apply. */
	if (!watched())
		return 0;
	st = bpf_task_storage_get(&threads, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!st)
		return 0;
	settle(st, in, now, steal, -1, -1);
	if (st->goid)
		g_check_left(st, prev, now);
	st->on_ts = 0;
	st->off_ts = now;
	st->wake_ts = 0;
	st->waker_tid = 0;
	st->waker_tgid = 0;
	st->waker_futex = 0;
	st->waker_comm[0] = 0;
	if (preempt || prev_state == 0 /* TASK_RUNNING: yielded, still runnable */) {
		st->off_cat = CAT_RUNQ;
		st->d.sysnr = -1;
		st->d.arg0 = 0;
		st->d.fd = -1;
		st->d.fd_kind = FD_UNKNOWN;
	} else {
		st->off_cat = classify(prev, st);
		if (st->off_cat == CAT_EPOLL)
			loop_sleep(st, prev, now);
	}
	return 0;
}

SEC("tp_btf/sched_waking")
int BPF_PROG(on_waking, struct task_struct *p)
{
	/* Storage exists only for watched threads, so this lookup is the filter. */
	struct thread_state *st = bpf_task_storage_get(&threads, p, 0, 0);
	if (!st || !st->off_ts || st->wake_ts)
		return 0;
	st->wake_ts = bpf_ktime_get_ns();
	/* In sched_waking current is the waker (unlike sched_wakeup). */
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	u64 waker = current_pid_tgid();
	st->waker_futex = (s32)regs->orig_ax == NR_futex;
	st->waker_tid = (u32)waker;
	st->waker_tgid = waker >> 32;
	bpf_get_current_comm(st->waker_comm, sizeof(st->waker_comm));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	struct thread_state *st;
	struct event_hdr *e;
	if (!watched())
		return 0;
	st = state(false);
	if (!st)
		return 0;
	end_run(st, bpf_ktime_get_ns());
	e = reserve(sizeof(*e), EV_EXIT);
	if (!e)
		return 0;
	fill_hdr(e, EV_EXIT, bpf_ktime_get_ns());
	bpf_ringbuf_submit(e, wakeup_flags(sizeof(*e)));
	return 0;
}

/* ---- socket data: sock_send_length / sock_recv_length ---- */

/* These two tracepoints fire inside sock_sendmsg/sock_recvmsg, i.e. only for
 * socket I/O (any syscall: read, write, readv, writev, the send and recv families, sendfile and
 * splice to a socket), never for pipes or files. So, unlike syscall hooks,
 * they cost nothing to the rest of the node's file and pipe I/O, and they
 * hand us the socket itself: no fd table walk. The syscall and the user
 * buffer come from the task's saved registers; the bytes are already in the
 * user buffer when sock_recvmsg returns. */

#define MSG_PEEK 2

#define MMSGHDR_SIZE 64 /* struct mmsghdr: a msghdr, msg_len, padding */
#define MMSG_LEN_OFF 56

/* The msghdr of the message this socket transfer moves, for sendmsg and
 * recvmsg (their argument) and sendmmsg and recvmmsg: the kernel moves a
 * vector's messages one at a time, firing the tracepoint for each, and
 * writes each message's msg_len once it is moved. So this transfer is
 * message i+1 of the same call when this thread's last transfer was
 * message i of the same vector and its msg_len now holds what it moved
 * (glibc's resolver sends its A and AAAA queries with one sendmmsg: without
 * this both would read as the first). 0 for other syscalls. */
static __always_inline u64 msghdr_of(struct thread_state *st, s32 nr, struct pt_regs *regs, s64 ret)
{
	u64 vec = regs->si;
	u32 idx = 0, done = 0;

	if (nr == NR_sendmsg || nr == NR_recvmsg) {
		st->mmsg_vec = 0;
		return vec;
	}
	if (nr != NR_sendmmsg && nr != NR_recvmmsg) {
		st->mmsg_vec = 0;
		return 0;
	}
	if (st->mmsg_vec == vec && st->mmsg_nr == nr && st->mmsg_idx < 1024 &&
	    st->mmsg_idx + 1 < (u32)regs->dx &&
	    bpf_probe_read_user(&done, sizeof(done),
				(void *)(vec + (u64)st->mmsg_idx * MMSGHDR_SIZE + MMSG_LEN_OFF)) == 0 &&
	    done == (u32)st->mmsg_ret)
		idx = st->mmsg_idx + 1;
	st->mmsg_vec = vec;
	st->mmsg_nr = nr;
	st->mmsg_idx = idx;
	st->mmsg_ret = ret;
	return vec + (u64)idx * MMSGHDR_SIZE;
}

/* The user buffer holding the first bytes a data syscall moved, and its
 * size, from the syscall's arguments (x86_64: di si dx r10 r8 r9) or, for
 * the msg families, the message's msghdr (msgp). */
static __always_inline u64 first_buf(s32 nr, struct pt_regs *regs, u64 msgp, u64 *len)
{
	struct iovec_abi iov = {};
	u64 iovp = 0;

	switch (nr) {
	case NR_read: case NR_write: case NR_recvfrom: case NR_sendto:
	case NR_pread64: case NR_pwrite64:
		*len = regs->dx;
		return regs->si;
	case NR_readv: case NR_writev: case NR_preadv: case NR_pwritev:
	case NR_preadv2: case NR_pwritev2:
		iovp = regs->si;
		break;
	case NR_recvmsg: case NR_sendmsg: case NR_recvmmsg: case NR_sendmmsg: {
		struct msghdr_abi m = {};
		bpf_probe_read_user(&m, sizeof(m), (void *)msgp);
		iovp = m.msg_iov;
		break;
	}
	default: /* sendfile, splice, io_uring: no user buffer to read */
		*len = 0;
		return 0;
	}
	bpf_probe_read_user(&iov, sizeof(iov), (void *)iovp);
	*len = iov.iov_len;
	return iov.iov_base;
}

/* The destination of an unconnected datagram (sendto's 5th argument or
 * msg_name), for DNS over UDP. Only sends: a recvfrom's source address is
 * copied to user memory after this tracepoint. */
static __always_inline void datagram_addr(struct data_event *e, s32 nr, struct pt_regs *regs, u64 msgp)
{
	u64 addr = 0;
	e->addr_len = 0;
	if (nr == NR_sendto) {
		addr = regs->r8;
	} else if (nr == NR_sendmsg || nr == NR_sendmmsg) {
		struct msghdr_abi m = {};
		bpf_probe_read_user(&m, sizeof(m), (void *)msgp);
		addr = m.msg_name;
	}
	if (addr && bpf_probe_read_user(e->addr, sizeof(e->addr), (void *)addr) == 0)
		e->addr_len = sizeof(e->addr);
}

/* The socket's fd as the syscall named it, -1 when no argument does
 * (io_uring, or a kernel-internal send). */
static __always_inline s32 data_fd(s32 nr, struct pt_regs *regs)
{
	switch (nr) {
	case NR_read: case NR_write: case NR_readv: case NR_writev:
	case NR_recvfrom: case NR_sendto: case NR_recvmsg: case NR_sendmsg:
	case NR_recvmmsg: case NR_sendmmsg: case NR_sendfile:
		return regs->di;
	case NR_splice:
		return regs->dx; /* fd_out */
	}
	return -1;
}

static __always_inline int on_sock_data(struct sock *sk, int ret, int flags, u8 dir, bool conn)
{
	struct thread_state *st;
	struct pt_regs *regs;
	struct data_event *e;
	u64 now, buf, len = 0, n, arrival = 0, arrival_any = 0, rwnd = 0, msgp;
	u32 wnd = 0, wnd_min1 = 0, unacked = 0;
	struct sk_state *ss;
	s32 nr;

	if (!conn && (ret < 0 || (ret == 0 && dir) || (flags & MSG_PEEK)))
		return 0;
	if (!watched())
		return 0;
	st = state(true);
	if (!st)
		return 0;
	now = bpf_ktime_get_ns();
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	nr = (s32)regs->orig_ax;
	/* Only TCP sockets have state (tcp_probe makes it): skip the helper
	 * call for every UDP and unix-socket transfer. */
	ss = sk->sk_protocol == 6 /* TCP */ ? bpf_sk_storage_get(&sk_states, sk, 0, 0) : 0;
	if (ss) {
		rwnd = ss->rwnd_ns + (ss->limited_since && now > ss->limited_since ? now - ss->limited_since : 0);
		wnd = ss->wnd;
		wnd_min1 = ss->wnd_min1;
	}
	if (dir && ss) {
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
		if (tp) {
			u32 wseq = tp->write_seq, una = tp->snd_una;
			/* Only a response with much still on its way is worth an
			 * event when it is delivered: a small one reaches the client
			 * within a round trip, and an event per response would cost
			 * more than it tells. */
			ss->deliver_pending = wseq - una >= deliver_min_bytes;
			if (ss->deliver_pending) {
				ss->deliver_seq = wseq;
				ss->tgid = current_pid_tgid() >> 32;
				unacked = wseq - una;
			}
		}
	}
	if (!dir) {
		if (ss) {
			arrival = arrival_any = ss->arrival;
			ss->arrival = 0;
			/* A request read starts a new response: its smallest window. */
			ss->wnd_min1 = 0;
		}
		/* Off CPU since before the bytes came (blocked in this read, or in
		 * epoll): the gap to this read is the wake-up, not a queue. */
		if (arrival && st->off_ts && st->off_ts <= arrival)
			arrival = 0;
	}
	/* A wait that ends in this very syscall (a blocking recv) reports the
	 * bytes it brought. */
	settle(st, cpu_switch_now(), now, cpu_steal(bpf_get_current_task_btf()), nr, ret);
	/* Socket bytes mark request boundaries: a run of short waits must not
	 * straddle two requests. */
	end_run(st, now);
	msgp = msghdr_of(st, nr, regs, ret);
	e = reserve(sizeof(*e), EV_DATA);
	if (!e)
		return 0;
	fill_hdr(&e->h, EV_DATA, now);
	if (conn)
		e->h.flags = DATA_CONNECT;
	__builtin_memcpy(e->counters, st->counters, sizeof(e->counters));
	e->steal = st->steal;
	if (st->goid) {
		/* A goroutine's transfer: its counters, not the thread's. */
		struct g_state *gs = g_lookup(st->goid);
		if (gs && gs->seq == st->g_seq) {
			g_fold(st, gs);
			__builtin_memcpy(e->counters, gs->counters, sizeof(e->counters));
			e->steal = gs->steal;
			e->h.goid = st->goid;
		}
	}
	e->loop_sleep_ts = st->loop_sleep_ts;
	e->loop_wake_ts = st->loop_wake_ts;
	e->loop_deadline = st->loop_deadline;
	e->loop_runq = st->loop_runq;
	__builtin_memcpy(e->loop_counters, st->loop_counters, sizeof(e->loop_counters));
	e->arrival_any = arrival_any;
	e->ret = ret;
	/* The socket cookie, unlike its address, is never reused: a connection
	 * key that cannot alias an earlier connection whose end we missed. */
	e->sk = bpf_get_socket_cookie(sk);
	e->arrival = arrival;
	e->rwnd_limited_ns = rwnd;
	e->peer_wnd = wnd;
	e->peer_wnd_min1 = wnd_min1;
	e->unacked = unacked;
	e->_pad3 = 0;
	e->fd = data_fd(nr, regs);
	e->sysnr = nr;
	e->dir = dir;
	e->_pad = 0;
	e->_pad2 = 0;
	__builtin_memset(&e->sock, 0, sizeof(e->sock));
	sock_info_direct(sk, &e->sock);
	e->addr_len = 0;
	if (dir && e->sock.proto == 17 /* UDP */)
		datagram_addr(e, nr, regs, msgp);
	/* The thread name labels a request, which starts with a read. */
	if (dir)
		e->comm[0] = 0;
	else
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->data_len = 0;
	buf = first_buf(nr, regs, msgp, &len);
	/* The message's first iovec bounds what we can read. */
	n = (u64)ret;
	if (n > len)
		n = len;
	if (n > DATA_MAX)
		n = DATA_MAX;
	if (buf && n > 0 && bpf_probe_read_user(e->data, n & (2 * DATA_MAX - 1), (void *)buf) == 0)
		e->data_len = n;
	bpf_ringbuf_submit(e, wakeup_flags(sizeof(*e)));
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(on_send, struct sock *sk, int ret, int flags)
{
	return on_sock_data(sk, ret, flags, 1, false);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(on_recv, struct sock *sk, int ret, int flags)
{
	return on_sock_data(sk, ret, flags, 0, false);
}

/* Everything written on sk has been acknowledged: say when. */
static __always_inline void emit_acked(struct sock *sk, struct sk_state *ss, u64 now, u32 wnd)
{
	struct acked_event *e;

	ss->deliver_pending = 0;
	e = reserve(sizeof(*e), EV_ACKED);
	if (!e)
		return;
	e->h.type = EV_ACKED;
	e->h.flags = 0;
	e->h.cpu = bpf_get_smp_processor_id();
	e->h.pid = ss->tgid;
	e->h.tid = 0;
	e->h._pad = 0;
	e->h.ts = now;
	e->h.lost_seq = lost_seq;
	e->sk = bpf_get_socket_cookie(sk);
	e->rwnd_limited_ns = ss->rwnd_ns + (ss->limited_since && now > ss->limited_since ? now - ss->limited_since : 0);
	e->peer_wnd = wnd;
	e->peer_wnd_min1 = ss->wnd_min1;
	bpf_ringbuf_submit(e, wakeup_flags(sizeof(*e)));
}

/* Data reaching a pod's TCP socket: remember when the oldest unread bytes
 * arrived. Fires at the start of tcp_rcv_established for every segment of
 * every established TCP socket on the node, so the pod filter comes first. */
SEC("tp_btf/tcp_probe")
int BPF_PROG(on_tcp_probe, struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_sock *tp;
	struct sk_state *ss;
	struct socket *sock;
	u32 wnd, una, nxt, wseq, mss, ival;
	u64 per_rtt;
	u8 doff = 0;
	bool limited;
	u64 now;

	if (!sk_watched(sk))
		return 0;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;
	ss = bpf_sk_storage_get(&sk_states, sk, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!ss)
		return 0;
	now = bpf_ktime_get_ns();
	/* The state before this segment is processed: does the sender have more
	 * to send (unsent bytes queued, or a writer blocked for send-buffer
	 * space: the buffer holds only what is in flight) while the peer's
	 * advertised window is what bounds the rate? It is when the window is no
	 * larger than what the connection actually moves per round trip (the
	 * last delivery-rate sample x smoothed RTT, within a third): a sender
	 * bound by the link or by congestion delivers far less per round trip
	 * than a window sized for the path, one bound by the window delivers
	 * about a window. (In flight at one instant is too noisy: pacing and
	 * ACK spacing keep it a few segments short of the window.) Stretches
	 * between segments where it was are window-limited time (about one
	 * round trip of error at each end). */
	wnd = tp->snd_wnd;
	una = tp->snd_una;
	nxt = tp->snd_nxt;
	wseq = tp->write_seq;
	mss = tp->mss_cache;
	sock = sk->sk_socket;
	ival = tp->rate_interval_us;
	per_rtt = ival ? (u64)tp->rate_delivered * mss * (tp->srtt_us >> 3) / ival : 0;
	/* Either signal says the window is the bound: the next segment does
	 * not fit in what the window leaves (the kernel's own transmit-time
	 * test, tcp_snd_wnd_test: in flight has reached the window), or the
	 * delivery rate fills the window every round trip. The first alone
	 * misses stretches where ACK spacing leaves the window a segment or two
	 * short when the ACK arrives; the second alone misses connections
	 * without a fresh rate sample. */
	limited = (wseq != nxt || (sock && (sock->flags & (1UL << SOCK_NOSPACE)))) &&
		  ((s32)(nxt + mss - (una + wnd)) > 0 || per_rtt * 4 >= (u64)wnd * 3);
	if (limited && !ss->limited_since) {
		ss->limited_since = now;
	} else if (!limited && ss->limited_since) {
		if (now > ss->limited_since)
			ss->rwnd_ns += now - ss->limited_since;
		ss->limited_since = 0;
	}
	ss->wnd = wnd;
	if (wseq != una && (!ss->wnd_min1 || wnd + 1 < ss->wnd_min1))
		ss->wnd_min1 = wnd + 1;
	if (ss->deliver_pending) {
		u32 ack = 0;
		/* ack_seq, bytes 8-11 of the TCP header, network order */
		if (!bpf_probe_read_kernel(&ack, 4, skb->data + 8) &&
		    (s32)(bpf_ntohl(ack) - ss->deliver_seq) >= 0) {
			emit_acked(sk, ss, now, wnd);
		}
	}
	/* A pure ACK carries no request bytes: payload = len - TCP header
	 * (skb->data points at the TCP header here; doff in byte 12). */
	if (bpf_probe_read_kernel(&doff, 1, skb->data + 12) || skb->len <= (u32)(doff >> 4) * 4)
		return 0;
	if (!ss->arrival)
		ss->arrival = now;
	return 0;
}

/* A server that closes the connection after its response (Connection:
 * close, HTTP/1.0) leaves ESTABLISHED at once, and tcp_probe fires only in
 * ESTABLISHED: the ACK of the response's last byte then shows as the ACK of
 * the FIN that follows it, i.e. a state change out of FIN_WAIT1, CLOSING or
 * LAST_ACK into the next state of an orderly close. */
#define TCP_SYN_SENT 2
#define TCP_FIN_WAIT1 4
#define TCP_FIN_WAIT2 5
#define TCP_TIME_WAIT 6
#define TCP_CLOSE 7
#define TCP_LAST_ACK 9
#define TCP_CLOSING 11
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_set_state, const struct sock *csk, const int oldstate, const int newstate)
{
	struct sock *sk = (struct sock *)csk;
	struct sk_state *ss;
	u64 now;

	if (oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		/* A connect(2) by a pod thread, in its own context: tells user
		 * space which request an event loop was working for when it
		 * opened the connection (its first write may come in a later
		 * callback, once the handshake is done). */
		return on_sock_data(sk, 0, 0, 1, true);
	}
	if (!((oldstate == TCP_FIN_WAIT1 && (newstate == TCP_FIN_WAIT2 || newstate == TCP_TIME_WAIT)) ||
	      (oldstate == TCP_CLOSING && newstate == TCP_TIME_WAIT) ||
	      (oldstate == TCP_LAST_ACK && newstate == TCP_CLOSE)))
		return 0;
	if (!sk_watched(sk))
		return 0;
	ss = bpf_sk_storage_get(&sk_states, sk, 0, 0);
	if (!ss || !ss->deliver_pending)
		return 0;
	now = bpf_ktime_get_ns();
	emit_acked(sk, ss, now, ss->wnd);
	return 0;
}

/* Referenced so the event types reach BTF for bpf2go -type. */
const struct data_event *_data_event __attribute__((unused));
const struct segment_event *_segment_event __attribute__((unused));
const struct acked_event *_acked_event __attribute__((unused));
