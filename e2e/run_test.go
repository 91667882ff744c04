package e2e

import (
	"context"
	"os/exec"
	"time"
)

func runSidecarOnce(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, sidecarBin, args...).CombinedOutput()
	return string(out), err
}
