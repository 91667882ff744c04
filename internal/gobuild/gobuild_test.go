package gobuild

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestVersions(t *testing.T) {
	vs := Versions()
	minors := map[string]bool{}
	for _, v := range vs {
		if v != "" && !releaseRE.MatchString(v) {
			t.Errorf("Versions() has %q, not a release", v)
		}
		m := minorOf(v)
		if minors[m] {
			t.Errorf("Versions() = %q has two builds of go1.%s", vs, m)
		}
		minors[m] = true
	}
	for _, want := range []string{OldLayout, Newest} {
		if !minors[minorOf(want)] {
			t.Errorf("Versions() = %q lacks go1.%s", vs, minorOf(want))
		}
	}
	if !minors[minorOf(OldestSupported)] {
		t.Errorf("Versions() = %q lacks the oldest supported release", vs)
	}
	if local := runtime.Version(); releaseRE.MatchString(local) {
		found := false
		for _, v := range vs {
			found = found || v == local
		}
		if !found {
			t.Errorf("Versions() = %q lacks the machine's %s", vs, local)
		}
	}
	for i := 1; i < len(vs); i++ {
		if versionLess(vs[i], vs[i-1]) {
			t.Errorf("Versions() = %q is not sorted", vs)
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"go1.22.12", "go1.26.8", true},
		{"go1.26.8", "go1.26.11", true},
		{"go1.26.11", "go1.26.8", false},
		{"go1.9.1", "go1.10", true},
		{"go1.27.3", "", true},
		{"", "go1.27.3", false},
	} {
		if got := versionLess(tc.a, tc.b); got != tc.want {
			t.Errorf("versionLess(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestCacheKey(t *testing.T) {
	base := cacheKey("go1.24.13", Options{}, "src")
	for name, k := range map[string]string{
		"version":  cacheKey("go1.24.12", Options{}, "src"),
		"stripped": cacheKey("go1.24.13", Options{Stripped: true}, "src"),
		"cgo":      cacheKey("go1.24.13", Options{CGO: true}, "src"),
		"pie":      cacheKey("go1.24.13", Options{PIE: true}, "src"),
		"source":   cacheKey("go1.24.13", Options{}, "src2"),
	} {
		if k == base {
			t.Errorf("changing %s does not change the cache key", name)
		}
	}
	if cacheKey("go1.24.13", Options{CacheDir: "/elsewhere", Toolchain: "x"}, "src") != base {
		t.Error("the cache directory or the unresolved toolchain name changes the key")
	}
}

const helloMain = `package main

import "fmt"

var greeting = "hello"

func main() { fmt.Println(greeting) }
`

func writeProgram(t *testing.T, main string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/hello\n\ngo 1.20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func run(t *testing.T, exe string) string {
	t.Helper()
	out, err := exec.Command(exe).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", exe, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestBuildCache builds with the machine's go (no download): the output
// runs, a second build is served from the cache, concurrent builds of one
// key agree, and an edited source is rebuilt.
func TestBuildCache(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src := writeProgram(t, helloMain)
	cache := t.TempDir()
	out := t.TempDir()
	opts := Options{CacheDir: cache, Stripped: true}

	first := filepath.Join(out, "first")
	if err := Build(ctx, src, first, opts); err != nil {
		t.Fatal(err)
	}
	if got := run(t, first); got != "hello" {
		t.Fatalf("built program printed %q", got)
	}
	entries, _ := filepath.Glob(filepath.Join(cache, "*-stripped-*"))
	if len(entries) != 1 {
		t.Fatalf("cache holds %q, want one entry", entries)
	}
	before, err := os.Stat(entries[0])
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Build(ctx, src, filepath.Join(out, "again"+string(rune('a'+i))), opts)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	after, err := os.Stat(entries[0])
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("the cached binary was rebuilt for unchanged sources")
	}
	if got := run(t, filepath.Join(out, "againc")); got != "hello" {
		t.Errorf("cached copy printed %q", got)
	}

	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(strings.Replace(helloMain, `"hello"`, `"changed"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(out, "changed")
	if err := Build(ctx, src, changed, opts); err != nil {
		t.Fatal(err)
	}
	if got := run(t, changed); got != "changed" {
		t.Errorf("rebuilt program printed %q", got)
	}
}

func TestBuildConcurrentDistinctKeys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	src := writeProgram(t, helloMain)
	cache := t.TempDir()
	out := t.TempDir()
	var wg sync.WaitGroup
	variants := []Options{{CacheDir: cache}, {CacheDir: cache, Stripped: true}, {CacheDir: cache, PIE: true}}
	errs := make([]error, len(variants))
	for i, o := range variants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = Build(ctx, src, filepath.Join(out, o.String()), o)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s: %v", variants[i], err)
		}
		if got := run(t, filepath.Join(out, variants[i].String())); got != "hello" {
			t.Errorf("%s printed %q", variants[i], got)
		}
	}
	tmps, _ := filepath.Glob(filepath.Join(cache, "*.tmp*"))
	if len(tmps) > 0 {
		t.Errorf("temporary files left in the cache: %q", tmps)
	}
}

func TestBuildFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := writeProgram(t, "package main\n\nfunc main() { undefined() }\n")
	err := Build(ctx, src, filepath.Join(t.TempDir(), "x"), Options{CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "undefined") {
		t.Errorf("Build of a broken program: %v, want the compiler's message", err)
	}
	if errors.Is(err, ErrToolchainUnavailable) {
		t.Errorf("a compile error reported as ErrToolchainUnavailable: %v", err)
	}
}

// TestToolchainUnavailable asks for a release that cannot be in the module
// cache with the proxy switched off, so no network is used.
func TestToolchainUnavailable(t *testing.T) {
	t.Setenv("GOPROXY", "off")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := writeProgram(t, helloMain)
	err := Build(ctx, src, filepath.Join(t.TempDir(), "x"), Options{CacheDir: t.TempDir(), Toolchain: "go1.19.99"})
	if !errors.Is(err, ErrToolchainUnavailable) {
		t.Errorf("Build with an unobtainable toolchain: %v, want ErrToolchainUnavailable", err)
	}
}

func TestPrune(t *testing.T) {
	dir := t.TempDir()
	old, recent := filepath.Join(dir, "old"), filepath.Join(dir, "recent")
	for _, p := range []string{old, recent, filepath.Join(dir, "build.lock")} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-30 * 24 * time.Hour)
	for _, p := range []string{old, filepath.Join(dir, "build.lock")} {
		if err := os.Chtimes(p, long, long); err != nil {
			t.Fatal(err)
		}
	}
	prune(dir, time.Now().Add(-unusedFor))
	for p, want := range map[string]bool{old: false, recent: true, filepath.Join(dir, "build.lock"): true} {
		_, err := os.Stat(p)
		if (err == nil) != want {
			t.Errorf("%s: exists=%v after prune, want %v", filepath.Base(p), err == nil, want)
		}
	}
}
