package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// `mirrorline vpc` as deployed behind a VPC Traffic Mirroring session: VXLAN
// datagrams over loopback UDP, records in a real Kafka, metrics on /metrics.
func TestVPCMirrorIntoKafka(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 3)
	env := []string{"MIRRORLINE_BROKERS=" + strings.Join(brokers, ",")}
	udpAddr, metricsAddr := testproc.FreeUDPAddr(t), testproc.FreeAddr(t)
	out := startML(t, env, "vpc", "--service", svc, "--listen", udpAddr, "--port", "8080", "--vni", "42",
		"--metrics-addr", metricsAddr, "--collector-id", "mirror-e2e")
	testproc.Eventually(t, 30*time.Second, "vpc listening", func() bool { return strings.Contains(out.String(), "VPC mirror target listening") })

	t.Cleanup(func() {
		if t.Failed() {
			resp, err := http.Get("http://" + metricsAddr + "/metrics")
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				for _, l := range strings.Split(string(b), "\n") {
					if strings.HasPrefix(l, "mirrorline_vpc") || strings.HasPrefix(l, "mirrorline_collector") {
						t.Log(l)
					}
				}
			}
		}
	})
	conn, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sent := 0
	send := func(vni uint32, frames ...[]byte) {
		for _, f := range frames {
			if _, err := conn.Write(packettest.VXLAN(vni, f)); err != nil {
				t.Fatal(err)
			}
			sent++
		}
	}
	// The collector counts every datagram it reads (packets_total, by
	// result). The test waits for it to have read what was sent before it
	// sends the next connection's: a burst of all of them could overflow the
	// socket's receive buffer (net.core.rmem_max caps it; 208 KiB on many
	// machines) while a loaded machine keeps the collector from reading, and
	// the kernel drops what does not fit, uncounted: lost captures that are
	// the machine's, not the collector's.
	read := func() int {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		total := 0
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "mirrorline_vpc_packets_total{"); ok {
				if i := strings.LastIndexByte(v, ' '); i >= 0 {
					n, _ := strconv.ParseFloat(v[i+1:], 64)
					total += int(n)
				}
			}
		}
		return total
	}
	caughtUp := func() {
		testproc.Eventually(t, 60*time.Second, fmt.Sprintf("the collector read the %d datagrams sent", sent), func() bool { return read() >= sent })
	}
	const n = 20 // connections, two keep-alive exchanges each
	for i := range n {
		c := packettest.NewConn("10.9.0.1:"+strconv.Itoa(41000+i), "10.9.0.2:8080")
		send(42, c.Handshake()...)
		req := c.ClientData([]byte("POST /pay HTTP/1.1\r\nHost: pay\r\nContent-Length: 16\r\n\r\n{\"amount\": 1234}"), 20)
		send(42, req[1], req[0], req[2], req[1]) // out of order and a retransmit
		send(42, req[3:]...)
		send(42, c.ServerData([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok!\r\n0\r\n\r\n"), 0)...)
		send(42, c.ClientData([]byte("GET /status HTTP/1.1\r\nHost: pay\r\n\r\n"), 0)...)
		send(42, c.ServerData([]byte("HTTP/1.1 204 No Content\r\n\r\n"), 0)...)
		send(42, c.ClientFIN(), c.ServerFIN(), c.ClientAck())
		caughtUp()
	}
	other := packettest.NewConn("10.9.0.3:42000", "10.9.0.2:8080")
	send(7, other.Handshake()...) // another VNI: filtered
	caughtUp()

	recs := readRecords(t, brokers, broker.Topic(broker.Raw, svc), 2*n, 30*time.Second)
	perConn := map[string][]*mlv1.Exchange{}
	for _, r := range recs {
		ex := r.ex
		perConn[ex.ConnectionId] = append(perConn[ex.ConnectionId], ex)
		if ex.Source != mlv1.Source_SOURCE_VPC || ex.Collector != "mirror-e2e" || r.ts.UnixNano()/1e6 != ex.CaptureTimeNs/1e6 {
			t.Fatalf("record %v at %s", ex, r.ts)
		}
	}
	if len(perConn) != n {
		t.Fatalf("%d connections, want %d", len(perConn), n)
	}
	for id, exs := range perConn {
		if len(exs) != 2 || exs[0].Sequence != 1 || exs[1].Sequence != 2 {
			t.Fatalf("connection %s: %d exchanges", id, len(exs))
		}
		if string(exs[0].Request.Body) != "{\"amount\": 1234}" || string(exs[0].Response.Body) != "ok!" || exs[1].Request.Url != "/status" || exs[1].Response.Status != 204 {
			t.Fatalf("connection %s: %v / %v", id, exs[0], exs[1])
		}
	}
	metrics := func() string {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	testproc.Eventually(t, 30*time.Second, "vpc metrics", func() bool {
		m := metrics()
		return strings.Contains(m, `mirrorline_vpc_packets_total{result="retransmit"} 20`) &&
			strings.Contains(m, `mirrorline_vpc_packets_total{result="filtered"} 3`) &&
			strings.Contains(m, "mirrorline_vpc_streams_active 0") &&
			strings.Contains(m, "mirrorline_vpc_tcp_gaps_total 0") &&
			strings.Contains(m, "mirrorline_collector_captured_total 40")
	})
}

func TestVPCUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"vpc", "--service", "s", "--brokers", "127.0.0.1:1"}, "at least one --port"},
		{[]string{"vpc", "--service", "s", "--brokers", "127.0.0.1:1", "--port", "8080", "--vni", "16777216"}, "vni: 16777216"},
		{[]string{"vpc", "--service", "s", "--port", "8080"}, "missing setting: brokers (--brokers, brokers:, MIRRORLINE_BROKERS)"},
		{[]string{"vpc", "--service", "s", "--brokers", "127.0.0.1:1", "--port", "8080", "--listen", "nonsense"}, "listen nonsense"},
	}
	for _, tc := range tests {
		out, code := runML(t, []string{"MIRRORLINE_BROKERS="}, tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("%v: exit %d, output %q; want exit 2 and one line with %q", tc.args, code, out, tc.want)
		}
	}
}
