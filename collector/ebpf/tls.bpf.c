//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// Uprobe programs of `mirrorline ebpf --tls`: copy the plaintext that
// selected processes hand to, or get from, OpenSSL (SSL_write, SSL_read and
// their _ex forms) and Go's crypto/tls ((*Conn).Write, (*Conn).Read) into a
// ring buffer. Userspace ties the chunks to their connection and parses HTTP
// (collector/tcpstream).
//
// OpenSSL is C: its arguments are saved at function entry, keyed by thread,
// and the data is copied by a uretprobe. Go is not: a uretprobe rewrites the
// return address on the goroutine stack, which Go moves and inspects, so Go
// functions get a uprobe at entry and one on each RET instruction (found by
// userspace), and the saved arguments are keyed by goroutine (its g pointer,
// register R14 in Go's register ABI on amd64), not by thread.
//
// The socket of an OpenSSL connection is learned from the read/write system
// calls a thread makes while inside SSL_read/SSL_write (a raw tracepoint on
// sys_enter: no kprobes, no tracefs). That of a Go connection is read from the
// net.Conn inside the tls.Conn (offsets set by userspace).
//
// Only amd64 for now (Go's register ABI, syscall numbers).
//
// Regenerate the Go bindings with `make bpf` (clang, llvm, libbpf-dev).

#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char __license[] SEC("license") = "Dual MIT/GPL";

// Plaintext bytes per record, records per call at most, and so the most
// bytes copied of one call (1 MiB).
#define CHUNK 16384
#define MAX_CHUNKS 64

#define DIR_WRITE 0 // the process sent the bytes
#define DIR_READ 1  // the process received them
#define DIR_CLOSE 2 // the connection was freed or closed (no bytes)
#define DIR_HANDSHAKE 3 // not emitted: SSL_do_handshake, for the socket only

#define LIB_OPENSSL 0
#define LIB_GO 1

// Counters in the stats map (per CPU).
enum stat {
	STAT_CALLS = 0,     // SSL/TLS calls of selected processes that moved data
	STAT_BYTES = 1,     // plaintext bytes they moved
	STAT_CAPTURED = 2,  // bytes copied into the ring buffer
	STAT_TRUNCATED = 3, // calls with more bytes than MAX_CHUNKS*CHUNK
	STAT_RB_FULL = 4,   // records lost: ring buffer full
	STAT_ERRORS = 5,    // records lost: user memory unreadable, map full
	STAT_MAX = 6,
};

// tuple are the addresses of a TCP socket, read from the kernel's struct
// sock when a call's socket is known.
struct tuple {
	__u8 local[16];  // IPv4 in the first 4 bytes
	__u8 remote[16];
	__u16 lport;     // host byte order
	__u16 rport;
	__u16 family;    // AF_INET, AF_INET6, or 0
	__u16 pad;
};

// tls_event is the head of every ring buffer record; chunk_len plaintext
// bytes follow.
struct tls_event {
	__u64 ts_ns;     // bpf_ktime_get_ns at the call's return
	__u64 conn;      // SSL* or *tls.Conn: the connection in its process
	__u32 pid;       // process (tgid)
	__s32 fd;        // socket of the connection, -1 if unknown
	__u32 len;       // bytes the call moved
	__u32 offset;    // offset of this chunk in them
	__u32 chunk_len; // bytes that follow
	__u8 dir;        // DIR_WRITE, DIR_READ or DIR_CLOSE
	__u8 lib;        // LIB_OPENSSL or LIB_GO
	__u8 last;       // 1 on the call's last record
	__u8 pad[1];
	struct tuple addr; // the socket's addresses (family 0: unknown)
};

struct scratch_buf {
	struct tls_event ev;
	__u8 data[CHUNK];
};

// Arguments of a call in flight, saved at entry.
struct call {
	__u64 conn;
	__u64 buf;
	__u64 out;   // SSL_*_ex: where the byte count is written
	__s32 fd;    // socket seen during the call, -1 if none
	__u32 depth; // nested calls of the same thread (SSL_read inside SSL_read_ex)
	__u8 dir;
	__u8 lib;
	__u8 pad[6];
	struct tuple addr;
};

// Kernel types, as far as they are read; CO-RE relocates the offsets to the
// running kernel's (its BTF).
struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct {
	struct files_struct *files;
} __attribute__((preserve_access_index));

struct file {
	void *private_data;
} __attribute__((preserve_access_index));

struct socket {
	struct sock *sk;
} __attribute__((preserve_access_index));

struct in6_addr___k {
	__u8 s6_addr[16];
};

// The kernel has these fields in anonymous unions; CO-RE finds them by name
// there, so they are declared flat.
struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct in6_addr___k skc_v6_daddr;
	struct in6_addr___k skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
} __attribute__((preserve_access_index));

#define AF_INET 2
#define AF_INET6 10

// read_tuple fills t with the addresses of socket fd of the current process;
// t->family stays 0 when fd is not an IPv4/IPv6 socket. A file that is not a
// socket has other private data: its "sk" is then not a sock of the right
// family, or unreadable.
static __always_inline void read_tuple(__s32 fd, struct tuple *t)
{
	if (fd < 0)
		return;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt)
		return;
	unsigned int max = BPF_CORE_READ(fdt, max_fds);
	if ((unsigned int)fd >= max)
		return;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) < 0 || !f)
		return;
	struct socket *so = BPF_CORE_READ(f, private_data);
	if (!so)
		return;
	struct sock *sk = BPF_CORE_READ(so, sk);
	if (!sk)
		return;
	unsigned short family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family == AF_INET) {
		__be32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__be32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(t->local, &l, 4);
		__builtin_memcpy(t->remote, &r, 4);
	} else if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&t->local, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&t->remote, sk, __sk_common.skc_v6_daddr);
	} else {
		return;
	}
	t->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	t->family = family;
}

// Offsets (in bytes) from a *tls.Conn to the socket's file descriptor: the
// tls.Conn's net.Conn interface data word, then the *net.TCPConn's *netFD,
// then netFD.pfd.Sysfd. Set by userspace before loading (goConnOff...).
volatile const __u64 go_conn_off = 8;
volatile const __u64 go_netfd_off = 0;
volatile const __u64 go_sysfd_off = 16;

// Unread ring buffer bytes from which userspace is woken at once.
volatile const __u64 wakeup_bytes = 0;

// pids[tgid] != 0: the process is selected.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} pids SEC(".maps");

// OpenSSL calls in flight, by thread (pid_tgid); LRU, as a thread that dies
// inside a call never removes its entry.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct call);
} ssl_calls SEC(".maps");

struct conn_key {
	__u64 conn;
	__u32 pid;
	__u32 pad;
};

// Socket of an OpenSSL connection learned so far.
struct sock_id {
	__s32 fd;
	__u32 pad;
	struct tuple addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct sock_id);
} ssl_fds SEC(".maps");

struct go_key {
	__u64 g;
	__u32 pid;
	__u32 pad;
};

// Go calls in flight, by goroutine.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct go_key);
	__type(value, struct call);
} go_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); // resized by userspace
} tls_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tls_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch_buf);
} tls_scratch SEC(".maps");

static __always_inline void count(__u32 which, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&tls_stats, &which);
	if (v)
		*v += n;
}

static __always_inline int selected(__u32 pid)
{
	__u8 *v = bpf_map_lookup_elem(&pids, &pid);
	return v && *v;
}

static __always_inline __u64 rb_flags(void)
{
	if (bpf_ringbuf_query(&tls_events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

// emit copies n bytes at buf of connection c into the ring buffer.
static __always_inline void emit(struct call *c, __u32 pid, __u64 n)
{
	__u32 zero = 0;
	struct scratch_buf *b = bpf_map_lookup_elem(&tls_scratch, &zero);
	if (!b) {
		count(STAT_ERRORS, 1);
		return;
	}
	count(STAT_CALLS, 1);
	count(STAT_BYTES, n);
	__u64 want = n;
	if (want > (__u64)CHUNK * MAX_CHUNKS) {
		want = (__u64)CHUNK * MAX_CHUNKS;
		count(STAT_TRUNCATED, 1);
	}
	// The head is the same in every record of the call but for the chunk's
	// place; it is filled once (fewer instructions for the verifier to walk
	// per iteration).
	b->ev.ts_ns = bpf_ktime_get_ns();
	b->ev.conn = c->conn;
	b->ev.pid = pid;
	b->ev.fd = c->fd;
	b->ev.len = n;
	b->ev.dir = c->dir;
	b->ev.lib = c->lib;
	b->ev.addr = c->addr;
	for (__u32 i = 0; i < MAX_CHUNKS; i++) {
		__u32 off = i * CHUNK;
		if (i > 0 && off >= want)
			break;
		__u32 len = want > off ? want - off : 0;
		if (len > CHUNK)
			len = CHUNK;
		if (len > 0 && bpf_probe_read_user(b->data, len, (void *)(c->buf + off)) < 0) {
			count(STAT_ERRORS, 1);
			break;
		}
		b->ev.offset = off;
		b->ev.chunk_len = len;
		b->ev.last = off + len >= want;
		if (bpf_ringbuf_output(&tls_events, b, sizeof(struct tls_event) + len, rb_flags()) < 0)
			count(STAT_RB_FULL, 1);
		else
			count(STAT_CAPTURED, len);
	}
}

// emit_close reports that connection conn of pid is gone.
static __always_inline void emit_close(__u64 conn, __u32 pid, __u8 lib)
{
	struct tls_event ev = {};
	ev.ts_ns = bpf_ktime_get_ns();
	ev.conn = conn;
	ev.pid = pid;
	ev.fd = -1;
	ev.dir = DIR_CLOSE;
	ev.lib = lib;
	ev.last = 1;
	if (bpf_ringbuf_output(&tls_events, &ev, sizeof(ev), rb_flags()) < 0)
		count(STAT_RB_FULL, 1);
}

// --- OpenSSL ---

static __always_inline int ssl_enter(struct pt_regs *ctx, __u8 dir, __u64 out)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!selected(id >> 32))
		return 0;
	struct call *c = bpf_map_lookup_elem(&ssl_calls, &id);
	if (c) {
		c->depth++;
		return 0;
	}
	struct call n = {};
	n.conn = PT_REGS_PARM1(ctx);
	n.buf = PT_REGS_PARM2(ctx);
	n.out = out;
	n.fd = -1;
	n.dir = dir;
	n.lib = LIB_OPENSSL;
	struct conn_key k = {.conn = n.conn, .pid = id >> 32};
	struct sock_id *sid = bpf_map_lookup_elem(&ssl_fds, &k);
	if (sid) {
		n.fd = sid->fd;
		n.addr = sid->addr;
	}
	if (bpf_map_update_elem(&ssl_calls, &id, &n, BPF_ANY) < 0)
		count(STAT_ERRORS, 1);
	return 0;
}

static __always_inline int ssl_exit(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct call *c = bpf_map_lookup_elem(&ssl_calls, &id);
	if (!c)
		return 0;
	if (c->depth > 0) {
		c->depth--;
		return 0;
	}
	// SSL_read/SSL_write and the _ex forms return a C int: the upper half of
	// the register is not part of it.
	int ret = (int)PT_REGS_RC(ctx);
	__u64 n = 0;
	if (c->out) {
		// SSL_read_ex/SSL_write_ex: 1 on success, the count in *out.
		if (ret == 1 && bpf_probe_read_user(&n, sizeof(n), (void *)c->out) < 0)
			n = 0;
	} else if (ret > 0) {
		n = ret;
	}
	if (n > 0 && c->dir != DIR_HANDSHAKE) {
		struct call cp = *c;
		emit(&cp, id >> 32, n);
	}
	bpf_map_delete_elem(&ssl_calls, &id);
	return 0;
}

SEC("uprobe/SSL_write")
int ssl_write(struct pt_regs *ctx) { return ssl_enter(ctx, DIR_WRITE, 0); }

SEC("uprobe/SSL_read")
int ssl_read(struct pt_regs *ctx) { return ssl_enter(ctx, DIR_READ, 0); }

SEC("uprobe/SSL_write_ex")
int ssl_write_ex(struct pt_regs *ctx) { return ssl_enter(ctx, DIR_WRITE, PT_REGS_PARM4(ctx)); }

SEC("uprobe/SSL_read_ex")
int ssl_read_ex(struct pt_regs *ctx) { return ssl_enter(ctx, DIR_READ, PT_REGS_PARM4(ctx)); }

// The handshake reads and writes the socket too: its fd is known before the
// first SSL_read, which may return data the handshake already buffered.
SEC("uprobe/SSL_do_handshake")
int ssl_do_handshake(struct pt_regs *ctx) { return ssl_enter(ctx, DIR_HANDSHAKE, 0); }

SEC("uretprobe/SSL_rw")
int ssl_ret(struct pt_regs *ctx) { return ssl_exit(ctx); }

SEC("uprobe/SSL_free")
int ssl_free(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!selected(id >> 32))
		return 0;
	struct conn_key k = {.conn = PT_REGS_PARM1(ctx), .pid = id >> 32};
	bpf_map_delete_elem(&ssl_fds, &k);
	emit_close(k.conn, k.pid, LIB_OPENSSL);
	return 0;
}

// Socket system calls on x86_64: read, write, readv, writev, sendto,
// recvfrom, sendmsg, recvmsg. Their first argument is the fd.
static __always_inline int fd_syscall(__u64 nr)
{
	return nr == 0 || nr == 1 || nr == 19 || nr == 20 || (nr >= 44 && nr <= 47);
}

SEC("raw_tracepoint/sys_enter")
int ssl_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (!fd_syscall(ctx->args[1]))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct call *c = bpf_map_lookup_elem(&ssl_calls, &id);
	if (!c || c->fd >= 0)
		return 0;
	struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
	unsigned long di = 0;
	if (bpf_probe_read_kernel(&di, sizeof(di), &regs->rdi) < 0)
		return 0;
	c->fd = (__s32)di;
	read_tuple(c->fd, &c->addr);
	struct conn_key k = {.conn = c->conn, .pid = id >> 32};
	struct sock_id sid = {.fd = c->fd, .addr = c->addr};
	bpf_map_update_elem(&ssl_fds, &k, &sid, BPF_ANY);
	return 0;
}

// --- Go crypto/tls (register ABI, amd64) ---

static __always_inline __s32 go_fd(__u64 conn)
{
	__u64 p = 0;
	if (bpf_probe_read_user(&p, sizeof(p), (void *)(conn + go_conn_off)) < 0 || !p)
		return -1;
	if (bpf_probe_read_user(&p, sizeof(p), (void *)(p + go_netfd_off)) < 0 || !p)
		return -1;
	__s64 fd = -1;
	if (bpf_probe_read_user(&fd, sizeof(fd), (void *)(p + go_sysfd_off)) < 0)
		return -1;
	if (fd < 0 || fd > 0x7fffffff)
		return -1;
	return (__s32)fd;
}

static __always_inline int go_enter(struct pt_regs *ctx, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!selected(id >> 32))
		return 0;
	struct go_key k = {.g = ctx->r14, .pid = id >> 32};
	struct call c = {};
	c.conn = ctx->rax; // receiver
	c.buf = ctx->rbx;  // b's data pointer (its length is in rcx)
	c.fd = go_fd(c.conn);
	read_tuple(c.fd, &c.addr);
	c.dir = dir;
	c.lib = LIB_GO;
	if (bpf_map_update_elem(&go_calls, &k, &c, BPF_ANY) < 0)
		count(STAT_ERRORS, 1);
	return 0;
}

SEC("uprobe/go_tls_write")
int go_tls_write(struct pt_regs *ctx) { return go_enter(ctx, DIR_WRITE); }

SEC("uprobe/go_tls_read")
int go_tls_read(struct pt_regs *ctx) { return go_enter(ctx, DIR_READ); }

// go_tls_ret runs on every RET of (*Conn).Write and (*Conn).Read: n is in rax.
SEC("uprobe/go_tls_ret")
int go_tls_ret(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct go_key k = {.g = ctx->r14, .pid = id >> 32};
	struct call *c = bpf_map_lookup_elem(&go_calls, &k);
	if (!c)
		return 0;
	struct call cp = *c;
	bpf_map_delete_elem(&go_calls, &k);
	long n = ctx->rax;
	if (n > 0)
		emit(&cp, k.pid, n);
	return 0;
}

SEC("uprobe/go_tls_close")
int go_tls_close(struct pt_regs *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!selected(id >> 32))
		return 0;
	emit_close(ctx->rax, id >> 32, LIB_GO);
	return 0;
}
