package httpparse

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrTruncated means the request or status line did not end within the
// captured bytes, so nothing reliable can be said about the message yet.
var ErrTruncated = errors.New("httpparse: start line truncated")

// ErrMalformed means the start line is complete but is not valid HTTP/1.x;
// errors returned by the parsers wrap it with the specific reason.
var ErrMalformed = errors.New("httpparse: malformed start line")

// methods are the tokens LooksLikeRequest accepts. Extension methods are
// deliberately excluded: the check gates which socket traffic is treated as
// HTTP at all, and a short list keeps false positives on binary protocols low.
var methods = []string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"}

// LooksLikeRequest reports whether b starts with a well-known HTTP method
// followed by a space. It is meant to be cheap enough to run on every
// captured read before committing to a full parse.
func LooksLikeRequest(b []byte) bool {
	for _, m := range methods {
		if len(b) > len(m) && b[len(m)] == ' ' && string(b[:len(m)]) == m {
			return true
		}
	}
	return false
}

// MayStartRequest reports whether b, too short to tell, is the start of a
// request line: a proper prefix of some method and its space ("G", "GE").
// Go's net/http reads one byte of a keep-alive connection in a background
// goroutine while the handler runs: when the next request comes early, its
// first byte and the rest arrive in two reads.
func MayStartRequest(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, m := range methods {
		if len(b) <= len(m) && string(b) == (m + " ")[:len(b)] {
			return true
		}
	}
	return false
}

// LooksLikeResponse reports whether b starts with an HTTP/1.0 or HTTP/1.1
// status line prefix: the version, a space and a three-digit status code.
func LooksLikeResponse(b []byte) bool {
	if len(b) < 12 {
		return false
	}
	if string(b[:9]) != "HTTP/1.1 " && string(b[:9]) != "HTTP/1.0 " {
		return false
	}
	return isDigit(b[9]) && isDigit(b[10]) && isDigit(b[11])
}

// RequestHead is the parsed head of an HTTP/1.x request, possibly partial.
type RequestHead struct {
	Method string
	Target string // request-target exactly as sent
	Path   string // Target without the query string
	Proto  string // e.g. "HTTP/1.1"
	// Host is the Host header or, when that is absent, the authority of an
	// absolute-form or CONNECT target.
	Host string
	// Headers maps lower-cased field names to the first value seen, trimmed
	// of surrounding whitespace. It is never nil.
	Headers       map[string]string
	ContentLength int64 // -1 if absent or unparsable
	Chunked       bool  // Transfer-Encoding ends in "chunked"
	HeadComplete  bool  // the blank line ending the head was within b
	HeadLen       int   // bytes up to and including the blank line; 0 unless HeadComplete
}

// ResponseHead is the parsed head of an HTTP/1.x response, possibly partial.
type ResponseHead struct {
	Proto         string
	StatusCode    int
	Reason        string
	Headers       map[string]string // same conventions as RequestHead.Headers
	ContentLength int64             // -1 if absent or unparsable
	Chunked       bool
	HeadComplete  bool
	HeadLen       int
}

// ParseRequestHead parses the request line and as many complete header
// lines as b contains. A header line cut off by the end of b is ignored and
// leaves HeadComplete false; that is the expected shape of a capture, not an
// error. The request line itself must be complete (ErrTruncated otherwise)
// and well-formed (an error wrapping ErrMalformed otherwise).
func ParseRequestHead(b []byte) (RequestHead, error) {
	return ParseRequestHeadKeep(b, nil)
}

// ParseRequestHeadKeep is ParseRequestHead keeping only the named headers
// (lower-case names; nil keeps all) in Headers, which is nil when none of
// them is present. Host, Content-Length and Transfer-Encoding are always
// interpreted. On the capture path this skips
// an allocation per header line the caller does not read.
func ParseRequestHeadKeep(b []byte, keep []string) (RequestHead, error) {
	line, rest, ok := cutLine(b)
	if !ok {
		return RequestHead{}, ErrTruncated
	}
	h := RequestHead{ContentLength: -1}
	if err := parseRequestLine(line, &h); err != nil {
		return RequestHead{}, err
	}
	f := parseFields(rest, keep)
	h.Headers, h.ContentLength, h.Chunked, h.HeadComplete = f.headers, f.contentLength, f.chunked, f.complete
	if h.HeadComplete {
		h.HeadLen = len(b) - len(rest) + f.consumed
	}
	h.Host = f.host
	if h.Host == "" {
		h.Host = targetAuthority(h.Method, h.Target)
	}
	return h, nil
}

// ParseResponseHead is the response counterpart of ParseRequestHead, with
// the same truncation rules.
func ParseResponseHead(b []byte) (ResponseHead, error) {
	return ParseResponseHeadKeep(b, nil)
}

// ParseResponseHeadKeep is ParseResponseHead keeping only the named headers,
// like ParseRequestHeadKeep.
func ParseResponseHeadKeep(b []byte, keep []string) (ResponseHead, error) {
	line, rest, ok := cutLine(b)
	if !ok {
		return ResponseHead{}, ErrTruncated
	}
	h := ResponseHead{ContentLength: -1}
	if err := parseStatusLine(line, &h); err != nil {
		return ResponseHead{}, err
	}
	f := parseFields(rest, keep)
	h.Headers, h.ContentLength, h.Chunked, h.HeadComplete = f.headers, f.contentLength, f.chunked, f.complete
	if h.HeadComplete {
		h.HeadLen = len(b) - len(rest) + f.consumed
	}
	return h, nil
}

func parseRequestLine(line []byte, h *RequestHead) error {
	if i := indexCTL(line, false); i >= 0 {
		return fmt.Errorf("%w: control byte 0x%02x in request line at offset %d", ErrMalformed, line[i], i)
	}
	method, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return fmt.Errorf("%w: request line has no spaces", ErrMalformed)
	}
	target, proto, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return fmt.Errorf("%w: request line has no protocol", ErrMalformed)
	}
	if len(method) == 0 || !isToken(method) {
		return fmt.Errorf("%w: invalid method %q", ErrMalformed, method)
	}
	if len(target) == 0 {
		return fmt.Errorf("%w: empty request target", ErrMalformed)
	}
	if !isHTTP1(proto) {
		return fmt.Errorf("%w: unsupported protocol %q", ErrMalformed, proto)
	}
	h.Method, h.Target, h.Proto = string(method), string(target), string(proto)
	h.Path = h.Target
	if i := strings.IndexByte(h.Path, '?'); i >= 0 {
		h.Path = h.Path[:i]
	}
	return nil
}

func parseStatusLine(line []byte, h *ResponseHead) error {
	// HTAB is legal in the reason phrase, so only other CTLs are rejected.
	if i := indexCTL(line, true); i >= 0 {
		return fmt.Errorf("%w: control byte 0x%02x in status line at offset %d", ErrMalformed, line[i], i)
	}
	proto, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return fmt.Errorf("%w: status line has no status code", ErrMalformed)
	}
	if !isHTTP1(proto) {
		return fmt.Errorf("%w: unsupported protocol %q", ErrMalformed, proto)
	}
	code, reason, _ := bytes.Cut(rest, []byte{' '})
	if len(code) != 3 || !isDigit(code[0]) || !isDigit(code[1]) || !isDigit(code[2]) {
		return fmt.Errorf("%w: invalid status code %q", ErrMalformed, code)
	}
	h.Proto = string(proto)
	h.StatusCode = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	h.Reason = string(reason)
	return nil
}

type fields struct {
	headers       map[string]string
	host          string
	contentLength int64
	chunked       bool
	complete      bool
	consumed      int // bytes of the header block incl. the blank line, if complete
}

// parseFields reads header lines until the blank line or the end of the
// captured bytes. It is lenient about individual lines (skipping ones it
// cannot interpret) because one odd header should not cost us the rest of
// the head, and the start line has already established that this is HTTP.
// lookupName returns the entry of names equal to name ignoring ASCII case,
// without allocating.
// hasLen says whether some name in names has length n.
func hasLen(names []string, n int) bool {
	for _, s := range names {
		if len(s) == n {
			return true
		}
	}
	return false
}

func lookupName(name []byte, names []string) (string, bool) {
	for _, n := range names {
		if len(n) == len(name) && asciiEqualFold(name, n) {
			return n, true
		}
	}
	return "", false
}

func asciiEqualFold(b []byte, lower string) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func parseFields(b []byte, keep []string) fields {
	f := fields{contentLength: -1}
	if keep == nil {
		f.headers = make(map[string]string)
	}
	var seenHost, seenCL, seenTE bool
	rest := b
	for !f.complete {
		line, next, ok := cutLine(rest)
		if !ok {
			// The line ran past the capture; its value would be a guess.
			break
		}
		rest = next
		if len(line) == 0 {
			f.complete = true
			f.consumed = len(b) - len(rest)
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Obsolete line folding: continuation of the previous value.
			// Dropping it keeps the first line's value, which is what
			// matters for the few headers we interpret.
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name := line[:colon]
		// Most lines of a head are neither framing headers nor kept ones:
		// skip them before validating and trimming (a malformed name of
		// a skipped line changes nothing).
		if keep != nil {
			switch n := len(name); {
			case n == 4 || n == 14 || n == 17:
			case !hasLen(keep, n):
				continue
			}
		}
		if !isToken(name) {
			continue
		}
		value := bytes.Trim(line[colon+1:], " \t")
		// The framing headers are read in place, first occurrence wins,
		// whether or not the caller keeps them.
		switch {
		case !seenHost && len(name) == 4 && asciiEqualFold(name, "host"):
			seenHost, f.host = true, string(value)
		case !seenCL && len(name) == 14 && asciiEqualFold(name, "content-length"):
			seenCL, f.contentLength = true, parseContentLength(string(value))
		case !seenTE && len(name) == 17 && asciiEqualFold(name, "transfer-encoding"):
			seenTE = true
			codings := bytes.Split(value, []byte{','})
			f.chunked = bytes.EqualFold(bytes.TrimSpace(codings[len(codings)-1]), []byte("chunked"))
		}
		var key string
		if keep == nil {
			key = strings.ToLower(string(name))
		} else if k, ok := lookupName(name, keep); ok {
			key = k
		} else {
			continue
		}
		if f.headers == nil {
			f.headers = make(map[string]string, 4)
		}
		if _, seen := f.headers[key]; seen {
			continue
		}
		f.headers[key] = string(value)
	}
	return f
}

// parseContentLength accepts a decimal length, or a comma-separated list of
// identical lengths (RFC 9110 §8.6 lets recipients accept that). Anything
// else yields -1 so that callers fall back to "length unknown" rather than
// trusting a bogus number.
func parseContentLength(v string) int64 {
	n := int64(-1)
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" || part[0] < '0' || part[0] > '9' {
			return -1
		}
		m, err := strconv.ParseInt(part, 10, 64)
		if err != nil || (n >= 0 && m != n) {
			return -1
		}
		n = m
	}
	return n
}

// targetAuthority extracts host[:port] from an absolute-form target
// ("http://host/path") or a CONNECT authority-form target ("host:443"), for
// proxies and tunnels where the Host header may be missing.
func targetAuthority(method, target string) string {
	if method == "CONNECT" {
		return target
	}
	_, rest, ok := strings.Cut(target, "://")
	if !ok || strings.HasPrefix(target, "/") {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	return rest
}

// cutLine splits off one line terminated by LF (optionally preceded by CR,
// which is removed). ok is false when no LF is present, i.e. the line may
// continue beyond the captured bytes.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return nil, b, false
	}
	line = b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, b[i+1:], true
}

// indexCTL returns the index of the first ASCII control byte in b, or -1.
func indexCTL(b []byte, allowTab bool) int {
	for i, c := range b {
		if (c < 0x20 && !(allowTab && c == '\t')) || c == 0x7f {
			return i
		}
	}
	return -1
}

// isHTTP1 accepts "HTTP/1.<digit>"; HTTP/2 and later never use this text
// framing, so anything else means we are not looking at HTTP/1.x.
func isHTTP1(p []byte) bool {
	return len(p) == 8 && string(p[:7]) == "HTTP/1." && isDigit(p[7])
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isToken reports whether b consists only of RFC 9110 tchar bytes.
func isToken(b []byte) bool {
	for _, c := range b {
		if !isTchar(c) {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
