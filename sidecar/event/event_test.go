package event

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/tracecam/tracecam/bpf"
)

// raw returns a copy of the bytes of a generated record struct: the same
// layout the kernel writes to the ring buffer (bpfel, host layout).
func raw[T any](v *T) []byte {
	b := unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
	return append([]byte(nil), b...)
}

func i8(s string, n int) []int8 {
	out := make([]int8, n)
	for i := 0; i < len(s) && i < n; i++ {
		out[i] = int8(s[i])
	}
	return out
}

func setComm(dst []int8, s string) { copy(dst, i8(s, len(dst))) }

// setPath fills the kernel's leaf-first path components.
func setPath(d *bpf.CameraWaitDetail, cut bool, leafFirst ...string) {
	for i, c := range leafFirst {
		setComm(d.Path[i][:], c)
	}
	d.PathDepth = uint8(len(leafFirst))
	if cut {
		d.PathCut = 1
	}
}

func hdr(t Type) bpf.CameraEventHdr {
	return bpf.CameraEventHdr{Type: uint8(t), Flags: 0xAA, Cpu: 7, Pid: 100, Tid: 101, Pad: 0xdeadbeef, Ts: 123456789, LostSeq: 42, Goid: 77}
}

func wantHdr(t Type) Header {
	return Header{Type: t, CPU: 7, PID: 100, TID: 101, TS: 123456789, LostSeq: 42, Goid: 77}
}

func sockInfo4(proto uint16, l string, lp uint16, r string, rp uint16) bpf.CameraSockInfo {
	s := bpf.CameraSockInfo{Family: 2, Proto: proto, Lport: lp, Rport: rp}
	la, ra := netip.MustParseAddr(l).As4(), netip.MustParseAddr(r).As4()
	copy(s.Laddr[:], la[:])
	copy(s.Raddr[:], ra[:])
	// Bytes beyond the first 4 must be ignored for AF_INET.
	for i := 4; i < 16; i++ {
		s.Laddr[i], s.Raddr[i] = 0xff, 0xee
	}
	return s
}

func sockInfo6(proto uint16, l string, lp uint16, r string, rp uint16) bpf.CameraSockInfo {
	s := bpf.CameraSockInfo{Family: 10, Proto: proto, Lport: lp, Rport: rp}
	s.Laddr = netip.MustParseAddr(l).As16()
	s.Raddr = netip.MustParseAddr(r).As16()
	return s
}

func sockaddrIn(a string, port uint16) [28]uint8 {
	var b [28]uint8
	binary.LittleEndian.PutUint16(b[0:], 2)
	binary.BigEndian.PutUint16(b[2:], port)
	a4 := netip.MustParseAddr(a).As4()
	copy(b[4:8], a4[:])
	return b
}

func sockaddrIn6(a string, port uint16) [28]uint8 {
	var b [28]uint8
	binary.LittleEndian.PutUint16(b[0:], 10)
	binary.BigEndian.PutUint16(b[2:], port)
	a16 := netip.MustParseAddr(a).As16()
	copy(b[8:24], a16[:])
	return b
}

func TestLayoutSizes(t *testing.T) {
	// The sizes of camera.h's structs as the C compiler lays them out; the
	// decoder relies on the generated Go structs matching them.
	for _, c := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"event_hdr", unsafe.Sizeof(bpf.CameraEventHdr{}), 40},
		{"sock_info", unsafe.Sizeof(bpf.CameraSockInfo{}), 40},
		{"data_event", unsafe.Sizeof(bpf.CameraDataEvent{}), 1008},
		{"acked_event", unsafe.Sizeof(bpf.CameraAckedEvent{}), 64},
	} {
		if c.got != c.want {
			t.Errorf("sizeof(%s) = %d, want %d", c.name, c.got, c.want)
		}
	}
	// Structs holding u64s are 8-aligned in C: their size is a multiple of 8.
	for name, size := range map[string]uintptr{
		"wait_detail":   unsafe.Sizeof(bpf.CameraWaitDetail{}),
		"segment_event": unsafe.Sizeof(bpf.CameraSegmentEvent{}),
	} {
		if size%8 != 0 {
			t.Errorf("sizeof(%s) = %d, not a multiple of 8", name, size)
		}
	}
	// Field offsets of data_event as the C compiler lays them out.
	var d bpf.CameraDataEvent
	for _, c := range []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"steal", unsafe.Offsetof(d.Steal), 168},
		{"loop_sleep_ts", unsafe.Offsetof(d.LoopSleepTs), 176},
		{"loop_counters", unsafe.Offsetof(d.LoopCounters), 208},
		{"arrival_any", unsafe.Offsetof(d.ArrivalAny), 336},
		{"ret", unsafe.Offsetof(d.Ret), 344},
		{"sk", unsafe.Offsetof(d.Sk), 352},
		{"arrival", unsafe.Offsetof(d.Arrival), 360},
		{"rwnd_limited_ns", unsafe.Offsetof(d.RwndLimitedNs), 368},
		{"peer_wnd", unsafe.Offsetof(d.PeerWnd), 376},
		{"peer_wnd_min1", unsafe.Offsetof(d.PeerWndMin1), 380},
		{"fd", unsafe.Offsetof(d.Fd), 392},
		{"sysnr", unsafe.Offsetof(d.Sysnr), 396},
		{"dir", unsafe.Offsetof(d.Dir), 398},
		{"unacked", unsafe.Offsetof(d.Unacked), 384},
		{"data_len", unsafe.Offsetof(d.DataLen), 400},
		{"addr_len", unsafe.Offsetof(d.AddrLen), 402},
		{"sock", unsafe.Offsetof(d.Sock), 408},
		{"addr", unsafe.Offsetof(d.Addr), 448},
		{"comm", unsafe.Offsetof(d.Comm), 476},
		{"data", unsafe.Offsetof(d.Data), 492},
	} {
		if c.got != c.want {
			t.Errorf("offsetof(data_event.%s) = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestDecodeData(t *testing.T) {
	payload := []byte("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
	base := func() bpf.CameraDataEvent {
		var r bpf.CameraDataEvent
		r.H = hdr(TypeData)
		for i := range r.Counters {
			r.Counters[i] = uint64(1000 * (i + 1))
		}
		r.Ret = int64(len(payload))
		r.Sk = 0xffff8881_2345_6780
		r.Fd = 9
		r.Sysnr = 0
		r.Dir = 0
		r.DataLen = uint16(len(payload))
		copy(r.Data[:], payload)
		setComm(r.Comm[:], "nginx")
		r.Sock = sockInfo4(6, "10.0.0.2", 8080, "10.0.0.9", 51000)
		return r
	}
	wantCounters := [NumCategories]uint64{1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 11000, 12000, 13000, 14000, 15000, 16000}

	tests := []struct {
		name   string
		mod    func(*bpf.CameraDataEvent)
		check  func(t *testing.T, d *Data)
		nbytes int
	}{
		{
			name:   "ipv4 tcp read",
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				want := Sock{Family: 2, Proto: 6,
					Local:  netip.MustParseAddrPort("10.0.0.2:8080"),
					Remote: netip.MustParseAddrPort("10.0.0.9:51000")}
				if d.Sock != want {
					t.Errorf("Sock = %+v, want %+v", d.Sock, want)
				}
				if d.Sock.Protocol() != "tcp" {
					t.Errorf("Protocol = %q", d.Sock.Protocol())
				}
				if d.Out {
					t.Error("Out = true for dir 0")
				}
				if d.Datagram.IsValid() {
					t.Errorf("Datagram = %v, want invalid when addr_len is 0", d.Datagram)
				}
				if string(d.Bytes) != string(payload) {
					t.Errorf("Bytes = %q", d.Bytes)
				}
			},
		},
		{
			name: "ipv6 tcp write",
			mod: func(r *bpf.CameraDataEvent) {
				r.Dir = 1
				r.Sysnr = 1
				r.Sock = sockInfo6(6, "2001:db8::1", 443, "2001:db8::beef", 40000)
			},
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				want := Sock{Family: 10, Proto: 6,
					Local:  netip.MustParseAddrPort("[2001:db8::1]:443"),
					Remote: netip.MustParseAddrPort("[2001:db8::beef]:40000")}
				if d.Sock != want {
					t.Errorf("Sock = %+v, want %+v", d.Sock, want)
				}
				if !d.Out || d.Syscall != 1 {
					t.Errorf("Out=%v Syscall=%d", d.Out, d.Syscall)
				}
			},
		},
		{
			name: "ipv6 v4-mapped is unmapped",
			mod: func(r *bpf.CameraDataEvent) {
				r.Sock = sockInfo6(6, "::ffff:192.0.2.1", 80, "::ffff:192.0.2.7", 1234)
			},
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.Sock.Local != netip.MustParseAddrPort("192.0.2.1:80") || d.Sock.Remote != netip.MustParseAddrPort("192.0.2.7:1234") {
					t.Errorf("Sock = %+v, want unmapped IPv4", d.Sock)
				}
			},
		},
		{
			name: "unknown family leaves addresses invalid",
			mod: func(r *bpf.CameraDataEvent) {
				r.Sock = bpf.CameraSockInfo{Family: 1, Proto: 0, Lport: 1, Rport: 2}
				r.Sock.Laddr[0] = 1
			},
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.Sock.Local.IsValid() || d.Sock.Remote.IsValid() {
					t.Errorf("Sock = %+v, want invalid addresses for AF_UNIX", d.Sock)
				}
				if d.Sock.Protocol() != "unix" {
					t.Errorf("Protocol = %q, want unix", d.Sock.Protocol())
				}
			},
		},
		{
			name: "udp datagram sockaddr_in",
			mod: func(r *bpf.CameraDataEvent) {
				r.Dir, r.Sysnr = 1, 44
				r.Sock = sockInfo4(17, "10.0.0.2", 33333, "0.0.0.0", 0)
				r.Addr = sockaddrIn("10.96.0.10", 53)
				r.AddrLen = 28
			},
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.Datagram != netip.MustParseAddrPort("10.96.0.10:53") {
					t.Errorf("Datagram = %v", d.Datagram)
				}
				if d.Sock.Protocol() != "udp" {
					t.Errorf("Protocol = %q", d.Sock.Protocol())
				}
			},
		},
		{
			name: "udp datagram sockaddr_in6",
			mod: func(r *bpf.CameraDataEvent) {
				r.Dir, r.Sysnr = 1, 46
				r.Addr = sockaddrIn6("fd00::53", 5353)
				r.AddrLen = 28
			},
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.Datagram != netip.MustParseAddrPort("[fd00::53]:5353") {
					t.Errorf("Datagram = %v", d.Datagram)
				}
			},
		},
		{
			name: "datagram sockaddr_in6 v4-mapped",
			mod: func(r *bpf.CameraDataEvent) {
				r.Addr = sockaddrIn6("::ffff:8.8.8.8", 53)
				r.AddrLen = 28
			},
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.Datagram != netip.MustParseAddrPort("8.8.8.8:53") {
					t.Errorf("Datagram = %v", d.Datagram)
				}
			},
		},
		{
			name: "datagram with unknown family is invalid",
			mod: func(r *bpf.CameraDataEvent) {
				r.Addr = sockaddrIn("1.2.3.4", 53)
				binary.LittleEndian.PutUint16(r.Addr[0:], 1) // AF_UNIX
				r.AddrLen = 28
			},
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.Datagram.IsValid() {
					t.Errorf("Datagram = %v, want invalid", d.Datagram)
				}
			},
		},
		{
			name: "addr ignored when addr_len is 0",
			mod: func(r *bpf.CameraDataEvent) {
				r.Addr = sockaddrIn("1.2.3.4", 53)
				r.AddrLen = 0
			},
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.Datagram.IsValid() {
					t.Errorf("Datagram = %v, want invalid", d.Datagram)
				}
			},
		},
		{
			name: "comm without NUL uses all 16 bytes",
			mod: func(r *bpf.CameraDataEvent) {
				setComm(r.Comm[:], "0123456789abcdefXYZ")
			},
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.Comm != "0123456789abcdef" {
					t.Errorf("Comm = %q", d.Comm)
				}
			},
		},
		{
			name: "comm stops at the first NUL",
			mod: func(r *bpf.CameraDataEvent) {
				setComm(r.Comm[:], "php\x00garbage")
			},
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.Comm != "php" {
					t.Errorf("Comm = %q", d.Comm)
				}
			},
		},
		{
			name: "comm with invalid utf-8 is sanitised",
			mod: func(r *bpf.CameraDataEvent) {
				setComm(r.Comm[:], "a\xffb")
			},
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.Comm != "a?b" {
					t.Errorf("Comm = %q", d.Comm)
				}
			},
		},
		{
			name: "data_len bigger than the array is clamped",
			mod: func(r *bpf.CameraDataEvent) {
				r.DataLen = 0xffff
				for i := range r.Data {
					r.Data[i] = byte(i)
				}
			},
			nbytes: 512,
			check: func(t *testing.T, d *Data) {
				for i, b := range d.Bytes {
					if b != byte(i) {
						t.Fatalf("Bytes[%d] = %d", i, b)
					}
				}
			},
		},
		{
			name:   "data_len 0 gives empty bytes (EOF)",
			mod:    func(r *bpf.CameraDataEvent) { r.DataLen, r.Ret = 0, 0 },
			nbytes: 0,
			check: func(t *testing.T, d *Data) {
				if d.Ret != 0 {
					t.Errorf("Ret = %d", d.Ret)
				}
			},
		},
		{
			name:   "data_len exactly 512",
			mod:    func(r *bpf.CameraDataEvent) { r.DataLen = 512; r.Ret = 100000 },
			nbytes: 512,
			check: func(t *testing.T, d *Data) {
				if d.Ret != 100000 {
					t.Errorf("Ret = %d", d.Ret)
				}
			},
		},
		{
			name:   "fd -1 (no fd argument) kept, socket still decoded",
			mod:    func(r *bpf.CameraDataEvent) { r.Fd = -1 },
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.FD != -1 {
					t.Errorf("FD = %d", d.FD)
				}
				if d.Socket != 0xffff8881_2345_6780 {
					t.Errorf("Socket = %#x", d.Socket)
				}
			},
		},
		{
			name:   "socket address uses all 64 bits",
			mod:    func(r *bpf.CameraDataEvent) { r.Sk = 0x8000_0000_0000_0001 },
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.Socket != 0x8000_0000_0000_0001 {
					t.Errorf("Socket = %#x", d.Socket)
				}
			},
		},
		{
			name:   "sysnr beyond the fd-taking syscalls (io_uring_enter)",
			mod:    func(r *bpf.CameraDataEvent) { r.Sysnr, r.Fd = 426, -1 },
			nbytes: len(payload),
			check: func(t *testing.T, d *Data) {
				if d.Syscall != 426 || d.FD != -1 {
					t.Errorf("Syscall %d FD %d", d.Syscall, d.FD)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			if tc.mod != nil {
				tc.mod(&r)
			}
			v, err := Decode(raw(&r))
			if err != nil {
				t.Fatal(err)
			}
			d, ok := v.(*Data)
			if !ok {
				t.Fatalf("Decode returned %T, want *Data", v)
			}
			if d.Header != wantHdr(TypeData) {
				t.Errorf("Header = %+v, want %+v", d.Header, wantHdr(TypeData))
			}
			if d.Counters != wantCounters {
				t.Errorf("Counters = %v", d.Counters)
			}
			if d.Ret != r.Ret || d.Socket != r.Sk || d.FD != r.Fd || d.Syscall != r.Sysnr || d.Out != (r.Dir == 1) {
				t.Errorf("Ret/Socket/FD/Syscall/Out = %d/%#x/%d/%d/%v", d.Ret, d.Socket, d.FD, d.Syscall, d.Out)
			}
			if len(d.Bytes) != tc.nbytes {
				t.Errorf("len(Bytes) = %d, want %d", len(d.Bytes), tc.nbytes)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

func TestDecodeDataBytesAlias(t *testing.T) {
	var r bpf.CameraDataEvent
	r.H = hdr(TypeData)
	r.DataLen = 4
	copy(r.Data[:], "abcd")
	b := raw(&r)
	v, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	d := v.(*Data)
	off := int(unsafe.Offsetof(r.Data))
	b[off] = 'X'
	if string(d.Bytes) != "Xbcd" {
		t.Errorf("Bytes = %q after changing the record, want it to alias the record (Xbcd)", d.Bytes)
	}
	if &d.Bytes[0] != &b[off] {
		t.Error("Bytes does not point into the record")
	}
}

func TestDecodeDataTrailingBytes(t *testing.T) {
	// A record longer than the layout (e.g. from a newer kernel object with
	// extra fields appended) still decodes.
	var r bpf.CameraDataEvent
	r.H = hdr(TypeData)
	r.DataLen = 3
	copy(r.Data[:], "abc")
	b := append(raw(&r), make([]byte, 64)...)
	v, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := v.(*Data); string(d.Bytes) != "abc" {
		t.Errorf("Bytes = %q", d.Bytes)
	}
}

func TestDecodeSegment(t *testing.T) {
	base := func() bpf.CameraSegmentEvent {
		var r bpf.CameraSegmentEvent
		r.H = hdr(TypeSegment)
		r.Start, r.Wake, r.Run = 1000, 5000, 5200
		r.BlockedNs, r.RunqNs, r.Count = 4000, 200, 1
		r.Bytes = -1
		r.WakerTid = 202
		r.Cat = CatLock
		r.Pad = [3]uint8{9, 9, 9}
		setComm(r.WakerComm[:], "worker-2")
		setComm(r.Comm[:], "worker-1")
		r.D.Arg0 = 0x7f0000001000
		r.D.Sysnr = 202
		r.D.Fd = -1
		r.D.FdKind = uint8(FDUnknown)
		return r
	}
	tests := []struct {
		name string
		mod  func(*bpf.CameraSegmentEvent)
		want func(*Segment)
	}{
		{
			name: "futex",
			want: func(s *Segment) {},
		},
		{
			name: "socket wait ipv4",
			mod: func(r *bpf.CameraSegmentEvent) {
				r.Cat = CatNet
				r.Bytes = 4096
				r.D.Sysnr, r.D.Arg0, r.D.Fd = 45, 7, 7
				r.D.FdKind = uint8(FDSocket)
				r.D.Sock = sockInfo4(6, "10.0.0.2", 40000, "10.1.2.3", 5432)
			},
			want: func(s *Segment) {
				s.Category = CatNet
				s.Bytes = 4096
				s.Syscall, s.Arg0, s.FD = 45, 7, 7
				s.FDKind = FDSocket
				s.Sock = Sock{Family: 2, Proto: 6, Local: netip.MustParseAddrPort("10.0.0.2:40000"), Remote: netip.MustParseAddrPort("10.1.2.3:5432")}
			},
		},
		{
			name: "socket wait ipv6",
			mod: func(r *bpf.CameraSegmentEvent) {
				r.Cat = CatNet
				r.D.FdKind = uint8(FDSocket)
				r.D.Sock = sockInfo6(17, "fd00::2", 1, "fd00::3", 2)
			},
			want: func(s *Segment) {
				s.Category = CatNet
				s.FDKind = FDSocket
				s.Sock = Sock{Family: 10, Proto: 17, Local: netip.MustParseAddrPort("[fd00::2]:1"), Remote: netip.MustParseAddrPort("[fd00::3]:2")}
			},
		},
		{
			name: "file wait with names and iowait",
			mod: func(r *bpf.CameraSegmentEvent) {
				r.Cat = CatFile
				r.D.Sysnr, r.D.Fd = 74, 5
				r.D.FdKind = uint8(FDFile)
				r.D.Iowait = 1
				r.D.Ino = 987654321
				setPath(&r.D, false, "data.db", "lib", "var")
			},
			want: func(s *Segment) {
				s.Category = CatFile
				s.Syscall, s.FD = 74, 5
				s.FDKind = FDFile
				s.IOWait = true
				s.Inode = 987654321
				s.Path = "/var/lib/data.db"
			},
		},
		{
			name: "coalesced timed futex waits",
			mod: func(r *bpf.CameraSegmentEvent) {
				r.Cat = CatSleep
				r.Count = 20
				r.BlockedNs, r.RunqNs = 8_000_000, 12_345
				r.Bytes = 1 << 40
				r.D.Timed = 1
			},
			want: func(s *Segment) {
				s.Category = CatSleep
				s.Count = 20
				s.BlockedNS, s.RunqNS = 8_000_000, 12_345
				s.Bytes = 1 << 40
				s.Timed = true
			},
		},
		{
			name: "name filling the whole array",
			mod: func(r *bpf.CameraSegmentEvent) {
				setPath(&r.D, true, strings.Repeat("n", 40), strings.Repeat("p", 32))
				setComm(r.WakerComm[:], strings.Repeat("w", 16))
			},
			want: func(s *Segment) {
				s.Path = ".../" + strings.Repeat("p", 32) + "/" + strings.Repeat("n", 32)
				s.WakerComm = strings.Repeat("w", 16)
			},
		},
		{
			name: "preempted, not in a syscall",
			mod: func(r *bpf.CameraSegmentEvent) {
				r.Wake = 0
				r.WakerTid = 0
				r.WakerComm = [16]int8{}
				r.D.Sysnr = -1
				r.Cat = CatOther
			},
			want: func(s *Segment) {
				s.Wake = 0
				s.WakerTID, s.WakerComm = 0, ""
				s.Syscall = -1
				s.Category = CatOther
			},
		},
		{
			name: "category byte beyond the enum is passed through",
			mod:  func(r *bpf.CameraSegmentEvent) { r.Cat = 200 },
			want: func(s *Segment) { s.Category = 200 },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			if tc.mod != nil {
				tc.mod(&r)
			}
			v, err := Decode(raw(&r))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := v.(*Segment)
			if !ok {
				t.Fatalf("Decode returned %T, want *Segment", v)
			}
			want := &Segment{
				Header: wantHdr(TypeSegment),
				Start:  1000, Wake: 5000, Run: 5200, BlockedNS: 4000, RunqNS: 200, Count: 1, Bytes: -1,
				Category: CatLock, WakerTID: 202, WakerComm: "worker-2", Comm: "worker-1",
				Syscall: 202, Arg0: 0x7f0000001000, FD: -1, FDKind: FDUnknown,
			}
			tc.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Decode =\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}

// The record types are camera.h's enum event_type.
func TestTypeNumbers(t *testing.T) {
	if TypeData != 1 || TypeSegment != 2 || TypeExit != 3 {
		t.Errorf("types data %d segment %d exit %d, want 1 2 3 (EV_DATA, EV_SEGMENT, EV_EXIT)", TypeData, TypeSegment, TypeExit)
	}
}

func TestDecodeExit(t *testing.T) {
	// An exit record is the bare event_hdr.
	e := hdr(TypeExit)
	e.Tid = e.Pid
	v, err := Decode(raw(&e))
	if err != nil {
		t.Fatal(err)
	}
	want := wantHdr(TypeExit)
	want.TID = want.PID
	if got := v; !reflect.DeepEqual(got, &Exit{Header: want}) {
		t.Errorf("exit: %+v, want %+v", got, &Exit{Header: want})
	}
	// A non-main thread's exit keeps its TID.
	e = hdr(TypeExit)
	v, err = Decode(raw(&e))
	if err != nil {
		t.Fatal(err)
	}
	if got := v; !reflect.DeepEqual(got, &Exit{Header: wantHdr(TypeExit)}) {
		t.Errorf("thread exit: %+v, want %+v", got, &Exit{Header: wantHdr(TypeExit)})
	}
	// Trailing bytes (a longer record from a newer object) are ignored.
	v, err = Decode(append(raw(&e), 1, 2, 3, 4, 5, 6, 7, 8))
	if err != nil {
		t.Fatal(err)
	}
	if got := v; !reflect.DeepEqual(got, &Exit{Header: wantHdr(TypeExit)}) {
		t.Errorf("exit with trailing bytes: %+v", got)
	}
}

// records returns one valid raw record of every type.
func records() map[string][]byte {
	d := bpf.CameraDataEvent{H: hdr(TypeData), DataLen: 512}
	s := bpf.CameraSegmentEvent{H: hdr(TypeSegment)}
	e := hdr(TypeExit)
	return map[string][]byte{"data": raw(&d), "segment": raw(&s), "exit": raw(&e)}
}

func TestDecodeMalformed(t *testing.T) {
	hdrOnly := func(ty Type) []byte {
		h := hdr(ty)
		return raw(&h)
	}
	tests := []struct {
		name  string
		raw   []byte
		short bool
	}{
		{"nil", nil, true},
		{"empty", []byte{}, true},
		{"1 byte", []byte{byte(TypeData)}, true},
		{"31 bytes", make([]byte, 31), true},
		{"header-only data", hdrOnly(TypeData), true},
		{"header-only segment", hdrOnly(TypeSegment), true},
		{"exit, 31 bytes", hdrOnly(TypeExit)[:31], true},
		{"type 0", hdrOnly(0), false},
		{"header-only acked", hdrOnly(TypeAcked), true},
		{"type 5 (EV_TYPES)", hdrOnly(5), false},
		{"type 6", append(hdrOnly(6), make([]byte, 64)...), false},
		{"type 255", append(hdrOnly(255), make([]byte, 1000)...), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Decode(tc.raw)
			if err == nil {
				t.Fatalf("Decode = %#v, want an error", v)
			}
			if v != nil {
				t.Errorf("Decode returned a value %#v with the error", v)
			}
			if errors.Is(err, ErrShort) != tc.short {
				t.Errorf("errors.Is(%v, ErrShort) = %v, want %v", err, !tc.short, tc.short)
			}
		})
	}
}

func TestDecodeEveryTruncation(t *testing.T) {
	for name, full := range records() {
		if _, err := Decode(full); err != nil {
			t.Fatalf("%s: full record: %v", name, err)
		}
		for n := 0; n < len(full); n++ {
			v, err := Decode(full[:n])
			if err == nil || v != nil {
				t.Fatalf("%s truncated to %d of %d bytes: Decode = %v, %v; want nil, error", name, n, len(full), v, err)
			}
			if !errors.Is(err, ErrShort) {
				t.Fatalf("%s truncated to %d bytes: error %v does not wrap ErrShort", name, n, err)
			}
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, r := range records() {
		f.Add(r)
		f.Add(r[:len(r)-1])
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode(b)
		if (v == nil) == (err == nil) {
			t.Fatalf("Decode = %v, %v: want exactly one of value and error", v, err)
		}
		if err != nil {
			return
		}
		switch e := v.(type) {
		case *Data:
			if e.Type != TypeData || len(e.Bytes) > 512 {
				t.Fatalf("bad data: type %d, %d bytes", e.Type, len(e.Bytes))
			}
			off := int(unsafe.Offsetof(bpf.CameraDataEvent{}.Data))
			if len(e.Bytes) > 0 && &e.Bytes[0] != &b[off] {
				t.Fatal("Bytes do not alias the record")
			}
			_ = e.Sock.Protocol()
		case *Segment:
			if e.Type != TypeSegment {
				t.Fatalf("segment with type %d", e.Type)
			}
			_ = e.FDKind.String()
		case *Exit:
			if e.Type != TypeExit {
				t.Fatalf("exit with type %d", e.Type)
			}
		default:
			t.Fatalf("Decode returned %T", v)
		}
	})
}

func TestSyscallName(t *testing.T) {
	for _, c := range []struct {
		nr   int32
		want string
	}{
		{0, "read"},
		{1, "write"},
		{3, "close"},
		{42, "connect"},
		{45, "recvfrom"},
		{74, "fsync"},
		{202, "futex"},
		{232, "epoll_wait"},
		{230, "clock_nanosleep"},
		{281, "epoll_pwait"},
		{441, "epoll_pwait2"},
		{435, "clone3"},
		{-1, ""},
		{-100, ""},
		{999, "syscall_999"},
		{6, "syscall_6"},
	} {
		if got := SyscallName(c.nr); got != c.want {
			t.Errorf("SyscallName(%d) = %q, want %q", c.nr, got, c.want)
		}
	}
}

func TestFDKindString(t *testing.T) {
	want := []string{"", "socket", "file", "pipe", "char", "block", "dir", "anon"}
	for k, w := range want {
		if got := FDKind(k).String(); got != w {
			t.Errorf("FDKind(%d) = %q, want %q", k, got, w)
		}
	}
	if got := FDKind(99).String(); got != "" {
		t.Errorf("FDKind(99) = %q", got)
	}
}

func TestSockProtocol(t *testing.T) {
	for _, c := range []struct {
		s    Sock
		want string
	}{
		{Sock{Family: 2, Proto: 6}, "tcp"},
		{Sock{Family: 10, Proto: 17}, "udp"},
		{Sock{Family: 1}, "unix"},
		{Sock{Family: 2, Proto: 132}, ""},
		{Sock{}, ""},
	} {
		if got := c.s.Protocol(); got != c.want {
			t.Errorf("%+v.Protocol() = %q, want %q", c.s, got, c.want)
		}
	}
}

// A Decoder hands back the same Data for every data record (the reader's
// hot path allocates nothing for them); segments are fresh values.
func TestDecoderReusesData(t *testing.T) {
	var dec Decoder
	mk := func(fd int32) []byte {
		r := bpf.CameraDataEvent{H: hdr(TypeData), Fd: fd, DataLen: 3}
		copy(r.Data[:], "abc")
		return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r))...)
	}
	a, err := dec.Decode(mk(1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := dec.Decode(mk(2))
	if err != nil {
		t.Fatal(err)
	}
	if a.(*Data) != b.(*Data) || b.(*Data).FD != 2 || string(b.(*Data).Bytes) != "abc" {
		t.Errorf("decoder did not reuse its Data: %p %p %+v", a, b, b)
	}
	fresh, _ := Decode(mk(3))
	if fresh.(*Data) == b.(*Data) {
		t.Error("package Decode returned the decoder's Data")
	}
	if n := testing.AllocsPerRun(100, func() { dec.Decode(mk(4)) }); n > 1 { // mk itself allocates once
		t.Errorf("%v allocations per data record", n)
	}
}
