package tracectx

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strings"
)

// Source values identify where a Context came from.
const (
	SourceTraceparent = "traceparent"
	SourceB3          = "b3"
	SourceB3Multi     = "x-b3-traceid"
	SourceUber        = "uber-trace-id"
	SourceGenerated   = "generated"
)

// Context is the trace context a request arrived with.
type Context struct {
	TraceID   string // 32 lowercase hex digits
	SpanID    string // 16 lowercase hex digits: the caller's span; empty when Generated
	Sampled   bool   // the caller's sampling decision; false if deferred or unknown
	Source    string // one of the Source* constants
	Generated bool   // true when no header carried a context
}

// FromHeaders extracts the trace context from request headers whose names
// are already lower-cased (as httpparse produces them). Sources are tried
// in order traceparent, b3, X-B3-*, uber-trace-id; an invalid header is
// ignored and the next source is tried. ok is false if none is valid.
func FromHeaders(h map[string]string) (c Context, ok bool) {
	// Keep in step with HeaderNames.
	if v, found := h["traceparent"]; found {
		if c, ok = parseTraceparent(v); ok {
			return c, true
		}
	}
	if v, found := h["b3"]; found {
		if c, ok = parseB3Single(v); ok {
			return c, true
		}
	}
	if v, found := h["x-b3-traceid"]; found {
		if c, ok = parseB3Multi(v, h["x-b3-spanid"], h["x-b3-sampled"], h["x-b3-flags"]); ok {
			return c, true
		}
	}
	if v, found := h["uber-trace-id"]; found {
		if c, ok = parseUber(v); ok {
			return c, true
		}
	}
	return Context{}, false
}

// Generate returns a new root context with a random trace id. It carries no
// SpanID because there is no caller span; use NewSpanID for the request's
// own span.
func Generate() Context {
	return Context{TraceID: randomHex(16), Source: SourceGenerated, Generated: true}
}

// NewSpanID returns a random 16-hex-digit span id that is never all zeros
// (an all-zero id means "invalid" in every supported format).
func NewSpanID() string { return randomHex(8) }

// randomHex returns n random bytes in hex, never all zero. IDs need to be
// unique and unpredictable, not secret: math/rand/v2's generator (ChaCha8,
// seeded from the OS) gives that without a syscall per request, which
// crypto/rand costs on the capture path.
func randomHex(n int) string {
	var buf [16]byte
	b := buf[:min(n, len(buf))]
	for {
		for i := 0; i < len(b); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:i+8], rand.Uint64())
		}
		for _, x := range b {
			if x != 0 {
				return hex.EncodeToString(b)
			}
		}
	}
}

// parseTraceparent implements the W3C Trace Context parsing rules:
// version-traceid-parentid-flags, lowercase hex only, version ff invalid,
// and versions above 00 may append further "-"-separated fields.
func parseTraceparent(v string) (Context, bool) {
	v = strings.Trim(v, " \t")
	const v00Len = 55 // 2+1+32+1+16+1+2
	if len(v) < v00Len || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return Context{}, false
	}
	version := v[:2]
	if !isLowerHex(version) || version == "ff" {
		return Context{}, false
	}
	if version == "00" && len(v) != v00Len {
		return Context{}, false
	}
	if len(v) > v00Len && v[v00Len] != '-' {
		return Context{}, false
	}
	traceID, spanID, flags := v[3:35], v[36:52], v[53:55]
	if !isLowerHex(traceID) || !isLowerHex(spanID) || !isLowerHex(flags) ||
		allZero(traceID) || allZero(spanID) {
		return Context{}, false
	}
	f, _ := hex.DecodeString(flags)
	return Context{TraceID: traceID, SpanID: spanID, Sampled: f[0]&1 == 1, Source: SourceTraceparent}, true
}

// parseB3Single parses "traceid-spanid[-sampled[-parentspanid]]". The
// sampling-only forms ("0", "1", "d") carry no ids and so are rejected.
func parseB3Single(v string) (Context, bool) {
	parts := strings.Split(strings.Trim(v, " \t"), "-")
	if len(parts) < 2 || len(parts) > 4 {
		return Context{}, false
	}
	traceID, ok := normID(parts[0], 32, true)
	if !ok {
		return Context{}, false
	}
	spanID, ok := normID(parts[1], 16, false)
	if !ok {
		return Context{}, false
	}
	c := Context{TraceID: traceID, SpanID: spanID, Source: SourceB3}
	if len(parts) >= 3 {
		switch parts[2] {
		case "1", "d": // debug implies sampled
			c.Sampled = true
		case "0":
		default:
			return Context{}, false
		}
	}
	if len(parts) == 4 {
		if _, ok := normID(parts[3], 16, false); !ok {
			return Context{}, false
		}
	}
	return c, true
}

// parseB3Multi parses the X-B3-* header family. "true" is accepted for
// X-B3-Sampled because older Zipkin clients sent it.
func parseB3Multi(traceHdr, spanHdr, sampledHdr, flagsHdr string) (Context, bool) {
	traceID, ok := normID(strings.Trim(traceHdr, " \t"), 32, true)
	if !ok {
		return Context{}, false
	}
	spanID, ok := normID(strings.Trim(spanHdr, " \t"), 16, false)
	if !ok {
		return Context{}, false
	}
	sampled := strings.Trim(sampledHdr, " \t")
	return Context{
		TraceID: traceID,
		SpanID:  spanID,
		Sampled: sampled == "1" || strings.EqualFold(sampled, "true") || strings.Trim(flagsHdr, " \t") == "1",
		Source:  SourceB3Multi,
	}, true
}

// parseUber parses Jaeger's "traceid:spanid:parentid:flags", where ids are
// hex without leading zeros, and the separators may arrive URL-encoded.
func parseUber(v string) (Context, bool) {
	v = strings.Trim(v, " \t")
	if strings.Contains(v, "%") {
		v = strings.ReplaceAll(strings.ReplaceAll(v, "%3A", ":"), "%3a", ":")
	}
	parts := strings.Split(v, ":")
	if len(parts) != 4 {
		return Context{}, false
	}
	traceID, ok := padID(parts[0], 32)
	if !ok {
		return Context{}, false
	}
	spanID, ok := padID(parts[1], 16)
	if !ok {
		return Context{}, false
	}
	// The parent id is deprecated and may be "0"; it only has to be hex.
	if len(parts[2]) == 0 || len(parts[2]) > 16 || !isHex(parts[2]) {
		return Context{}, false
	}
	flags := parts[3]
	if len(flags) == 0 || len(flags) > 2 || !isHex(flags) {
		return Context{}, false
	}
	// Clients disagree on whether flags are decimal or hex, but bit 0
	// (sampled) is the parity of the last digit either way.
	last := unhex(flags[len(flags)-1])
	return Context{TraceID: traceID, SpanID: spanID, Sampled: last&1 == 1, Source: SourceUber}, true
}

// normID validates a B3 id of exactly width hex digits (or 16 when allow64 is
// set for 64-bit trace ids), and returns it lowercased and left-padded to width.
func normID(s string, width int, allow64 bool) (string, bool) {
	if len(s) != width && !(allow64 && len(s) == 16) {
		return "", false
	}
	return padID(s, width)
}

// padID validates 1..width hex digits, not all zero, and returns them
// lowercased and left-padded with zeros to width.
func padID(s string, width int) (string, bool) {
	if len(s) == 0 || len(s) > width || !isHex(s) || allZero(s) {
		return "", false
	}
	return strings.Repeat("0", width-len(s)) + strings.ToLower(s), true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if unhex(s[i]) < 0 {
			return false
		}
	}
	return true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func allZero(s string) bool {
	return strings.Trim(s, "0") == ""
}

// HeaderNames are every header FromHeaders reads, lower-case: a parser can
// keep just these.
var HeaderNames = []string{
	"traceparent", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags", "uber-trace-id",
}
