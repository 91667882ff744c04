package e2e

import (
	"encoding/json"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tracecam/tracecam/internal/redistest"
)

// Seed use case 2: a request enters pod A (frontend), which calls pod B
// (backend) with the same trace ID. Each pod has its own sidecar; both
// write to one real Redis; asking EITHER sidecar for the trace returns both
// profiles, field for field the same, ordered by start time.
func TestCrossPodTraceThroughRedis(t *testing.T) {
	rds := redistest.Start(t, redistest.Options{})
	pods := map[string]*sidecar{}
	bases := map[string]string{}
	for _, name := range []string{"frontend", "backend"} {
		cg := newCgroup(t, name)
		pods[name] = startSidecar(t, &cg, nil, "--pod", name, "--namespace", "shop", "--redis-addr", rds.Addr())
		srv := start(t, &cg, "python3", "workloads/pyserver.py", "--port", "0")
		bases[name] = "127.0.0.1:" + srv.waitReady(t, 20*time.Second)
	}

	id := newTraceID()
	callee := "http://" + bases["backend"] + "/sleep?ms=80"
	get(t, "http://"+bases["frontend"]+"/call?url="+url.QueryEscape(callee), id)

	fetch := func(side *sidecar) map[string]any {
		code, body := curl(t, "http://"+side.httpAddr+"/v1/traces/"+id)
		if code != 200 {
			return nil
		}
		var resp map[string]any
		json.Unmarshal([]byte(body), &resp)
		return resp
	}
	var answers []map[string]any
	for _, name := range []string{"frontend", "backend"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp := fetch(pods[name])
			if resp != nil && len(resp["profiles"].([]any)) == 2 {
				answers = append(answers, resp)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sidecar of %s never returned both profiles of %s: %v", name, id, resp)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !reflect.DeepEqual(answers[0]["profiles"], answers[1]["profiles"]) {
		t.Errorf("the two sidecars disagree:\n%v\n%v", answers[0], answers[1])
	}
	for _, a := range answers {
		if src := a["sources"].(map[string]any); src["local"] != "ok" || src["redis"] != "ok" {
			t.Errorf("sources %v", src)
		}
	}
	profiles := answers[0]["profiles"].([]any)
	front, back := profiles[0].(map[string]any), profiles[1].(map[string]any)
	if front["pod"] != "frontend" || back["pod"] != "backend" || front["namespace"] != "shop" {
		t.Fatalf("want frontend then backend (by start time), got %v then %v", front["pod"], back["pod"])
	}
	if front["path"] != "/call" || back["path"] != "/sleep" {
		t.Errorf("paths %v, %v", front["path"], back["path"])
	}
	// The client-side view: the frontend waited on the backend's address.
	waited := false
	for _, n := range front["network"].([]any) {
		peer := n.(map[string]any)
		if peer["peer"] == bases["backend"] && peer["wait_ns"].(float64) > 70e6 {
			waited = true
		}
	}
	if !waited {
		t.Errorf("frontend profile does not show the wait on %s: %v", bases["backend"], front["network"])
	}
	if fd, bd := front["duration_ns"].(float64), back["duration_ns"].(float64); fd <= bd {
		t.Errorf("frontend %v ns should contain backend %v ns", fd, bd)
	}

	// The text view tells it as one story, from either sidecar.
	code, story := curl(t, "http://"+pods["backend"].httpAddr+"/v1/traces/"+id+"?format=text")
	for _, want := range []string{"2 profiles in 2 pods", "frontend  GET /call", "waited", "on " + bases["backend"], "(backend: GET /sleep took"} {
		if code != 200 || !strings.Contains(story, want) {
			t.Errorf("story lacks %q:\n%s", want, story)
		}
	}

	// Redis goes away: each sidecar still answers with what it has, and says
	// which part is missing; the status reports the fault.
	rds.Kill()
	code, body := curl(t, "http://"+pods["frontend"].httpAddr+"/v1/traces/"+id)
	if code != 200 || !strings.Contains(body, `"local":"ok"`) || !strings.Contains(body, `"redis":"unavailable`) ||
		!strings.Contains(body, `"pod":"frontend"`) || strings.Contains(body, `"pod":"backend"`) {
		t.Errorf("with Redis down: %d %s", code, body)
	}
	id2 := newTraceID()
	get(t, "http://"+bases["frontend"]+"/fast", id2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := pods["frontend"].status(t)
		rs, _ := st["redis_stats"].(map[string]any)
		if strings.HasPrefix(st["redis"].(string), "unavailable") && rs != nil && rs["dropped_write_errors"].(float64) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status does not report the Redis fault: %v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The sidecar binary against a Redis that wants a password and TLS, as a
// managed Redis does: its writes land and GetTrace reads them back.
func TestSidecarRedisPasswordAndTLS(t *testing.T) {
	rds := redistest.Start(t, redistest.Options{Password: "s3cret-pw", TLS: true})
	pwFile := t.TempDir() + "/password"
	if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cg := newCgroup(t, "tls")
	side := startSidecar(t, &cg, nil, "--pod", "web", "--redis-addr", rds.Addr(),
		"--redis-password-file", pwFile, "--redis-tls", "--redis-tls-ca", rds.CAFile())
	srv := start(t, &cg, "python3", "workloads/pyserver.py", "--port", "0")
	id := newTraceID()
	get(t, "http://127.0.0.1:"+srv.waitReady(t, 20*time.Second)+"/fast", id)
	side.waitProfile(t, id, 10*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := side.status(t)
		rs, _ := st["redis_stats"].(map[string]any)
		if st["redis"] == "ok" && rs != nil && rs["written"].(float64) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing written over TLS with the password: %v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, body := curl(t, "http://"+side.httpAddr+"/v1/traces/"+id)
	if code != 200 || !strings.Contains(body, `"redis":"ok"`) {
		t.Errorf("GetTrace: %d %s", code, body)
	}
}
