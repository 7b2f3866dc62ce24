package vpc

import (
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/collector/httpstream"
	"github.com/mirrorline/mirrorline/collector/tcpstream"
	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

type discard struct{}

func (discard) Emit(*mlv1.Exchange) error { return nil }

// datagrams joins VXLAN payloads as the fuzzer's input: each prefixed with its
// 2-byte length.
func datagrams(ps ...[]byte) []byte {
	var out []byte
	for _, p := range ps {
		out = binary.BigEndian.AppendUint16(out, uint16(len(p)))
		out = append(out, p...)
	}
	return out
}

// FuzzVXLANPacket hands arbitrary UDP payloads (one or several per input) to the
// receiver's decoder and tracker: nothing may panic and the tracker's bounds hold.
func FuzzVXLANPacket(f *testing.F) {
	c := packettest.NewConn("10.0.0.1:40000", "10.0.0.2:8080")
	var seeds [][]byte
	for _, fr := range packettest.Cat(c.Handshake(), c.ClientData([]byte(packettest.ReqB), 20), c.ServerData([]byte(packettest.RespB), 30), packettest.One(c.ClientFIN())) {
		seeds = append(seeds, packettest.VXLAN(7, fr))
	}
	f.Add(seeds[0])
	f.Add(datagrams(seeds...))
	f.Add(datagrams(seeds[0], seeds[4], seeds[3], seeds[5]))
	h2c, h2 := packettest.NewConn("10.0.0.3:40001", "10.0.0.2:8080"), packettest.NewH2()
	var h2seeds [][]byte
	for _, fr := range packettest.Cat(h2c.Handshake(), h2c.ClientData(h2.ClientStart(), 0), h2c.ServerData(h2.ServerStart(), 0),
		h2c.ClientData(h2.Request(1, "GET", "svc", "/h2"), 0), h2c.ServerData(h2.Response(1, "200", "hello"), 20)) {
		h2seeds = append(h2seeds, packettest.VXLAN(7, fr))
	}
	f.Add(datagrams(h2seeds...))
	v6 := packettest.NewConn("[fd00::1]:1234", "[fd00::2]:80")
	f.Add(datagrams(packettest.VXLAN(1, v6.ClientData([]byte(packettest.ReqA), 0)[0]), packettest.VXLAN(1, packettest.Truncate(v6.ServerData([]byte(packettest.RespA), 0)[0], 70))))
	f.Fuzz(func(t *testing.T, in []byte) {
		st := &tcpstream.Stats{}
		tr := tcpstream.NewTracker(discard{}, tcpstream.WithStats(st), tcpstream.WithMaxStreams(4), tcpstream.WithMaxStreamBuffer(256), tcpstream.WithMaxBuffered(512),
			tcpstream.WithHTTPOptions(httpstream.WithBodyLimit(64), httpstream.WithMaxHeaderBytes(512)))
		rx := NewReceiver(tr)
		ts := time.Unix(1, 0)
		rx.HandleDatagram(in, ts) // the whole input as one datagram
		for len(in) >= 2 {
			n := int(binary.BigEndian.Uint16(in))
			in = in[2:]
			n = min(n, len(in))
			ts = ts.Add(time.Millisecond)
			rx.HandleDatagram(in[:n], ts)
			in = in[n:]
			if st.BufferedBytes.Load() > 512 || tr.Active() > 4 {
				t.Fatalf("bounds: %d buffered, %d streams", st.BufferedBytes.Load(), tr.Active())
			}
		}
		tr.Flush(ts.Add(time.Hour))
		if tr.Active() != 0 || st.BufferedBytes.Load() != 0 {
			t.Fatalf("after flush: %d streams, %d buffered", tr.Active(), st.BufferedBytes.Load())
		}
	})
}

// BenchmarkDecodeVXLAN measures the decoder alone on a full-size mirrored packet.
func BenchmarkDecodeVXLAN(b *testing.B) {
	c := packettest.NewConn("10.0.0.1:40000", "10.0.0.2:8080")
	c.Handshake()
	pkt := packettest.VXLAN(7, c.ClientData(make([]byte, 1400), 0)[0])
	d := tcpstream.NewDecoder()
	var seg tcpstream.Segment
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.DecodeVXLAN(pkt, &seg); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}

// BenchmarkReceiverPath measures decode + reassembly + HTTP parsing + record
// building per packet: keep-alive GET/200 exchanges over many connections, 4
// packets per exchange.
func BenchmarkReceiverPath(b *testing.B) {
	const conns = 64
	var pkts [][]byte
	for i := range conns {
		c := packettest.NewConn("10.0.0.1:"+strconv.Itoa(30000+i), "10.0.0.2:8080")
		for _, fr := range c.Handshake() {
			pkts = append(pkts, packettest.VXLAN(7, fr))
		}
	}
	tr := tcpstream.NewTracker(discard{}, tcpstream.WithPorts(8080))
	rx := NewReceiver(tr)
	ts := time.Unix(1, 0)
	for _, p := range pkts {
		rx.HandleDatagram(p, ts)
	}
	// One exchange per connection, replayed with fresh sequence numbers each round.
	cs := make([]*packettest.Conn, conns)
	for i := range cs {
		cs[i] = packettest.NewConn("10.0.0.1:"+strconv.Itoa(30000+i), "10.0.0.2:8080")
		cs[i].Handshake()
	}
	round := func() [][]byte {
		var out [][]byte
		for _, c := range cs {
			for _, fr := range packettest.Cat(c.ClientData([]byte(packettest.ReqA), 0), packettest.One(c.ServerAck()), c.ServerData([]byte(packettest.RespA), 0), packettest.One(c.ClientAck())) {
				out = append(out, packettest.VXLAN(7, fr))
			}
		}
		return out
	}
	batch := round()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		if n == len(batch) {
			b.StopTimer()
			batch, n = round(), 0
			b.StartTimer()
		}
		rx.HandleDatagram(batch[n], ts)
		n++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
	if tr.Stats().Exchanges.Load() == 0 {
		b.Fatal("no exchanges")
	}
}
