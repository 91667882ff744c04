//go:build cgo

package main

// C thread-locals in the executable's own TLS block. The zero-initialised
// one goes to .tbss after Go's runtime.tlsg, so the external linker places
// g at fs:-48 rather than fs:-8: the case gobin must compute, not assume.
// The functions write them so that the compiler cannot drop them.

/*
static __thread long tracecam_tls_a = 1;
static __thread char tracecam_tls_b[24] = {2};
static __thread long tracecam_tls_c[5];
static long tracecam_value(void) { tracecam_tls_b[1]++; tracecam_tls_c[2]++; return tracecam_tls_c[2] + ++tracecam_tls_a + tracecam_tls_b[0] + tracecam_tls_b[1]; }
*/
import "C"

func cValue() int { return int(C.tracecam_value()) }
