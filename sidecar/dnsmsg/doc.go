// Package dnsmsg decodes DNS wire-format messages (RFC 1035) from the byte
// prefixes the kernel side captures of UDP payloads and TCP segments.
//
// tracecam attributes slow requests to DNS lookups by pairing queries with
// responses (ID and question) and reading the answers and response code, so
// only the header, question section and the A/AAAA/CNAME data in the answer
// section are decoded. Captures hold at most the first 512 bytes of each
// syscall buffer, so a message running past the capture is decoded as far as
// it goes without error; only wire data that is wrong in itself (a
// compression-pointer loop, an over-long label or name) is reported.
//
// Nothing here allocates in proportion to the counts claimed in the header,
// and every loop is bounded by the input length, so hostile packets cannot
// make the parser panic or run away.
package dnsmsg
