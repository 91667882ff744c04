/* Shared definitions of tracecam's kernel programs: the event records that
 * cross the ring buffer. Go bindings are generated from these (bpf2go -type),
 * so the layouts below are the kernel/user-space contract. */
#ifndef TRACECAM_CAMERA_H
#define TRACECAM_CAMERA_H

#define NCAT 16
/* Category indices of the per-thread (and per-goroutine) counters. User
 * space maps them to the category names of DESIGN.md; for threads "queue"
 * is derived in user space, for goroutines it is a channel wait. */
enum cat {
	CAT_CPU = 0,
	CAT_RUNQ = 1,
	CAT_NET = 2,
	CAT_FILE = 3,
	CAT_LOCK = 4,
	CAT_EPOLL = 5,
	CAT_SLEEP = 6,
	CAT_OTHER = 7,
	CAT_GC = 8,    /* goroutines: parked for the garbage collector */
	CAT_QUEUE = 9, /* goroutines: parked on a channel (work handed to another goroutine) */
};

/* wait_detail.sysnr of a goroutine's park (segment of a Go program): arg0 is
 * Go's waitReason value */
#define SYS_GOPARK (-2)
#define WAIT_REASONS 64 /* go_layout.wait_cat entries (Go has ~50 reasons) */

/* Where the Go runtime of one binary keeps what the goroutine programs read:
 * offsets in runtime.g, the g pointer's place relative to the thread's fs
 * base, and each wait reason's category. Written by user space (gobin) per
 * binary; the uprobes find theirs by their attach cookie. */
struct go_layout {
	u32 g_goid;
	u32 g_status;
	u32 g_waitreason;
	u32 g_m;    /* g.m */
	u32 m_curg; /* m.curg */
	/* bytes of runtime.execute from the probe to its end: a thread whose
	 * user code sits there is about to run the goroutine it probed */
	u32 exec_len;
	u32 m_g0; /* m.g0 */
	u32 _pad;
	/* runtime.sigtramp's address minus the execute probe's: where a thread
	 * about to handle a signal is (0: unknown) */
	s64 sigtramp_delta;
	s64 tls_g;
	u8 wait_cat[WAIT_REASONS];
};

enum event_type {
	EV_DATA = 1,    /* read/write of bytes on a socket */
	EV_SEGMENT = 2, /* a wait longer than the segment threshold */
	EV_EXIT = 3,    /* a watched thread exited (record: event_hdr alone) */
	EV_ACKED = 4,   /* the peer acknowledged everything written on a TCP socket */
	EV_TYPES = 5,
};

/* event_hdr.flags of an EV_DATA */
#define DATA_CONNECT 1 /* not a transfer: a connect(2) began (ret 0, no bytes) */

enum fd_kind {
	FD_UNKNOWN = 0,
	FD_SOCKET = 1,
	FD_FILE = 2,
	FD_PIPE = 3,
	FD_CHAR = 4,
	FD_BLOCK = 5,
	FD_DIR = 6,
	FD_ANON = 7,
};

#define DATA_MAX 512
#define PATH_COMPONENTS 8 /* path components kept, leaf first */
#define COMPONENT_LEN 32  /* bytes per component (longer ones are cut) */

struct event_hdr {
	u8 type;
	u8 flags;
	u16 cpu;
	u32 pid; /* tgid */
	u32 tid;
	u32 _pad;
	u64 ts;       /* CLOCK_MONOTONIC ns */
	u64 lost_seq; /* events lost so far (all CPUs) when this one was made */
	/* Go programs: the goroutine the thread ran (0: none known). Its data
	 * events then carry the goroutine's counters, not the thread's. */
	u64 goid;
};

/* Where a socket is connected: enough for peer address:port, both families. */
struct sock_info {
	u16 family;
	u16 proto; /* IPPROTO_TCP / IPPROTO_UDP */
	u16 lport; /* host order */
	u16 rport; /* host order */
	u8 laddr[16];
	u8 raddr[16];
};

struct data_event {
	struct event_hdr h;
	u64 counters[NCAT]; /* the thread's (goroutine's) cumulative category ns at ts */
	/* of counters[CAT_RUNQ]: on-CPU time the hypervisor stole (VMs) */
	u64 steal;
	/* The thread's last idle wait in epoll/poll/select (an event loop
	 * waiting for its next event): when it began, the counters then, when
	 * the thread was back on CPU after it (0: still waiting, or none yet),
	 * the part of it spent runnable after the wake-up, and the wait's own
	 * deadline (its timeout: the loop's next timer; 0 = none). User space
	 * splits the time between two socket events at this wait: the work
	 * before it belongs to what the loop was doing, the work after it to
	 * what woke it. */
	u64 loop_sleep_ts;
	u64 loop_wake_ts;
	u64 loop_deadline;
	u64 loop_runq;
	u64 loop_counters[NCAT];
	/* reads of TCP: when the oldest bytes this read returned reached the
	 * socket, whether or not the thread was waiting for them (arrival
	 * above is only set when it was not); 0 when unknown */
	u64 arrival_any;
	s64 ret;            /* bytes moved (0 = EOF on a read) */
	u64 sk;             /* the socket's cookie (unique, never reused): the connection's key */
	/* Reads of TCP: when the oldest bytes this read returned reached the
	 * socket (tcp_probe), if the thread was not already waiting for them
	 * (blocked in this read, or in epoll, since before they came): the time
	 * a request sat in the receive buffer before a thread picked it up.
	 * 0 when unknown or not applicable. */
	u64 arrival;
	/* TCP (0 otherwise): how long, in all, the socket has had data to send
	 * that the peer's advertised receive window did not let out (sampled at
	 * each segment received); the peer's window now, and its smallest value
	 * plus one (0: none seen) since the socket's last read. */
	u64 rwnd_limited_ns;
	u32 peer_wnd;
	u32 peer_wnd_min1;
	/* writes on TCP: bytes written but not yet acknowledged by the peer
	 * once this write returned, when at least deliver_min_bytes (an
	 * EV_ACKED follows when they are); 0 otherwise */
	u32 unacked;
	u32 _pad3;
	s32 fd;             /* from the syscall's first argument, -1 if none */
	u16 sysnr;
	u8 dir; /* 0 = in (read/recv), 1 = out (write/send) */
	u8 _pad;
	u16 data_len; /* captured bytes in data[] (<= DATA_MAX) */
	u16 addr_len; /* captured sockaddr of sendto/recvfrom/msg_name */
	u32 _pad2;
	struct sock_info sock;
	u8 addr[28];  /* sockaddr_in / sockaddr_in6 of unconnected datagrams */
	char comm[16];
	u8 data[DATA_MAX];
};

/* What a blocked thread was waiting in, captured at switch-out. */
struct wait_detail {
	s64 arg0; /* first syscall argument (fd, futex address, ...) */
	s32 sysnr; /* -1 when not in a syscall (e.g. a page fault) */
	s32 fd;   /* -1 when the syscall takes no fd */
	u8 fd_kind;
	u8 iowait;
	u8 timed; /* futex wait with a timeout: may end by expiry, not release */
	u8 _pad;
	u32 _pad2;
	struct sock_info sock;
	u64 ino;
	/* file: its path as components, leaf first, across mounts up to the
	 * root of the task's mount namespace; path_depth of them are set, and
	 * path_cut says the walk stopped before the root. Built in the kernel
	 * because by the time user space reads the event the fd may be closed. */
	u8 path_depth;
	u8 path_cut;
	u8 _pad3[6];
	char path[PATH_COMPONENTS][COMPONENT_LEN];
};

/* One wait longer than the threshold, or a run of consecutive shorter
 * waits of the same kind (same category, syscall and fd/futex) whose blocked
 * time adds up past it: 20 fsyncs of 0.4 ms are one "fsync x20, 8 ms"
 * segment rather than nothing. */
struct segment_event {
	struct event_hdr h;
	u64 start;      /* first wait went off CPU */
	u64 wake;       /* last wait woken (0: it was preempted) */
	u64 run;        /* back on CPU after the last wait */
	u64 blocked_ns; /* time blocked (for runq segments: time runnable) */
	u64 runq_ns;    /* time from wake-ups to running again */
	/* a goroutine's park (d.sysnr SYS_GOPARK): the goroutine that readied
	 * it (0: none seen, e.g. the network poller) */
	u64 waker_goid;
	s64 bytes; /* the blocking syscall's result when known, else -1 */
	u32 count; /* waits coalesced */
	u32 waker_tid;
	u8 cat;
	u8 _pad[3];
	char waker_comm[16];
	char comm[16];
	struct wait_detail d;
};

/* Everything written on a TCP socket of the pod, up to its last write, has
 * reached the peer (its ACK came in): when a response was delivered, and
 * the window figures up to then. h.pid is the writer's process (h.tid 0: it
 * comes from softirq). */
struct acked_event {
	struct event_hdr h;
	u64 sk; /* socket cookie, as in data_event */
	u64 rwnd_limited_ns;
	u32 peer_wnd;
	u32 peer_wnd_min1;
};

#endif
