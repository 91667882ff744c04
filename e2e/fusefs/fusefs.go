// Package fusefs is slow storage for end-to-end tests: a flat directory of
// files held in memory and served over FUSE by the calling process, whose
// data operations (read, write, fsync) take an injected latency, per file.
// It counts, for every file, the operations it served and the time it took
// to serve them: the ground truth of "the storage was slow" that a test
// compares a profiler's file waits with.
//
// It mounts with mount(2) itself (go-fuse's DirectMountStrict), so it needs
// root (CAP_SYS_ADMIN) and /dev/fuse, but no fusermount binary. Files are
// opened with FOPEN_DIRECT_IO: every read(2) and write(2) of a client
// reaches the filesystem (no page cache in between), so each pays the
// latency, as on network block storage.
package fusefs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Latency is the time each operation on a file takes before it is served.
type Latency struct {
	Read, Write, Fsync time.Duration
}

// Op is what the filesystem served of one kind of operation on one file.
type Op struct {
	Count int
	Bytes int64
	// Time is how long serving them took, measured by the filesystem from
	// the request's arrival to its answer (the latency plus the work).
	Time time.Duration
}

// FileStats is what the filesystem served for one file.
type FileStats struct {
	Read, Write, Fsync Op
}

// Time is the total time spent serving the file's operations.
func (s FileStats) Time() time.Duration { return s.Read.Time + s.Write.Time + s.Fsync.Time }

// Config sets up a mount.
type Config struct {
	// Files are there from the start, by name, with their content.
	Files map[string][]byte
	// Default applies to files without their own Latency.
	Default Latency
	// Latency, by file name, overrides Default.
	Latency map[string]Latency
}

// FS is a mounted filesystem.
type FS struct {
	dir    string
	server *fuse.Server

	mu      sync.Mutex
	def     Latency
	latency map[string]Latency
	stats   map[string]*FileStats
}

// Mount mounts a new filesystem on dir (an existing, empty directory).
// Unmount it when done.
func Mount(dir string, cfg Config) (*FS, error) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("fusefs: no /dev/fuse (the kernel's FUSE module): %w", err)
	}
	f := &FS{dir: dir, def: cfg.Default, latency: map[string]Latency{}, stats: map[string]*FileStats{}}
	for name, l := range cfg.Latency {
		f.latency[name] = l
	}
	root := &dirNode{fs: f, initial: cfg.Files}
	server, err := fs.Mount(dir, root, &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true, // mount(2), no fusermount
			FsName:            "tracecam-slowfs",
			Name:              "slowfs",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("fusefs: mounting on %s: %w", dir, err)
	}
	f.server = server
	return f, nil
}

// Dir is where the filesystem is mounted.
func (f *FS) Dir() string { return f.dir }

// SetLatency sets the latency of one file's operations from now on.
func (f *FS) SetLatency(name string, l Latency) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency[name] = l
}

// Stats returns, by file name, what was served so far.
func (f *FS) Stats() map[string]FileStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]FileStats, len(f.stats))
	for k, v := range f.stats {
		out[k] = *v
	}
	return out
}

// Names returns the names of the files that served anything, sorted.
func (f *FS) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.stats {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ResetStats forgets what was served so far.
func (f *FS) ResetStats() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats = map[string]*FileStats{}
}

// Unmount unmounts the filesystem, lazily (MNT_DETACH) if a process still
// holds it busy, and waits for the server to stop.
func (f *FS) Unmount() error {
	if f.server == nil {
		return nil
	}
	err := f.server.Unmount()
	if err != nil {
		if derr := syscall.Unmount(f.dir, syscall.MNT_DETACH); derr != nil && !errors.Is(derr, syscall.EINVAL) {
			return fmt.Errorf("fusefs: unmounting %s: %v; lazily: %w", f.dir, err, derr)
		}
		err = nil
	}
	f.server.Wait()
	f.server = nil
	return err
}

func (f *FS) latencyOf(name string) Latency {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.latency[name]; ok {
		return l
	}
	return f.def
}

// serve runs op for file name after the injected delay and records it.
func (f *FS) serve(ctx context.Context, name string, kind string, bytes func() int64, op func()) {
	start := time.Now()
	l := f.latencyOf(name)
	var d time.Duration
	switch kind {
	case "read":
		d = l.Read
	case "write":
		d = l.Write
	case "fsync":
		d = l.Fsync
	}
	if d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done(): // the client was interrupted
		}
	}
	op()
	took := time.Since(start)
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.stats[name]
	if s == nil {
		s = &FileStats{}
		f.stats[name] = s
	}
	var o *Op
	switch kind {
	case "read":
		o = &s.Read
	case "write":
		o = &s.Write
	default:
		o = &s.Fsync
	}
	o.Count++
	o.Time += took
	if bytes != nil {
		o.Bytes += bytes()
	}
}

// dirNode is the (only) directory: the mount's root.
type dirNode struct {
	fs.Inode
	fs      *FS
	initial map[string][]byte
}

var (
	_ fs.NodeOnAdder  = (*dirNode)(nil)
	_ fs.NodeCreater  = (*dirNode)(nil)
	_ fs.NodeUnlinker = (*dirNode)(nil)
)

func (d *dirNode) OnAdd(ctx context.Context) {
	for name, data := range d.initial {
		n := &fileNode{fs: d.fs, name: name, data: append([]byte(nil), data...)}
		d.AddChild(name, d.NewPersistentInode(ctx, n, fs.StableAttr{Mode: fuse.S_IFREG}), false)
	}
}

func (d *dirNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	n := &fileNode{fs: d.fs, name: name}
	ch := d.NewInode(ctx, n, fs.StableAttr{Mode: fuse.S_IFREG})
	n.attr(&out.Attr)
	return ch, nil, fuse.FOPEN_DIRECT_IO, 0
}

func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno { return 0 }

// fileNode is a regular file held in memory.
type fileNode struct {
	fs.Inode
	fs   *FS
	name string

	mu   sync.Mutex
	data []byte
}

var (
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeWriter    = (*fileNode)(nil)
	_ fs.NodeFsyncer   = (*fileNode)(nil)
	_ fs.NodeFlusher   = (*fileNode)(nil)
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeSetattrer = (*fileNode)(nil)
)

func (n *fileNode) attr(a *fuse.Attr) {
	a.Mode = fuse.S_IFREG | 0o644
	a.Size = uint64(len(n.data))
	a.Blocks = (a.Size + 511) / 512
}

func (n *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		n.mu.Lock()
		n.data = nil
		n.mu.Unlock()
	}
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (n *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.attr(&out.Attr)
	return 0
}

func (n *fileNode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	if sz, ok := in.GetSize(); ok {
		if sz <= uint64(len(n.data)) {
			n.data = n.data[:sz]
		} else {
			n.data = append(n.data, make([]byte, sz-uint64(len(n.data)))...)
		}
	}
	n.attr(&out.Attr)
	return 0
}

func (n *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	var res []byte
	n.fs.serve(ctx, n.name, "read", func() int64 { return int64(len(res)) }, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		off = min(off, int64(len(n.data)))
		end := min(off+int64(len(dest)), int64(len(n.data)))
		res = append([]byte(nil), n.data[off:end]...)
	})
	return fuse.ReadResultData(res), 0
}

func (n *fileNode) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	n.fs.serve(ctx, n.name, "write", func() int64 { return int64(len(data)) }, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if end := off + int64(len(data)); end > int64(len(n.data)) {
			n.data = append(n.data, make([]byte, end-int64(len(n.data)))...)
		}
		copy(n.data[off:], data)
	})
	return uint32(len(data)), 0
}

func (n *fileNode) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	n.fs.serve(ctx, n.name, "fsync", nil, func() {})
	return 0
}

func (n *fileNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }
