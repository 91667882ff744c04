package event

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tracecam/tracecam/bpf"
)

// Type is the kind of a kernel record (enum event_type in camera.h).
type Type uint8

// Record types.
const (
	TypeData    Type = 1
	TypeSegment Type = 2
	TypeExit    Type = 3
	TypeAcked   Type = 4
)

// NumCategories is the number of kernel-side counters (NCAT).
const NumCategories = 16

// Kernel counter indices (enum cat in camera.h).
const (
	CatCPU = iota
	CatRunq
	CatNet
	CatFile
	CatLock
	CatEpoll
	CatSleep
	CatOther
	// Goroutines only: parked for the garbage collector, and parked on a
	// channel (work handed to another goroutine that was not waiting for
	// the network).
	CatGC
	CatQueue
)

// SyscallGoPark is Segment.Syscall of a goroutine's park (Arg0: Go's wait
// reason value, named by the binary's table).
const SyscallGoPark = -2

// FDKind says what an fd refers to (enum fd_kind).
type FDKind uint8

// FD kinds.
const (
	FDUnknown FDKind = iota
	FDSocket
	FDFile
	FDPipe
	FDChar
	FDBlock
	FDDir
	FDAnon
)

func (k FDKind) String() string {
	switch k {
	case FDSocket:
		return "socket"
	case FDFile:
		return "file"
	case FDPipe:
		return "pipe"
	case FDChar:
		return "char"
	case FDBlock:
		return "block"
	case FDDir:
		return "dir"
	case FDAnon:
		return "anon"
	}
	return ""
}

// Header is common to every record.
type Header struct {
	Type    Type
	CPU     uint16
	PID     uint32 // process (tgid)
	TID     uint32 // thread
	TS      uint64 // CLOCK_MONOTONIC ns
	LostSeq uint64 // records lost so far when this one was made
	// Goid (Go programs) is the goroutine the thread ran, 0 when none is
	// known; a Data's counters are then the goroutine's, not the thread's.
	Goid uint64
}

// Sock is a socket's endpoints.
type Sock struct {
	Family uint16
	Proto  uint16 // 6 tcp, 17 udp
	Local  netip.AddrPort
	Remote netip.AddrPort
}

// Protocol names the transport.
func (s Sock) Protocol() string {
	switch s.Proto {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	}
	if s.Family == 1 {
		return "unix"
	}
	return ""
}

// LoopWait is a thread's idle wait in epoll, poll or select: an event
// loop waiting for its next event. Sleep is when it began (0: none seen
// yet), Counters the thread's counters then, Wake when the thread was back
// on CPU after it (0: not yet), Runq the part of Sleep..Wake it spent
// runnable after being woken, Deadline when the wait's timeout would have
// ended it (the loop's next timer; 0 = no timeout).
type LoopWait struct {
	Sleep, Wake, Deadline, Runq uint64
	Counters                    [NumCategories]uint64
}

// Data is a read or write of bytes on a socket by a watched thread.
type Data struct {
	Header
	Counters [NumCategories]uint64
	// Steal is the part of Counters[CatRunq] the thread spent "on CPU"
	// while the hypervisor kept the vCPU from running (the kernel's steal
	// clock): cumulative, like the counters.
	Steal uint64
	// Loop is the thread's last idle wait in epoll/poll/select before this
	// event: how an event loop's time between two socket events splits
	// into the work before it, the wait, and the work after it.
	Loop LoopWait
	// ArrivalAny (reads of TCP) is when the oldest bytes this read
	// returned reached the socket, whether or not the thread was waiting
	// for them (Arrival is set only when it was not); 0 when unknown.
	ArrivalAny uint64
	// Connect marks no transfer but the start of a connect(2) on Socket
	// (Ret 0, no bytes): which request an event loop worked for when it
	// opened a downstream connection.
	Connect bool
	Ret     int64 // bytes moved; 0 = EOF on a read
	// Socket is the socket's cookie (unique for the socket's life and never
	// reused, unlike its address or fd): with PID, the key of a connection.
	Socket uint64
	// Arrival (reads of TCP only) is when the oldest bytes this read
	// returned reached the socket, when the thread was not already waiting
	// for them: the request sat in the receive buffer from Arrival to TS
	// before this thread picked it up. 0 when unknown or not applicable.
	Arrival uint64
	// TCP send side (0 otherwise): the socket's window-limited time so far
	// (data waiting to go out that the peer's advertised receive window did
	// not let out), the peer's window now, and its smallest value since the
	// socket's last read (valid when PeerWindowSeen).
	RwndLimitedNS  uint64
	PeerWindow     int64
	PeerWindowMin  int64
	PeerWindowSeen bool
	// Unacked (writes on TCP) is how many written bytes the peer had not
	// acknowledged yet when this write returned, when that is at least 64
	// KiB (the kernel's deliver_min_bytes); an Acked follows once it has.
	// 0 otherwise: a smaller response reaches the client within a round
	// trip and its delivery is not tracked.
	Unacked uint32
	FD      int32 // the syscall's fd, -1 when it has none
	Syscall uint16
	Out     bool // written (response/outbound) rather than read
	Sock    Sock
	// Datagram is the destination given to sendto/sendmsg (msg_name) on
	// an unconnected datagram socket; invalid when absent (and on reads).
	Datagram netip.AddrPort
	Comm     string
	// Bytes are the first bytes moved (at most 512); they alias the record.
	Bytes []byte
}

// Segment is one wait longer than the threshold.
type Segment struct {
	Header
	// Start is when the first coalesced wait went off CPU, Wake when the
	// last was woken (0: preempted), Run when the thread ran again.
	Start, Wake, Run uint64
	BlockedNS        uint64 // time waiting (runnable time for runq segments)
	RunqNS           uint64 // time from wake-ups to running again
	// WakerGoid (a goroutine's park, Syscall SyscallGoPark) is the
	// goroutine that made it runnable; 0 when none was seen (the network
	// poller readies goroutines without one).
	WakerGoid uint64
	Count     uint32 // consecutive same-kind waits coalesced
	Bytes     int64  // the blocking syscalls' results, -1 unknown
	Category  int
	WakerTID  uint32
	WakerComm string
	Comm      string
	Syscall   int32 // -1 when not in a syscall
	Arg0      int64
	FD        int32
	FDKind    FDKind
	IOWait    bool
	// Timed is a futex wait with a timeout (the kernel counts it as sleep
	// when it ended by expiry rather than by another thread of the process).
	Timed        bool
	Sock         Sock
	Inode        uint64
	Name, Parent string // file: last path component and its directory
	// Path is the file's full path when user space could resolve it
	// (filled by the agent from /proc while the fd is likely still open).
	Path string
}

// Exit is the exit of a watched thread (TID == PID: the process's main thread).
type Exit struct{ Header }

// Acked says the peer of a TCP socket acknowledged everything written on it
// up to its last write: the response was delivered at TS. PID is the
// writer's process; TID is 0 (it comes from the network path). The window
// figures are as in Data.
type Acked struct {
	Header
	Socket         uint64
	RwndLimitedNS  uint64
	PeerWindow     int64
	PeerWindowMin  int64
	PeerWindowSeen bool
}

// ErrShort is returned for a record shorter than its type's layout.
var ErrShort = errors.New("record too short")

// Decode turns one ring-buffer record into *Data, *Segment, *Exit or *Acked.
// Bytes of a returned Data alias raw: copy them to keep them past the next read.
func Decode(raw []byte) (any, error) {
	return decode(raw, nil)
}

// Decoder decodes like Decode but reuses one Data value for every data
// record: most records are data, and the assembler does not keep them, so
// the reader need not allocate one per event. The *Data it returns is valid
// until the next call.
type Decoder struct{ data Data }

// Decode decodes one record.
func (dec *Decoder) Decode(raw []byte) (any, error) { return decode(raw, &dec.data) }

func decode(raw []byte, reuse *Data) (any, error) {
	if len(raw) < int(unsafe.Sizeof(bpf.CameraEventHdr{})) {
		return nil, fmt.Errorf("decoding record of %d bytes: %w", len(raw), ErrShort)
	}
	switch Type(raw[0]) {
	case TypeData:
		var r bpf.CameraDataEvent
		if err := load(raw, &r); err != nil {
			return nil, err
		}
		d := reuse
		if d == nil {
			d = new(Data)
		}
		wmin, wseen := windowMin(r.PeerWndMin1)
		*d = Data{
			Header:   header(r.H),
			Counters: r.Counters,
			Steal:    r.Steal,
			Loop: LoopWait{Sleep: r.LoopSleepTs, Wake: r.LoopWakeTs, Deadline: r.LoopDeadline, Runq: r.LoopRunq,
				Counters: r.LoopCounters},
			ArrivalAny:     r.ArrivalAny,
			Connect:        r.H.Flags&dataConnect != 0,
			Ret:            r.Ret,
			Socket:         r.Sk,
			Arrival:        r.Arrival,
			RwndLimitedNS:  r.RwndLimitedNs,
			PeerWindow:     int64(r.PeerWnd),
			PeerWindowMin:  wmin,
			PeerWindowSeen: wseen,
			Unacked:        r.Unacked,
			FD:             r.Fd,
			Syscall:        r.Sysnr,
			Out:            r.Dir == 1,
			Sock:           sock(r.Sock),
			Comm:           cstr(r.Comm[:]),
		}
		if r.AddrLen > 0 {
			d.Datagram = sockaddr(r.Addr[:])
		}
		n := int(r.DataLen)
		if n > len(r.Data) {
			n = len(r.Data)
		}
		off := int(unsafe.Offsetof(r.Data))
		d.Bytes = raw[off : off+n]
		return d, nil
	case TypeSegment:
		var r bpf.CameraSegmentEvent
		if err := load(raw, &r); err != nil {
			return nil, err
		}
		return &Segment{
			Header:    header(r.H),
			Start:     r.Start,
			Wake:      r.Wake,
			Run:       r.Run,
			BlockedNS: r.BlockedNs,
			RunqNS:    r.RunqNs,
			WakerGoid: r.WakerGoid,
			Count:     r.Count,
			Bytes:     r.Bytes,
			Category:  int(r.Cat),
			WakerTID:  r.WakerTid,
			WakerComm: cstr(r.WakerComm[:]),
			Comm:      cstr(r.Comm[:]),
			Syscall:   r.D.Sysnr,
			Arg0:      r.D.Arg0,
			FD:        r.D.Fd,
			FDKind:    FDKind(r.D.FdKind),
			IOWait:    r.D.Iowait != 0,
			Timed:     r.D.Timed != 0,
			Sock:      sock(r.D.Sock),
			Inode:     r.D.Ino,
			Path:      filePath(r.D),
		}, nil
	case TypeExit:
		var r bpf.CameraEventHdr
		if err := load(raw, &r); err != nil {
			return nil, err
		}
		return &Exit{Header: header(r)}, nil
	case TypeAcked:
		var r bpf.CameraAckedEvent
		if err := load(raw, &r); err != nil {
			return nil, err
		}
		wmin, wseen := windowMin(r.PeerWndMin1)
		return &Acked{Header: header(r.H), Socket: r.Sk, RwndLimitedNS: r.RwndLimitedNs,
			PeerWindow: int64(r.PeerWnd), PeerWindowMin: wmin, PeerWindowSeen: wseen}, nil
	}
	return nil, fmt.Errorf("decoding record: unknown type %d", raw[0])
}

// windowMin decodes the kernel's smallest window plus one (0: none seen, so
// that a zero window still shows).
func windowMin(min1 uint32) (int64, bool) { return int64(min1) - 1, min1 != 0 }

// load copies raw into the fixed layout v (little-endian, as the object is
// built for bpfel), after checking the length.
func load[T any](raw []byte, v *T) error {
	size := int(unsafe.Sizeof(*v))
	if len(raw) < size {
		return fmt.Errorf("decoding type %d record: %d of %d bytes: %w", raw[0], len(raw), size, ErrShort)
	}
	// A data record's payload is not copied: Bytes alias it in raw.
	n := size
	if d, ok := any(v).(*bpf.CameraDataEvent); ok {
		n = int(unsafe.Offsetof(d.Data))
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(v)), n), raw[:n])
	return nil
}

// filePath joins the kernel's leaf-first path components.
func filePath(d bpf.CameraWaitDetail) string {
	n := min(int(d.PathDepth), len(d.Path))
	if n == 0 {
		return ""
	}
	var b strings.Builder
	if d.PathCut != 0 {
		b.WriteString("...")
	}
	for i := n - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(cstr(d.Path[i][:]))
	}
	return b.String()
}

// dataConnect is camera.h's DATA_CONNECT flag of an EV_DATA.
const dataConnect = 1

func header(h bpf.CameraEventHdr) Header {
	return Header{Type: Type(h.Type), CPU: h.Cpu, PID: h.Pid, TID: h.Tid, TS: h.Ts, LostSeq: h.LostSeq, Goid: h.Goid}
}

func sock(s bpf.CameraSockInfo) Sock {
	out := Sock{Family: s.Family, Proto: s.Proto}
	switch s.Family {
	case 2:
		out.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(s.Laddr[:4])), s.Lport)
		out.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(s.Raddr[:4])), s.Rport)
	case 10:
		out.Local = netip.AddrPortFrom(netip.AddrFrom16(s.Laddr).Unmap(), s.Lport)
		out.Remote = netip.AddrPortFrom(netip.AddrFrom16(s.Raddr).Unmap(), s.Rport)
	}
	return out
}

// sockaddr decodes a struct sockaddr_in / sockaddr_in6 (family in host
// order, port in network order).
func sockaddr(b []byte) netip.AddrPort {
	if len(b) < 8 {
		return netip.AddrPort{}
	}
	port := binary.BigEndian.Uint16(b[2:4])
	switch binary.LittleEndian.Uint16(b[0:2]) {
	case 2:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case 10:
		if len(b) >= 24 {
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), port)
		}
	}
	return netip.AddrPort{}
}

func cstr[T int8 | uint8](b []T) string {
	n := 0
	for n < len(b) && b[n] != 0 {
		n++
	}
	if n == 0 {
		return "" // most records: no allocation
	}
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = byte(b[i])
	}
	if utf8.Valid(buf) {
		return string(buf)
	}
	return string(bytes.ToValidUTF8(buf, []byte("?")))
}

// SyscallName names an x86_64 syscall number for segment details.
func SyscallName(nr int32) string {
	if n, ok := syscallNames[nr]; ok {
		return n
	}
	if nr < 0 {
		return ""
	}
	return fmt.Sprintf("syscall_%d", nr)
}

var syscallNames = map[int32]string{
	0: "read", 1: "write", 3: "close", 7: "poll", 17: "pread64", 18: "pwrite64",
	19: "readv", 20: "writev", 23: "select", 34: "pause", 35: "nanosleep",
	40: "sendfile", 42: "connect", 43: "accept", 44: "sendto", 45: "recvfrom",
	46: "sendmsg", 47: "recvmsg", 61: "wait4", 73: "flock", 74: "fsync",
	75: "fdatasync", 77: "ftruncate", 162: "sync", 202: "futex",
	208: "io_getevents", 230: "clock_nanosleep", 232: "epoll_wait",
	257: "openat", 270: "pselect6", 271: "ppoll", 275: "splice",
	277: "sync_file_range", 281: "epoll_pwait", 285: "fallocate",
	288: "accept4", 295: "preadv", 296: "pwritev", 299: "recvmmsg",
	306: "syncfs", 307: "sendmmsg", 327: "preadv2", 328: "pwritev2",
	426: "io_uring_enter", 441: "epoll_pwait2", 449: "futex_waitv",
	56: "clone", 59: "execve", 2: "open", 4: "stat", 5: "fstat", 9: "mmap",
	13: "rt_sigaction", 14: "rt_sigprocmask", 16: "ioctl", 24: "sched_yield",
	72: "fcntl", 128: "rt_sigtimedwait", 247: "waitid", 435: "clone3",
}
