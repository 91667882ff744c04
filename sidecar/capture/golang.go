package capture

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tracecam/tracecam/bpf"
	"github.com/tracecam/tracecam/sidecar/event"
	"github.com/tracecam/tracecam/sidecar/gobin"
)

// maxGoBinaries is GO_LAYOUTS in camera.bpf.c: distinct Go binaries one
// camera follows.
const maxGoBinaries = 64

// ErrTooManyGoBinaries is returned by FollowGo once maxGoBinaries binaries
// are followed; the pod's other Go programs stay on estimated accounting.
var ErrTooManyGoBinaries = errors.New("capture: too many distinct Go binaries in the pod")

// waitCats maps gobin's wait classes to the kernel's counter indices.
var waitCats = map[string]uint8{
	gobin.ClassNet:   event.CatNet,
	gobin.ClassSleep: event.CatSleep,
	gobin.ClassLock:  event.CatLock,
	gobin.ClassChan:  event.CatQueue,
	gobin.ClassGC:    event.CatGC,
	gobin.ClassIdle:  event.CatOther,
}

// GoLayout is what the kernel programs need to know of a Go binary's
// runtime (struct go_layout): the offsets of g.goid, g.atomicstatus,
// g.waitreason, g.m and m.curg, where the thread's g pointer sits, and
// each wait reason's category.
func GoLayout(b *gobin.Binary) (bpf.CameraGoLayout, error) {
	var l bpf.CameraGoLayout
	off, err := b.Offsets()
	if err != nil {
		return l, fmt.Errorf("runtime struct offsets: %w", err)
	}
	tls, err := b.GTLS()
	if err != nil {
		return l, fmt.Errorf("g's TLS slot: %w", err)
	}
	reasons, err := b.WaitReasons()
	if err != nil {
		return l, fmt.Errorf("wait reasons: %w", err)
	}
	l.G_goid, l.G_status, l.G_waitreason, l.TlsG = off.G.Goid, off.G.AtomicStatus, off.G.WaitReason, tls
	l.G_m, l.M_curg, l.M_g0 = off.G.M, off.M.Curg, off.M.G0
	for i := range l.WaitCat {
		l.WaitCat[i] = event.CatOther
		if i < len(reasons) {
			l.WaitCat[i] = waitCats[gobin.WaitClass(reasons[i])]
		}
	}
	return l, nil
}

// FollowGo attaches the goroutine probes (runtime.execute, runtime.ready)
// to the Go binary at path (e.g. /proc/<pid>/exe, which opens the file in
// the process's own mount namespace), described by b. Every process of
// the pod running that binary is then followed goroutine by goroutine;
// one call per distinct binary.
func (c *Camera) FollowGo(path string, b *gobin.Binary) error {
	layout, err := GoLayout(b)
	if err != nil {
		return err
	}
	exec, err := b.Probe("runtime.execute")
	if err != nil {
		return err
	}
	layout.ExecLen = uint32(exec.Size - exec.Skip)
	if st, ok := b.Func("runtime.sigtramp"); ok {
		layout.SigtrampDelta = int64(st.Addr) - int64(exec.Addr+exec.Skip)
	}
	ready, err := b.Probe("runtime.ready")
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("capture: camera closed")
	}
	if c.goBinaries >= maxGoBinaries {
		return ErrTooManyGoBinaries
	}
	idx := uint32(c.goBinaries)
	if err := c.objs.GoLayouts.Put(idx, &layout); err != nil {
		return fmt.Errorf("writing go_layouts[%d]: %w", idx, err)
	}
	ex, err := link.OpenExecutable(path)
	if err != nil {
		return fmt.Errorf("opening %s for uprobes: %w", path, err)
	}
	var links []link.Link
	for _, p := range []struct {
		pp   gobin.ProbePoint
		prog *ebpf.Program
	}{{exec, c.objs.GoExecute}, {ready, c.objs.GoReady}} {
		var l link.Link
		if c.uprobeMulti {
			l, err = ex.UprobeMulti(nil, p.prog, &link.UprobeMultiOptions{
				Addresses: []uint64{p.pp.Offset + p.pp.Skip}, Cookies: []uint64{uint64(idx)}})
		} else {
			l, err = ex.Uprobe(p.pp.Name, p.prog, &link.UprobeOptions{Address: p.pp.Offset, Offset: p.pp.Skip, Cookie: uint64(idx)})
			if errors.Is(err, os.ErrPermission) {
				err = fmt.Errorf("%w (this kernel has no uprobe_multi links, 6.6+: its perf-event uprobes need CAP_SYS_ADMIN)", err)
			}
		}
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			return fmt.Errorf("attaching uprobe %s+%d of %s: %w", p.pp.Name, p.pp.Skip, path, err)
		}
		links = append(links, l)
	}
	c.goBinaries++
	c.links = append(c.links, links...)
	kind := "uprobe"
	if c.uprobeMulti {
		kind = "uprobe_multi"
	}
	c.probes = append(c.probes, fmt.Sprintf("%s/%s:runtime.execute,runtime.ready (%s)", kind, path, b.GoVersion))
	return nil
}
