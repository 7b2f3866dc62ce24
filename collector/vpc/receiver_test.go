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

// The receiver as deployed: VXLAN datagrams over loopback UDP in, records on an
// embedded Kafka-protocol broker out.
func TestVPCReceiverPublishesMirroredExchanges(t *testing.T) {
	brokers := kafkatest.Embedded(t, "shop", 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	reg := prometheus.NewRegistry()
	st := &tcpstream.Stats{}
	reg.MustRegister(tcpstream.NewStreamCollector("vpc", st))
	em := collector.NewEmitter(cl, "shop", collector.NewMetrics(reg), nil)
	tr := tcpstream.NewTracker(em, tcpstream.WithPorts(8080), tcpstream.WithStats(st), tcpstream.WithCollectorID("mirror-1"))
	rx := NewReceiver(tr, WithVNIs(7))

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

	// Connection 1: keep-alive, a chunked response, segments out of order, a
	// retransmit and a segment lost by the mirror (the server's ACK reveals it).
	c1 := packettest.NewConn("10.1.0.5:51000", "10.1.0.9:8080")
	hs := c1.Handshake()
	r1 := c1.ClientData([]byte(packettest.ReqA), 0)
	p1 := c1.ServerData([]byte(packettest.RespA), 0)
	r2 := c1.ClientData([]byte(packettest.ReqB), 9)
	p2 := c1.ServerData([]byte(packettest.RespB), 0)
	r3 := c1.ClientData([]byte("POST /c HTTP/1.1\r\nHost: svc\r\nContent-Length: 10\r\n\r\n"), 0)
	r3body := c1.ClientData([]byte("0123456789"), 5)
	p3 := c1.ServerData([]byte(packettest.RespA), 0)
	frames := packettest.Cat(hs, r1, p1, [][]byte{r2[1], r2[0], r2[3], r2[2], r2[2], r2[4], r2[5], r2[6]}, p2,
		r3, r3body[:1] /* second half lost */, p3, packettest.One(c1.ClientFIN()), packettest.One(c1.ServerFIN()), packettest.One(c1.ClientAck()))
	// Connection 2: other VNI, filtered; connection 3: other port, filtered.
	c2 := packettest.NewConn("10.1.0.6:51001", "10.1.0.9:8080")
	c3 := packettest.NewConn("10.1.0.7:51002", "10.1.0.9:9999")

	out, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	send := func(vni uint32, frames [][]byte) {
		for _, f := range frames {
			if _, err := out.Write(packettest.VXLAN(vni, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(99, packettest.Cat(c2.Handshake(), c2.ClientData([]byte(packettest.ReqA), 0)))
	send(7, packettest.Cat(c3.Handshake(), c3.ClientData([]byte(packettest.ReqA), 0)))
	send(7, frames)
	if _, err := out.Write([]byte("not vxlan")); err != nil {
		t.Fatal(err)
	}

	exs := kafkatest.ReadExchanges(t, brokers, broker.Topic(broker.Raw, "shop"), 3, 10*time.Second)
	var got []string
	for _, ex := range exs {
		got = append(got, packettest.Summary(ex))
		if ex.Source != mlv1.Source_SOURCE_VPC || ex.Collector != "mirror-1" || ex.ConnectionId != exs[0].ConnectionId || ex.CaptureTimeNs == 0 {
			t.Errorf("record %v", ex)
		}
		if ex.Response.LatencyNs <= 0 {
			t.Errorf("latency %d", ex.Response.LatencyNs)
		}
	}
	want := []string{"GET /a  -> 200 one", "POST /b hello world -> 201 two!-three", "POST /c 01234 [req-cut] -> 200 one"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if exs[0].Sequence != 1 || exs[2].Sequence != 3 {
		t.Errorf("sequences %d..%d", exs[0].Sequence, exs[2].Sequence)
	}
	// Every datagram is accounted for once the FIN/ACK has been processed.
	total := uint64(len(frames)) + 4 + 4 + 1
	deadline := time.Now().Add(5 * time.Second)
	for st.PacketsTotal() < total && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling a counter, not synchronising on time
	}
	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"filtered", testutil.ToFloat64(gauge(t, reg, "mirrorline_vpc_packets_total", "filtered")), 8},
		{"malformed", testutil.ToFloat64(gauge(t, reg, "mirrorline_vpc_packets_total", "malformed")), 1},
		{"retransmit", testutil.ToFloat64(gauge(t, reg, "mirrorline_vpc_packets_total", "retransmit")), 1},
		{"gaps", float64(st.Gaps.Load()), 1},
		{"active", float64(st.StreamsActive.Load()), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// gauge returns the metric name{result=label} of reg as a collector for testutil.
func gauge(t *testing.T, reg *prometheus.Registry, name, label string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == label {
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return m.GetCounter().GetValue() })
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return nil
}
