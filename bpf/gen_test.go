package bpf

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedInSync rebuilds the eBPF object and its Go bindings with the
// exact go:generate command of gen.go and checks they equal the committed
// files, so a change to camera.bpf.c cannot land without regenerating.
func TestGeneratedInSync(t *testing.T) {
	if _, err := exec.LookPath("clang-14"); err != nil {
		t.Skip("clang-14 not installed (make deps installs it)")
	}
	src, err := os.ReadFile("gen.go")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, line := range strings.Split(string(src), "\n") {
		if rest, ok := strings.CutPrefix(line, "//go:generate "); ok {
			args = splitArgs(rest)
		}
	}
	if len(args) < 4 || args[0] != "go" {
		t.Fatalf("no go:generate go run line in gen.go")
	}
	out := t.TempDir()
	// go run <pkg> -output-dir OUT <flags...>
	cmdArgs := append([]string{args[1], args[2], "-output-dir", out}, args[3:]...)
	cmd := exec.Command("go", cmdArgs...)
	cmd.Env = append(os.Environ(), "GOPACKAGE=bpf")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bpf2go: %v\n%s", err, b)
	}
	for _, f := range []string{"camera_bpfel.go", "camera_bpfel.o"} {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date: run make generate and commit the result", f)
		}
	}
}

// splitArgs splits a go:generate line, honouring double quotes.
func splitArgs(s string) []string {
	var out []string
	var cur strings.Builder
	inQ, has := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQ, has = !inQ, true
		case r == ' ' && !inQ:
			if has {
				out = append(out, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteRune(r)
			has = true
		}
	}
	if has {
		out = append(out, cur.String())
	}
	return out
}
