package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	neturl "net/url"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracecam/tracecam/e2e/netns"
	"github.com/tracecam/tracecam/internal/redistest"
	"github.com/tracecam/tracecam/sidecar/profile"
)

// Case 2, calling another service by its Kubernetes service name: the
// client sees seconds, the server milliseconds.
//
// Three network namespaces: a "node" with a bridge (cni0) and the cluster
// DNS server on 10.77.0.10:53 (workloads/cases/kubedns.py), and two pods
// plugged into the bridge with veth pairs: frontend (10.77.0.2) and backend
// (10.77.0.3), each in its own cgroup watched by its own sidecar, both
// sidecars writing to one real Redis. The frontend's /etc/resolv.conf is a
// pod's (search shop.svc.cluster.local svc.cluster.local cluster.local,
// options ndots:5); its /checkout resolves "backend" with getaddrinfo
// (glibc: A and AAAA in parallel from one socket) and calls GET /price.
// The fault: the DNS server drops one query, as a lost UDP packet, and
// glibc waits its 5 s timeout before retrying.
//
// tracecam must say, on the frontend's profile: cause dns, every lookup
// (name, type, rcode, latency; the lost one unanswered, then its retry),
// exactly the queries the DNS server saw, and their time within 10% of
// what getaddrinfo took; in the cross-pod trace, the frontend ≫ the
// backend and why; the frontend's other requests and the backend are not
// blamed on DNS.
func TestCase2DNS(t *testing.T) {
	caseRequireTools(t, "python3", "curl", "redis-server", "ip")
	if err := netns.Require(); err != nil {
		t.Fatal(err)
	}
	const (
		service   = "backend.shop.svc.cluster.local"
		dnsIP     = "10.77.0.10"
		frontIP   = "10.77.0.2"
		backendIP = "10.77.0.3"
	)
	rds := redistest.Start(t, redistest.Options{})

	node := netns.New(t, "tc-node")
	front := netns.New(t, "tc-frontend")
	back := netns.New(t, "tc-backend")
	node.Bridge(t, "cni0", "10.77.0.1/24", dnsIP+"/32")
	front.Attach(t, "eth0", frontIP+"/24", node, "cni0", "veth-frontend")
	back.Attach(t, "eth0", backendIP+"/24", node, "cni0", "veth-backend")
	front.SetResolvConf(t, "search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver "+dnsIP+"\noptions ndots:5\n")

	dnsCmd := node.Exec("python3", "workloads/cases/kubedns.py", "--bind", dnsIP, "--port", "53", "--record", service+"="+backendIP)
	dns := start(t, nil, dnsCmd[0], dnsCmd[1:]...)
	dns.waitReady(t, 20*time.Second)

	pods := map[string]*sidecar{}
	pids := map[string]int{}
	for _, pod := range []struct {
		name, role string
		ns         *netns.NS
	}{{"backend-5f9b", "backend", back}, {"frontend-7c6d", "frontend", front}} {
		cg := newCgroup(t, "case2-"+pod.role)
		pods[pod.role] = startSidecar(t, &cg, nil, "--pod", pod.name, "--namespace", "shop", "--redis-addr", rds.Addr())
		cmd := pod.ns.Exec("python3", "workloads/cases/shop.py", "--role", pod.role, "--port", "8080", "--backend", "backend:8080")
		srv := start(t, &cg, cmd[0], cmd[1:]...) // ip netns exec execs the server: same pid
		srv.waitReady(t, 20*time.Second)
		pids[pod.role] = srv.cmd.Process.Pid
	}
	checkout := func() caseResp { return nsGet(t, node, "http://"+frontIP+":8080/checkout") }

	// Normal traffic first: the name resolves at once.
	var normal []caseResp
	for i := 0; i < 6; i++ {
		normal = append(normal, checkout())
	}
	drainLines(dns.lines)

	// The fault: the next DNS query is lost.
	if err := dns.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	faulty := checkout()
	queries := drainLines(dns.lines)
	for i := 0; i < 4; i++ {
		normal = append(normal, checkout())
	}

	ids := []string{faulty.TraceID}
	for _, r := range normal {
		ids = append(ids, r.TraceID)
	}
	fronts := pods["frontend"].waitCaseProfiles(t, ids, 20*time.Second)
	backs := pods["backend"].waitCaseProfiles(t, ids, 20*time.Second)

	// The frontend's profile of the faulty request: dns, every lookup.
	p := fronts[faulty.TraceID]
	checkInvariants(t, p, pids["frontend"])
	resolve := caseHeaderMS(t, faulty, "X-Resolve-Us")
	t.Logf("faulty /checkout: client %v, getaddrinfo %.1f ms; profile %s: %s", faulty.Elapsed, resolve,
		profile.FormatDuration(p.DurationNS), caseOneLine(p.Diagnosis.Summary))
	t.Logf("the DNS server saw:\n  %s", strings.Join(queries, "\n  "))
	if p.Diagnosis.Cause != profile.CauseDNS {
		t.Errorf("frontend /checkout diagnosed %s, want dns:\n%s", p.Diagnosis.Cause, dump(p))
	}
	if resolve < 4000 {
		t.Errorf("getaddrinfo took %.1f ms: the lost query did not cost a timeout", resolve)
	}
	// Each query the server saw is one lookup in the profile, in order,
	// with its outcome: dropped = unanswered, else the rcode it sent.
	queryRe := regexp.MustCompile(`^QUERY id=\d+ name=(\S+) type=(\S+) action=(\S+)`)
	var want []string
	dropped := 0
	for _, q := range queries {
		m := queryRe.FindStringSubmatch(q)
		if m == nil {
			continue
		}
		outcome := map[string]string{"drop": "unanswered", "answer": "NOERROR", "nodata": "NOERROR", "nxdomain": "NXDOMAIN"}[m[3]]
		if m[3] == "drop" {
			dropped++
		}
		want = append(want, m[1]+" "+m[2]+" "+outcome)
	}
	var got []string
	var first, last int64 = -1, 0
	for _, q := range p.DNS {
		outcome := q.Rcode
		if !q.Answered {
			outcome = "unanswered"
		}
		got = append(got, q.Name+" "+q.Type+" "+outcome)
		if first < 0 || q.StartOffsetNS < first {
			first = q.StartOffsetNS
		}
		last = max(last, q.StartOffsetNS+q.LatencyNS)
		if q.Server != dnsIP+":53" {
			t.Errorf("lookup %s %s via %q, want %s:53", q.Name, q.Type, q.Server, dnsIP)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the profile's lookups:\n  %s\nthe DNS server's queries:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if span := ms(last - first); !caseWithin(span, resolve, 0.10) {
		t.Errorf("the lookups span %.1f ms, getaddrinfo took %.1f ms (want within 10%%):\n%s", span, resolve, dump(p))
	}

	// The backend's side of the same trace: milliseconds, not DNS.
	b := backs[faulty.TraceID]
	checkInvariants(t, b, pids["backend"])
	t.Logf("backend /price: %s: %s", profile.FormatDuration(b.DurationNS), caseOneLine(b.Diagnosis.Summary))
	if b.Diagnosis.Cause == profile.CauseDNS || len(b.DNS) > 0 {
		t.Errorf("backend blamed on DNS:\n%s", dump(b))
	}
	if p.DurationNS < 20*b.DurationNS {
		t.Errorf("frontend %s vs backend %s: want the client ≫ the server", profile.FormatDuration(p.DurationNS), profile.FormatDuration(b.DurationNS))
	}

	// Not blamed: the requests whose lookups were answered at once.
	for _, r := range normal {
		fp, bp := fronts[r.TraceID], backs[r.TraceID]
		if caseHeaderMS(t, r, "X-Resolve-Us") > 100 {
			continue
		}
		if fp.Diagnosis.Cause == profile.CauseDNS || bp.Diagnosis.Cause == profile.CauseDNS {
			t.Errorf("a normal /checkout (getaddrinfo %s µs) is blamed on DNS: frontend %s, backend %s:\n%s",
				r.Header.Get("X-Resolve-Us"), fp.Diagnosis.Summary, bp.Diagnosis.Summary, dump(fp))
		}
	}
	t.Logf("normal /checkout: %s: %s", profile.FormatDuration(fronts[normal[0].TraceID].DurationNS), caseOneLine(fronts[normal[0].TraceID].Diagnosis.Summary))

	// The cross-pod view, from the backend's sidecar (through Redis): the
	// story says the frontend waited in DNS, and what the backend took.
	text := pods["backend"].caseTraceText(t, faulty.TraceID, 2)
	for _, want := range []string{"2 profiles in 2 pods", "frontend-7c6d  GET /checkout",
		"on " + backendIP + ":8080 (backend-5f9b: GET /price took",
		fmt.Sprintf("in DNS (%d lookups of %s, %d unanswered)", len(want), service, dropped)} {
		if !strings.Contains(text, want) {
			t.Errorf("the trace's text view lacks %q:\n%s", want, text)
		}
	}
	// The wait on the DNS server is not the call to the backend.
	if strings.Contains(text, "on "+dnsIP+":53 (backend-5f9b") {
		t.Errorf("the trace's text view calls the wait on the DNS server %s:53 the backend's request:\n%s", dnsIP, text)
	}
	_, list := pods["frontend"].caseDrillList(t, 1000, 5)
	casePublish(t, "2-dns.drill", list)
	casePublish(t, "2-dns", text)
}

// nsGet sends one traced GET with curl from inside ns (a client that can
// reach the pods' addresses), returning the status, headers and time.
func nsGet(t *testing.T, ns *netns.NS, url string) caseResp {
	t.Helper()
	id := newTraceID()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := ns.Exec("curl", "-sS", "-D", "-", "-o", "/dev/null", "-H", "traceparent: 00-"+id+"-00f067aa0ba902b7-01", url)
	start := time.Now()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).Output()
	r := caseResp{TraceID: id, Header: http.Header{}, Elapsed: time.Since(start)}
	if u, perr := neturl.Parse(url); perr == nil {
		r.Path = u.Path
	}
	if err != nil {
		t.Fatalf("curl %s in %s: %v: %s", url, ns.Name, err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.HasPrefix(line, "HTTP/") {
			fmt.Sscanf(line, "%s %d", new(string), &r.Status)
		} else if k, v, ok := strings.Cut(line, ":"); ok {
			r.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	if r.Status != 200 {
		t.Fatalf("GET %s: status %d:\n%s", url, r.Status, out)
	}
	return r
}

// drainLines returns the lines a process printed so far, waiting until it
// has been quiet for half a second.
func drainLines(ch <-chan string) []string {
	var out []string
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, l)
		case <-time.After(500 * time.Millisecond):
			return out
		}
	}
}
