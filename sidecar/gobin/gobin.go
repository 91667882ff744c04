package gobin

import (
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
)

var (
	// ErrNotGo is returned for files that are not Go executables: not ELF
	// at all, or ELF without Go build information (/bin/ls, python3).
	ErrNotGo = errors.New("gobin: not a Go executable")
	// ErrUnsupported is returned for Go executables of another
	// architecture than linux/amd64.
	ErrUnsupported = errors.New("gobin: unsupported executable")
	// ErrUnknownVersion is returned by Offsets and WaitReasons when the
	// binary carries no DWARF (or no symbol table) and the Go release is
	// not in this package's tables.
	ErrUnknownVersion = errors.New("gobin: Go release not in the tables")
)

// Symbol is a function of the inspected binary.
type Symbol struct {
	Name string
	// Addr is the link-time virtual address of the entry. For a PIE it is
	// relative to the load base.
	Addr uint64
	// Offset is the file offset of the entry: what a uprobe is attached to
	// (cilium/ebpf link.UprobeOptions.Address).
	Offset uint64
	// Size is the distance to the next function, so it includes the
	// alignment padding (INT3 bytes) after the code: .gopclntab records
	// where functions start, not where their code ends.
	Size uint64
}

// Binary is what Inspect learnt about a Go executable. Everything is read
// at Inspect time; the file is not kept open, and a Binary is safe for
// concurrent use.
type Binary struct {
	Path string
	// GoVersion is the toolchain that built the binary, e.g. "go1.24.13"
	// (possibly with a suffix such as " X:nodwarf5" or "rc1").
	GoVersion string
	// Major and Minor are parsed from GoVersion: 1 and 24 for go1.24.13.
	Major, Minor int
	// CGO reports CGO_ENABLED=1 in the build settings.
	CGO bool
	// PIE reports a position-independent executable (ELF type ET_DYN).
	PIE bool
	// Stripped reports the absence of a symbol table (.symtab).
	Stripped bool
	// HasDWARF reports debug information (.debug_info), from which the
	// struct offsets are read when present.
	HasDWARF bool
	// TextStart is the address function entries in .gopclntab are relative
	// to (runtime.text); TextFrom says how it was found: "symtab",
	// "moduledata" or "section".
	TextStart uint64
	TextFrom  string

	// GTLSOffset is where the current goroutine's g pointer is stored,
	// relative to the thread's fs base (task->thread.fsbase): *(fsbase +
	// GTLSOffset) is the g. -8 when the Go linker laid out TLS; an external
	// linker may place C thread-locals after runtime.tlsg, moving it.
	// GTLSFrom says how it was found: "code" (decoded from the runtime's
	// own TLS accesses) or "symtab" (runtime.tlsg within PT_TLS); empty
	// when neither worked, see GTLS.
	GTLSOffset int64
	GTLSFrom   string
	gtlsErr    error

	// OffsetsFrom is "dwarf" or "table", or empty when Offsets fails.
	OffsetsFrom string
	offsets     Offsets
	offsetsErr  error

	// WaitReasonsFrom is "binary" (the binary's own
	// runtime.waitReasonStrings) or "table", or empty when WaitReasons
	// fails.
	WaitReasonsFrom string
	waitReasons     []string
	waitReasonsErr  error

	funcs map[string]funcRange
	text  []loadSeg

	probes    map[string]ProbePoint
	probeErrs map[string]error
}

type funcRange struct{ entry, end uint64 }

// Func returns the function called name (a full Go symbol name such as
// "runtime.execute" or "net/http.(*conn).serve"). Functions the compiler
// inlined everywhere have no entry: runtime.goready, for one, exists only
// as closures named <caller>.goready.func1 that call runtime.ready.
func (b *Binary) Func(name string) (Symbol, bool) {
	f, ok := b.funcs[name]
	if !ok {
		return Symbol{}, false
	}
	off, ok := fileOffset(b.text, f.entry)
	if !ok {
		return Symbol{}, false
	}
	return Symbol{Name: name, Addr: f.entry, Offset: off, Size: f.end - f.entry}, true
}

// NumFuncs is the number of functions .gopclntab describes.
func (b *Binary) NumFuncs() int {
	return len(b.funcs)
}

// Offsets returns the struct field offsets the eBPF side reads from the
// process's memory. It fails with ErrUnknownVersion for a binary without
// DWARF built by a Go release missing from the table.
func (b *Binary) Offsets() (Offsets, error) {
	return b.offsets, b.offsetsErr
}

// WaitReasons returns the names of gopark wait reasons indexed by their
// value (g.waitreason) in this binary. It fails with ErrUnknownVersion for a
// stripped binary built by a Go release missing from the table.
func (b *Binary) WaitReasons() ([]string, error) {
	return b.waitReasons, b.waitReasonsErr
}

// GTLS returns GTLSOffset, or why it could not be determined.
func (b *Binary) GTLS() (int64, error) {
	return b.GTLSOffset, b.gtlsErr
}

// Inspect reads the executable at path.
func Inspect(path string) (*Binary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gobin: %w", err)
	}
	defer f.Close()
	b, err := InspectReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b.Path = path
	return b, nil
}

// InspectReader is Inspect over any io.ReaderAt (a file, an mmap, a
// process's /proc/pid/exe, a byte slice in tests).
func InspectReader(r io.ReaderAt) (b *Binary, err error) {
	// The standard debug packages are hardened but not guaranteed against
	// hostile input, and the files inspected belong to arbitrary pods: a
	// panic deep inside them must become an error, not kill the agent.
	defer func() {
		if p := recover(); p != nil {
			b, err = nil, fmt.Errorf("gobin: malformed executable (panic: %v)", p)
		}
	}()
	return inspect(r)
}

var goVersionRE = regexp.MustCompile(`go(\d+)\.(\d+)`)

func inspect(r io.ReaderAt) (*Binary, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%w: not an ELF file: %v", ErrNotGo, err)
	}
	bi, err := buildinfo.Read(r)
	if err != nil {
		if msg := err.Error(); msg != "not a Go executable" {
			return nil, fmt.Errorf("%w: no Go build information: %s", ErrNotGo, msg)
		}
		return nil, fmt.Errorf("%w: ELF without Go build information", ErrNotGo)
	}
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		return nil, fmt.Errorf("%w: %s %s (only linux/amd64 is supported)", ErrUnsupported, f.Class, f.Machine)
	}
	b := &Binary{GoVersion: bi.GoVersion, PIE: f.Type == elf.ET_DYN}
	if m := goVersionRE.FindStringSubmatch(bi.GoVersion); m != nil {
		b.Major, _ = strconv.Atoi(m[1])
		b.Minor, _ = strconv.Atoi(m[2])
	}
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" && s.Value == "1" {
			b.CGO = true
		}
	}

	im := newImage(f, r)
	syms, err := f.Symbols()
	switch {
	case errors.Is(err, elf.ErrNoSymbols):
		b.Stripped = true
	case err != nil:
		return nil, fmt.Errorf("gobin: reading .symtab: %w", err)
	default:
		im.syms = make(map[string]elf.Symbol)
		for _, s := range syms {
			switch s.Name {
			case "runtime.text", "runtime.tlsg", "runtime.waitReasonStrings":
				im.syms[s.Name] = s
			}
		}
	}
	b.HasDWARF = f.Section(".debug_info") != nil || f.Section(".zdebug_info") != nil
	b.text = im.execSegs()

	if err := b.readFuncs(im); err != nil {
		return nil, err
	}
	b.readOffsets(f)
	b.readGTLS(im)
	b.readWaitReasons(im)
	b.readProbes(im)
	return b, nil
}

// readFuncs builds the function table from .gopclntab. Go >= 1.18 stores
// entries relative to runtime.text, which the table's header no longer
// records (it needed a relocation), so the text start comes from the symbol
// table, or for stripped binaries from runtime.firstmoduledata, found as the
// data word that points at the pclntab header.
func (b *Binary) readFuncs(im *image) error {
	addr, data, err := im.pclntab()
	if err != nil {
		return err
	}
	switch s, ok := im.syms["runtime.text"]; {
	case ok:
		b.TextStart, b.TextFrom = s.Value, "symtab"
	default:
		if t, ok := im.moduledataText(addr, data); ok {
			b.TextStart, b.TextFrom = t, "moduledata"
		} else if sec := im.f.Section(".text"); sec != nil {
			// Right for the Go linker, which starts .text with
			// runtime.text; an external linker puts C code first.
			b.TextStart, b.TextFrom = sec.Addr, "section"
		} else {
			return errors.New("gobin: cannot find the start of the text (runtime.text)")
		}
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, b.TextStart))
	if err != nil {
		return fmt.Errorf("gobin: parsing .gopclntab: %w", err)
	}
	if len(tab.Funcs) == 0 {
		return errors.New("gobin: .gopclntab lists no functions")
	}
	// A map rather than the gosym.Table: lookups by name are all the
	// agent does, the table's linear search is slow on large binaries, and
	// the map does not pin the pclntab bytes.
	b.funcs = make(map[string]funcRange, len(tab.Funcs))
	for _, f := range tab.Funcs {
		if _, dup := b.funcs[f.Name]; !dup && f.End >= f.Entry {
			b.funcs[f.Name] = funcRange{f.Entry, f.End}
		}
	}
	return nil
}

// loadSeg is a PT_LOAD segment's file-backed part.
type loadSeg struct {
	vaddr, off, filesz uint64
	flags              elf.ProgFlag
}

func fileOffset(segs []loadSeg, addr uint64) (uint64, bool) {
	for _, s := range segs {
		if addr >= s.vaddr && addr-s.vaddr < s.filesz {
			return addr - s.vaddr + s.off, true
		}
	}
	return 0, false
}

// maxRead bounds every allocation driven by numbers in the file, so a
// garbled header cannot make the agent allocate gigabytes.
const maxRead = 256 << 20

// image gives access to an ELF executable by virtual address.
type image struct {
	f       *elf.File
	r       io.ReaderAt
	loads   []loadSeg
	syms    map[string]elf.Symbol // nil when stripped
	relocs  []relative            // sorted by off; nil until needed
	relDone bool
}

// relative is an R_X86_64_RELATIVE dynamic relocation: the word at off is
// load base + addend at run time. In a PIE file the word itself usually
// holds zero, so pointers in data must be read through these.
type relative struct{ off, addend uint64 }

func newImage(f *elf.File, r io.ReaderAt) *image {
	im := &image{f: f, r: r}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Filesz > 0 {
			im.loads = append(im.loads, loadSeg{vaddr: p.Vaddr, off: p.Off, filesz: p.Filesz, flags: p.Flags})
		}
	}
	return im
}

func (im *image) execSegs() []loadSeg {
	var out []loadSeg
	for _, s := range im.loads {
		if s.flags&elf.PF_X != 0 {
			out = append(out, s)
		}
	}
	return out
}

// read returns n bytes at virtual address addr, which must lie in the
// file-backed part of one PT_LOAD segment.
func (im *image) read(addr, n uint64) ([]byte, error) {
	if n > maxRead {
		return nil, fmt.Errorf("gobin: read of %d bytes at %#x is implausibly large", n, addr)
	}
	for _, s := range im.loads {
		if addr >= s.vaddr && addr-s.vaddr < s.filesz {
			if n > s.filesz-(addr-s.vaddr) {
				break
			}
			buf := make([]byte, n)
			if _, err := im.r.ReadAt(buf, int64(addr-s.vaddr+s.off)); err != nil {
				return nil, fmt.Errorf("gobin: reading %d bytes at %#x: %w", n, addr, err)
			}
			return buf, nil
		}
	}
	return nil, fmt.Errorf("gobin: %d bytes at %#x are not in a loaded segment", n, addr)
}

// segment returns the whole file-backed part of a segment.
func (im *image) segment(s loadSeg) ([]byte, error) {
	return im.read(s.vaddr, s.filesz)
}

func (im *image) loadRelocs() {
	if im.relDone {
		return
	}
	im.relDone = true
	if im.f.Type != elf.ET_DYN {
		return
	}
	for _, sec := range im.f.Sections {
		if sec.Type != elf.SHT_RELA || sec.Flags&elf.SHF_ALLOC == 0 || sec.Size > maxRead {
			continue
		}
		data, err := sec.Data()
		if err != nil {
			continue
		}
		for i := 0; i+24 <= len(data); i += 24 {
			info := binary.LittleEndian.Uint64(data[i+8:])
			if elf.R_X86_64(elf.R_TYPE64(info)) != elf.R_X86_64_RELATIVE {
				continue
			}
			im.relocs = append(im.relocs, relative{
				off:    binary.LittleEndian.Uint64(data[i:]),
				addend: binary.LittleEndian.Uint64(data[i+16:]),
			})
		}
	}
	sort.Slice(im.relocs, func(i, j int) bool { return im.relocs[i].off < im.relocs[j].off })
}

// ptr reads a pointer-sized word as the loader would leave it (for a PIE,
// relative to a load base of zero).
func (im *image) ptr(addr uint64) (uint64, error) {
	buf, err := im.read(addr, 8)
	if err != nil {
		return 0, err
	}
	v := binary.LittleEndian.Uint64(buf)
	if v != 0 || im.f.Type != elf.ET_DYN {
		return v, nil
	}
	im.loadRelocs()
	i := sort.Search(len(im.relocs), func(i int) bool { return im.relocs[i].off >= addr })
	if i < len(im.relocs) && im.relocs[i].off == addr {
		return im.relocs[i].addend, nil
	}
	return 0, nil
}

// Magic numbers of the pclntab header (runtime/symtab.go pcHeader) for the
// layouts debug/gosym can read.
var pclnMagics = []uint32{0xfffffff1 /* 1.20 */, 0xfffffff0 /* 1.18 */, 0xfffffffa /* 1.16 */, 0xfffffffb /* 1.2 */}

// pclntab finds the function table: the .gopclntab section, or, when a
// linker merged it into another section (PIE builds by some toolchains),
// the header magic inside a non-executable segment.
func (im *image) pclntab() (uint64, []byte, error) {
	if sec := im.f.Section(".gopclntab"); sec != nil && sec.Type != elf.SHT_NOBITS {
		if sec.Size > maxRead {
			return 0, nil, fmt.Errorf("gobin: .gopclntab of %d bytes is implausibly large", sec.Size)
		}
		data, err := sec.Data()
		if err != nil {
			return 0, nil, fmt.Errorf("gobin: reading .gopclntab: %w", err)
		}
		if validPclnHeader(data) {
			return sec.Addr, data, nil
		}
	}
	for _, s := range im.loads {
		if s.flags&elf.PF_X != 0 {
			continue
		}
		data, err := im.segment(s)
		if err != nil {
			continue
		}
		for i := 0; i+64 <= len(data); i += 8 {
			if validPclnHeader(data[i:]) {
				return s.vaddr + uint64(i), data[i:], nil
			}
		}
	}
	return 0, nil, errors.New("gobin: no .gopclntab found")
}

func validPclnHeader(d []byte) bool {
	if len(d) < 64 {
		return false
	}
	magic := binary.LittleEndian.Uint32(d)
	known := false
	for _, m := range pclnMagics {
		known = known || magic == m
	}
	// pad1, pad2 = 0; minLC = 1 on x86; ptrSize = 8.
	if !known || d[4] != 0 || d[5] != 0 || d[6] != 1 || d[7] != 8 {
		return false
	}
	nfunc := binary.LittleEndian.Uint64(d[8:])
	return nfunc > 0 && nfunc < uint64(len(d))
}

// moduledataText finds runtime.firstmoduledata — the first field of which
// points at the pclntab header — and returns its text field. The layout
// (pcHeader, five slices, ftab slice, findfunctab, minpc, maxpc, text, ...)
// has been the same from Go 1.18 to 1.27.
func (im *image) moduledataText(pclnAddr uint64, pcln []byte) (uint64, bool) {
	if m := binary.LittleEndian.Uint32(pcln); m == 0xfffffffa || m == 0xfffffffb {
		return 0, false // before Go 1.18 entries are absolute; text is unused
	}
	funcnameOff := binary.LittleEndian.Uint64(pcln[32:])
	check := func(md uint64) (uint64, bool) {
		var w [23]uint64
		for i := range w {
			v, err := im.ptr(md + uint64(i)*8)
			if err != nil {
				return 0, false
			}
			w[i] = v
		}
		// w[0] pcHeader, w[1..3] funcnametab, w[20..21] minpc/maxpc,
		// w[22] text.
		if w[0] != pclnAddr || w[1] != pclnAddr+funcnameOff || w[22] == 0 ||
			w[20] < w[22] || w[21] <= w[20] {
			return 0, false
		}
		return w[22], true
	}
	var want [8]byte
	binary.LittleEndian.PutUint64(want[:], pclnAddr)
	for _, s := range im.loads {
		if s.flags&elf.PF_W == 0 {
			continue
		}
		data, err := im.segment(s)
		if err != nil {
			continue
		}
		for i := 0; i+8 <= len(data); i += 8 {
			if bytes.Equal(data[i:i+8], want[:]) {
				if t, ok := check(s.vaddr + uint64(i)); ok {
					return t, true
				}
			}
		}
	}
	if im.f.Type == elf.ET_DYN {
		im.loadRelocs()
		for _, r := range im.relocs {
			if r.addend == pclnAddr {
				if t, ok := check(r.off); ok {
					return t, true
				}
			}
		}
	}
	return 0, false
}

// Runtime assembly functions that store or load g through TLS on every
// supported release (asm_amd64.s: get_tls(CX); MOVQ BX, g(CX)).
var gTLSFuncs = []string{"runtime.setg", "runtime.gogo", "runtime.systemstack"}

// readGTLS finds where g lives relative to fs. The runtime's own TLS
// accesses say it best: whatever TLS model the linker chose, by the time the
// executable exists the offset is a constant in the code (local-exec
// `mov %fs:disp32`, `mov $imm, %reg; mov %fs:(%reg)` or, unrelaxed
// initial-exec, a GOT word). runtime.tlsg within PT_TLS is the cross-check
// when the symbol table survived.
func (b *Binary) readGTLS(im *image) {
	code, codeErr := b.gtlsFromCode(im)
	sym, symOK := im.gtlsFromSymtab()
	switch {
	case codeErr == nil && symOK && code != sym:
		b.gtlsErr = fmt.Errorf("gobin: g's TLS offset: the runtime code uses %d but runtime.tlsg is at %d", code, sym)
	case codeErr == nil:
		b.GTLSOffset, b.GTLSFrom = code, "code"
	case symOK:
		b.GTLSOffset, b.GTLSFrom = sym, "symtab"
	default:
		b.gtlsErr = codeErr
	}
}

func (b *Binary) gtlsFromCode(im *image) (int64, error) {
	var found []int64
	for _, name := range gTLSFuncs {
		s, ok := b.Func(name)
		if !ok || s.Size == 0 || s.Size > 4096 {
			continue
		}
		code, err := im.read(s.Addr, s.Size)
		if err != nil {
			continue
		}
		found = append(found, decodeTLSAccesses(code, s.Addr, im)...)
	}
	if len(found) == 0 {
		return 0, fmt.Errorf("gobin: no TLS access to g recognised in %v", gTLSFuncs)
	}
	for _, v := range found[1:] {
		if v != found[0] {
			return 0, fmt.Errorf("gobin: the runtime accesses g at several TLS offsets: %v", found)
		}
	}
	return found[0], nil
}

// gtlsFromSymtab computes runtime.tlsg's offset from the thread pointer
// under the x86-64 ELF TLS ABI (variant II: the executable's block ends at
// the thread pointer, so an offset in the block maps to value - aligned
// block size).
func (im *image) gtlsFromSymtab() (int64, bool) {
	s, ok := im.syms["runtime.tlsg"]
	if !ok || elf.ST_TYPE(s.Info) != elf.STT_TLS {
		return 0, false
	}
	for _, p := range im.f.Progs {
		if p.Type != elf.PT_TLS {
			continue
		}
		align := p.Align
		if align == 0 {
			align = 1
		}
		size := (p.Memsz + align - 1) / align * align
		return int64(s.Value) - int64(size), true
	}
	return 0, false
}

// decodeTLSAccesses returns the fs-relative offsets of the g slot used by
// the fs-prefixed MOVs in code. It recognises only the forms the Go
// assembler and linkers emit for get_tls/g(CX), not general x86.
func decodeTLSAccesses(code []byte, addr uint64, im *image) []int64 {
	var out []int64
	// regVal[r] is the TLS offset last loaded into register r by
	// `mov $imm32, %r` or `mov GOT(%rip), %r`, with the position after it.
	type load struct {
		val int64
		end int
	}
	regVal := map[int]load{}
	for i := 0; i < len(code); i++ {
		rex := byte(0)
		j := i
		if code[j]&0xf0 == 0x40 {
			rex = code[j]
			j++
		}
		if j+1 >= len(code) {
			break
		}
		// mov $imm32, %r64: REX.W C7 /0 (mod=11).
		if rex&0x08 != 0 && code[j] == 0xc7 && code[j+1]&0xf8 == 0xc0 && j+6 <= len(code) {
			r := int(code[j+1]&7) | int(rex&1)<<3
			regVal[r] = load{int64(int32(binary.LittleEndian.Uint32(code[j+2:]))), j + 6}
			continue
		}
		// mov disp32(%rip), %r64: REX.W 8B /r (mod=00, rm=101).
		if rex&0x08 != 0 && code[j] == 0x8b && code[j+1]&0xc7 == 0x05 && j+6 <= len(code) {
			r := int(code[j+1]>>3&7) | int(rex>>2&1)<<3
			next := addr + uint64(j+6)
			got := next + uint64(int64(int32(binary.LittleEndian.Uint32(code[j+2:]))))
			if v, err := im.ptr(got); err == nil && v != 0 {
				regVal[r] = load{int64(v), j + 6}
			}
			continue
		}
		if code[i] != 0x64 {
			continue
		}
		// %fs-prefixed MOV to or from memory.
		j = i + 1
		rex = 0
		if j < len(code) && code[j]&0xf0 == 0x40 {
			rex = code[j]
			j++
		}
		if j+1 >= len(code) || (code[j] != 0x89 && code[j] != 0x8b) || rex&0x08 == 0 {
			continue
		}
		modrm := code[j+1]
		if modrm>>6 != 0 {
			continue
		}
		base := -1
		switch rm := modrm & 7; rm {
		case 4: // SIB
			if j+2 >= len(code) {
				continue
			}
			sib := code[j+2]
			if sib>>3&7 != 4 { // an index register: not a get_tls form
				continue
			}
			if sib&7 == 5 { // no base: absolute disp32
				if j+7 <= len(code) {
					out = append(out, int64(int32(binary.LittleEndian.Uint32(code[j+3:]))))
				}
				continue
			}
			base = int(sib&7) | int(rex&1)<<3
		case 5: // rip-relative: never used for %fs
			continue
		default:
			base = int(rm) | int(rex&1)<<3
		}
		if l, ok := regVal[base]; ok && i-l.end <= 16 && i >= l.end {
			out = append(out, l.val)
		}
	}
	return out
}
