package ebpf

// The BPF program is compiled with bpf2go (a go tool of this module); the
// generated capture_bpfel.go and capture_bpfel.o are committed, so building
// needs no clang. `make bpf` regenerates them (clang, llvm-strip and the
// libbpf-dev and linux-libc-dev headers; BPF2GO_CFLAGS adds the multiarch
// include directory).
//go:generate go tool bpf2go -target bpfel -type event capture capture.bpf.c -- -O2 -g -Wall -Werror -mcpu=v3

// The TLS uprobe programs (tls.bpf.c) are amd64 only: they read Go's register
// ABI and x86_64 system call numbers.
//go:generate go tool bpf2go -target amd64 -type tls_event tls tls.bpf.c -- -O2 -g -Wall -Werror -mcpu=v3
