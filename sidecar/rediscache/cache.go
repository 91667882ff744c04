package rediscache

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"google.golang.org/protobuf/proto"

	tracecamv1 "github.com/tracecam/tracecam/proto/tracecam/v1"
	"github.com/tracecam/tracecam/sidecar/profile"
	"github.com/tracecam/tracecam/sidecar/profilepb"
)

// Defaults for the zero fields of [Config].
const (
	DefaultCluster       = "default"
	DefaultTTL           = 15 * time.Minute
	DefaultQueueSize     = 10000
	DefaultBatchSize     = 256
	DefaultFlushInterval = 20 * time.Millisecond
	DefaultWriteTimeout  = 2 * time.Second
	DefaultLookupTimeout = 500 * time.Millisecond
)

// Writer back-off after a failed batch, and the idle health check period.
const (
	minBackoff     = 100 * time.Millisecond
	maxBackoff     = 5 * time.Second
	healthInterval = 5 * time.Second
)

// Config says where Redis is and how the cache uses it. Zero fields take
// the defaults above.
type Config struct {
	// Addrs is one address (standalone), several (Redis Cluster seed
	// nodes) or, with MasterName, the Sentinel addresses.
	Addrs      []string
	MasterName string
	Password   string
	TLS        bool
	// TLSCAFile is a PEM CA bundle to verify the server with; empty means
	// the system roots. Requires TLS.
	TLSCAFile string
	// Cluster namespaces the keys, so one Redis can serve several
	// Kubernetes clusters: letters, digits, '.', '_' and '-'.
	Cluster       string
	TTL           time.Duration // how long a trace lives after its last write
	QueueSize     int           // bounded write queue
	BatchSize     int           // profiles per pipeline
	FlushInterval time.Duration // longest wait for a batch to fill
	WriteTimeout  time.Duration // bound on one batch write (and dialing)
	LookupTimeout time.Duration // bound on one Lookup
}

// Stats are the cache's counters. At any quiescent point (no Enqueue in
// progress, writer idle) Enqueued == Written + DroppedQueueFull +
// DroppedWriteErrors + Pending.
type Stats struct {
	Enqueued           uint64 // profiles handed to Enqueue (nil excluded)
	Written            uint64 // profiles stored in Redis
	DroppedQueueFull   uint64 // dropped by Enqueue: queue full
	DroppedWriteErrors uint64 // dropped by the writer: their write failed
	Pending            int    // queued or being written
	// State is "connecting", "ok", "unavailable: <reason>" or
	// "full: <reason>" (Redis refused writes with OOM).
	State     string
	LastError string // last write or health-check error, "" if none yet
	Lookups   uint64
	// LookupErrors counts lookups that returned an error.
	LookupErrors uint64
	// Undecodable counts stored values Lookup skipped because they did not
	// decode as a profile.
	Undecodable uint64
}

// Cache writes profiles to Redis in the background and reads traces back.
type Cache struct {
	cfg   Config
	rdb   redis.UniversalClient
	queue chan *profile.Profile

	enqueued, written, droppedFull, droppedWrite atomic.Uint64
	lookups, lookupErrors, undecodable           atomic.Uint64
	pending                                      atomic.Int64

	mu        sync.Mutex
	state     string
	lastError string

	running   atomic.Bool
	closeOnce sync.Once
	closeErr  error

	// Writer-goroutine scratch, reused across batches.
	groups   []group
	groupIdx map[string]int
}

// group is the part of a batch that goes to one trace's key.
type group struct {
	key  string
	args []any // field, value, field, value, ...
	n    int   // profiles in args
	hset *redis.IntCmd
	exp  *redis.BoolCmd
}

// New validates cfg and returns a cache. It does not contact Redis: the
// client connects lazily, so a sidecar starts whether Redis is up or not.
func New(cfg Config) (*Cache, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var tlsConf *tls.Config
	if cfg.TLS {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TLSCAFile != "" {
			pem, err := os.ReadFile(cfg.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("rediscache: reading TLS CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("rediscache: TLS CA %s: no PEM certificate found", cfg.TLSCAFile)
			}
			tlsConf.RootCAs = pool
		}
		// ServerName stays empty: go-redis dials with tls.DialWithDialer,
		// which verifies each node against its own dialed host.
	}
	opts := &redis.UniversalOptions{
		Addrs:      cfg.Addrs,
		MasterName: cfg.MasterName,
		Password:   cfg.Password,
		TLSConfig:  tlsConf,
		// One retry: a pooled connection may have died with a restarted
		// server. The cache itself never retries a batch.
		MaxRetries:            1,
		DialTimeout:           cfg.WriteTimeout,
		DialerRetries:         1, // the writer backs off itself
		ReadTimeout:           cfg.WriteTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		ContextTimeoutEnabled: true, // lookups are bounded by LookupTimeout
		PoolSize:              8,
		PoolTimeout:           cfg.WriteTimeout,
		DisableIdentity:       true, // no CLIENT SETINFO round trip (Redis < 7.2 lacks it)
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
	return &Cache{
		cfg:      cfg,
		rdb:      redis.NewUniversalClient(opts),
		queue:    make(chan *profile.Profile, cfg.QueueSize),
		state:    "connecting",
		groupIdx: make(map[string]int),
	}, nil
}

func (cfg Config) withDefaults() (Config, error) {
	if len(cfg.Addrs) == 0 {
		return cfg, errors.New("rediscache: no Redis address")
	}
	cfg.Addrs = slices.Clone(cfg.Addrs)
	for _, a := range cfg.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return cfg, fmt.Errorf("rediscache: address %q: %w", a, err)
		}
	}
	if cfg.TLSCAFile != "" && !cfg.TLS {
		return cfg, errors.New("rediscache: TLSCAFile set but TLS is off")
	}
	if cfg.Cluster == "" {
		cfg.Cluster = DefaultCluster
	}
	for _, r := range cfg.Cluster {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			// A '{' would move the hash tag into the prefix and put
			// every trace into one slot.
			return cfg, fmt.Errorf("rediscache: cluster name %q: only letters, digits, '.', '_' and '-' allowed", cfg.Cluster)
		}
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"TTL", &cfg.TTL, DefaultTTL},
		{"FlushInterval", &cfg.FlushInterval, DefaultFlushInterval},
		{"WriteTimeout", &cfg.WriteTimeout, DefaultWriteTimeout},
		{"LookupTimeout", &cfg.LookupTimeout, DefaultLookupTimeout},
	}
	for _, d := range durs {
		switch {
		case *d.v < 0:
			return cfg, fmt.Errorf("rediscache: %s %v is negative", d.name, *d.v)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if cfg.TTL < time.Millisecond {
		return cfg, fmt.Errorf("rediscache: TTL %v is below Redis' 1 ms resolution", cfg.TTL)
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"QueueSize", &cfg.QueueSize, DefaultQueueSize},
		{"BatchSize", &cfg.BatchSize, DefaultBatchSize},
	}
	for _, n := range ints {
		switch {
		case *n.v < 0:
			return cfg, fmt.Errorf("rediscache: %s %d is negative", n.name, *n.v)
		case *n.v == 0:
			*n.v = n.def
		}
	}
	return cfg, nil
}

// Key is the Redis key of a trace: "tracecam:<cluster>:trace:{<trace_id>}".
// The braces are a hash tag, so Redis Cluster puts the key in the slot of
// the trace ID alone.
func Key(cluster, traceID string) string {
	return "tracecam:" + cluster + ":trace:{" + traceID + "}"
}

// Field is the hash field of a profile within its trace:
// "<namespace>/<pod>/<span_id>". A profile is stored once per (trace, pod,
// span); a second write replaces the first.
func Field(p *profile.Profile) string {
	return p.Namespace + "/" + p.Pod + "/" + p.SpanID
}

// Enqueue queues p for writing and returns at once. When the queue is full
// p is dropped and counted. p must not be modified afterwards: it is
// marshalled later by the writer. A nil p is ignored.
func (c *Cache) Enqueue(p *profile.Profile) {
	if p == nil {
		return
	}
	c.enqueued.Add(1)
	c.pending.Add(1)
	select {
	case c.queue <- p:
	default:
		c.pending.Add(-1)
		c.droppedFull.Add(1)
	}
}

// Run is the writer loop: it writes queued profiles in batches until ctx is
// done, then makes one last attempt, bounded by WriteTimeout, to write what
// is still queued and returns. Profiles it could not write stay counted as
// Pending. Run must be called at most once; later calls return at once.
func (c *Cache) Run(ctx context.Context) {
	if !c.running.CompareAndSwap(false, true) {
		return
	}
	failures := 0
	if err := c.ping(ctx); err != nil {
		failures++
	}
	batch := make([]*profile.Profile, 0, c.cfg.BatchSize)
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	fill := time.NewTimer(time.Hour)
	defer fill.Stop()
	for {
		if failures > 0 {
			idle.Reset(backoff(failures))
		} else {
			idle.Reset(healthInterval)
		}
		select {
		case <-ctx.Done():
			c.finalFlush(batch)
			return
		case p := <-c.queue:
			batch = append(batch[:0], p)
		case <-idle.C:
			// No traffic: check Redis so State does not go stale.
			if err := c.ping(ctx); err != nil {
				failures++
			} else if c.State() == "ok" {
				failures = 0
			}
			continue
		}
		batch = c.fill(ctx, batch, fill)
		// The in-flight batch is finished even when ctx ends meanwhile; it
		// is bounded by WriteTimeout.
		err := c.write(context.WithoutCancel(ctx), batch)
		clear(batch)
		batch = batch[:0]
		if err == nil {
			failures = 0
			continue
		}
		failures++
		t := time.NewTimer(backoff(failures))
		select {
		case <-ctx.Done():
			t.Stop()
			c.finalFlush(batch)
			return
		case <-t.C:
		}
	}
}

// fill adds queued profiles to batch until it is full, the queue stays
// empty for FlushInterval, or ctx is done.
func (c *Cache) fill(ctx context.Context, batch []*profile.Profile, timer *time.Timer) []*profile.Profile {
	timerSet := false
	for len(batch) < c.cfg.BatchSize {
		select {
		case p := <-c.queue:
			batch = append(batch, p)
			continue
		default:
		}
		if !timerSet {
			timer.Reset(c.cfg.FlushInterval)
			timerSet = true
		}
		select {
		case p := <-c.queue:
			batch = append(batch, p)
		case <-timer.C:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// finalFlush writes what is queued (plus batch, a batch taken but not
// written) until the queue is empty, a write fails, or WriteTimeout has
// passed in total.
func (c *Cache) finalFlush(batch []*profile.Profile) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.WriteTimeout)
	defer cancel()
	for {
	drain:
		for len(batch) < c.cfg.BatchSize {
			select {
			case p := <-c.queue:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		if len(batch) == 0 || ctx.Err() != nil {
			return
		}
		// A batch cut short by the deadline still gets counted as failed.
		if err := c.write(ctx, batch); err != nil {
			return
		}
		clear(batch)
		batch = batch[:0]
	}
}

// backoff is the wait after the n-th consecutive failure: 100 ms doubling
// to 5 s, minus up to 20% jitter so that many sidecars do not hit a
// restarted Redis in lockstep.
func backoff(n int) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d - time.Duration(rand.Int64N(int64(d/5)+1))
}

// write stores batch in one pipeline and counts every profile in it as
// written or dropped. It returns the first error, nil if all were written.
func (c *Cache) write(ctx context.Context, batch []*profile.Profile) error {
	if len(batch) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
	defer cancel()

	groups := c.groups[:0]
	clear(c.groupIdx)
	var written, failed uint64
	var firstErr error
	for _, p := range batch {
		val, err := proto.Marshal(profilepb.ToProto(p))
		if err != nil { // cannot happen for ToProto output; count anyway
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("marshalling profile: %w", err)
			}
			continue
		}
		key := Key(c.cfg.Cluster, p.TraceID)
		i, ok := c.groupIdx[key]
		if !ok {
			i = len(groups)
			c.groupIdx[key] = i
			if i < cap(groups) {
				groups = groups[:i+1]
				groups[i].key, groups[i].args, groups[i].n = key, groups[i].args[:0], 0
			} else {
				groups = append(groups, group{key: key})
			}
		}
		g := &groups[i]
		g.args = append(g.args, Field(p), val)
		g.n++
	}
	if len(groups) > 0 {
		pipe := c.rdb.Pipeline()
		for i := range groups {
			g := &groups[i]
			g.hset = pipe.HSet(ctx, g.key, g.args...)
			g.exp = pipe.PExpire(ctx, g.key, c.cfg.TTL)
		}
		_, execErr := pipe.Exec(ctx)
		for i := range groups {
			g := &groups[i]
			// A profile is written when its HSET succeeded and the PEXPIRE
			// after it found the key. The reply is checked, not just the
			// error: when the connection fails before anything is sent
			// (dial, AUTH), go-redis reports it from Exec only.
			err := g.hset.Err()
			if err == nil {
				err = g.exp.Err()
			}
			if err == nil && !g.exp.Val() {
				err = execErr
				if err == nil {
					err = errors.New("PEXPIRE found no key after HSET")
				}
			}
			if err == nil {
				written += uint64(g.n)
			} else {
				failed += uint64(g.n)
				if firstErr == nil {
					firstErr = err
				}
			}
		}
	}
	// Let go of the profiles and values.
	for i := range groups {
		clear(groups[i].args)
		groups[i].hset, groups[i].exp = nil, nil
	}
	c.groups = groups

	c.written.Add(written)
	c.droppedWrite.Add(failed)
	c.pending.Add(-int64(len(batch)))
	if firstErr != nil {
		c.setState(classify(firstErr), firstErr)
		return firstErr
	}
	c.setState("ok", nil)
	return nil
}

// ping checks Redis while the writer is idle. Success clears "connecting"
// and "unavailable" but not "full": PING works on a full Redis.
func (c *Cache) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
	defer cancel()
	err := c.rdb.Ping(ctx).Err()
	if err != nil {
		if ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled) {
			return err // shutting down; not Redis' fault
		}
		c.setState(classify(err), err)
		return err
	}
	c.mu.Lock()
	if !strings.HasPrefix(c.state, "full:") {
		c.state = "ok"
	}
	c.mu.Unlock()
	return nil
}

func (c *Cache) setState(state string, err error) {
	c.mu.Lock()
	c.state = state
	if err != nil {
		c.lastError = err.Error()
	}
	c.mu.Unlock()
}

// State is Stats().State.
func (c *Cache) State() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// classify turns a write error into a State.
func classify(err error) string {
	msg := err.Error()
	var netErr net.Error
	switch {
	case strings.HasPrefix(msg, "OOM "):
		return "full: " + msg
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"),
		strings.Contains(msg, "invalid password"), strings.Contains(msg, "AUTH <password> called without"),
		strings.Contains(msg, "without any password configured"), strings.Contains(msg, "invalid username-password"):
		return "unavailable: auth failed: " + msg
	case errors.Is(err, syscall.ECONNREFUSED):
		return "unavailable: connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "unavailable: connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unavailable: connection closed by server"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "unavailable: timeout"
	case errors.Is(err, redis.ErrClosed):
		return "unavailable: cache closed"
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) {
		return "unavailable: tls: " + msg
	}
	return "unavailable: " + msg
}

// Lookup returns every stored profile of the trace, oldest start first, in
// one round trip bounded by LookupTimeout. An unknown trace gives no
// profiles and no error. Values that do not decode are skipped and counted.
func (c *Cache) Lookup(ctx context.Context, traceID string) ([]*profile.Profile, error) {
	c.lookups.Add(1)
	if traceID == "" {
		c.lookupErrors.Add(1)
		return nil, errors.New("rediscache: lookup: empty trace ID")
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LookupTimeout)
	defer cancel()
	m, err := c.rdb.HGetAll(ctx, Key(c.cfg.Cluster, traceID)).Result()
	if err != nil {
		c.lookupErrors.Add(1)
		return nil, fmt.Errorf("rediscache: lookup of trace %s: %w", traceID, err)
	}
	type entry struct {
		field string
		p     *profile.Profile
	}
	entries := make([]entry, 0, len(m))
	for f, v := range m {
		var pb tracecamv1.Profile
		if err := proto.Unmarshal([]byte(v), &pb); err != nil {
			c.undecodable.Add(1)
			continue
		}
		entries = append(entries, entry{f, profilepb.FromProto(&pb)})
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if c := a.p.StartTime.Compare(b.p.StartTime); c != 0 {
			return c
		}
		return strings.Compare(a.field, b.field)
	})
	out := make([]*profile.Profile, len(entries))
	for i, e := range entries {
		out[i] = e.p
	}
	return out, nil
}

// Stats returns a snapshot of the counters and state.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	state, lastErr := c.state, c.lastError
	c.mu.Unlock()
	return Stats{
		Enqueued:           c.enqueued.Load(),
		Written:            c.written.Load(),
		DroppedQueueFull:   c.droppedFull.Load(),
		DroppedWriteErrors: c.droppedWrite.Load(),
		Pending:            int(c.pending.Load()),
		State:              state,
		LastError:          lastErr,
		Lookups:            c.lookups.Load(),
		LookupErrors:       c.lookupErrors.Load(),
		Undecodable:        c.undecodable.Load(),
	}
}

// Close closes the Redis client. Stop Run first (cancel its context and
// wait for it to return); writes after Close fail and are counted.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.rdb.Close() })
	return c.closeErr
}
