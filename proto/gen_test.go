package proto

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedInSync regenerates the API code with the pinned tools and
// checks it equals what is committed.
func TestGeneratedInSync(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc not installed (make deps installs protobuf-compiler)")
	}
	out := t.TempDir()
	if b, err := exec.Command("./generate.sh", out).CombinedOutput(); err != nil {
		t.Fatalf("generate.sh: %v\n%s", err, b)
	}
	files, _ := filepath.Glob("tracecam/v1/*.go")
	files = append(files, "tracecam/v1/profiler.swagger.json")
	for _, f := range files {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatalf("%s not generated: %v", f, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is out of date: run make generate and commit the result", f)
		}
	}
}
