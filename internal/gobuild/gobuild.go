package gobuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Toolchains the tests cover besides the machine's own go.
const (
	// Newest is the newest Go release known to this package.
	Newest = "go1.27.3"
	// OldestSupported is a patch release of the oldest minor the Go project
	// still supports (the two newest minors are supported).
	OldestSupported = "go1.26.11"
	// OldLayout predates Go 1.23, which added g.syscallbp and so moved
	// g.goid and everything after it.
	OldLayout = "go1.22.12"
	// OldPrologue is the last release whose functions make their frame
	// with SUBQ rather than a frame-pointer push (Go 1.21 added the push),
	// where a uprobe must sit elsewhere; the oldest the offset tables cover.
	OldPrologue = "go1.20.14"
)

// ErrToolchainUnavailable is returned when the go command cannot provide
// the requested toolchain, typically because the Go module proxy is
// unreachable. Tests skip on it.
var ErrToolchainUnavailable = errors.New("gobuild: Go toolchain unavailable")

// Options choose how Build builds.
type Options struct {
	// Toolchain is a Go release such as "go1.22.12", fetched by the go
	// command from the module proxy when missing; "" means the go command
	// on PATH as it is.
	Toolchain string
	// Stripped builds with -ldflags="-s -w": no symbol table, no DWARF.
	Stripped bool
	// CGO sets CGO_ENABLED=1; a program with its own C code is then linked
	// by the external (C) linker.
	CGO bool
	// PIE builds a position-independent executable (-buildmode=pie).
	PIE bool
	// CacheDir keeps built binaries; "" means
	// os.UserCacheDir()/tracecam-gobuild.
	CacheDir string
}

func (o Options) String() string {
	tc := o.Toolchain
	if tc == "" {
		tc = "local"
	}
	s := tc
	if o.Stripped {
		s += "-stripped"
	}
	if o.CGO {
		s += "-cgo"
	}
	if o.PIE {
		s += "-pie"
	}
	return s
}

// Versions returns the toolchains tests should cover: OldLayout, the
// oldest supported release, Newest and the machine's own go, at most one
// per minor release (the machine's wins: it needs no download), oldest
// first. The machine's go is "" when its version is not a release (a
// development build).
func Versions() []string {
	local := runtime.Version()
	if !releaseRE.MatchString(local) {
		local = ""
	}
	byMinor := map[string]string{}
	var out []string
	add := func(v string, replace bool) {
		m := minorOf(v)
		if old, ok := byMinor[m]; ok {
			if replace {
				for i := range out {
					if out[i] == old {
						out[i] = v
					}
				}
				byMinor[m] = v
			}
			return
		}
		byMinor[m] = v
		out = append(out, v)
	}
	add(OldLayout, false)
	add(OldestSupported, false)
	add(Newest, false)
	if local == "" {
		out = append(out, "")
	} else {
		add(local, true)
	}
	sort.SliceStable(out, func(i, j int) bool { return versionLess(out[i], out[j]) })
	return out
}

var releaseRE = regexp.MustCompile(`^go1\.(\d+)(\.\d+)?$`)

func minorOf(v string) string {
	if m := releaseRE.FindStringSubmatch(v); m != nil {
		return m[1]
	}
	return v
}

// versionLess orders releases numerically; "" (a development build) last.
func versionLess(a, b string) bool {
	if a == "" || b == "" {
		return b == "" && a != ""
	}
	pa, pb := versionParts(a), versionParts(b)
	for i := range pa {
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return false
}

func versionParts(v string) [3]int {
	var p [3]int
	fmt.Sscanf(strings.TrimPrefix(v, "go"), "%d.%d.%d", &p[0], &p[1], &p[2])
	return p
}

var (
	// buildSem serialises builds within the process; the lock file in the
	// cache directory serialises them across test processes.
	buildSem = make(chan struct{}, 1)

	resolveMu sync.Mutex
	resolved  = map[string]string{} // requested toolchain -> its GOVERSION
)

// Build builds the main package in dir (which has its own go.mod) into the
// executable out. A previous build with the same toolchain, options and
// sources is reused from the cache.
func Build(ctx context.Context, dir, out string, opts Options) error {
	if out == "" {
		return errors.New("gobuild: no output path")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("gobuild: %w", err)
	}
	version, err := resolveToolchain(ctx, opts.Toolchain)
	if err != nil {
		return err
	}
	src, err := hashSources(dir)
	if err != nil {
		return err
	}
	cacheDir := opts.CacheDir
	if cacheDir == "" {
		ucd, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("gobuild: no cache directory: %w", err)
		}
		cacheDir = filepath.Join(ucd, "tracecam-gobuild")
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fmt.Errorf("gobuild: %w", err)
	}
	key := cacheKey(version, opts, src)
	named := opts
	named.Toolchain = version
	entry := filepath.Join(cacheDir, fmt.Sprintf("%s-%s", named, key))
	if _, err := os.Stat(entry); err != nil {
		if err := buildEntry(ctx, dir, entry, cacheDir, opts); err != nil {
			return err
		}
		prune(cacheDir, time.Now().Add(-unusedFor))
	} else {
		// The modification time records the last use, for prune.
		now := time.Now()
		os.Chtimes(entry, now, now)
	}
	return copyFile(entry, out)
}

// unusedFor is how long a cached binary may go unused before a later build
// deletes it: every edit of a test program leaves a full set of stale
// binaries behind.
const unusedFor = 14 * 24 * time.Hour

func prune(cacheDir string, before time.Time) {
	des, err := os.ReadDir(cacheDir)
	if err != nil {
		return
	}
	for _, de := range des {
		if de.Name() == "build.lock" || !de.Type().IsRegular() {
			continue
		}
		if fi, err := de.Info(); err == nil && fi.ModTime().Before(before) {
			os.Remove(filepath.Join(cacheDir, de.Name()))
		}
	}
}

// cacheKey identifies a build; format bumps invalidate old entries when the
// way of building changes.
func cacheKey(version string, opts Options, src string) string {
	const format = "gobuild-v1"
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s/%s\x00stripped=%t cgo=%t pie=%t\x00%s\x00CC=%s",
		format, version, runtime.GOOS, runtime.GOARCH, opts.Stripped, opts.CGO, opts.PIE, src, os.Getenv("CC"))
	return hex.EncodeToString(h.Sum(nil))[:24]
}

func buildEntry(ctx context.Context, dir, entry, cacheDir string, opts Options) error {
	select {
	case buildSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("gobuild: waiting for another build: %w", ctx.Err())
	}
	defer func() { <-buildSem }()
	unlock, err := lockFile(ctx, filepath.Join(cacheDir, "build.lock"))
	if err != nil {
		return err
	}
	defer unlock()
	// Another process may have built it while this one waited.
	if _, err := os.Stat(entry); err == nil {
		return nil
	}
	tmp, err := os.CreateTemp(cacheDir, filepath.Base(entry)+".tmp*")
	if err != nil {
		return fmt.Errorf("gobuild: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	defer os.Remove(tmpName)

	args := []string{"build", "-trimpath", "-o", tmpName}
	if opts.Stripped {
		args = append(args, "-ldflags=-s -w")
	}
	if opts.PIE {
		args = append(args, "-buildmode=pie")
	}
	args = append(args, ".")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cgo := "0"
	if opts.CGO {
		cgo = "1"
	}
	cmd.Env = goEnv(opts.Toolchain, "CGO_ENABLED="+cgo)
	outBytes, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("gobuild: go %s in %s (%s): %w\n%s", strings.Join(args, " "), dir, opts, err, outBytes)
	}
	if err := os.Chmod(tmpName, 0o755); err != nil {
		return fmt.Errorf("gobuild: %w", err)
	}
	if err := os.Rename(tmpName, entry); err != nil {
		return fmt.Errorf("gobuild: %w", err)
	}
	return nil
}

// goEnv is the environment for the go command: the caller's, with the
// toolchain pinned and module mode made independent of the repository the
// test runs in (its go.work, its GOFLAGS).
func goEnv(toolchain string, extra ...string) []string {
	tc := toolchain
	if tc == "" {
		tc = "local"
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOROOT", "GOTOOLCHAIN", "GOFLAGS", "GOWORK", "CGO_ENABLED":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "GOTOOLCHAIN="+tc, "GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off")
	return append(env, extra...)
}

// resolveToolchain returns the go version a toolchain setting yields,
// downloading the toolchain if needed; the answer is part of the cache key,
// so "" (the local go) is keyed by what it really is.
func resolveToolchain(ctx context.Context, toolchain string) (string, error) {
	resolveMu.Lock()
	defer resolveMu.Unlock()
	if v, ok := resolved[toolchain]; ok {
		return v, nil
	}
	cmd := exec.CommandContext(ctx, "go", "env", "GOVERSION")
	// Outside any module, so no go.mod can refuse the toolchain.
	cmd.Dir = os.TempDir()
	cmd.Env = goEnv(toolchain)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("gobuild: resolving toolchain %q: %w", toolchain, ctx.Err())
		}
		return "", fmt.Errorf("%w: %q: %v\n%s", ErrToolchainUnavailable, toolchain, err, stderr.Bytes())
	}
	v := strings.TrimSpace(string(out))
	if toolchain != "" && v != toolchain {
		return "", fmt.Errorf("%w: asked for %s, the go command runs %s", ErrToolchainUnavailable, toolchain, v)
	}
	if v == "" || strings.ContainsAny(v, "/ \t") {
		v = "devel-" + strings.Map(func(r rune) rune {
			if r == '/' || r == ' ' || r == '\t' || r == ':' {
				return '_'
			}
			return r
		}, v)
	}
	resolved[toolchain] = v
	return v, nil
}

// hashSources hashes every regular file under dir (names and contents), so
// an edited test program is rebuilt.
func hashSources(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("gobuild: hashing sources: %w", err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return "", fmt.Errorf("gobuild: hashing sources: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// lockFile takes an exclusive flock on path, polling so that ctx can cancel
// the wait.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("gobuild: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("gobuild: locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("gobuild: waiting for %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// copyFile copies the cached binary to dst (through a temporary name, so a
// reader never sees a partial executable).
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("gobuild: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp*")
	if err != nil {
		return fmt.Errorf("gobuild: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("gobuild: copying %s: %w", src, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return fmt.Errorf("gobuild: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("gobuild: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("gobuild: %w", err)
	}
	return nil
}
