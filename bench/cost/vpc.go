package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/mirrorline/mirrorline/bench/benchproc"
	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
)

// vpcPerConn is how many keep-alive exchanges each mirrored connection
// carries.
const vpcPerConn = 10

var vpcConns int // connections built so far (distinct client addresses)

// vpcPlan builds, before the CPU is read, the VXLAN datagrams of n
// exchanges (POST /payments with the benchmark body, 201 with the primary's
// answer), vpcPerConn per connection: plan[i] is what exchange i sends
// (with the handshake before a connection's first, the FINs after its last).
func (h *harness) vpcPlan(n int) [][][]byte {
	req := []byte("POST /payments HTTP/1.1\r\nHost: payments\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(benchproc.PaymentJSON)) + "\r\n\r\n" + benchproc.PaymentJSON)
	resp := []byte("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(benchproc.PostAnswer)) + "\r\n\r\n" + benchproc.PostAnswer)
	wrap := func(out [][]byte, frames ...[]byte) [][]byte {
		for _, f := range frames {
			out = append(out, packettest.VXLAN(42, f))
		}
		return out
	}
	plan := make([][][]byte, n)
	var c *packettest.Conn
	for i := range n {
		var d [][]byte
		if i%vpcPerConn == 0 {
			vpcConns++
			k := vpcConns
			c = packettest.NewConn(fmt.Sprintf("10.%d.%d.%d:%d", 10+k>>16&0xff, k>>8&0xff, k&0xff, 40000+k%20000), "10.9.0.2:8080")
			d = wrap(d, c.Handshake()...)
		}
		d = wrap(d, c.ClientData(req, 1400)...)
		d = wrap(d, c.ServerData(resp, 1400)...)
		d = wrap(d, c.ClientAck())
		if i%vpcPerConn == vpcPerConn-1 || i == n-1 {
			d = wrap(d, c.ClientFIN(), c.ServerFIN(), c.ClientAck())
		}
		plan[i] = d
	}
	return plan
}

// sendVXLAN sends the plan's exchanges at the steady rate, in ticks of 5 ms.
// Every 250 ms it checks, bounded, that the collector is no more than 4000
// datagrams behind (its socket buffer holds a few seconds of this traffic;
// beyond it the kernel would drop datagrams, uncounted). The checks are rare
// because a scrape of /metrics costs the measured process CPU too.
func (h *harness) sendVXLAN(ctx context.Context, conn net.Conn, plan [][][]byte, metrics string) error {
	read := func() float64 { return benchproc.Counter(metrics, "mirrorline_vpc_packets_total") }
	base := read()
	sent := 0
	began := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i, ticks := 0, 0; i < len(plan); ticks++ {
		due := min(len(plan), int(time.Since(began).Seconds()*float64(h.cfg.rate))+1)
		for ; i < due; i++ {
			for _, d := range plan[i] {
				if _, err := conn.Write(d); err != nil {
					return fmt.Errorf("send VXLAN: %w", err)
				}
				sent++
			}
		}
		if ticks%50 == 49 && !benchproc.Poll(ctx, time.Minute, 20*time.Millisecond, func() bool { return read()-base >= float64(sent-4000) }) {
			return fmt.Errorf("vpc read %v of %d datagrams within a minute", read()-base, sent)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
