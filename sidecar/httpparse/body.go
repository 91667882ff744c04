package httpparse

import "bytes"

// BodyComplete reports whether a message body has been fully transferred.
//
// For chunked bodies, lastChunkTail is the captured bytes of the most recent
// read/write; the body is complete when it ends with the last-chunk marker
// ("0\r\n\r\n", where the zero starts the buffer or a new line). Because
// captures hold only a prefix of each syscall buffer, this only detects the
// end when the terminating write was small enough to be captured whole —
// which is the common case, as servers usually flush the terminator alone
// or in a short final write. Trailer fields after the last chunk are not
// recognised. Chunked framing takes precedence over contentLength, as in
// RFC 9112 §6.3.
//
// For Content-Length bodies the byte count is authoritative. With neither
// (contentLength < 0, not chunked) the body runs until connection close,
// which cannot be judged from bytes, so the result is false.
func BodyComplete(contentLength int64, chunked bool, bodyBytesSoFar int64, lastChunkTail []byte) bool {
	if chunked {
		return endsWithLastChunk(lastChunkTail)
	}
	if contentLength < 0 {
		return false
	}
	return bodyBytesSoFar >= contentLength
}

// endsWithLastChunk requires the zero run to begin a line so that chunk data
// which merely happens to end in "...0\r\n\r\n" mid-line is not mistaken for
// the end of the body.
func endsWithLastChunk(b []byte) bool {
	b, ok := bytes.CutSuffix(b, []byte("\r\n\r\n"))
	if !ok {
		return false
	}
	n := len(b)
	for n > 0 && b[n-1] == '0' {
		n--
	}
	if n == len(b) {
		return false
	}
	return n == 0 || b[n-1] == '\n'
}

// NoBody reports whether a response to a request with the given method and
// the given status code carries no body regardless of its framing headers
// (RFC 9112 §6.3): responses to HEAD, 1xx, 204 and 304, plus 2xx responses
// to CONNECT, after which the connection becomes an opaque tunnel.
func NoBody(method string, status int) bool {
	switch {
	case method == "HEAD":
		return true
	case status >= 100 && status < 200, status == 204, status == 304:
		return true
	case method == "CONNECT" && status >= 200 && status < 300:
		return true
	}
	return false
}

// SplitPipelined splits a captured read that may hold several pipelined
// requests into one slice per request. The first element always starts at
// b[0]; each following element starts where the previous request (head plus
// Content-Length body) ended and another request line begins. The elements
// are contiguous and together cover all of b, so the last one may be a
// truncated request or trailing bytes that could not be attributed.
//
// Splitting stops at the first request whose end cannot be determined from
// b: an incomplete head, a chunked body, or a body extending past b.
// It returns nil for empty b.
func SplitPipelined(b []byte) [][]byte {
	if len(b) == 0 {
		return nil
	}
	var out [][]byte
	start := 0
	for {
		end := requestEnd(b[start:])
		if end < 0 {
			break
		}
		next := start + end
		// RFC 9112 §2.2: tolerate stray empty lines between requests.
		for next < len(b) && (b[next] == '\r' || b[next] == '\n') {
			next++
		}
		if next >= len(b) || !LooksLikeRequest(b[next:]) {
			break
		}
		out = append(out, b[start:next:next])
		start = next
	}
	return append(out, b[start:])
}

// requestEnd returns the length of the complete request at the start of b,
// or -1 if it cannot be determined from b alone.
func requestEnd(b []byte) int {
	h, err := ParseRequestHead(b)
	if err != nil || !h.HeadComplete || h.Chunked {
		return -1
	}
	if _, hasTE := h.Headers["transfer-encoding"]; hasTE {
		// Non-chunked transfer codings on requests have no knowable end.
		return -1
	}
	if h.ContentLength < 0 {
		if _, hasCL := h.Headers["content-length"]; hasCL {
			return -1 // present but unparsable: framing unknown
		}
		return h.HeadLen // requests without framing headers have no body
	}
	if h.ContentLength > int64(len(b)-h.HeadLen) {
		return -1
	}
	return h.HeadLen + int(h.ContentLength)
}
