package gobin

import (
	"errors"
	"fmt"
)

// ProbePoint is where a uprobe on a Go function goes: past the stack-bound
// check, on the instruction that pushes the frame pointer (Go 1.21 and
// later), or on the check's branch (older releases, which make the frame
// with SUBQ). The entry itself is a compare (CMPQ SP, 16(R14)) the kernel
// cannot emulate, so a probe there is single-stepped, ~3× the cost of one
// on a push or a branch, which it emulates. Arguments are still in their
// registers there (Go's register ABI: the first in AX): the check only
// compares and branches.
type ProbePoint struct {
	Symbol
	// Skip is the distance from the entry to the push, in bytes: the
	// uprobe goes at Symbol.Offset + Skip (cilium/ebpf
	// UprobeOptions{Address: Offset, Offset: Skip}).
	Skip uint64
}

// ErrPrologue is returned for a function whose first instructions are not
// a Go stack check followed by a frame-pointer push (a NOSPLIT function, or
// a compiler that lays prologues out differently).
var ErrPrologue = errors.New("gobin: unrecognised function prologue")

// Probe returns the probe point of the function called name.
func (b *Binary) Probe(name string) (ProbePoint, error) {
	if p, ok := b.probes[name]; ok {
		return p, nil
	}
	if err, ok := b.probeErrs[name]; ok {
		return ProbePoint{}, err
	}
	return ProbePoint{}, fmt.Errorf("gobin: %s was not looked at (see probedFuncs)", name)
}

// probedFuncs are the functions whose probe points Inspect finds.
var probedFuncs = []string{"runtime.execute", "runtime.ready"}

func (b *Binary) readProbes(im *image) {
	b.probes = map[string]ProbePoint{}
	b.probeErrs = map[string]error{}
	for _, name := range probedFuncs {
		sym, ok := b.Func(name)
		if !ok {
			b.probeErrs[name] = fmt.Errorf("gobin: no function %s", name)
			continue
		}
		code, err := im.read(sym.Addr, min(sym.Size, 48))
		if err != nil {
			b.probeErrs[name] = err
			continue
		}
		skip, err := afterStackCheck(code)
		if err != nil {
			b.probeErrs[name] = fmt.Errorf("%s: %w", name, err)
			continue
		}
		b.probes[name] = ProbePoint{Symbol: sym, Skip: uint64(skip)}
	}
}

// afterStackCheck returns the offset of the PUSHQ BP that follows the
// stack-bound check at the start of a Go function (amd64), or of the
// check's JLS when no push follows (Go <= 1.20: SUBQ $n, SP):
//
//	CMPQ SP, 16(R14)             49 3b 66 10
//	  or, for frames larger than the guard:
//	LEAQ -n(SP), R12             4c 8d 64 24 xx | 4c 8d a4 24 xx xx xx xx
//	CMPQ R12, 16(R14)            4d 3b 66 10
//	JLS  morestack               76 xx | 0f 86 xx xx xx xx
//	PUSHQ BP                     55
func afterStackCheck(code []byte) (int, error) {
	i := 0
	match := func(b ...byte) bool {
		if len(code)-i < len(b) {
			return false
		}
		for j, c := range b {
			if code[i+j] != c {
				return false
			}
		}
		i += len(b)
		return true
	}
	switch {
	case match(0x49, 0x3b, 0x66, 0x10):
	case match(0x4c, 0x8d, 0x64, 0x24):
		i++ // disp8
		if !match(0x4d, 0x3b, 0x66, 0x10) {
			return 0, ErrPrologue
		}
	case match(0x4c, 0x8d, 0xa4, 0x24):
		i += 4 // disp32
		if !match(0x4d, 0x3b, 0x66, 0x10) {
			return 0, ErrPrologue
		}
	default:
		return 0, ErrPrologue
	}
	jump := i
	switch {
	case match(0x76):
		i++
	case match(0x0f, 0x86):
		i += 4
	default:
		return 0, ErrPrologue
	}
	if i >= len(code) {
		return 0, ErrPrologue
	}
	if code[i] != 0x55 {
		// Go 1.20 and older make the frame with SUBQ/MOVQ, which the
		// kernel single-steps: the branch to morestack is the emulated
		// instruction there (a call that grows the stack passes it twice,
		// which the probe tolerates).
		return jump, nil
	}
	return i, nil
}
