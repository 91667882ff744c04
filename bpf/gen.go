package bpf

// -no-strip keeps BTF line info (useful in verifier errors) and makes the
// object independent of the llvm-strip version installed.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-14 -cflags "-O2 -g -Wall -Werror -Wno-unused-function" -no-strip -target bpfel -type event_hdr -type data_event -type segment_event -type sock_info -type wait_detail -type acked_event -type go_layout Camera camera.bpf.c -- -I./include
