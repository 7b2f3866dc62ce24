package tcpstream

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Segment is one decoded TCP segment. Payload aliases the decoded packet: it is
// valid only until the Decoder decodes the next one.
type Segment struct {
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	SYN, ACK bool
	FIN, RST bool
	Payload  []byte
	// Missing counts payload bytes the capture cut off (snap length, mirror
	// packet length): the segment carried len(Payload)+Missing bytes.
	Missing int
	// VNI is the VXLAN network identifier when the segment came in VXLAN.
	VNI uint32
	// VXLAN reports that the segment was VXLAN encapsulated.
	VXLAN bool
}

// Decode errors; a *DecodeError wraps one of them.
var (
	// ErrNotTCP: the packet decoded but carries no TCP segment (ARP, UDP, ICMP,
	// IP fragments, ...).
	ErrNotTCP = errors.New("not a TCP segment")
	// ErrMalformed: the packet does not decode.
	ErrMalformed = errors.New("malformed packet")
)

// Decoder decodes packets into TCP segments with gopacket's layer decoders,
// without allocating per packet. It is not safe for concurrent use.
type Decoder struct {
	vxlan   layers.VXLAN
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	sll     layers.LinuxSLL
	loop    layers.Loopback
	ip4     layers.IPv4
	ip6     layers.IPv6
	udp     layers.UDP
	tcp     layers.TCP
	parsers map[gopacket.LayerType]*gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
}

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder {
	return &Decoder{parsers: map[gopacket.LayerType]*gopacket.DecodingLayerParser{}, decoded: make([]gopacket.LayerType, 0, 16)}
}

func (d *Decoder) parser(first gopacket.LayerType) *gopacket.DecodingLayerParser {
	p := d.parsers[first]
	if p == nil {
		p = gopacket.NewDecodingLayerParser(first, &d.vxlan, &d.eth, &d.dot1q, &d.sll, &d.loop, &d.ip4, &d.ip6, &d.udp, &d.tcp)
		p.IgnoreUnsupported = true
		d.parsers[first] = p
	}
	return p
}

// FirstLayer returns the layer a capture of link type lt starts with.
func FirstLayer(lt layers.LinkType) (gopacket.LayerType, error) {
	switch lt {
	case layers.LinkTypeEthernet:
		return layers.LayerTypeEthernet, nil
	case layers.LinkTypeLinuxSLL:
		return layers.LayerTypeLinuxSLL, nil
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		return layers.LayerTypeLoopback, nil
	case layers.LinkTypeIPv4:
		return layers.LayerTypeIPv4, nil
	case layers.LinkTypeIPv6:
		return layers.LayerTypeIPv6, nil
	case layers.LinkTypeRaw, 12: // 12: LINKTYPE_RAW on OpenBSD
		return gopacket.LayerType(-1), nil // IPv4 or IPv6 by version nibble
	}
	return 0, fmt.Errorf("link type %s (%d) is not supported", lt, int(lt))
}

// DecodeVXLAN decodes the payload of a VXLAN UDP datagram (VXLAN header, then an
// Ethernet frame) into seg.
func (d *Decoder) DecodeVXLAN(payload []byte, seg *Segment) error {
	return d.Decode(layers.LayerTypeVXLAN, payload, seg)
}

// Decode decodes data starting with layer first (see FirstLayer) into seg. VXLAN
// in UDP port 4789 is followed to the inner packet.
func (d *Decoder) Decode(first gopacket.LayerType, data []byte, seg *Segment) (err error) {
	*seg = Segment{}
	if first == gopacket.LayerType(-1) {
		if len(data) == 0 {
			return ErrMalformed
		}
		switch data[0] >> 4 {
		case 4:
			first = layers.LayerTypeIPv4
		case 6:
			first = layers.LayerTypeIPv6
		default:
			return ErrMalformed
		}
	}
	defer func() {
		// gopacket's decoders are meant not to panic on bad input; a packet that
		// still makes one panic is malformed, not fatal.
		if r := recover(); r != nil {
			err = ErrMalformed
		}
	}()
	d.decoded = d.decoded[:0]
	if derr := d.parser(first).DecodeLayers(data, &d.decoded); derr != nil {
		return ErrMalformed
	}
	return d.segment(seg)
}

func (d *Decoder) segment(seg *Segment) error {
	var net gopacket.LayerType
	tcp := false
	for _, lt := range d.decoded {
		switch lt {
		case layers.LayerTypeVXLAN:
			seg.VXLAN, seg.VNI = true, d.vxlan.VNI
		case layers.LayerTypeIPv4, layers.LayerTypeIPv6:
			net = lt
		case layers.LayerTypeTCP:
			tcp = true
		}
	}
	if !tcp || net == 0 {
		return ErrNotTCP
	}
	var src, dst netip.Addr
	var ok1, ok2 bool
	switch net {
	case layers.LayerTypeIPv4:
		if d.ip4.Flags&layers.IPv4MoreFragments != 0 || d.ip4.FragOffset != 0 {
			return ErrNotTCP
		}
		src, ok1 = netip.AddrFromSlice(d.ip4.SrcIP)
		dst, ok2 = netip.AddrFromSlice(d.ip4.DstIP)
		if avail := len(d.ip4.Contents) + len(d.ip4.Payload); int(d.ip4.Length) > avail {
			seg.Missing = int(d.ip4.Length) - avail
		}
	case layers.LayerTypeIPv6:
		src, ok1 = netip.AddrFromSlice(d.ip6.SrcIP)
		dst, ok2 = netip.AddrFromSlice(d.ip6.DstIP)
		if d.ip6.Length != 0 && int(d.ip6.Length) > len(d.ip6.Payload) {
			seg.Missing = int(d.ip6.Length) - len(d.ip6.Payload)
		}
	}
	if !ok1 || !ok2 {
		return ErrMalformed
	}
	t := &d.tcp
	seg.Src = netip.AddrPortFrom(src.Unmap(), uint16(t.SrcPort))
	seg.Dst = netip.AddrPortFrom(dst.Unmap(), uint16(t.DstPort))
	seg.Seq, seg.Ack = t.Seq, t.Ack
	seg.SYN, seg.ACK, seg.FIN, seg.RST = t.SYN, t.ACK, t.FIN, t.RST
	seg.Payload = t.Payload
	return nil
}
