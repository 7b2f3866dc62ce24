// Package vpc is the AWS VPC Traffic Mirroring collector.
//
// Receiver reads the VXLAN datagrams VPC Traffic Mirroring sends to UDP 4789
// (any VNI, or only chosen ones), decodes each with a tcpstream.Decoder
// (VXLAN -> Ethernet [-> 802.1Q] -> IPv4/IPv6 -> TCP) and hands the segment
// to a tcpstream.Tracker, which reassembles the connections, pairs requests
// with responses (HTTP/1.x, or HTTP/2 streams of connections seen from their
// preface) and publishes each exchange (Source SOURCE_VPC). Its
// counters are exposed as mirrorline_vpc_* by tcpstream.NewStreamCollector.
package vpc
