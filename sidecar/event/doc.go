// Package event decodes the raw records the eBPF programs put on the ring
// buffer into typed Go values. It is pure: bytes in, values out, and any
// byte sequence — short, garbage, from a newer kernel object — gives an
// error or a value, never a panic.
package event
