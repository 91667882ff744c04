package gobin

import (
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"sort"
	"strings"
)

// Offsets are byte offsets of the runtime fields the eBPF side reads from a
// Go process's memory, from the start of the struct named.
type Offsets struct {
	G GOffsets
	M MOffsets
	P POffsets
}

// GOffsets are offsets in runtime.g. Sched* and Stack* are the nested
// fields g.sched.sp, g.stack.lo and so on, already added up.
type GOffsets struct {
	StackLo      uint32 // stack.lo (uintptr)
	StackHi      uint32 // stack.hi (uintptr)
	StackGuard0  uint32 // uintptr
	M            uint32 // *m
	Sched        uint32 // gobuf
	SchedSP      uint32 // sched.sp (uintptr)
	SchedPC      uint32 // sched.pc (uintptr)
	SyscallSP    uint32 // uintptr
	AtomicStatus uint32 // uint32 (atomic.Uint32)
	WaitReason   uint32 // waitReason (uint8)
	Goid         uint32 // uint64
}

// MOffsets are offsets in runtime.m.
type MOffsets struct {
	G0     uint32 // *g
	Procid uint32 // uint64: the thread id
	Curg   uint32 // *g: the goroutine running on this thread
	P      uint32 // puintptr: the P held, 0 when none
}

// POffsets are offsets in runtime.p.
type POffsets struct {
	ID        uint32 // int32
	Status    uint32 // uint32
	Schedtick uint32 // uint32: incremented on every scheduler call
}

// offsetTable holds, per Go 1.x minor release, the offsets read from the
// DWARF of a linux/amd64 binary built by the patch release named in each
// row's comment; struct layouts do not change within a minor release.
// Notable moves: Go 1.23 added g.syscallbp (+8 for g.atomicstatus, goid,
// waitreason), Go 1.25 removed gobuf.ret (-8 for everything after g.sched,
// and after m.morebuf), Go 1.26 added m.signalSecret before m.p. TestInspect compares
// each row with the DWARF of a fresh build for the releases it covers;
// TRACECAM_GOBIN_ALL=1 makes TestOffsetTable rebuild every row.
var offsetTable = map[int]Offsets{
	20: { // go1.20.14
		G: GOffsets{StackLo: 0, StackHi: 8, StackGuard0: 16, M: 48, Sched: 56, SchedSP: 56, SchedPC: 64, SyscallSP: 112, AtomicStatus: 144, WaitReason: 176, Goid: 152},
		M: MOffsets{G0: 0, Procid: 72, Curg: 192, P: 208},
		P: POffsets{ID: 0, Status: 4, Schedtick: 16},
	},
	21: { // go1.21.13
		G: GOffsets{StackLo: 0, StackHi: 8, StackGuard0: 16, M: 48, Sched: 56, SchedSP: 56, SchedPC: 64, SyscallSP: 112, AtomicStatus: 144, WaitReason: 176, Goid: 152},
		M: MOffsets{G0: 0, Procid: 72, Curg: 192, P: 208},
		P: POffsets{ID: 0, Status: 4, Schedtick: 16},
	},
	22: { // go1.22.12
		G: GOffsets{StackLo: 0, StackHi: 8, StackGuard0: 16, M: 48, Sched: 56, SchedSP: 56, SchedPC: 64, SyscallSP: 112, AtomicStatus: 144, WaitReason: 176, Goid: 152},
		M: MOffsets{G0: 0, Procid: 72, Curg: 192, P: 208},
		P: POffsets{ID: 0, Status: 4, Schedtick: 16},
	},
	23: { // go1.23.12
		G: GOffsets{StackLo: 0, StackHi: 8, StackGuard0: 16, M: 48, Sched: 56, SchedSP: 56, SchedPC: 64, SyscallSP: 112, AtomicStatus: 152, WaitReason: 184, Goid: 160},
		M: MOffsets{G0: 0, Procid: 72, Curg: 192, P: 208},
		P: POffsets{ID: 0, Status: 4, Schedtick: 16},
	},
	24: { // go1.24.13
		G: GOffsets{StackLo: 0, StackHi: 8, StackGuard0: 16, M: 48, Sched: 56, SchedSP: 56, SchedPC: 64, SyscallSP: 112, AtomicStatus: 152, WaitReason: 184, Goid: 160},
		M: MOffsets{G0: 0, Procid: 72, Curg: 192, P: 208},
		P: POffsets{ID: 0, Status: 4, Schedtick: 16},
	},
	25: { // go1.25.14
		G: GOffsets{StackLo: 0, StackHi: 8, StackGuard0: 16, M: 48, Sched: 56, SchedSP: 56, SchedPC: 64, SyscallSP: 104, AtomicStatus: 144, WaitReason: 176, Goid: 152},
		M: MOffsets{G0: 0, Procid: 64, Curg: 184, P: 200},
		P: POffsets{ID: 0, Status: 4, Schedtick: 16},
	},
	26: { // go1.26.8
		G: GOffsets{StackLo: 0, StackHi: 8, StackGuard0: 16, M: 48, Sched: 56, SchedSP: 56, SchedPC: 64, SyscallSP: 104, AtomicStatus: 144, WaitReason: 176, Goid: 152},
		M: MOffsets{G0: 0, Procid: 64, Curg: 184, P: 208},
		P: POffsets{ID: 0, Status: 4, Schedtick: 16},
	},
	27: { // go1.27.3
		G: GOffsets{StackLo: 0, StackHi: 8, StackGuard0: 16, M: 48, Sched: 56, SchedSP: 56, SchedPC: 64, SyscallSP: 104, AtomicStatus: 144, WaitReason: 176, Goid: 152},
		M: MOffsets{G0: 0, Procid: 64, Curg: 184, P: 208},
		P: POffsets{ID: 0, Status: 4, Schedtick: 16},
	},
}

// OffsetsForVersion returns the table's offsets for Go major.minor.
func OffsetsForVersion(major, minor int) (Offsets, bool) {
	if major != 1 {
		return Offsets{}, false
	}
	o, ok := offsetTable[minor]
	return o, ok
}

// TableVersions lists the minor releases (of Go 1) the offset table covers.
func TableVersions() []int {
	var out []int
	for m := range offsetTable {
		out = append(out, m)
	}
	sort.Ints(out)
	return out
}

func (b *Binary) readOffsets(f *elf.File) {
	if b.HasDWARF {
		o, err := offsetsFromDWARF(f)
		if err == nil {
			b.offsets, b.OffsetsFrom = o, "dwarf"
			return
		}
		// A damaged or unusual DWARF should not hide a table answer.
		if t, ok := OffsetsForVersion(b.Major, b.Minor); ok {
			b.offsets, b.OffsetsFrom = t, "table"
			return
		}
		b.offsetsErr = fmt.Errorf("gobin: struct offsets: %w", err)
		return
	}
	if t, ok := OffsetsForVersion(b.Major, b.Minor); ok {
		b.offsets, b.OffsetsFrom = t, "table"
		return
	}
	b.offsetsErr = fmt.Errorf("%w: struct offsets for %s unknown and the binary has no DWARF (table covers go1.%v)",
		ErrUnknownVersion, b.GoVersion, TableVersions())
}

// wantedFields lists, per runtime struct, the members whose offsets are
// needed.
var wantedFields = map[string][]string{
	"runtime.g":     {"stack", "stackguard0", "m", "sched", "syscallsp", "atomicstatus", "waitreason", "goid"},
	"runtime.m":     {"g0", "procid", "curg", "p"},
	"runtime.p":     {"id", "status", "schedtick"},
	"runtime.gobuf": {"sp", "pc"},
	"runtime.stack": {"lo", "hi"},
}

// offsetsFromDWARF reads the struct layouts from the binary's own debug
// information, which is right by construction for any release, including
// ones newer than the table.
func offsetsFromDWARF(f *elf.File) (Offsets, error) {
	d, err := f.DWARF()
	if err != nil {
		return Offsets{}, fmt.Errorf("reading DWARF: %w", err)
	}
	found := map[string]map[string]uint32{}
	r := d.Reader()
	for len(found) < len(wantedFields) {
		e, err := r.Next()
		if err != nil {
			return Offsets{}, fmt.Errorf("reading DWARF: %w", err)
		}
		if e == nil {
			break
		}
		if e.Tag == dwarf.TagCompileUnit || !e.Children {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		want, ok := wantedFields[name]
		if e.Tag != dwarf.TagStructType || !ok || found[name] != nil {
			r.SkipChildren()
			continue
		}
		members := map[string]uint32{}
		for {
			c, err := r.Next()
			if err != nil {
				return Offsets{}, fmt.Errorf("reading DWARF members of %s: %w", name, err)
			}
			if c == nil || c.Tag == 0 {
				break
			}
			if c.Children {
				r.SkipChildren()
			}
			if c.Tag != dwarf.TagMember {
				continue
			}
			mname, _ := c.Val(dwarf.AttrName).(string)
			loc, ok := c.Val(dwarf.AttrDataMemberLoc).(int64)
			if !ok || loc < 0 || loc > 1<<20 {
				continue
			}
			members[mname] = uint32(loc)
		}
		var missing []string
		for _, w := range want {
			if _, ok := members[w]; !ok {
				missing = append(missing, w)
			}
		}
		if len(missing) > 0 {
			return Offsets{}, fmt.Errorf("DWARF struct %s lacks %s", name, strings.Join(missing, ", "))
		}
		found[name] = members
	}
	for name := range wantedFields {
		if found[name] == nil {
			return Offsets{}, fmt.Errorf("DWARF has no struct %s", name)
		}
	}
	g, m, p, gobuf, stack := found["runtime.g"], found["runtime.m"], found["runtime.p"], found["runtime.gobuf"], found["runtime.stack"]
	return Offsets{
		G: GOffsets{
			StackLo:      g["stack"] + stack["lo"],
			StackHi:      g["stack"] + stack["hi"],
			StackGuard0:  g["stackguard0"],
			M:            g["m"],
			Sched:        g["sched"],
			SchedSP:      g["sched"] + gobuf["sp"],
			SchedPC:      g["sched"] + gobuf["pc"],
			SyscallSP:    g["syscallsp"],
			AtomicStatus: g["atomicstatus"],
			WaitReason:   g["waitreason"],
			Goid:         g["goid"],
		},
		M: MOffsets{G0: m["g0"], Procid: m["procid"], Curg: m["curg"], P: m["p"]},
		P: POffsets{ID: p["id"], Status: p["status"], Schedtick: p["schedtick"]},
	}, nil
}
