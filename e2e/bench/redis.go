package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	"github.com/tracecam/tracecam/sidecar/profile"
	"github.com/tracecam/tracecam/sidecar/profilepb"
	"github.com/tracecam/tracecam/sidecar/rediscache"
)

// The shared Redis cache: how fast one sidecar's writer drains into a real
// local redis-server, how fast a trace comes back, and what it costs.
const (
	redisBenchProfiles = 200000 // 100,000 traces × 2 pods
	redisBenchLookups  = 2000
	redisTargetRate    = 20000                       // profiles/s
	redisTargetP99     = 5 * time.Millisecond        // Lookup p99
	redisWriteDeadline = 120 * time.Second           // give up waiting for Written
	redisStartTimeout  = 10 * time.Second            // redis-server answering PING
	redisLookupWarmup  = 50                          // untimed lookups first
	redisPendingSlack  = rediscache.DefaultBatchSize // keep this much queue room
)

// redisBenchRow is one line of the "Redis cache" table; target and verdict
// are empty for figures without a target.
type redisBenchRow struct {
	metric, value, target, verdict string
}

func runRedisBench(ctx context.Context) ([]redisBenchRow, error) {
	srv, err := startBenchRedis(ctx)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	logf("redis: %s on %s", srv.version, srv.addr)

	cache, err := rediscache.New(rediscache.Config{Addrs: []string{srv.addr}, Cluster: "bench"})
	if err != nil {
		return nil, err
	}
	defer cache.Close()
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() { defer close(runDone); cache.Run(runCtx) }()
	defer func() { stopRun(); <-runDone }()

	// A cheap PING through a plain client first, so connection setup is not
	// in the timed part.
	admin := redis.NewClient(&redis.Options{Addr: srv.addr, DisableIdentity: true})
	defer admin.Close()
	if err := admin.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis ping: %w", err)
	}

	// Write phase: push through Enqueue as fast as the queue takes them
	// (the producer waits for room instead of letting Enqueue drop), until
	// the writer has caught up.
	templates := redisTemplates(64)
	base := time.Now().Add(-time.Minute).UTC()
	queueSize := rediscache.DefaultQueueSize
	logf("redis: writing %s profiles", commas(redisBenchProfiles))
	cpu0, srvCPU0 := selfCPU(), srv.cpu()
	t0 := time.Now()
	for i := range redisBenchProfiles {
		if i%64 == 0 {
			for cache.Stats().Pending > queueSize-redisPendingSlack {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				time.Sleep(50 * time.Microsecond)
			}
		}
		cache.Enqueue(redisProfile(templates, i, base))
	}
	enqueued := time.Since(t0)
	deadline := time.Now().Add(redisWriteDeadline)
	var st rediscache.Stats
	for {
		st = cache.Stats()
		if st.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("redis writer still has %d profiles pending after %v (%+v)", st.Pending, redisWriteDeadline, st)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(t0)
	cpu, srvCPU := selfCPU()-cpu0, srv.cpu()-srvCPU0
	if st.Written == 0 {
		return nil, fmt.Errorf("redis writer wrote nothing: %+v", st)
	}
	rate := float64(st.Written) / elapsed.Seconds()
	logf("redis: %s profiles written in %v (%s/s; enqueue loop %v), state %s", commas(float64(st.Written)), elapsed.Round(time.Millisecond), commas(rate), enqueued.Round(time.Millisecond), st.State)

	keys, err := admin.DBSize(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("redis DBSIZE: %w", err)
	}
	usedMem, err := redisUsedMemory(ctx, admin)
	if err != nil {
		return nil, err
	}

	// Lookup phase: random traces (each has 2 profiles) among all stored.
	traces := redisBenchProfiles / 2
	rng := rand.New(rand.NewPCG(1, 2))
	lookup := func() (int, error) {
		id := redisTraceID(rng.IntN(traces))
		ps, err := cache.Lookup(ctx, id)
		return len(ps), err
	}
	for range redisLookupWarmup {
		if _, err := lookup(); err != nil {
			return nil, fmt.Errorf("redis lookup: %w", err)
		}
	}
	lat := make([]time.Duration, redisBenchLookups)
	complete := 0
	for i := range lat {
		t := time.Now()
		n, err := lookup()
		lat[i] = time.Since(t)
		if err != nil {
			return nil, fmt.Errorf("redis lookup: %w", err)
		}
		if n == 2 {
			complete++
		}
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	logf("redis: lookup p50 %v p99 %v (%d/%d complete)", p50, p99, complete, len(lat))

	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	valueSize := len(mustMarshal(redisProfile(templates, 0, base)))
	dropped := st.DroppedQueueFull + st.DroppedWriteErrors
	per1k := func(d time.Duration) string {
		return fmt.Sprintf("%.1f ms", float64(d)/1e6/float64(st.Written)*1000)
	}
	rows := []redisBenchRow{
		{metric: "redis-server", value: srv.version},
		{metric: "profiles written", value: fmt.Sprintf("%s of %s in %.2f s", commas(float64(st.Written)), commas(redisBenchProfiles), elapsed.Seconds())},
		{metric: "**profiles written/s**", value: "**" + commas(rate) + "**", target: "≥ " + commas(redisTargetRate), verdict: verdict(rate >= redisTargetRate)},
		{metric: "profiles dropped (queue full + write errors)", value: fmt.Sprintf("%s + %s", commas(float64(st.DroppedQueueFull)), commas(float64(st.DroppedWriteErrors))), target: "0", verdict: verdict(dropped == 0)},
		{metric: "tracecam CPU per 1,000 profiles written (process utime+stime, incl. the producer loop)", value: per1k(cpu)},
		{metric: "redis-server CPU per 1,000 profiles written", value: per1k(srvCPU)},
		{metric: "stored: keys (traces) / Redis used memory", value: fmt.Sprintf("%s / %.1f MiB (%s B per profile; value %d B protobuf)", commas(float64(keys)), float64(usedMem)/(1<<20), commas(float64(usedMem)/float64(st.Written)), valueSize)},
		{metric: "Lookup p50 (trace with 2 profiles)", value: p50.Round(time.Microsecond).String()},
		{metric: "**Lookup p99**", value: "**" + p99.Round(time.Microsecond).String() + "**", target: "< " + redisTargetP99.String(), verdict: verdict(p99 < redisTargetP99)},
		{metric: "lookups returning both profiles", value: fmt.Sprintf("%s/%s", commas(float64(complete)), commas(redisBenchLookups)), target: "all", verdict: verdict(complete == redisBenchLookups)},
	}
	return rows, nil
}

func writeRedisBench(b *strings.Builder, rows []redisBenchRow) {
	fmt.Fprintf(b, "## Redis cache\n\n")
	fmt.Fprintf(b, "One `rediscache.Cache` (defaults: queue %s, batch %d, flush %v) writing to a local redis-server over loopback (no persistence). %s synthetic profiles (%s traces × 2 pods) are pushed through Enqueue as fast as the queue takes them; the rate runs until the writer has written the last one. Then %s sequential Lookups of random stored traces (one HGETALL each).\n\n",
		commas(rediscache.DefaultQueueSize), rediscache.DefaultBatchSize, rediscache.DefaultFlushInterval,
		commas(redisBenchProfiles), commas(redisBenchProfiles/2), commas(redisBenchLookups))
	b.WriteString("| | value | target | |\n|---|---:|---:|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s | %s | %s |\n", r.metric, r.value, r.target, r.verdict)
	}
	b.WriteString("\n")
}

// redisTemplates are realistic profiles of varied shape; redisProfile
// stamps IDs and times onto a copy of one.
func redisTemplates(n int) []*profile.Profile {
	paths := []string{"/api/orders", "/api/cart", "/api/users/42/profile", "/health", "/api/search?q=shoes&page=2"}
	out := make([]*profile.Profile, n)
	for i := range out {
		d := int64(1+i*7%400) * 1e6
		p := &profile.Profile{
			TraceSource: "traceparent", Namespace: "shop", Container: "app",
			PID: 100, TID: uint32(200 + i%16), ThreadName: "worker-" + strconv.Itoa(i%16),
			Method: []string{"GET", "POST"}[i%2], Path: paths[i%len(paths)], Host: "shop.example", StatusCode: []int{200, 200, 200, 404, 503}[i%5],
			Client: "10.0.0.9:" + strconv.Itoa(40000+i), Server: "10.0.0.2:8080",
			DurationNS: d, RequestBytes: 300 + int64(i), ResponseBytes: 2000 + int64(i*13),
			Breakdown: map[profile.Category]int64{profile.CPU: d / 4, profile.Net: d / 2, profile.Lock: d - d/4 - d/2},
			Timeline: []profile.Segment{
				{Category: profile.Net, StartOffsetNS: 1e5, DurationNS: d / 2, Syscall: "recvfrom", FDKind: "socket", FD: 12, Peer: "10.0.0.7:5432", Bytes: 512},
				{Category: profile.Lock, StartOffsetNS: d / 2, DurationNS: d / 4, Syscall: "futex", WakerTID: 201, WakerName: "worker-1"},
			},
			Network:   []profile.NetworkPeer{{Peer: "10.0.0.7:5432", Protocol: "tcp", BytesSent: 100, BytesReceived: 512, WaitNS: d / 2, StartOffsetNS: 1e5, Calls: 1}},
			Diagnosis: profile.Diagnosis{Cause: profile.CauseNet, Summary: "waited on 10.0.0.7:5432", Evidence: []string{"net 50% of the request"}},
		}
		if i%4 == 0 {
			p.DNS = []profile.DNSQuery{{Name: "db.shop.svc.cluster.local", Type: "A", Rcode: "NOERROR", Server: "10.96.0.10:53", LatencyNS: 800_000, Answered: true}}
		}
		out[i] = p
	}
	return out
}

func redisTraceID(trace int) string { return fmt.Sprintf("%032x", 0x7ace0000000+trace) }

// redisProfile is profile i: trace i/2, served by pod-a (even) or pod-b.
// The copy is shallow: collections are shared and never written.
func redisProfile(templates []*profile.Profile, i int, base time.Time) *profile.Profile {
	p := *templates[i%len(templates)]
	p.TraceID = redisTraceID(i / 2)
	p.SpanID = fmt.Sprintf("%016x", i+1)
	p.Pod = "pod-a"
	if i%2 == 1 {
		p.Pod = "pod-b"
	}
	p.StartTime = base.Add(time.Duration(i) * time.Microsecond)
	return &p
}

func mustMarshal(p *profile.Profile) []byte {
	b, err := proto.Marshal(profilepb.ToProto(p))
	if err != nil {
		panic(err)
	}
	return b
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func redisUsedMemory(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		return 0, fmt.Errorf("redis INFO: %w", err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, errors.New("redis INFO memory: no used_memory")
}

// benchRedis is a redis-server child on a free loopback port.
type benchRedis struct {
	addr, version, dir string
	cmd                *exec.Cmd
	done               chan struct{}
}

func startBenchRedis(ctx context.Context) (*benchRedis, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found on PATH (apt-get install -y redis-server redis-tools)")
	}
	dir, err := os.MkdirTemp("", "tracecam-bench-redis-")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &benchRedis{addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, done: make(chan struct{})}
	log, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer log.Close() // the child has its own copy
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "", "--databases", "1")
	r.cmd.Stdout, r.cmd.Stderr = log, log
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()

	c := redis.NewClient(&redis.Options{Addr: r.addr, DisableIdentity: true, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	deadline := time.Now().Add(redisStartTimeout)
	for {
		select {
		case <-r.done:
			b, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("redis-server exited at start: %s", strings.TrimSpace(string(b)))
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		info, err := c.Info(pctx, "server").Result()
		cancel()
		if err == nil {
			sc := bufio.NewScanner(strings.NewReader(info))
			for sc.Scan() {
				if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "redis_version:"); ok {
					r.version = "redis " + v
				}
			}
			return r, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.stop()
			return nil, fmt.Errorf("redis-server on %s not answering after %v: %v", r.addr, redisStartTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cpu is the server's user+system CPU time so far, from /proc.
func (r *benchRedis) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the ")" closing the command name: state is field 3,
	// utime 14 and stime 15 (1-based), in clock ticks (USER_HZ = 100).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func (r *benchRedis) stop() {
	r.cmd.Process.Kill()
	<-r.done
	os.RemoveAll(r.dir)
}
