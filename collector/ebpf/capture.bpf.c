//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// TC (tcx) program of `mirrorline ebpf`: copies IPv4/IPv6 TCP packets to or
// from the watched ports into a ring buffer. It never changes or drops a
// packet (it always returns TCX_NEXT). Userspace decodes the copies,
// reassembles TCP and parses HTTP/1.x (collector/vpc, collector/httpstream).
//
// A packet can be far larger than an MTU: loopback and offloading NICs hand
// TC whole GSO/GRO packets, up to 512 KiB with BIG TCP. So a packet is copied
// as one or more self-contained records, each holding the packet's IP and TCP
// headers and the next chunk of up to CHUNK payload bytes; userspace turns each
// into a TCP segment of its own (sequence number plus chunk offset).
//
// Regenerate the Go bindings with `make bpf` (clang, llvm, libbpf-dev).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char __license[] SEC("license") = "Dual MIT/GPL";

// Payload bytes per record, records per packet at most, and so the most
// payload bytes copied of one packet (1 MiB).
#define CHUNK 16384
#define MAX_CHUNKS 64
#define MAX_SNAP (CHUNK * MAX_CHUNKS)
// IP header (at most 60 bytes) plus TCP header (at most 60 bytes).
#define MAX_IP_HDR 60
#define MAX_HDR 120
// IPv6 extension headers skipped at most.
#define MAX_EXT 4

// Direction of the hook that saw a packet.
#define DIR_INGRESS 0
#define DIR_EGRESS 1

// Counters in the stats map (per CPU).
enum stat {
	STAT_PACKETS = 0,   // packets of watched ports seen
	STAT_BYTES = 1,     // their length from the IP header on
	STAT_CAPTURED = 2,  // payload bytes copied into the ring buffer
	STAT_TRUNCATED = 3, // packets with more payload than the snap length
	STAT_RB_FULL = 4,   // records lost: ring buffer full
	STAT_ERRORS = 5,    // packets lost: skb read failed, bad headers
	STAT_MAX = 6,
};

// event is the head of every ring buffer record; hdr_len bytes of IP and TCP
// header (IPv6 extension headers left out) and chunk_len payload bytes follow.
struct event {
	__u64 ts_ns;     // bpf_ktime_get_ns (CLOCK_MONOTONIC), same for all chunks
	__u32 payload;   // TCP payload length of the whole packet
	__u32 ifindex;   // interface of the hook
	__u32 offset;    // offset of this chunk in the TCP payload
	__u16 hdr_len;   // IP + TCP header bytes that follow
	__u16 chunk_len; // payload bytes that follow the headers
	__u8 dir;        // DIR_INGRESS or DIR_EGRESS
	__u8 last;       // 1 on the packet's last record
	__u8 pad[6];
};

struct scratch_buf {
	struct event ev;
	__u8 data[MAX_HDR + CHUNK];
};

// Payload bytes copied per packet, 0..MAX_SNAP; set by userspace before
// loading. The rest of a longer packet is reported missing.
volatile const __u32 snaplen = MAX_SNAP;

// Unread ring buffer bytes from which userspace is woken at once; below it,
// records wait for userspace's next poll (a few milliseconds): far fewer
// wakeups under load. Set by userspace before loading.
volatile const __u64 wakeup_bytes = 0;

// ifaces[ifindex] = bytes of link header before the IP header (14 on Ethernet
// and loopback, 0 on L3 devices). Packets of other interfaces are ignored.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} ifaces SEC(".maps");

// ports[p] != 0: TCP port p is watched (either side of a connection).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); // resized by userspace
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

// Scratch space for building a record (TC programs do not nest on a CPU).
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch_buf);
} scratch SEC(".maps");

static __always_inline void count(__u32 which, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &which);
	if (v)
		*v += n;
}

static __always_inline int watched(__u16 port)
{
	__u32 key = port;
	__u8 *v = bpf_map_lookup_elem(&ports, &key);
	return v && *v;
}

static __always_inline int capture(struct __sk_buff *skb, __u8 dir)
{
	__u32 ifindex = skb->ifindex;
	__u32 *l2 = bpf_map_lookup_elem(&ifaces, &ifindex);
	if (!l2)
		return TC_ACT_UNSPEC;
	__u32 l3 = *l2 & 0xff;
	__u16 proto = skb->protocol;
	__u32 iphl;     // IP header length, IPv6 extension headers included
	__u32 ipcopy;   // IP header bytes copied (the fixed IPv6 header only)
	__u32 iplen;    // IP length field: header and payload (0: BIG TCP, see skb)

	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		// A VLAN tag in the packet (not offloaded): one level is followed.
		__be16 inner;
		if (l3 < ETH_HLEN || bpf_skb_load_bytes(skb, l3 + 2, &inner, sizeof(inner)) < 0)
			return TC_ACT_UNSPEC;
		proto = inner;
		l3 += 4;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, l3, &ip, sizeof(ip)) < 0)
			return TC_ACT_UNSPEC;
		if (ip.protocol != IPPROTO_TCP || (ip.frag_off & bpf_htons(0x1fff)))
			return TC_ACT_UNSPEC; // not TCP, or a fragment without the TCP header
		iphl = ip.ihl * 4;
		if (iphl < sizeof(ip))
			return TC_ACT_UNSPEC;
		ipcopy = iphl;
		iplen = bpf_ntohs(ip.tot_len);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, l3, &ip6, sizeof(ip6)) < 0)
			return TC_ACT_UNSPEC;
		__u8 nh = ip6.nexthdr;
		iphl = sizeof(ip6);
		// Hop-by-hop (e.g. the jumbo payload option of BIG TCP), routing and
		// destination options headers are skipped.
		for (int i = 0; i < MAX_EXT && nh != IPPROTO_TCP; i++) {
			if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS)
				return TC_ACT_UNSPEC;
			__u8 eh[2];
			if (bpf_skb_load_bytes(skb, l3 + iphl, eh, sizeof(eh)) < 0)
				return TC_ACT_UNSPEC;
			nh = eh[0];
			iphl += (eh[1] + 1) * 8;
		}
		if (nh != IPPROTO_TCP)
			return TC_ACT_UNSPEC;
		ipcopy = sizeof(ip6);
		iplen = bpf_ntohs(ip6.payload_len);
		if (iplen)
			iplen += sizeof(ip6);
	} else {
		return TC_ACT_UNSPEC;
	}

	struct tcphdr tcp;
	if (bpf_skb_load_bytes(skb, l3 + iphl, &tcp, sizeof(tcp)) < 0)
		return TC_ACT_UNSPEC;
	if (!watched(bpf_ntohs(tcp.source)) && !watched(bpf_ntohs(tcp.dest)))
		return TC_ACT_UNSPEC;

	__u32 pkt_len = skb->len > l3 ? skb->len - l3 : 0;
	count(STAT_PACKETS, 1);
	count(STAT_BYTES, pkt_len);
	// The IP length leaves out link-layer padding of short frames; it is 0 in
	// BIG TCP packets over 64 KiB, whose length is the skb's.
	if (iplen && iplen < pkt_len)
		pkt_len = iplen;

	__u32 tcphl = tcp.doff * 4;
	if (tcphl < sizeof(tcp) || ipcopy > MAX_IP_HDR || iphl + tcphl > pkt_len) {
		count(STAT_ERRORS, 1);
		return TC_ACT_UNSPEC;
	}
	__u32 hdr_len = ipcopy + tcphl;
	__u32 zero = 0;
	struct scratch_buf *b = bpf_map_lookup_elem(&scratch, &zero);
	if (!b) {
		count(STAT_ERRORS, 1);
		return TC_ACT_UNSPEC;
	}
	if (bpf_skb_load_bytes(skb, l3, b->data, ipcopy) < 0 ||
	    bpf_skb_load_bytes(skb, l3 + iphl, b->data + ipcopy, tcphl) < 0) {
		count(STAT_ERRORS, 1);
		return TC_ACT_UNSPEC;
	}
	if (ipcopy == sizeof(struct ipv6hdr))
		((struct ipv6hdr *)b->data)->nexthdr = IPPROTO_TCP; // extension headers left out
	__u32 payload = pkt_len - iphl - tcphl;
	__u32 want = payload;
	if (want > snaplen)
		want = snaplen;
	if (want < payload)
		count(STAT_TRUNCATED, 1);

	__u64 ts = bpf_ktime_get_ns();
	__u32 copied = 0;
	for (__u32 i = 0; i < MAX_CHUNKS; i++) {
		__u32 off = i * CHUNK;
		if (i > 0 && off >= want)
			break;
		__u32 n = want > off ? want - off : 0;
		if (n > CHUNK)
			n = CHUNK;
		if (n > 0 && bpf_skb_load_bytes(skb, l3 + iphl + tcphl + off, b->data + hdr_len, n) < 0) {
			count(STAT_ERRORS, 1);
			break;
		}
		b->ev.ts_ns = ts;
		b->ev.payload = payload;
		b->ev.ifindex = ifindex;
		b->ev.offset = off;
		b->ev.hdr_len = hdr_len;
		b->ev.chunk_len = n;
		b->ev.dir = dir;
		b->ev.last = off + n >= want;
		__u64 flags = BPF_RB_NO_WAKEUP;
		if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
			flags = BPF_RB_FORCE_WAKEUP;
		if (bpf_ringbuf_output(&events, b, sizeof(struct event) + hdr_len + n, flags) < 0)
			count(STAT_RB_FULL, 1);
		else
			copied += n;
	}
	count(STAT_CAPTURED, copied);
	return TC_ACT_UNSPEC;
}

SEC("tcx/ingress")
int capture_ingress(struct __sk_buff *skb)
{
	return capture(skb, DIR_INGRESS);
}

SEC("tcx/egress")
int capture_egress(struct __sk_buff *skb)
{
	return capture(skb, DIR_EGRESS);
}
