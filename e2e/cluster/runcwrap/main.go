// Command runcwrap is the OCI runtime binary of the test cluster's
// containerd (e2e/cluster): it runs runc with the same arguments, after
// clamping a negative process.oomScoreAdj in the bundle's config.json to 0
// where this process may not lower its own OOM score (no CAP_SYS_RESOURCE,
// as on a machine that is itself a container).
//
// Why: the kubelet gives every pod sandbox -998 and Guaranteed containers
// -997, and runc's init fails outright when the kernel refuses them
// ("failed to update /proc/self/oom_score_adj: Permission denied", seen by
// the kubelet as "can't get final child's PID from pipe: EOF"). Where the
// capability is there, it changes nothing.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

const runc = "/usr/sbin/runc"

func main() {
	if err := clamp(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "runcwrap: %v\n", err)
		os.Exit(1)
	}
	bin := runc
	if p := os.Getenv("RUNCWRAP_RUNC"); p != "" {
		bin = p
	}
	err := syscall.Exec(bin, append([]string{bin}, os.Args[1:]...), os.Environ())
	fmt.Fprintf(os.Stderr, "runcwrap: exec %s: %v\n", bin, err)
	os.Exit(1)
}

// clamp rewrites the bundle's config of a create or run, if it must.
func clamp(args []string) error {
	bundle, cmd := "", ""
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--bundle" || a == "-b":
			if i+1 < len(args) {
				bundle = args[i+1]
				i++
			}
		case len(a) > 9 && a[:9] == "--bundle=":
			bundle = a[9:]
		case cmd == "" && (a == "create" || a == "run"):
			cmd = a
		}
	}
	if cmd == "" || bundle == "" || mayLowerOOMScore() {
		return nil
	}
	path := filepath.Join(bundle, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var spec map[string]any
	if err := dec.Decode(&spec); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	proc, _ := spec["process"].(map[string]any)
	n, _ := proc["oomScoreAdj"].(json.Number)
	if v, err := n.Int64(); proc == nil || err != nil || v >= 0 {
		return nil
	}
	proc["oomScoreAdj"] = 0
	out, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o600)
}

// mayLowerOOMScore tries on this process: writing -1 needs CAP_SYS_RESOURCE.
func mayLowerOOMScore() bool {
	const f = "/proc/self/oom_score_adj"
	old, err := os.ReadFile(f)
	if err != nil {
		return false
	}
	if err := os.WriteFile(f, []byte("-1"), 0); err != nil {
		return false
	}
	_ = os.WriteFile(f, old, 0)
	return true
}
