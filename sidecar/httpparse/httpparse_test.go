package httpparse

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestLooksLike(t *testing.T) {
	tests := []struct {
		in       string
		req, rsp bool
	}{
		{"GET / HTTP/1.1\r\n", true, false},
		{"POST /x", true, false},
		{"OPTIONS * HTTP/1.1", true, false},
		{"CONNECT a:443 HTTP/1.1", true, false},
		{"GET", false, false},
		{"GET\t/", false, false},
		{"get / HTTP/1.1", false, false},
		{"GETX / HTTP/1.1", false, false},
		{"PRI * HTTP/2.0\r\n", false, false},
		{"HTTP/1.1 200 OK\r\n", false, true},
		{"HTTP/1.0 404", false, true},
		{"HTTP/1.1 20", false, false},
		{"HTTP/1.1 2x0 OK", false, false},
		{"HTTP/2 200", false, false},
		{"HTTP/1.1  200", false, false},
		{"", false, false},
		{"\x16\x03\x01\x02\x00", false, false},
	}
	for _, tt := range tests {
		if got := LooksLikeRequest([]byte(tt.in)); got != tt.req {
			t.Errorf("LooksLikeRequest(%q) = %v, want %v", tt.in, got, tt.req)
		}
		if got := LooksLikeResponse([]byte(tt.in)); got != tt.rsp {
			t.Errorf("LooksLikeResponse(%q) = %v, want %v", tt.in, got, tt.rsp)
		}
	}
}

func TestParseRequestHead(t *testing.T) {
	const full = "POST /api/v1/items?id=7&x=y HTTP/1.1\r\n" +
		"Host: example.com:8080\r\n" +
		"Content-Type:application/json\r\n" +
		"X-Dup: first\r\n" +
		"x-dup: second\r\n" +
		"Content-Length: 13\r\n" +
		"\r\n" +
		`{"name":"a"}` + "\n"
	headLen := strings.Index(full, "\r\n\r\n") + 4

	tests := []struct {
		name    string
		in      string
		want    RequestHead
		wantErr error
	}{
		{
			name: "complete with body",
			in:   full,
			want: RequestHead{
				Method: "POST", Target: "/api/v1/items?id=7&x=y", Path: "/api/v1/items",
				Proto: "HTTP/1.1", Host: "example.com:8080",
				Headers: map[string]string{
					"host": "example.com:8080", "content-type": "application/json",
					"x-dup": "first", "content-length": "13",
				},
				ContentLength: 13, HeadComplete: true, HeadLen: headLen,
			},
		},
		{
			name: "cut mid header drops partial line",
			in:   full[:strings.Index(full, "X-Dup")+8],
			want: RequestHead{
				Method: "POST", Target: "/api/v1/items?id=7&x=y", Path: "/api/v1/items",
				Proto: "HTTP/1.1", Host: "example.com:8080",
				Headers: map[string]string{
					"host": "example.com:8080", "content-type": "application/json",
				},
				ContentLength: -1,
			},
		},
		{
			name: "cut between CR and LF of blank line",
			in:   full[:headLen-1],
			want: RequestHead{
				Method: "POST", Target: "/api/v1/items?id=7&x=y", Path: "/api/v1/items",
				Proto: "HTTP/1.1", Host: "example.com:8080",
				Headers: map[string]string{
					"host": "example.com:8080", "content-type": "application/json",
					"x-dup": "first", "content-length": "13",
				},
				ContentLength: 13,
			},
		},
		{
			name: "request line only",
			in:   "GET / HTTP/1.0\r\n",
			want: RequestHead{Method: "GET", Target: "/", Path: "/", Proto: "HTTP/1.0", Headers: map[string]string{}, ContentLength: -1},
		},
		{
			name: "bare LF line endings",
			in:   "GET /a?b HTTP/1.1\nHost: h\n\nrest",
			want: RequestHead{
				Method: "GET", Target: "/a?b", Path: "/a", Proto: "HTTP/1.1", Host: "h",
				Headers: map[string]string{"host": "h"}, ContentLength: -1, HeadComplete: true, HeadLen: 27,
			},
		},
		{
			name: "chunked and lenient header lines",
			in: "PUT /u HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n" +
				"no colon here\r\n bad fold\r\nbad name: x\r\n: empty\r\nX-Ws: \t v \t\r\n\r\n",
			want: RequestHead{
				Method: "PUT", Target: "/u", Path: "/u", Proto: "HTTP/1.1",
				Headers:       map[string]string{"transfer-encoding": "gzip, Chunked", "x-ws": "v"},
				ContentLength: -1, Chunked: true, HeadComplete: true, HeadLen: 114,
			},
		},
		{
			name: "absolute-form target supplies host",
			in:   "GET http://user@proxy.test:3128/p?q=1 HTTP/1.1\r\n\r\n",
			want: RequestHead{
				Method: "GET", Target: "http://user@proxy.test:3128/p?q=1", Path: "http://user@proxy.test:3128/p",
				Proto: "HTTP/1.1", Host: "proxy.test:3128", Headers: map[string]string{},
				ContentLength: -1, HeadComplete: true, HeadLen: 50,
			},
		},
		{
			name: "connect authority",
			in:   "CONNECT db.internal:5432 HTTP/1.1\r\n",
			want: RequestHead{
				Method: "CONNECT", Target: "db.internal:5432", Path: "db.internal:5432",
				Proto: "HTTP/1.1", Host: "db.internal:5432", Headers: map[string]string{}, ContentLength: -1,
			},
		},
		{
			name: "bad content-length",
			in:   "POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
			want: RequestHead{
				Method: "POST", Target: "/", Path: "/", Proto: "HTTP/1.1",
				Headers: map[string]string{"content-length": "-5"}, ContentLength: -1, HeadComplete: true, HeadLen: 39,
			},
		},
		{
			name: "repeated identical content-length list",
			in:   "POST / HTTP/1.1\r\nContent-Length: 4, 4\r\n",
			want: RequestHead{
				Method: "POST", Target: "/", Path: "/", Proto: "HTTP/1.1",
				Headers: map[string]string{"content-length": "4, 4"}, ContentLength: 4,
			},
		},
		{name: "empty", in: "", wantErr: ErrTruncated},
		{name: "truncated request line", in: "GET /very/long/path?with=query", wantErr: ErrTruncated},
		{name: "CR without LF", in: "GET / HTTP/1.1\r", wantErr: ErrTruncated},
		{name: "control char in target", in: "GET /a\x00b HTTP/1.1\r\n", wantErr: ErrMalformed},
		{name: "lone CR inside line", in: "GET / HTTP/1.1\rX\n", wantErr: ErrMalformed},
		{name: "http2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", wantErr: ErrMalformed},
		{name: "missing proto", in: "GET /\r\n", wantErr: ErrMalformed},
		{name: "extra space", in: "GET  / HTTP/1.1\r\n", wantErr: ErrMalformed},
		{name: "trailing junk after proto", in: "GET / HTTP/1.1 x\r\n", wantErr: ErrMalformed},
		{name: "bad method token", in: "G(T / HTTP/1.1\r\n", wantErr: ErrMalformed},
		{name: "empty line", in: "\r\n", wantErr: ErrMalformed},
		{name: "binary", in: "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n", wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequestHead([]byte(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !requestHeadEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseRequestHeadErrorDetail(t *testing.T) {
	_, err := ParseRequestHead([]byte("GET / SPDY/3\r\n"))
	if err == nil || !strings.Contains(err.Error(), `"SPDY/3"`) {
		t.Errorf("error %v should name the offending protocol", err)
	}
}

func TestParseResponseHead(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    ResponseHead
		wantErr error
	}{
		{
			name: "complete",
			in:   "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer: x\r\n\r\nhi",
			want: ResponseHead{
				Proto: "HTTP/1.1", StatusCode: 200, Reason: "OK",
				Headers:       map[string]string{"content-length": "2", "server": "x"},
				ContentLength: 2, HeadComplete: true, HeadLen: 49,
			},
		},
		{
			name: "multi-word reason with tab, truncated headers",
			in:   "HTTP/1.0 503 Service\tUnavailable now\r\nRetry-After: 5\r\nConte",
			want: ResponseHead{
				Proto: "HTTP/1.0", StatusCode: 503, Reason: "Service\tUnavailable now",
				Headers: map[string]string{"retry-after": "5"}, ContentLength: -1,
			},
		},
		{
			name: "no reason",
			in:   "HTTP/1.1 204\r\n\r\n",
			want: ResponseHead{Proto: "HTTP/1.1", StatusCode: 204, Headers: map[string]string{}, ContentLength: -1, HeadComplete: true, HeadLen: 16},
		},
		{
			name: "empty reason after space",
			in:   "HTTP/1.1 304 \n\n",
			want: ResponseHead{Proto: "HTTP/1.1", StatusCode: 304, Headers: map[string]string{}, ContentLength: -1, HeadComplete: true, HeadLen: 15},
		},
		{
			name: "chunked",
			in:   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
			want: ResponseHead{
				Proto: "HTTP/1.1", StatusCode: 200, Reason: "OK",
				Headers: map[string]string{"transfer-encoding": "chunked"}, ContentLength: -1,
				Chunked: true, HeadComplete: true, HeadLen: 47,
			},
		},
		{name: "truncated status line", in: "HTTP/1.1 200 O", wantErr: ErrTruncated},
		{name: "empty", in: "", wantErr: ErrTruncated},
		{name: "two-digit code", in: "HTTP/1.1 20 OK\r\n", wantErr: ErrMalformed},
		{name: "non-digit code", in: "HTTP/1.1 2O0 OK\r\n", wantErr: ErrMalformed},
		{name: "no code", in: "HTTP/1.1\r\n", wantErr: ErrMalformed},
		{name: "http2", in: "HTTP/2 200\r\n", wantErr: ErrMalformed},
		{name: "control char in reason", in: "HTTP/1.1 200 O\x01K\r\n", wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResponseHead([]byte(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.Proto != tt.want.Proto || got.StatusCode != tt.want.StatusCode || got.Reason != tt.want.Reason ||
				got.ContentLength != tt.want.ContentLength || got.Chunked != tt.want.Chunked ||
				got.HeadComplete != tt.want.HeadComplete || got.HeadLen != tt.want.HeadLen ||
				!maps.Equal(got.Headers, tt.want.Headers) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestBodyComplete(t *testing.T) {
	tests := []struct {
		name    string
		cl      int64
		chunked bool
		n       int64
		tail    string
		want    bool
	}{
		{"cl reached", 10, false, 10, "", true},
		{"cl exceeded", 10, false, 12, "", true},
		{"cl short", 10, false, 9, "", false},
		{"cl zero", 0, false, 0, "", true},
		{"unknown length", -1, false, 1 << 20, "0\r\n\r\n", false},
		{"chunk terminator alone", -1, true, 0, "0\r\n\r\n", true},
		{"chunk terminator after data", -1, true, 0, "5\r\nhello\r\n0\r\n\r\n", true},
		{"chunk terminator zero-padded", -1, true, 0, "000\r\n\r\n", true},
		{"chunk terminator after bare LF", -1, true, 0, "\n0\r\n\r\n", true},
		{"chunk data ending in 0", -1, true, 0, "5\r\nabc10\r\n\r\n", false},
		{"chunk 10 not last", -1, true, 0, "10\r\n\r\n", false},
		{"chunked mid-stream", -1, true, 0, "5\r\nhello\r\n", false},
		{"chunked truncated terminator", -1, true, 0, "0\r\n\r", false},
		{"chunked ignores content-length", 3, true, 100, "x", false},
		{"chunked empty tail", -1, true, 0, "", false},
	}
	for _, tt := range tests {
		if got := BodyComplete(tt.cl, tt.chunked, tt.n, []byte(tt.tail)); got != tt.want {
			t.Errorf("%s: BodyComplete = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNoBody(t *testing.T) {
	tests := []struct {
		method string
		status int
		want   bool
	}{
		{"HEAD", 200, true},
		{"GET", 100, true},
		{"GET", 101, true},
		{"GET", 204, true},
		{"POST", 304, true},
		{"CONNECT", 200, true},
		{"CONNECT", 407, false},
		{"GET", 200, false},
		{"GET", 404, false},
		{"GET", 205, false},
		{"head", 200, false},
	}
	for _, tt := range tests {
		if got := NoBody(tt.method, tt.status); got != tt.want {
			t.Errorf("NoBody(%q, %d) = %v, want %v", tt.method, tt.status, got, tt.want)
		}
	}
}

func TestSplitPipelined(t *testing.T) {
	const (
		get1 = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
		get2 = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
		post = "POST /c HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
		chnk = "POST /d HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	)
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"single", get1, []string{get1}},
		{"two gets", get1 + get2, []string{get1, get2}},
		{"get post get", get1 + post + get2, []string{get1, post, get2}},
		{"last truncated", get1 + post + get2[:10], []string{get1, post, get2[:10]}},
		{"body runs past capture", post[:len(post)-2], []string{post[:len(post)-2]}},
		{"body not followed by request", post + "xyz", []string{post + "xyz"}},
		{"chunked stops split", chnk + get1, []string{chnk + get1}},
		{"incomplete head", get1[:20], []string{get1[:20]}},
		{"stray CRLF between", get1 + "\r\n" + get2, []string{get1 + "\r\n", get2}},
		{"not a request", "hello world", []string{"hello world"}},
		{"bad content-length stops split", "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n" + get1,
			[]string{"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n" + get1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitPipelined([]byte(tt.in))
			if len(got) != len(tt.want) {
				t.Fatalf("got %d parts %q, want %d %q", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Errorf("part %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// Appending to one part must not overwrite the next, since callers may
// keep the parts around independently.
func TestSplitPipelinedCapacity(t *testing.T) {
	b := []byte("GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
	parts := SplitPipelined(b)
	if len(parts) != 2 {
		t.Fatalf("got %d parts", len(parts))
	}
	_ = append(parts[0], 'X')
	if parts[1][0] != 'G' {
		t.Errorf("append to part 0 clobbered part 1: %q", parts[1])
	}
}

func requestHeadEqual(a, b RequestHead) bool {
	return a.Method == b.Method && a.Target == b.Target && a.Path == b.Path &&
		a.Proto == b.Proto && a.Host == b.Host && a.ContentLength == b.ContentLength &&
		a.Chunked == b.Chunked && a.HeadComplete == b.HeadComplete && a.HeadLen == b.HeadLen &&
		maps.Equal(a.Headers, b.Headers)
}

var fuzzSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /x?y HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
	"PUT / HTTP/1.0\nTransfer-Encoding: chunked\n\n",
	"GET http://h:1/p HTTP/1.1\r\n",
	"CONNECT h:443 HTTP/1.1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
	"HTTP/1.0 301 Moved\r\nLocation: /x\r\nConte",
	"HTTP/1.1 200\r\n\r\n",
	"GET / HTTP/1.1\r\n fold\r\nA: 1, 1\r\nContent-Length: 1, 2\r\n\r\n",
	"\r\n\r\n",
	"\x00\xff\n",
}

// checkHead asserts invariants shared by request and response parsing.
func checkHead(t *testing.T, b []byte, complete bool, headLen int, headers map[string]string) {
	t.Helper()
	if headers == nil {
		t.Fatal("nil Headers")
	}
	if complete {
		if headLen <= 0 || headLen > len(b) || b[headLen-1] != '\n' {
			t.Fatalf("bad HeadLen %d for %q", headLen, b)
		}
	} else if headLen != 0 {
		t.Fatalf("HeadLen %d with incomplete head", headLen)
	}
}

func FuzzParseRequestHead(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), len(s)/2)
	}
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		full, err := ParseRequestHead(b)
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		checkHead(t, b, full.HeadComplete, full.HeadLen, full.Headers)
		if full.Method == "" || full.Target == "" || !strings.HasPrefix(full.Target, full.Path) {
			t.Fatalf("bad request line fields %+v", full)
		}
		// A shorter capture of the same bytes must never contradict the
		// longer one: every header it reports must be reported identically.
		if cut < 0 || cut > len(b) {
			return
		}
		part, err := ParseRequestHead(b[:cut])
		if err != nil {
			return
		}
		for k, v := range part.Headers {
			if fv, ok := full.Headers[k]; !ok || fv != v {
				t.Fatalf("prefix header %q=%q, full has %q (%v)", k, v, fv, ok)
			}
		}
		if part.HeadComplete && (part.HeadLen != full.HeadLen || !full.HeadComplete) {
			t.Fatalf("prefix head complete at %d, full at %d", part.HeadLen, full.HeadLen)
		}
	})
}

func FuzzParseResponseHead(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseResponseHead(b)
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		checkHead(t, b, h.HeadComplete, h.HeadLen, h.Headers)
		if h.StatusCode < 0 || h.StatusCode > 999 {
			t.Fatalf("status %d", h.StatusCode)
		}
		_ = NoBody("GET", h.StatusCode)
		_ = BodyComplete(h.ContentLength, h.Chunked, int64(len(b)-h.HeadLen), b)
	})
}

func FuzzSplitPipelined(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parts := SplitPipelined(b)
		if len(b) == 0 {
			if parts != nil {
				t.Fatalf("non-nil result for empty input")
			}
			return
		}
		if got := bytes.Join(parts, nil); !bytes.Equal(got, b) {
			t.Fatalf("parts %q do not reassemble %q", parts, b)
		}
		for i, p := range parts {
			if len(p) == 0 {
				t.Fatalf("empty part %d", i)
			}
			if i > 0 && !LooksLikeRequest(p) {
				t.Fatalf("part %d %q does not start a request", i, p)
			}
		}
	})
}

func TestMayStartRequest(t *testing.T) {
	for in, want := range map[string]bool{
		"G": true, "GE": true, "GET": true, "P": true, "PU": true, "DELE": true, "OPTIONS": true,
		"GET ": false, // LooksLikeRequest already tells
		"":     false, "X": false, "GET /": false, "get": false, "HTTP": false, "\x16": false,
	} {
		if got := MayStartRequest([]byte(in)); got != want {
			t.Errorf("MayStartRequest(%q) = %v, want %v", in, got, want)
		}
	}
}
