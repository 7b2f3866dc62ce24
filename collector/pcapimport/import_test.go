package pcapimport

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

var update = flag.Bool("update", false, "regenerate testdata/http.pcap, http.pcapng and sample.gor")

// CaptureStart is when the crafted capture was "taken".
var CaptureStart = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

type packet struct {
	at   time.Duration // after CaptureStart
	data []byte
}

// crafted returns the packets of testdata/http.pcap: a keep-alive connection to
// :8080 with two exchanges (the second a POST answered chunked), out-of-order
// segments, a retransmit and a segment lost by the capture; a connection to :9090
// (filtered with --port 8080); and a UDP datagram (not TCP).
func crafted() []packet {
	var out []packet
	at := time.Duration(0)
	add := func(step time.Duration, frames ...[]byte) {
		for _, f := range frames {
			at += step
			out = append(out, packet{at, f})
		}
	}
	c := packettest.NewConn("192.0.2.10:50123", "192.0.2.20:8080")
	add(time.Millisecond, c.Handshake()...)
	add(time.Millisecond, c.ClientData([]byte("GET /orders/42?full=1 HTTP/1.1\r\nHost: shop.internal\r\nAccept: application/json\r\n\r\n"), 0)...)
	add(25*time.Millisecond, c.ServerData([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"id\":42,\"a\":1}"), 0)...)
	add(time.Millisecond, c.ClientAck())
	post := c.ClientData([]byte("POST /orders HTTP/1.1\r\nHost: shop.internal\r\nContent-Type: application/json\r\nContent-Length: 24\r\n\r\n{\"item\":\"book\",\"qty\":2}\n"), 30)
	add(time.Second, post[1], post[0], post[2], post[1]) // out of order, then a retransmit
	add(time.Millisecond, post[3:]...)
	resp := c.ServerData([]byte("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"), 0)
	body := c.ServerData([]byte("7\r\n{\"id\":4\r\n3\r\n3}\n\r\n0\r\n\r\n"), 8)
	add(40*time.Millisecond, resp...)
	add(time.Millisecond, body...)
	add(time.Millisecond, c.ClientAck())
	// Third request: its second segment never made it into the capture; the
	// server's ACK shows it was sent.
	third := c.ClientData([]byte("PUT /orders/43 HTTP/1.1\r\nHost: shop.internal\r\nContent-Length: 10\r\n\r\n0123456789"), 68)
	add(2*time.Second, third[0])
	add(5*time.Millisecond, c.ServerData([]byte("HTTP/1.1 204 No Content\r\n\r\n"), 0)...)
	add(time.Millisecond, c.ClientFIN(), c.ServerFIN(), c.ClientAck())

	o := packettest.NewConn("192.0.2.11:50200", "192.0.2.20:9090")
	add(time.Millisecond, o.Handshake()...)
	add(time.Millisecond, o.ClientData([]byte("GET /other HTTP/1.1\r\nHost: other\r\n\r\n"), 0)...)
	add(time.Millisecond, o.ServerData([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0)...)
	add(time.Millisecond, udpFrame())
	return out
}

func udpFrame() []byte {
	buf := gopacket.NewSerializeBuffer()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: []byte{192, 0, 2, 10}, DstIP: []byte{192, 0, 2, 53}}
	udp := &layers.UDP{SrcPort: 5353, DstPort: 53}
	_ = udp.SetNetworkLayerForChecksum(ip)
	eth := &layers.Ethernet{SrcMAC: []byte{2, 0, 0, 0, 0, 1}, DstMAC: []byte{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, udp, gopacket.Payload("dns?")); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// WantPcap is what importing testdata/http.pcap with --port 8080 publishes.
var WantPcap = []string{
	"GET /orders/42?full=1  -> 200 {\"id\":42,\"a\":1}",
	"POST /orders {\"item\":\"book\",\"qty\":2}\n -> 201 {\"id\":43}\n",
	"PUT /orders/43  [req-cut] -> 204 ",
}

const gorSample = "1 8f3c0001 1709287200000000000 0\n" +
	"GET /a?x=1 HTTP/1.1\r\nHost: shop.internal\r\nUser-Agent: gor\r\n\r\n" +
	"\n🐵🙈🙉\n" +
	"1 8f3c0002 1709287200500000000 0\n" +
	"POST /b HTTP/1.1\r\nHost: shop.internal\r\nContent-Length: 5\r\n\r\nhello" +
	"\n🐵🙈🙉\n" +
	"2 8f3c0001 1709287200020000000 20000000\n" +
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" +
	"\n🐵🙈🙉\n" +
	"3 8f3c0001 1709287300000000000 1000000\n" +
	"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n" +
	"\n🐵🙈🙉\n" +
	"2 8f3c0002 1709287200530000000 30000000\n" +
	"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnew\r\n0\r\n\r\n" +
	"\n🐵🙈🙉\n" +
	"1 8f3c0003 1709287201000000000 0\n" +
	"DELETE /c HTTP/1.1\r\nHost: shop.internal\r\n\r\n" +
	"\n🐵🙈🙉\n"

// TestGenerate rewrites the committed test captures with -update.
func TestGenerate(t *testing.T) {
	if !*update {
		t.Skip("run with -update to regenerate testdata")
	}
	var pc, ng bytes.Buffer
	w := pcapgo.NewWriter(&pc)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	nw, err := pcapgo.NewNgWriter(&ng, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range crafted() {
		ci := gopacket.CaptureInfo{Timestamp: CaptureStart.Add(p.at), CaptureLength: len(p.data), Length: len(p.data)}
		if err := w.WritePacket(ci, p.data); err != nil {
			t.Fatal(err)
		}
		if err := nw.WritePacket(ci, p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := nw.Flush(); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"http.pcap": pc.Bytes(), "http.pcapng": ng.Bytes(), "sample.gor": []byte(gorSample)} {
		if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestImportCaptures(t *testing.T) {
	for _, file := range []string{"testdata/http.pcap", "testdata/http.pcapng"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			pub := &packettest.Collect{}
			im := New(pub, WithPorts(8080), WithCollectorID("importer"))
			if err := im.ImportFile(context.Background(), file); err != nil {
				t.Fatal(err)
			}
			im.Close()
			var got []string
			for _, ex := range pub.Got() {
				got = append(got, packettest.Summary(ex))
			}
			if strings.Join(got, "\n") != strings.Join(WantPcap, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(WantPcap, "\n"))
			}
			// Original capture times: the first request's first packet is the 4th.
			pk := crafted()
			if want := CaptureStart.Add(pk[3].at).UnixNano(); pub.Got()[0].CaptureTimeNs != want {
				t.Errorf("capture time %s, want %s", time.Unix(0, pub.Got()[0].CaptureTimeNs).UTC(), time.Unix(0, want).UTC())
			}
			if l := time.Duration(pub.Got()[0].Response.LatencyNs); l != 25*time.Millisecond {
				t.Errorf("latency %s, want 25ms", l)
			}
			for _, ex := range pub.Got() {
				if ex.Source != mlv1.Source_SOURCE_PCAP || ex.ConnectionId != pub.Got()[0].ConnectionId || !strings.HasPrefix(ex.ConnectionId, "pcap-") || ex.Collector != "importer" {
					t.Errorf("record %v", ex)
				}
			}
			s := im.Summary()
			if s.Exchanges.Load() != 3 || s.Gaps.Load() != 1 || s.Skipped.Load() != 7 || s.Packets.Load() != uint64(len(pk)) {
				t.Errorf("summary: exchanges %d gaps %d skipped %d packets %d", s.Exchanges.Load(), s.Gaps.Load(), s.Skipped.Load(), s.Packets.Load())
			}
		})
	}
}

func TestImportGoReplay(t *testing.T) {
	pub := &packettest.Collect{}
	im := New(pub)
	if err := im.ImportFile(context.Background(), "testdata/sample.gor"); err != nil {
		t.Fatal(err)
	}
	im.Close()
	var got []string
	for _, ex := range pub.Got() {
		got = append(got, packettest.Summary(ex))
	}
	want := []string{"GET /a?x=1  -> 200 ok", "POST /b hello -> 201 new", "DELETE /c  -> none"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if pub.Got()[0].CaptureTimeNs != 1709287200000000000 || pub.Got()[0].Response.LatencyNs != 20000000 || pub.Got()[0].ConnectionId != "gor-8f3c0001" || pub.Got()[0].Source != mlv1.Source_SOURCE_GOREPLAY {
		t.Fatalf("record %v", pub.Got()[0])
	}
	if s := im.Summary(); s.Skipped.Load() != 1 || s.Unanswered.Load() != 1 || s.Exchanges.Load() != 3 {
		t.Fatalf("summary skipped %d unanswered %d", s.Skipped.Load(), s.Unanswered.Load())
	}
}

func TestImportBadFiles(t *testing.T) {
	pcapBytes, err := os.ReadFile("testdata/http.pcap")
	if err != nil {
		t.Fatal(err)
	}
	ngBytes, err := os.ReadFile("testdata/http.pcapng")
	if err != nil {
		t.Fatal(err)
	}
	// Record offsets of the pcap: 24-byte header, then 16-byte record headers.
	third := int64(24)
	for _, p := range crafted()[:2] {
		third += 16 + int64(len(p.data))
	}
	tests := []struct {
		name       string
		data       []byte
		wantOffset int64
		wantText   string
		published  int
	}{
		{"unknown format", []byte("hello world"), 0, "unrecognised format", 0},
		{"empty", nil, 0, "unrecognised format", 0},
		{"pcap cut inside the third record", pcapBytes[:third+20], third, "ends inside a packet record", 0},
		{"pcap cut at the end", pcapBytes[:len(pcapBytes)-5], -1, "ends inside a packet record", 3},
		{"pcapng cut", ngBytes[:len(ngBytes)-9], -1, "ends inside a block", 3},
		{"gor with a bad header", []byte(gorSample + "x y z\nGET / HTTP/1.1\r\n\r\n"), int64(len(gorSample)), "bad GoReplay header", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub := &packettest.Collect{}
			im := New(pub, WithPorts(8080))
			err := im.Import(context.Background(), "f.bin", bytes.NewReader(tc.data))
			im.Close()
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != "f.bin" || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("error %v", err)
			}
			if tc.wantOffset >= 0 && fe.Offset != tc.wantOffset {
				t.Errorf("offset %d, want %d", fe.Offset, tc.wantOffset)
			}
			if len(pub.Got()) != tc.published || im.Summary().Errors.Load() != 1 {
				t.Errorf("published %d, want %d (errors %d)", len(pub.Got()), tc.published, im.Summary().Errors.Load())
			}
		})
	}
}
