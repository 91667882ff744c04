package gobin

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracecam/tracecam/internal/gobuild"
)

// testProgram is a tiny net/http server; with cgo it also has C
// thread-locals, which move runtime.tlsg away from fs:-8.
const testProgram = "testdata/httpserver"

// requiredFuncs are the functions the eBPF side probes. runtime.goready is
// not among them: on every covered release the compiler inlines it into
// each caller, leaving only closures named <caller>.goready.func1 that call
// runtime.ready, so no binary has an out-of-line runtime.goready to probe
// (TestInspect checks that .symtab agrees).
var requiredFuncs = []string{
	"runtime.execute",
	"runtime.gopark",
	"runtime.ready",
	"runtime.casgstatus",
	"runtime.newproc1",
	"runtime.goexit1",
	"runtime.mcall",
	"runtime.park_m",
	"net/http.(*conn).serve",
	"net/http.(*conn).readRequest",
	"net/http.(*response).finishRequest",
	"net/http.serverHandler.ServeHTTP",
}

type variant struct {
	name string
	opts gobuild.Options
	// sibling is the unstripped build of the same link mode: the reference
	// a stripped build's answers are checked against.
	sibling string
}

var variants = []variant{
	{name: "plain"},
	{name: "stripped", opts: gobuild.Options{Stripped: true}, sibling: "plain"},
	{name: "cgo", opts: gobuild.Options{CGO: true}},
	{name: "cgo-stripped", opts: gobuild.Options{CGO: true, Stripped: true}, sibling: "cgo"},
	{name: "pie", opts: gobuild.Options{PIE: true}},
	{name: "pie-stripped", opts: gobuild.Options{PIE: true, Stripped: true}, sibling: "pie"},
}

func variantByName(name string) variant {
	for _, v := range variants {
		if v.name == name {
			return v
		}
	}
	panic("no variant " + name)
}

// tableToolchains names the release each table row was taken from, for
// TRACECAM_GOBIN_ALL=1 runs that rebuild every row.
var tableToolchains = map[int]string{
	20: "go1.20.14",
	21: "go1.21.13",
	22: "go1.22.12",
	23: "go1.23.12",
	24: "go1.24.13",
	25: "go1.25.14",
	26: "go1.26.8",
	27: "go1.27.3",
}

var (
	buildDir string
	builtMu  sync.Mutex
	built    = map[string]*Binary{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gobin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildAndInspect builds the test program (cached across runs by gobuild)
// and inspects it. It skips when the toolchain cannot be downloaded.
func buildAndInspect(t testing.TB, version string, opts gobuild.Options) *Binary {
	t.Helper()
	opts.Toolchain = version
	key := opts.String()
	builtMu.Lock()
	defer builtMu.Unlock()
	if b, ok := built[key]; ok {
		return b
	}
	out := filepath.Join(buildDir, key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := gobuild.Build(ctx, testProgram, out, opts); err != nil {
		if errors.Is(err, gobuild.ErrToolchainUnavailable) && version != "" {
			t.Skipf("toolchain %s cannot be fetched (is the Go module proxy reachable?): %v", version, err)
		}
		t.Fatal(err)
	}
	b, err := Inspect(out)
	if err != nil {
		t.Fatalf("Inspect(%s): %v", key, err)
	}
	built[key] = b
	return b
}

func TestInspect(t *testing.T) {
	for _, version := range gobuild.Versions() {
		name := version
		if name == "" {
			name = "local"
		}
		t.Run(name, func(t *testing.T) {
			for _, v := range variants {
				t.Run(v.name, func(t *testing.T) {
					checkBinary(t, version, v)
				})
			}
		})
	}
}

func checkBinary(t *testing.T, version string, v variant) {
	b := buildAndInspect(t, version, v.opts)
	if version != "" && b.GoVersion != version {
		t.Errorf("GoVersion = %q, want %q", b.GoVersion, version)
	}
	if want := fmt.Sprintf("go%d.%d.", b.Major, b.Minor); !strings.HasPrefix(b.GoVersion+".", want) {
		t.Errorf("Major.Minor = %d.%d for %q", b.Major, b.Minor, b.GoVersion)
	}
	if b.Stripped != v.opts.Stripped || b.HasDWARF == v.opts.Stripped {
		t.Errorf("Stripped=%v HasDWARF=%v, built with Stripped=%v", b.Stripped, b.HasDWARF, v.opts.Stripped)
	}
	if b.PIE != v.opts.PIE || b.CGO != v.opts.CGO {
		t.Errorf("PIE=%v CGO=%v, built with %+v", b.PIE, b.CGO, v.opts)
	}

	var ref *Binary
	if v.sibling != "" {
		ref = buildAndInspect(t, version, variantByName(v.sibling).opts)
	}
	checkFuncs(t, b, ref)
	checkOffsets(t, b, ref)
	checkWaitReasons(t, b)
	checkGTLS(t, b, ref)
	checkProbes(t, b)
}

// checkProbes reads the file itself at each probe point: a frame-pointer
// push, a few bytes past the entry (the stack check before it).
func checkProbes(t *testing.T, b *Binary) {
	t.Helper()
	raw, err := os.ReadFile(b.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range probedFuncs {
		p, err := b.Probe(name)
		if err != nil {
			t.Errorf("Probe(%s): %v", name, err)
			continue
		}
		at := p.Offset + p.Skip
		// a PUSHQ BP after the check (Go >= 1.21), or the check's branch
		if p.Skip < 4 || p.Skip > 20 || at >= uint64(len(raw)) || (raw[at] != 0x55 && raw[at] != 0x76 && raw[at] != 0x0f) {
			t.Errorf("Probe(%s) = entry %#x + %d: not a PUSHQ BP or JLS after a stack check (% x)", name, p.Offset, p.Skip,
				raw[p.Offset:min(p.Offset+24, uint64(len(raw)))])
		}
	}
}

// checkFuncs compares pclntab answers with the ELF symbol table, read
// through section headers (an independent path to file offsets), or, for
// a stripped build, with the unstripped build of the same link mode, whose
// text layout is identical.
func checkFuncs(t *testing.T, b, ref *Binary) {
	t.Helper()
	var syms map[string]elf.Symbol
	var f *elf.File
	if !b.Stripped {
		var err error
		f, err = elf.Open(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		all, err := f.Symbols()
		if err != nil {
			t.Fatal(err)
		}
		syms = map[string]elf.Symbol{}
		for _, s := range all {
			if elf.ST_TYPE(s.Info) == elf.STT_FUNC {
				syms[s.Name] = s
			}
		}
		if rt, ok := syms["runtime.text"]; ok && b.TextStart != rt.Value {
			t.Errorf("TextStart = %#x (%s), runtime.text = %#x", b.TextStart, b.TextFrom, rt.Value)
		}
	} else if b.TextFrom != "moduledata" {
		t.Errorf("stripped binary: TextFrom = %q, want moduledata", b.TextFrom)
	}
	for _, name := range requiredFuncs {
		s, ok := b.Func(name)
		if !ok {
			t.Errorf("Func(%q) not found", name)
			continue
		}
		if s.Size == 0 {
			t.Errorf("Func(%q): size 0", name)
		}
		if syms != nil {
			es, ok := syms[name]
			if !ok {
				t.Errorf("%s: not in .symtab", name)
				continue
			}
			sec := f.Sections[es.Section]
			wantOff := es.Value - sec.Addr + sec.Offset
			// The pclntab knows where the next function starts, not where
			// this one's code ends: Size includes the alignment padding.
			if s.Addr != es.Value || s.Offset != wantOff || s.Size < es.Size || s.Size-es.Size >= 64 {
				t.Errorf("Func(%q) = addr %#x off %#x size %d; .symtab says addr %#x off %#x size %d",
					name, s.Addr, s.Offset, s.Size, es.Value, wantOff, es.Size)
			}
		}
		if ref != nil {
			rs, _ := ref.Func(name)
			if s.Addr != rs.Addr || s.Offset != rs.Offset || s.Size != rs.Size {
				t.Errorf("Func(%q) = %+v; the unstripped build has %+v", name, s, rs)
			}
		}
	}
	for _, name := range []string{"runtime.goready", "no/such.function"} {
		_, ok := b.Func(name)
		_, inSymtab := syms[name]
		if ok || inSymtab {
			t.Errorf("%s: Func found it: %v, .symtab has it: %v; expected neither", name, ok, inSymtab)
		}
	}
}

// checkOffsets keeps the table honest: a DWARF answer must equal the
// table's row for the release, and a stripped build must get the table
// answer, equal to its unstripped sibling's DWARF.
func checkOffsets(t *testing.T, b, ref *Binary) {
	t.Helper()
	o, err := b.Offsets()
	if err != nil {
		t.Fatalf("Offsets: %v", err)
	}
	tab, inTable := OffsetsForVersion(b.Major, b.Minor)
	switch {
	case b.HasDWARF:
		if b.OffsetsFrom != "dwarf" {
			t.Errorf("OffsetsFrom = %q with DWARF present", b.OffsetsFrom)
		}
		if !inTable {
			t.Errorf("go1.%d is not in the offset table; add\n%s", b.Minor, offsetsLiteral(b.Minor, b.GoVersion, o))
		} else if tab != o {
			t.Errorf("table row go1.%d differs from the DWARF of %s:\n table %+v\n dwarf %+v\nreplace it with\n%s",
				b.Minor, b.GoVersion, tab, o, offsetsLiteral(b.Minor, b.GoVersion, o))
		}
	default:
		if b.OffsetsFrom != "table" {
			t.Errorf("OffsetsFrom = %q without DWARF", b.OffsetsFrom)
		}
		if ref != nil {
			ro, _ := ref.Offsets()
			if o != ro {
				t.Errorf("offsets %+v, the unstripped build's DWARF says %+v", o, ro)
			}
		}
	}
	// Layout facts that hold on every release since 1.20, as a sanity net.
	if o.G.StackLo != 0 || o.G.StackHi != 8 || o.G.SchedSP != o.G.Sched || o.G.SchedPC != o.G.Sched+8 || o.M.G0 != 0 {
		t.Errorf("implausible offsets %+v", o)
	}
}

func offsetsLiteral(minor int, version string, o Offsets) string {
	s := fmt.Sprintf("%#v", o)
	s = strings.ReplaceAll(s, "gobin.", "")
	return fmt.Sprintf("\t%d: %s, // %s", minor, s, version)
}

// checkWaitReasons compares the table with the binary's own
// runtime.waitReasonStrings, which Inspect prefers when it is readable.
func checkWaitReasons(t *testing.T, b *Binary) {
	t.Helper()
	wr, err := b.WaitReasons()
	if err != nil {
		t.Fatalf("WaitReasons: %v", err)
	}
	tab, inTable := WaitReasonsForVersion(b.Major, b.Minor)
	if !b.Stripped {
		if b.WaitReasonsFrom != "binary" {
			t.Errorf("WaitReasonsFrom = %q for a binary with a symbol table", b.WaitReasonsFrom)
		}
		if !inTable {
			t.Errorf("go1.%d has no wait reason table; the binary has %q", b.Minor, wr)
		} else if !reflect.DeepEqual(tab, wr) {
			t.Errorf("wait reason table go1.%d differs from the binary's runtime.waitReasonStrings:\n table  %q\n binary %q", b.Minor, tab, wr)
		}
	} else if b.WaitReasonsFrom != "table" {
		t.Errorf("WaitReasonsFrom = %q for a stripped binary", b.WaitReasonsFrom)
	}
	for _, want := range []string{"IO wait", "sleep", "sync.Mutex.Lock", "semacquire", "chan receive", "select", "GC assist wait"} {
		if indexOf(wr, want) < 0 {
			t.Errorf("wait reasons lack %q", want)
		}
	}
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// checkGTLS: the Go linker keeps g at fs:-8; the cgo test program has C
// thread-locals, so there the external linker moves runtime.tlsg and the
// code-derived offset must match runtime.tlsg's place in PT_TLS.
func checkGTLS(t *testing.T, b, ref *Binary) {
	t.Helper()
	off, err := b.GTLS()
	if err != nil {
		t.Fatalf("GTLS: %v", err)
	}
	if b.GTLSFrom != "code" {
		t.Errorf("GTLSFrom = %q, want code", b.GTLSFrom)
	}
	if !b.Stripped {
		f, err := os.Open(b.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		ef, err := elf.NewFile(f)
		if err != nil {
			t.Fatal(err)
		}
		im := newImage(ef, f)
		all, _ := ef.Symbols()
		im.syms = map[string]elf.Symbol{}
		for _, s := range all {
			im.syms[s.Name] = s
		}
		if sym, ok := im.gtlsFromSymtab(); ok && sym != off {
			t.Errorf("GTLSOffset %d from code, %d from runtime.tlsg", off, sym)
		} else if !ok && b.CGO {
			t.Errorf("cgo build without runtime.tlsg in PT_TLS")
		}
	}
	switch {
	case !b.CGO && off != -8:
		t.Errorf("GTLSOffset = %d for an internally linked binary, want -8", off)
	case b.CGO && off == -8:
		t.Errorf("GTLSOffset = -8 for the cgo build with C thread-locals: the test no longer exercises a moved runtime.tlsg")
	}
	if ref != nil && ref.GTLSOffset != off {
		t.Errorf("GTLSOffset = %d, the unstripped build has %d", off, ref.GTLSOffset)
	}
}

// TestLiveProcess checks the offsets the eBPF side will use against a
// running process: stopped by gdb at main.main, *(fsbase+GTLSOffset) must
// be the g in r14 (ABIInternal's g register), that g must be goroutine 1
// running (_Grunning = 2) on its stack, its m's curg must be itself, and
// the m's p must be running (_Prunning = 1).
func TestLiveProcess(t *testing.T) {
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skip("gdb not installed")
	}
	for _, version := range gobuild.Versions() {
		name := version
		if name == "" {
			name = "local"
		}
		t.Run(name, func(t *testing.T) {
			for _, v := range variants {
				if v.opts.Stripped && v.opts.PIE {
					continue // no symbol and no fixed load address to break at
				}
				t.Run(v.name, func(t *testing.T) {
					checkLive(t, buildAndInspect(t, version, v.opts))
				})
			}
		})
	}
}

var gdbValueRE = regexp.MustCompile(`(?m)^(?:\$\d+ = |0x[0-9a-f]+(?: <[^>]*>)?:\s+)(0x[0-9a-f]+)\s*$`)

func checkLive(t *testing.T, b *Binary) {
	o, err := b.Offsets()
	if err != nil {
		t.Fatal(err)
	}
	bp := "main.main"
	if b.Stripped {
		s, ok := b.Func("main.main")
		if !ok {
			t.Fatal("no main.main")
		}
		bp = fmt.Sprintf("*%#x", s.Addr)
	}
	cmds := []string{
		"set startup-with-shell off",
		"break " + bp,
		"run 127.0.0.1:0",
		"set language c",
		"p/x $r14",
		fmt.Sprintf("x/gx $fs_base%+d", b.GTLSOffset),
		fmt.Sprintf("x/gx $r14+%d", o.G.Goid),
		fmt.Sprintf("x/wx $r14+%d", o.G.AtomicStatus),
		fmt.Sprintf("x/gx $r14+%d", o.G.StackLo),
		fmt.Sprintf("x/gx $r14+%d", o.G.StackHi),
		"p/x $rsp",
		fmt.Sprintf("set $m = *(long *)($r14+%d)", o.G.M),
		fmt.Sprintf("x/gx $m+%d", o.M.Curg),
		fmt.Sprintf("set $p = *(long *)($m+%d)", o.M.P),
		fmt.Sprintf("x/wx $p+%d", o.P.Status),
		"kill",
	}
	args := []string{"-batch", "-nx"}
	for _, c := range cmds {
		args = append(args, "-ex", c)
	}
	args = append(args, b.Path)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "gdb", args...).CombinedOutput()
	if bytes.Contains(out, []byte("ptrace")) && bytes.Contains(out, []byte("not permitted")) {
		t.Skipf("gdb cannot trace here: %s", out)
	}
	var vals []uint64
	for _, m := range gdbValueRE.FindAllSubmatch(out, -1) {
		v, err := strconv.ParseUint(string(m[1][2:]), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		vals = append(vals, v)
	}
	if len(vals) != 9 {
		t.Fatalf("gdb printed %d values, want 9:\n%s", len(vals), out)
	}
	g, tlsG, goid, status, lo, hi, sp, curg, pstatus := vals[0], vals[1], vals[2], vals[3], vals[4], vals[5], vals[6], vals[7], vals[8]
	if g == 0 || tlsG != g {
		t.Errorf("*(fs_base%+d) = %#x, r14 (g) = %#x", b.GTLSOffset, tlsG, g)
	}
	if goid != 1 {
		t.Errorf("g.goid = %d in main.main, want 1", goid)
	}
	if status != 2 {
		t.Errorf("g.atomicstatus = %d, want 2 (_Grunning)", status)
	}
	if !(lo < sp && sp < hi) {
		t.Errorf("sp %#x not within g.stack [%#x, %#x)", sp, lo, hi)
	}
	if curg != g {
		t.Errorf("g.m.curg = %#x, want g %#x", curg, g)
	}
	if pstatus != 1 {
		t.Errorf("g.m.p.status = %d, want 1 (_Prunning)", pstatus)
	}
}

// TestOffsetTable checks every table row against the DWARF of a build by
// that release; by default only the releases TestInspect covers (no extra
// downloads), all of them with TRACECAM_GOBIN_ALL=1.
func TestOffsetTable(t *testing.T) {
	all := os.Getenv("TRACECAM_GOBIN_ALL") != ""
	covered := map[string]bool{}
	for _, v := range gobuild.Versions() {
		covered[v] = true
	}
	for _, minor := range TableVersions() {
		if _, ok := tableToolchains[minor]; !ok {
			t.Errorf("table row go1.%d has no toolchain in tableToolchains", minor)
		}
	}
	var minors []int
	for m := range tableToolchains {
		minors = append(minors, m)
	}
	sort.Ints(minors)
	for _, minor := range minors {
		version := tableToolchains[minor]
		if !all && !covered[version] {
			continue
		}
		t.Run(version, func(t *testing.T) {
			b := buildAndInspect(t, version, gobuild.Options{})
			checkOffsets(t, b, nil)
			checkWaitReasons(t, b)
		})
	}
	for minor := range waitReasonTable {
		if _, ok := offsetTable[minor]; !ok {
			t.Errorf("go1.%d has wait reasons but no offsets", minor)
		}
	}
}

func TestNotGo(t *testing.T) {
	for _, p := range []string{"/bin/true", "/bin/ls", "/usr/bin/python3"} {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		_, err := Inspect(p)
		if !errors.Is(err, ErrNotGo) {
			t.Errorf("Inspect(%s) = %v, want ErrNotGo", p, err)
		}
	}
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Inspect(script); !errors.Is(err, ErrNotGo) {
		t.Errorf("Inspect(shell script) = %v, want ErrNotGo", err)
	}
	if _, err := Inspect(filepath.Join(t.TempDir(), "missing")); err == nil || errors.Is(err, ErrNotGo) {
		t.Errorf("Inspect(missing file) = %v, want a file error", err)
	}
}

func TestUnknownVersion(t *testing.T) {
	b := &Binary{GoVersion: "go1.99.1", Major: 1, Minor: 99}
	b.readOffsets(nil)
	if _, err := b.Offsets(); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("Offsets for go1.99 without DWARF: %v, want ErrUnknownVersion", err)
	}
	b.readWaitReasons(&image{})
	if _, err := b.WaitReasons(); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("WaitReasons for go1.99 without symbols: %v, want ErrUnknownVersion", err)
	}
}

func TestWaitClass(t *testing.T) {
	for _, tc := range []struct{ reason, class string }{
		{"IO wait", "net"},
		{"sleep", "sleep"},
		{"timer goroutine (idle)", "sleep"},
		{"sync.Mutex.Lock", "lock"},
		{"sync.RWMutex.RLock", "lock"},
		{"sync.RWMutex.Lock", "lock"},
		{"semacquire", "lock"},
		{"sync.Cond.Wait", "lock"},
		{"sync.WaitGroup.Wait", "lock"},
		{"chan receive", "chan"},
		{"chan send", "chan"},
		{"select", "chan"},
		{"select (no cases)", "chan"},
		{"chan receive (nil chan)", "chan"},
		{"chan send (durable)", "chan"},
		{"GC assist wait", "gc"},
		{"GC assist marking", "gc"},
		{"GC sweep wait", "gc"},
		{"GC scavenge wait", "gc"},
		{"GC worker (idle)", "gc"},
		{"GC weak to strong wait", "gc"},
		{"garbage collection", "gc"},
		{"stopping the world", "gc"},
		{"wait for GC cycle", "gc"},
		{"finalizer wait", "gc"},
		{"preempted", "idle"},
		{"debug call", "idle"},
		{"coroutine", "idle"},
		{"", "idle"},
		{"a reason from the future", "idle"},
	} {
		if got := WaitClass(tc.reason); got != tc.class {
			t.Errorf("WaitClass(%q) = %q, want %q", tc.reason, got, tc.class)
		}
	}
}

// TestWaitClassCoversTables makes every reason any release uses an explicit
// decision in waitClasses.
func TestWaitClassCoversTables(t *testing.T) {
	for minor, names := range waitReasonTable {
		for _, n := range names {
			if _, ok := waitClasses[n]; !ok {
				t.Errorf("go1.%d wait reason %q has no class in waitClasses", minor, n)
			}
		}
	}
}

// FuzzInspect feeds real Go executables, truncated and with bytes
// overwritten, to the inspection. Inputs describe the damage rather than
// carry the 8 MB files, so the corpus stays small. The bases are the local
// toolchain's cgo build (DWARF, symbol table, external linking, moved TLS)
// and stripped PIE build (relocations, moduledata, tables).
func FuzzInspect(f *testing.F) {
	var bases [][]byte
	for _, name := range []string{"cgo", "pie-stripped"} {
		b := buildAndInspect(f, "", variantByName(name).opts)
		data, err := os.ReadFile(b.Path)
		if err != nil {
			f.Fatal(err)
		}
		bases = append(bases, data)
	}
	for i, orig := range bases {
		which := uint8(i)
		ef, err := elf.NewFile(bytes.NewReader(orig))
		if err != nil {
			f.Fatal(err)
		}
		// Seeds aim at the structures Inspect follows.
		f.Add(which, uint32(len(orig)), uint32(0), []byte{})
		f.Add(which, uint32(64), uint32(0), []byte{})
		f.Add(which, uint32(len(orig)/2), uint32(0), []byte{})
		f.Add(which, uint32(len(orig)), uint32(0x20), []byte{0xff, 0xff, 0xff, 0x7f}) // e_phoff
		f.Add(which, uint32(len(orig)), uint32(0x28), []byte{0xff, 0xff, 0xff, 0x7f}) // e_shoff
		f.Add(which, uint32(len(orig)), uint32(0x3c), []byte{0xff, 0xff})             // e_shnum
		for _, p := range ef.Progs {
			f.Add(which, uint32(len(orig)), uint32(p.Off), []byte{0, 0, 0, 0, 0, 0, 0, 0})
		}
		for _, name := range []string{".gopclntab", ".go.buildinfo", ".debug_info", ".symtab", ".noptrdata", ".data", ".data.rel.ro", ".rela.dyn", ".tbss"} {
			if s := ef.Section(name); s != nil && s.Type != elf.SHT_NOBITS {
				f.Add(which, uint32(len(orig)), uint32(s.Offset), []byte{0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff})
				f.Add(which, uint32(len(orig)), uint32(s.Offset+8), []byte{0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f})
				f.Add(which, uint32(s.Offset+s.Size/2), uint32(0), []byte{})
			}
		}
		if s := ef.Section(".gopclntab"); s != nil {
			// nfunc and the table offsets in the pcHeader.
			for off := uint64(8); off < 64; off += 8 {
				var b [8]byte
				binary.LittleEndian.PutUint64(b[:], 1<<40)
				f.Add(which, uint32(len(orig)), uint32(s.Offset+off), b[:])
			}
		}
		ef.Close()
	}
	f.Fuzz(func(t *testing.T, which uint8, cut, pos uint32, junk []byte) {
		data := bases[int(which)%len(bases)]
		if int(cut) < len(data) {
			data = data[:cut]
		}
		if len(junk) > 0 && int(pos) < len(data) {
			data = bytes.Clone(data)
			copy(data[pos:], junk)
		}
		// inspect, not InspectReader: the fuzzer must see panics that
		// InspectReader's recover would turn into errors.
		b, err := inspect(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, name := range requiredFuncs {
			b.Func(name)
		}
		b.Offsets()
		b.WaitReasons()
		b.GTLS()
	})
}

// TestDecodeTLSAccesses covers the instruction forms for g's TLS slot,
// including the unrelaxed initial-exec form (offset in a GOT word) that
// neither GNU ld nor gold produces for these executables, so no real build
// in the tests has it.
func TestAfterStackCheck(t *testing.T) {
	for _, c := range []struct {
		name string
		code []byte
		want int
		err  bool
	}{
		{"small frame, near branch", []byte{0x49, 0x3b, 0x66, 0x10, 0x76, 0x20, 0x55, 0x48, 0x89, 0xe5}, 6, false},
		{"small frame, far branch", []byte{0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 1, 2, 0, 0, 0x55}, 10, false},
		{"large frame disp8", []byte{0x4c, 0x8d, 0x64, 0x24, 0xc0, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 1, 2, 0, 0, 0x55}, 15, false},
		{"large frame disp32", []byte{0x4c, 0x8d, 0xa4, 0x24, 0, 0xfe, 0xff, 0xff, 0x4d, 0x3b, 0x66, 0x10, 0x76, 9, 0x55}, 14, false},
		{"nosplit: push first", []byte{0x55, 0x48, 0x89, 0xe5}, 0, true},
		// go1.19.8 (Debian bookworm's caddy) runtime.execute: SUBQ $0x20, SP after the check
		{"go1.20 and older: the branch", []byte{0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x49, 0x01, 0, 0, 0x48, 0x83, 0xec, 0x20}, 4, false},
		{"go1.20 and older, large frame", []byte{0x4c, 0x8d, 0x64, 0x24, 0xc0, 0x4d, 0x3b, 0x66, 0x10, 0x76, 9, 0x48, 0x81, 0xec}, 9, false},
		{"truncated", []byte{0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 1}, 0, true},
		{"empty", nil, 0, true},
	} {
		got, err := afterStackCheck(c.code)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("%s: afterStackCheck = %d, %v; want %d (error %v)", c.name, got, err, c.want, c.err)
		}
	}
}

func TestDecodeTLSAccesses(t *testing.T) {
	const codeAddr, gotAddr = 0x1000, 0x1100
	mem := make([]byte, 0x200)
	binary.LittleEndian.PutUint64(mem[gotAddr-codeAddr:], uint64(0xffffffffffffffd0)) // -48
	ripRel := func(insnEnd int) []byte {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(int32(gotAddr-(codeAddr+insnEnd))))
		return b[:]
	}
	im := &image{
		f:     &elf.File{FileHeader: elf.FileHeader{Type: elf.ET_EXEC}},
		r:     bytes.NewReader(mem),
		loads: []loadSeg{{vaddr: codeAddr, off: 0, filesz: uint64(len(mem))}},
	}
	for _, tc := range []struct {
		name string
		code []byte
		want []int64
	}{
		{"local-exec absolute", []byte{0x64, 0x4c, 0x8b, 0x34, 0x25, 0xd0, 0xff, 0xff, 0xff}, []int64{-48}},
		{"local-exec store", []byte{0x64, 0x48, 0x89, 0x1c, 0x25, 0xf8, 0xff, 0xff, 0xff}, []int64{-8}},
		{"immediate then fs:(r14)", []byte{0x49, 0xc7, 0xc6, 0xf8, 0xff, 0xff, 0xff, 0x64, 0x4d, 0x8b, 0x36}, []int64{-8}},
		{"setg in a PIE", []byte{0x48, 0x8b, 0x5c, 0x24, 0x08, 0x48, 0xc7, 0xc1, 0xf8, 0xff, 0xff, 0xff, 0x64, 0x48, 0x89, 0x19, 0xc3}, []int64{-8}},
		{"immediate then fs:(r12) via SIB", []byte{0x49, 0xc7, 0xc4, 0xd0, 0xff, 0xff, 0xff, 0x64, 0x4d, 0x8b, 0x34, 0x24}, []int64{-48}},
		{"initial-exec GOT", append(append([]byte{0x4c, 0x8b, 0x35}, ripRel(7)...), 0x64, 0x4d, 0x8b, 0x36), []int64{-48}},
		{"fs access through an unknown register", []byte{0x64, 0x48, 0x8b, 0x01}, nil},
		{"no fs access", []byte{0x48, 0xc7, 0xc1, 0xf8, 0xff, 0xff, 0xff, 0xc3}, nil},
		{"truncated", []byte{0x64, 0x4c, 0x8b, 0x34, 0x25, 0xd0}, nil},
	} {
		got := decodeTLSAccesses(tc.code, codeAddr, im)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
