// Package bpf holds tracecam's eBPF programs (camera.bpf.c) and their
// bpf2go-generated Go bindings and objects. The generated files are
// committed so that building tracecam needs no clang; `make generate`
// rebuilds them with clang 14, and TestGeneratedInSync checks they match.
package bpf
