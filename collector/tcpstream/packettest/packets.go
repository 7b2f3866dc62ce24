// Package packettest builds the packets tests of the packet collectors need:
// Ethernet/IPv4-or-IPv6/TCP frames of a scripted connection, serialized with
// gopacket, optionally wrapped in VXLAN as VPC Traffic Mirroring sends them.
package packettest

import (
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Conn scripts one TCP connection and produces its frames. Sequence numbers
// advance as data is produced, whatever order the frames are later sent in.
type Conn struct {
	Client, Server netip.AddrPort
	cseq, sseq     uint32
}

// NewConn returns a connection from client to server ("ip:port") with fixed
// initial sequence numbers chosen to wrap around 2^32 soon.
func NewConn(client, server string) *Conn {
	return &Conn{Client: netip.MustParseAddrPort(client), Server: netip.MustParseAddrPort(server), cseq: 0xfffff000, sseq: 0x7ffffff0}
}

// Flags are TCP flags of a frame.
type Flags struct{ SYN, ACK, FIN, RST, PSH bool }

// Handshake returns the SYN, SYN-ACK and ACK frames.
func (c *Conn) Handshake() [][]byte {
	syn := Frame(c.Client, c.Server, c.cseq, 0, Flags{SYN: true}, nil)
	synack := Frame(c.Server, c.Client, c.sseq, c.cseq+1, Flags{SYN: true, ACK: true}, nil)
	c.cseq++
	c.sseq++
	ack := Frame(c.Client, c.Server, c.cseq, c.sseq, Flags{ACK: true}, nil)
	return [][]byte{syn, synack, ack}
}

// ClientData returns the frames carrying payload from the client in segments of
// at most mss bytes (0: one segment).
func (c *Conn) ClientData(payload []byte, mss int) [][]byte {
	return segments(c.Client, c.Server, &c.cseq, c.sseq, payload, mss)
}

// ServerData returns the frames carrying payload from the server.
func (c *Conn) ServerData(payload []byte, mss int) [][]byte {
	return segments(c.Server, c.Client, &c.sseq, c.cseq, payload, mss)
}

// ClientAck returns a bare ACK from the client acknowledging all server data.
func (c *Conn) ClientAck() []byte {
	return Frame(c.Client, c.Server, c.cseq, c.sseq, Flags{ACK: true}, nil)
}

// ServerAck returns a bare ACK from the server acknowledging all client data.
func (c *Conn) ServerAck() []byte {
	return Frame(c.Server, c.Client, c.sseq, c.cseq, Flags{ACK: true}, nil)
}

// ClientFIN returns the client's FIN.
func (c *Conn) ClientFIN() []byte {
	f := Frame(c.Client, c.Server, c.cseq, c.sseq, Flags{FIN: true, ACK: true}, nil)
	c.cseq++
	return f
}

// ServerFIN returns the server's FIN.
func (c *Conn) ServerFIN() []byte {
	f := Frame(c.Server, c.Client, c.sseq, c.cseq, Flags{FIN: true, ACK: true}, nil)
	c.sseq++
	return f
}

func segments(src, dst netip.AddrPort, seq *uint32, ack uint32, payload []byte, mss int) [][]byte {
	if mss <= 0 {
		mss = len(payload)
	}
	var out [][]byte
	for len(payload) > 0 {
		n := min(mss, len(payload))
		out = append(out, Frame(src, dst, *seq, ack, Flags{ACK: true, PSH: n == len(payload)}, payload[:n]))
		*seq += uint32(n)
		payload = payload[n:]
	}
	return out
}

// Frame serializes one Ethernet frame with an IPv4 (or IPv6) TCP segment.
func Frame(src, dst netip.AddrPort, seq, ack uint32, f Flags, payload []byte) []byte {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()), Seq: seq, Ack: ack,
		SYN: f.SYN, ACK: f.ACK, FIN: f.FIN, RST: f.RST, PSH: f.PSH, Window: 65535}
	var ip interface {
		gopacket.NetworkLayer
		gopacket.SerializableLayer
	}
	if src.Addr().Is4() {
		eth.EthernetType = layers.EthernetTypeIPv4
		ip = &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	} else {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(payload)); err != nil {
		panic("packettest: serialize frame: " + err.Error())
	}
	return append([]byte(nil), buf.Bytes()...)
}

// VXLAN wraps an Ethernet frame in a VXLAN header with vni: the payload of the
// UDP datagram VPC Traffic Mirroring sends.
func VXLAN(vni uint32, frame []byte) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, &layers.VXLAN{ValidIDFlag: true, VNI: vni}, gopacket.Payload(frame)); err != nil {
		panic("packettest: serialize VXLAN: " + err.Error())
	}
	return append([]byte(nil), buf.Bytes()...)
}

// Truncate cuts frame to n bytes, as a mirror session's packet length does.
func Truncate(frame []byte, n int) []byte { return frame[:min(n, len(frame))] }
