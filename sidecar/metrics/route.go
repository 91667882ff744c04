package metrics

import (
	"strings"
	"unicode/utf8"
)

// Route normalisation: the endpoint of a request is its method and its
// path with the parts that identify a resource collapsed, so /users/42 and
// /users/43 are one endpoint (/users/{id}) with one baseline and one set of
// series.
const (
	// maxSegments is how many path segments a route keeps; the rest
	// becomes {more}.
	maxSegments = 12
	// maxSegment is the longest segment kept as written.
	maxSegment = 64
	// maxRoute bounds a route label in bytes, whatever the segments.
	maxRoute = 256
)

// NormalizeRoute returns the route of a request path (see AppendRoute).
func NormalizeRoute(path string) string {
	return string(AppendRoute(nil, path))
}

// AppendRoute appends the route of path to dst: the query string and
// fragment dropped, an absolute-form target ("http://host/x") reduced to
// its path, and every segment that looks like an identifier replaced —
// numbers, UUIDs and hex ids by {id} (keeping an extension: 42.json is
// {id}.json), long opaque tokens (mixed letters and digits, base64-like,
// or longer than 64 bytes) by {token}. More than 12 segments end in
// {more}; bytes that are not valid UTF-8 or are control characters become
// U+FFFD, so the route is always a valid label value. A target that is
// not a path ("*" stays "*") is {invalid}.
//
// It does not allocate when dst has room: the sidecar calls it for every
// request.
func AppendRoute(dst []byte, path string) []byte {
	for i := 0; i < len(path); i++ {
		if path[i] == '?' || path[i] == '#' {
			path = path[:i]
			break
		}
	}
	if path == "*" {
		return append(dst, '*')
	}
	if !strings.HasPrefix(path, "/") {
		// Absolute form, as sent to proxies: scheme://authority/path.
		if i := strings.Index(path, "://"); i > 0 {
			rest := path[i+3:]
			if j := strings.IndexByte(rest, '/'); j >= 0 {
				path = rest[j:]
			} else {
				path = "/"
			}
		} else {
			return append(dst, "{invalid}"...)
		}
	}
	start := len(dst)
	n := 0
	for len(path) > 0 {
		// path starts with '/'.
		path = path[1:]
		seg := path
		if i := strings.IndexByte(path, '/'); i >= 0 {
			seg, path = path[:i], path[i:]
		} else {
			path = ""
		}
		if n == maxSegments || len(dst)-start >= maxRoute-len("/{more}") {
			return append(dst, "/{more}"...)
		}
		n++
		dst = append(dst, '/')
		dst = appendSegment(dst, seg, maxRoute-len("/{more}")-(len(dst)-start))
	}
	if len(dst) == start {
		dst = append(dst, '/')
	}
	return dst
}

// appendSegment appends seg or the placeholder it stands for, at most room
// bytes of it.
func appendSegment(dst []byte, seg string, room int) []byte {
	switch kind(seg) {
	case segID:
		return append(dst, "{id}"...)
	case segToken:
		return append(dst, "{token}"...)
	}
	// An identifier with an extension: 42.json, 3f2a…9c.png.
	if i := strings.LastIndexByte(seg, '.'); i > 0 && len(seg)-i <= 6 && kind(seg[:i]) == segID && isWord(seg[i+1:]) {
		dst = append(dst, "{id}"...)
		return appendClean(dst, seg[i:], room)
	}
	return appendClean(dst, seg, room)
}

// appendClean appends s with invalid UTF-8 and control characters
// replaced, up to room bytes.
func appendClean(dst []byte, s string, room int) []byte {
	end := len(dst) + max(room, 0)
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			if len(dst)+1 > end {
				break
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || r < 0x20 || (r >= 0x7f && r < 0xa0) {
			r = utf8.RuneError
		}
		if len(dst)+utf8.RuneLen(r) > end {
			break
		}
		dst = utf8.AppendRune(dst, r)
		i += size
	}
	return dst
}

type segKind int

const (
	segPlain segKind = iota
	segID
	segToken
)

// kind classifies a path segment.
func kind(s string) segKind {
	if s == "" {
		return segPlain
	}
	if len(s) > maxSegment {
		return segToken
	}
	var digits, lower, upper, hexLetters, other int
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'z':
			lower++
			if c <= 'f' {
				hexLetters++
			}
		case c >= 'A' && c <= 'Z':
			upper++
			if c <= 'F' {
				hexLetters++
			}
		case c == '-' || c == '_' || c == '=' || c == '~' || c == '+' || c == '%' || c == '.':
			other++
		default:
			return segPlain // punctuation, UTF-8: a name, not an id
		}
	}
	switch {
	case digits == len(s):
		return segID // 42, 20240101
	case isUUID(s):
		return segID
	case digits > 0 && digits+hexLetters == len(s) && len(s) >= 8 && (lower == 0 || upper == 0):
		return segID // hex: object ids, hashes (one case)
	case digits > 0 && len(s) >= 24:
		return segToken // long opaque token or slug with a number
	case digits > 0 && lower > 0 && upper > 0 && len(s) >= 16:
		return segToken // base64-like: mixed case and digits
	}
	return segPlain
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// isWord says whether s is a plausible file extension.
func isWord(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Methods kept as labels; any other becomes OTHER, so a client inventing
// methods cannot add series.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}

// MethodOther is the label of methods outside the standard set.
const MethodOther = "OTHER"

// NormalizeMethod returns the method label: one of the standard methods,
// else OTHER. It does not allocate.
func NormalizeMethod(m string) string {
	for _, s := range methods {
		if m == s {
			return s
		}
	}
	return MethodOther
}
