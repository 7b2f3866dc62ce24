package vpc

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/tcpstream"
	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// HTTP/2 mirrored as VXLAN over loopback UDP: a connection seen from its
// preface is published stream by stream, one joined midway is counted in
// mirrorline_vpc_h2_connections_dropped_total{reason="midstream"}.
func TestVPCReceiverHTTP2(t *testing.T) {
	brokers := kafkatest.Embedded(t, "shop", 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	reg := prometheus.NewRegistry()
	st := &tcpstream.Stats{}
	reg.MustRegister(tcpstream.NewStreamCollector("vpc", st))
	em := collector.NewEmitter(cl, "shop", collector.NewMetrics(reg), nil)
	rx := NewReceiver(tcpstream.NewTracker(em, tcpstream.WithPorts(8080), tcpstream.WithStats(st)), WithVNIs(7))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rx.Serve(ctx, pc) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	c1 := packettest.NewConn("10.1.0.5:52000", "10.1.0.9:8080")
	h1 := packettest.NewH2()
	frames := packettest.Cat(c1.Handshake(), c1.ClientData(h1.ClientStart(), 0), c1.ServerData(h1.ServerStart(), 0),
		c1.ClientData(h1.Request(1, "GET", "svc", "/a"), 0), c1.ClientData(h1.Request(3, "DELETE", "svc", "/b"), 0),
		c1.ServerData(h1.Response(1, "200", "first"), 0), c1.ServerData(h1.Response(3, "204", ""), 0),
		packettest.One(c1.ClientFIN()), packettest.One(c1.ServerFIN()), packettest.One(c1.ClientAck()))
	// Joined midway: no preface.
	c2 := packettest.NewConn("10.1.0.6:52001", "10.1.0.9:8080")
	h2 := packettest.NewH2()
	h2.ClientStart()
	h2.ServerStart()
	midway := packettest.Cat(c2.ClientData(h2.Request(7, "GET", "svc", "/late"), 0), c2.ServerData(h2.Response(7, "200", "late"), 0))

	out, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for _, f := range packettest.Cat(midway, frames) {
		if _, err := out.Write(packettest.VXLAN(7, f)); err != nil {
			t.Fatal(err)
		}
	}

	exs := kafkatest.ReadExchanges(t, brokers, broker.Topic(broker.Raw, "shop"), 2, 10*time.Second)
	var got []string
	for _, ex := range exs {
		got = append(got, packettest.Summary(ex))
		if ex.Source != mlv1.Source_SOURCE_VPC || ex.Protocol != mlv1.Protocol_PROTOCOL_HTTP2 || ex.Request.Proto != "HTTP/2.0" ||
			ex.Request.RemoteAddr != "10.1.0.5:52000" || ex.CaptureTimeNs == 0 {
			t.Errorf("record %v", ex)
		}
	}
	want := []string{"GET /a  -> 200 first", "DELETE /b  -> 204 "}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.PacketsTotal() < uint64(len(midway)+len(frames)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a counter, not synchronising on time
	}
	if n := testutil.ToFloat64(gauge(t, reg, "mirrorline_vpc_h2_connections_dropped_total", "midstream")); n != 1 {
		t.Errorf("midstream drops %v, want 1", n)
	}
	if n := st.H2.Connections.Load(); n != 1 {
		t.Errorf("HTTP/2 connections %d, want 1", n)
	}
}
