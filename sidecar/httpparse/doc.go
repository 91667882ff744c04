// Package httpparse recognises and parses HTTP/1.x message heads from the
// byte prefixes the kernel side captures.
//
// For each read/write on a watched socket the eBPF program records only the
// first (up to 512) bytes of the syscall buffer and the total byte count, so
// a head is routinely cut off mid-header. The parsers here therefore treat
// truncation as the normal case: they return everything that was complete
// in the prefix and report via HeadComplete whether the blank line ending
// the head was seen. Only a request/status line that is itself incomplete
// (ErrTruncated) or that is clearly not HTTP (ErrMalformed) is an error.
//
// Every function must tolerate arbitrary bytes without panicking, because
// the input is whatever a process happened to write to a socket.
package httpparse
