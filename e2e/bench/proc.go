package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tracecam/tracecam/sidecar/cgroup"
)

// cleaner holds undo steps (kill a child, remove a cgroup, delete a dir) and
// runs them last-in first-out, so children die before their cgroup goes.
type cleaner struct {
	mu  sync.Mutex
	fns []func()
}

func (c *cleaner) add(fn func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, fn)
}

func (c *cleaner) run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// child is a long-running process (nginx, sidecar, an idle pod process).
type child struct {
	name string
	cmd  *exec.Cmd
	log  *lockedBuffer // stdout+stderr, for error messages
	done chan struct{} // closed when the process has been reaped
	err  error         // Wait's result, valid after done
	once sync.Once
}

// startChild starts name args; with a non-nil cg the process is born inside
// that cgroup (clone3 CLONE_INTO_CGROUP). Moving it after start would race:
// nginx forks its worker at once, and a worker forked before the move would
// stay outside the cgroup.
func startChild(name string, cg *cgroup.Target, args ...string) (*child, error) {
	c := &child{name: name, log: &lockedBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(args[0], args[1:]...)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	c.cmd.SysProcAttr = childAttr()
	if cg != nil {
		fd, err := syscall.Open(cg.Path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("opening cgroup %s: %w", cg.Path, err)
		}
		defer syscall.Close(fd)
		c.cmd.SysProcAttr.UseCgroupFD, c.cmd.SysProcAttr.CgroupFD = true, fd
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// childAttr puts a child in its own process group (so a terminal's Ctrl-C
// reaches only us and we stop children in order) and kills it if we die
// without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group, waits up to grace, then
// SIGKILLs it. It is idempotent and safe to call from the cleaner.
func (c *child) stop(grace time.Duration) {
	c.once.Do(func() {
		pgid := -c.pid()
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(grace):
			logf("%s did not exit within %s of SIGTERM; killing it", c.name, grace)
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			<-c.done
		}
	})
}

// describeExit explains why a child died early, with the tail of its output.
func (c *child) describeExit() error {
	out := strings.TrimSpace(c.log.String())
	if len(out) > 2000 {
		out = "..." + out[len(out)-2000:]
	}
	return fmt.Errorf("%s exited early (%v); output:\n%s", c.name, c.err, out)
}

// runShort runs a command to completion and returns its stdout. Cancelling
// ctx kills its whole process group.
func runShort(ctx context.Context, cg *cgroup.Target, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = childAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if cg != nil {
		fd, err := syscall.Open(cg.Path, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return "", fmt.Errorf("opening cgroup %s: %w", cg.Path, err)
		}
		defer syscall.Close(fd)
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// lockedBuffer is a bytes.Buffer safe for exec's copying goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Cap memory: only the tail matters for error messages.
	if b.buf.Len() > 1<<20 {
		b.buf.Reset()
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
