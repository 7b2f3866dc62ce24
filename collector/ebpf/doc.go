// Package ebpf is the kernel-capture collector of `mirrorline ebpf`: it watches
// HTTP/1.x traffic of local services without a proxy and without touching them.
//
// A TC program (capture.bpf.c, compiled with bpf2go; the generated
// capture_bpfel.{go,o} are committed) is attached with tcx links to the ingress
// and egress hooks of the chosen network interfaces. For every IPv4/IPv6 TCP
// packet to or from a watched port (a BPF array map indexed by port) it copies
// the IP and TCP headers and the payload, up to the snap length, into a BPF
// ring buffer. Loopback and offloading NICs hand TC whole GSO/GRO packets (up
// to 512 KiB with BIG TCP), so a packet becomes one or more self-contained
// records of its headers and up to 16 KiB of payload. A full ring buffer drops
// the copy, never the packet, and is counted in a per-CPU stats map. The
// program never changes, delays or drops traffic (it always returns TCX_NEXT),
// and wakes userspace only when 256 KiB are waiting; userspace also polls every
// 5 ms.
//
// Userspace reads the ring buffer, decodes each record with collector/tcpstream's
// Decoder and hands it to a tcpstream.Tracker as a TCP segment (sequence number plus
// the chunk's offset). The tracker reassembles both directions, parses
// HTTP/1.x with collector/httpstream, or HTTP/2 (h2c, from its preface) with
// collector/h2stream, and publishes every exchange (Source
// SOURCE_EBPF, connection ids prefixed "ebpf-") through the Publisher (a
// collector.Emitter), never blocking.
//
// On a loopback interface every packet passes egress and then ingress of the
// same device, so only egress is attached there (HooksAuto); on other
// interfaces both hooks are, since requests arrive on ingress and responses
// leave on egress.
//
// Why TC and not syscall tracepoints: packets carry everything the existing
// TCP/HTTP path needs (addresses, sequence numbers, FIN/RST) in a fixed,
// kernel-independent format, whatever the server is written in and however it
// does its I/O (read/write, sendfile, splice, io_uring, all of which syscall
// tracepoints would have to follow separately, keyed by pid and fd); TC needs
// neither tracefs nor bpffs (links live as long as the process's file
// descriptors, nothing is pinned) and is per interface, so one collector can
// watch a host interface or the veth of a container. TLS payloads are
// encrypted either way.
//
// Needs Linux 6.6+ (tcx), BPF ring buffers (5.8+), and CAP_BPF plus
// CAP_NET_ADMIN (root). Errors name what is missing.
//
// TLSCapture (`mirrorline ebpf --tls`, amd64) captures TLS plaintext instead:
// uprobes (tls.bpf.c, generated tls_x86_bpfel.{go,o}) on OpenSSL's
// SSL_read/SSL_write (and _ex) with uretprobes, and on Go's
// crypto/tls.(*Conn).Read/Write at entry and at every RET instruction found
// by disassembling them (tls_gofunc.go: Go must not get uretprobes), copy the
// bytes each call moved, with the connection's socket addresses read in the
// kernel, into a ring buffer. Only processes in a BPF map are captured,
// selected by pid (and descendants), executable or cgroup and rescanned every
// second. Userspace (tls_conn.go) turns each connection's plaintext into the
// TCP segments of its two directions for the same tcpstream.Tracker (HTTP/1.x,
// HTTP/2 from the preface); connection ids are prefixed "ebpf-tls-".
package ebpf
