package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	requests     uint64
	reqPerSec    float64
	p50, p99     time.Duration
	socketErrors string // wrk's "Socket errors" line, if any
}

// runWrk loads url for d. wrk runs in our own cgroup, outside the watched
// one, so the sidecar profiles only the server side.
func runWrk(ctx context.Context, url string, d time.Duration) (wrkResult, error) {
	secs := int(d.Round(time.Second) / time.Second)
	out, err := runShort(ctx, nil, "wrk", "-t1", "-c32", fmt.Sprintf("-d%ds", secs), "--latency", url)
	if err != nil {
		return wrkResult{}, fmt.Errorf("running wrk: %w", err)
	}
	res, err := parseWrk(out)
	if err != nil {
		return res, fmt.Errorf("%w; wrk output:\n%s", err, out)
	}
	return res, nil
}

var (
	wrkPercentile = regexp.MustCompile(`^\s*(50|99)(?:\.0+)?%\s+(\S+)\s*$`)
	wrkRequests   = regexp.MustCompile(`^\s*(\d+) requests in `)
	wrkRate       = regexp.MustCompile(`^Requests/sec:\s+([0-9.]+)`)
	wrkNon2xx     = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
)

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRate, haveReqs bool
	for _, line := range strings.Split(out, "\n") {
		if m := wrkPercentile.FindStringSubmatch(line); m != nil {
			d, err := parseWrkDuration(m[2])
			if err != nil {
				return r, err
			}
			if m[1] == "50" {
				r.p50 = d
			} else {
				r.p99 = d
			}
		} else if m := wrkRequests.FindStringSubmatch(line); m != nil {
			r.requests, _ = strconv.ParseUint(m[1], 10, 64)
			haveReqs = true
		} else if m := wrkRate.FindStringSubmatch(line); m != nil {
			r.reqPerSec, _ = strconv.ParseFloat(m[1], 64)
			haveRate = true
		} else if m := wrkNon2xx.FindStringSubmatch(line); m != nil {
			// Errors would make the server look fast; refuse the trial.
			return r, fmt.Errorf("wrk got %s non-2xx responses", m[1])
		} else if strings.Contains(line, "Socket errors:") {
			r.socketErrors = strings.TrimSpace(line)
		}
	}
	if !haveRate || !haveReqs || r.p50 == 0 || r.p99 == 0 {
		return r, fmt.Errorf("could not parse wrk output")
	}
	return r, nil
}

// parseWrkDuration parses wrk's latency format: 512.00us, 1.23ms, 2.00s, 1.00m.
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("wrk latency %q: %w", s, err)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("wrk latency %q: unknown unit", s)
}
