// Command bench measures tracecam's overhead side by side in one run:
//
//  1. throughput and latency of nginx (sendfile, 600 B; and "nginx-fast":
//     no sendfile, 512 B), a Go and a Node.js server without vs with the
//     sidecar watching the server's cgroup, plus what the sidecar itself
//     costs (CPU, memory) and whether it saw every request (profiles vs
//     requests); then one extra trial per server with the sidecar's
//     --bpf-stats, for each BPF program's runs and kernel time per
//     request (kept out of the measured trials: the statistics cost every
//     program run two clock reads);
//  2. the "node tax": syscall cost for processes OUTSIDE the watched cgroup
//     while the probes are attached (they run for every process on the node
//     and must bail out early);
//  3. the "pod tax": the same loops INSIDE the watched cgroup;
//  4. the query API's latency, Redis writes and lookups, and the admission
//     webhook's latency and throughput on one core.
//
// The machine is small and noisy, so trials alternate without/with
// (A,B,A,B,...) and the report uses medians: a noisy stretch then hurts
// both sides instead of one.
//
// Run as root from the module root (make bench does):
//
//	go run ./e2e/bench -duration 10s -trials 3 -out bench.md
//
// A quick look at one server (well under a minute):
//
//	go run ./e2e/bench -servers nginx-fast -trials 2 -duration 5s -skip-extra
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tracecam/tracecam/sidecar/cgroup"
)

type config struct {
	duration time.Duration // wrk duration of one throughput trial
	trials   int           // trials per side (without, with)
	out      string        // also write the markdown report here
	sidecar  string        // prebuilt sidecar binary; "" = build from source
	apiOnly  bool          // only the API latency section (no kernel, quick)
	webhook  bool          // only the admission webhook section (no kernel, quick)
	servers  []string      // throughput sections to run, in serverOrder's order
	// skipExtra skips the syscall tax, API latency, Redis and webhook
	// sections: only the throughput sections run.
	skipExtra bool
}

// serverOrder names every throughput section, in the order they run.
var serverOrder = []string{"nginx", "nginx-fast", "go", "go-work", "node"}

// wants reports whether the throughput section of server runs.
func (c config) wants(server string) bool { return slices.Contains(c.servers, server) }

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	// Ctrl-C / SIGTERM cancel ctx; run then unwinds and the cleaner kills
	// every child and removes every cgroup before we exit.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	cl := &cleaner{}
	err = run(ctx, cfg, cl)
	cl.run()
	interrupted := ctx.Err() != nil
	stop()
	if err != nil {
		if interrupted {
			err = fmt.Errorf("interrupted: %w", err)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "wrk duration of each throughput trial")
	fs.IntVar(&cfg.trials, "trials", 3, "trials per side; sides alternate without/with")
	fs.StringVar(&cfg.out, "out", "", "also write the markdown report to this file")
	fs.BoolVar(&cfg.apiOnly, "api-only", false, "run only the API latency benchmark")
	fs.BoolVar(&cfg.webhook, "webhook-only", false, "run only the admission webhook benchmark")
	fs.StringVar(&cfg.sidecar, "sidecar", "", "prebuilt tracecam-sidecar binary (default: go build ./cmd/tracecam-sidecar into a temp dir)")
	servers := fs.String("servers", strings.Join(serverOrder, ","), "comma-separated throughput sections to run: "+strings.Join(serverOrder, ", "))
	fs.BoolVar(&cfg.skipExtra, "skip-extra", false, "skip the syscall tax, API latency, Redis and webhook sections (only the throughput sections run)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.duration < time.Second {
		return cfg, fmt.Errorf("-duration %s: want at least 1s (wrk counts whole seconds)", cfg.duration)
	}
	if cfg.trials < 1 {
		return cfg, fmt.Errorf("-trials %d: want at least 1", cfg.trials)
	}
	var err error
	if cfg.servers, err = parseServers(*servers); err != nil {
		return cfg, err
	}
	if len(cfg.servers) == 0 && cfg.skipExtra && !cfg.apiOnly && !cfg.webhook {
		return cfg, fmt.Errorf("-servers is empty and -skip-extra skips the rest: nothing to run")
	}
	return cfg, nil
}

// parseServers checks a -servers list and puts it in run order.
func parseServers(list string) ([]string, error) {
	picked := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(serverOrder, name) {
			return nil, fmt.Errorf("-servers: unknown server %q (want some of %s)", name, strings.Join(serverOrder, ","))
		}
		picked[name] = true
	}
	var out []string
	for _, name := range serverOrder {
		if picked[name] {
			out = append(out, name)
		}
	}
	return out, nil
}

func run(ctx context.Context, cfg config, cl *cleaner) error {
	if cfg.webhook {
		work, err := os.MkdirTemp("", "tracecam-bench-")
		if err != nil {
			return fmt.Errorf("creating work dir: %w", err)
		}
		cl.add(func() { os.RemoveAll(work) })
		wb, err := runWebhookBench(ctx, cl, work)
		if err != nil {
			return err
		}
		var b strings.Builder
		writeWebhookBench(&b, wb)
		fmt.Print(b.String())
		return nil
	}
	if cfg.apiOnly {
		lat, err := runAPILatency(ctx)
		if err != nil {
			return err
		}
		var b strings.Builder
		writeAPILatency(&b, lat)
		fmt.Print(b.String())
		return nil
	}
	if err := checkPrereqs(cfg); err != nil {
		return err
	}
	host, err := describeHost(ctx)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "tracecam-bench-")
	if err != nil {
		return fmt.Errorf("creating work dir: %w", err)
	}
	cl.add(func() { os.RemoveAll(work) })

	tools, err := buildTools(ctx, cfg, work)
	if err != nil {
		return err
	}
	cgs, err := createCgroups(cl)
	if err != nil {
		return err
	}
	logf("host: %s", host)

	// One server at a time: each has the CPUs to itself while measured.
	var tps []throughputResult
	for _, srv := range []struct {
		name  string
		cg    cgroup.Target
		start func() (*server, error)
		goOff bool
	}{
		{"nginx", cgs.nginx, func() (*server, error) {
			return startNginx(ctx, cl, "nginx", tools.nginxTmpl, indexSize, cgs.nginx, work)
		}, false},
		{"nginx-fast", cgs.nginxFast, func() (*server, error) {
			return startNginx(ctx, cl, "nginx-fast", tools.nginxFastTmpl, fastIndexSize, cgs.nginxFast, work)
		}, false},
		{"go", cgs.gosrv, func() (*server, error) { return startGoServer(ctx, cl, tools.goServer, cgs.gosrv, "go", "/fast") }, true},
		{"go-work", cgs.gosrv, func() (*server, error) {
			return startGoServer(ctx, cl, tools.goServer, cgs.gosrv, "go-work", "/work?us=100")
		}, true},
		{"node", cgs.node, func() (*server, error) { return startNodeServer(ctx, cl, tools.nodeServer, cgs.node) }, false},
	} {
		if !cfg.wants(srv.name) {
			continue
		}
		n, err := srv.start()
		if err != nil {
			return fmt.Errorf("starting %s: %w", srv.name, err)
		}
		tp, err := runThroughput(ctx, cl, cfg, tools, n, srv.cg, srv.goOff)
		n.proc.stop(5 * time.Second)
		if err != nil {
			return fmt.Errorf("%s throughput benchmark: %w", srv.name, err)
		}
		tps = append(tps, tp)
	}
	var b strings.Builder
	var tax []*taxRow
	if !cfg.skipExtra {
		if tax, err = runSyscallTax(ctx, cl, cfg, tools, cgs.pod); err != nil {
			return fmt.Errorf("syscall tax benchmark: %w", err)
		}
		lat, err := runAPILatency(ctx)
		if err != nil {
			return fmt.Errorf("API latency benchmark: %w", err)
		}
		rb, err := runRedisBench(ctx)
		if err != nil {
			return fmt.Errorf("redis benchmark: %w", err)
		}
		wb, err := runWebhookBench(ctx, cl, work)
		if err != nil {
			return fmt.Errorf("webhook benchmark: %w", err)
		}
		writeAPILatency(&b, lat)
		writeRedisBench(&b, rb)
		writeWebhookBench(&b, wb)
	}

	report := renderReport(host, cfg, tps, tax) + b.String()
	fmt.Print(report)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(report), 0o644); err != nil {
			return fmt.Errorf("writing report: %w", err)
		}
		logf("report written to %s", cfg.out)
	}
	return nil
}

// logf prints progress on stderr so stdout carries only the report.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}
