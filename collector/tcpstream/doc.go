// Package tcpstream is the TCP/HTTP path every packet collector shares
// (vpc, ebpf, pcap import): it turns captured TCP segments into published
// HTTP exchanges.
//
// Decoder decodes packets with gopacket (VXLAN -> Ethernet [-> 802.1Q] ->
// IPv4/IPv6 -> TCP; also Linux cooked, loopback and raw IP captures for pcap
// files) into a Segment. Tracker follows the TCP connections to the mirrored
// service's ports: it reassembles each direction (out-of-order segments wait
// in a bounded buffer, retransmits are dropped, bytes the peer acknowledged
// but the capture never saw, or that the mirror cut off, are declared gaps at
// once, and a hole that stays open past the gap timeout is given up), hands
// the byte streams to a parser chosen by the client's first bytes
// (collector/h2stream after the HTTP/2 client preface, an HTTP/2 connection
// joined after its preface counted and skipped, collector/httpstream for
// anything else: one place, the Tracker's newParser), and
// publishes each exchange (connection id from the 4-tuple and the
// connection's first packet time, capture time and latency from packet times)
// through a Publisher, in practice a collector.Emitter.
//
// Memory is bounded: out-of-order bytes per stream direction and in total,
// the number of streams (packets of new streams beyond it are dropped and
// counted), and, through httpstream, heads, bodies and pipelined requests per
// stream. Idle streams are flushed after the idle timeout. Counters are in
// Stats and exposed per stage by NewStreamCollector. Package packettest builds
// the frames the packet collectors' tests need.
package tcpstream
