// Package vpc is the packet-capture collector: an AWS VPC Traffic Mirroring
// target and the TCP/HTTP path every packet source shares.
//
// Receiver reads the VXLAN datagrams VPC Traffic Mirroring sends to UDP 4789
// (any VNI, or only chosen ones), Decoder decodes them with gopacket (VXLAN ->
// Ethernet [-> 802.1Q] -> IPv4/IPv6 -> TCP; also Linux cooked, loopback and raw IP
// captures for pcap files), and Tracker follows the TCP connections to the
// mirrored service's ports: it reassembles each direction (out-of-order segments
// wait in a bounded buffer, retransmits are dropped, bytes the peer acknowledged
// but the capture never saw, or that the mirror cut off, are declared gaps at
// once, and a hole that stays open past the gap timeout is given up), hands the
// byte streams to collector/httpstream for request/response pairing, and
// publishes each exchange (Source SOURCE_VPC, connection id from the 4-tuple and
// the connection's first packet time, capture time and latency from packet
// times) through a collector.Emitter.
//
// Memory is bounded: out-of-order bytes per stream direction and in total, the
// number of streams (packets of new streams beyond it are dropped and counted),
// and, through httpstream, heads, bodies and pipelined requests per stream. Idle
// streams are flushed after the idle timeout. Counters are in Stats and exposed
// as mirrorline_vpc_* by Collector.
package vpc
