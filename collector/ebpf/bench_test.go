//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
)

type countSink struct {
	mu sync.Mutex
	n  int
}

func (s *countSink) Emit(*mlv1.Exchange) error {
	s.mu.Lock()
	s.n++
	s.mu.Unlock()
	return nil
}

// BenchmarkLoopbackHTTP measures keep-alive HTTP requests on loopback (4
// clients) without and with the capture attached, and the packets per second
// the capture takes through the kernel and userspace path.
func BenchmarkLoopbackHTTP(b *testing.B) {
	requireRoot(b)
	for _, on := range []bool{false, true} {
		name := "capture=off"
		if on {
			name = "capture=on"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, `{"status":"ok","items":[1,2,3]}`)
			})}
			go func() { _ = srv.Serve(ln) }()
			defer srv.Close()
			url := "http://" + ln.Addr().String() + "/bench?x=1"
			port := uint16(ln.Addr().(*net.TCPAddr).Port)
			var c *Capture
			done := make(chan error, 1)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := &countSink{}
			if on {
				if c, err = Open(s, Config{Ports: []uint16{port}}); err != nil {
					b.Fatal(err)
				}
				go func() { done <- c.Run(ctx) }()
			}
			const clients = 4
			tr := &http.Transport{MaxIdleConnsPerHost: clients}
			cl := &http.Client{Transport: tr}
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			per := b.N/clients + 1
			for range clients {
				wg.Go(func() {
					for range per {
						resp, err := cl.Get(url)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			tr.CloseIdleConnections()
			b.ReportMetric(float64(per*clients)/elapsed.Seconds(), "req/s")
			if on {
				want := per * clients
				deadline := time.Now().Add(10 * time.Second)
				for c.Stats().Exchanges.Load() < uint64(want) && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				ks := c.KernelStats()
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(ks.Packets)/elapsed.Seconds(), "pkts/s")
				b.ReportMetric(float64(ks.RingbufDrops), "drops")
				b.ReportMetric(float64(c.Stats().Exchanges.Load())/float64(want), "captured-ratio")
			}
		})
	}
}

// BenchmarkHandle measures the userspace path alone: one ring buffer record
// (a 200-byte request segment) decoded and handed to the tracker.
func BenchmarkHandle(b *testing.B) {
	tr := tcpstream.NewTracker(&countSink{}, tcpstream.WithPorts(8080))
	c := &Capture{tracker: tr, stats: tr.Stats(), dec: tcpstream.NewDecoder()}
	c.first, _ = tcpstream.FirstLayer(layers.LinkTypeRaw)
	payload := []byte(fmt.Sprintf("GET /x HTTP/1.1\r\nHost: a\r\nX-Pad: %0150d\r\n\r\n", 0))
	buf := gopacket.NewSerializeBuffer()
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IP{127, 0, 0, 1}, DstIP: net.IP{127, 0, 0, 1}}
	tcp := &layers.TCP{SrcPort: 40000, DstPort: 8080, Seq: 1000, ACK: true, PSH: true, Window: 1000}
	_ = tcp.SetNetworkLayerForChecksum(ip)
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, ip, tcp, gopacket.Payload(payload)); err != nil {
		b.Fatal(err)
	}
	pkt := buf.Bytes()
	rec := make([]byte, eventSize+len(pkt))
	binary.NativeEndian.PutUint32(rec[8:12], uint32(len(payload)))
	binary.NativeEndian.PutUint16(rec[20:22], 40)
	binary.NativeEndian.PutUint16(rec[22:24], uint16(len(payload)))
	rec[24], rec[25] = dirEgress, 1
	copy(rec[eventSize:], pkt)
	seq := uint32(1000)
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		binary.BigEndian.PutUint32(rec[eventSize+24:], seq) // next in-order segment
		seq += uint32(len(payload))
		c.handle(rec)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}
