//go:build linux

package vpc

import (
	"context"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
	"github.com/mirrorline/mirrorline/collector/tcpstream/packettest"
)

// Datagrams read in one batch keep the times the kernel received them: a
// response that reached the socket 30 ms after its request makes an
// exchange 30 ms long, though both waited in the queue and were read
// together; reading one at a time (poll 0) keeps them too. More connections
// than a batch holds are all read (several full batches in a row).
func TestServeKeepsKernelReceiveTimes(t *testing.T) {
	const gap = 30 * time.Millisecond
	const conns = 3 * batchLen / 4 // request, answer and ACK per connection: > 2 batches
	for _, poll := range []time.Duration{DefaultPollInterval, 0} {
		t.Run(poll.String(), func(t *testing.T) {
			got := &packettest.Collect{}
			st := &tcpstream.Stats{}
			tr := tcpstream.NewTracker(got, tcpstream.WithPorts(8080), tcpstream.WithStats(st))
			rx := NewReceiver(tr, WithPollInterval(poll))
			// Read only once all are queued.
			pc, br, out := prepared(t, rx)
			send := func(frames [][]byte) int {
				for _, f := range frames {
					if _, err := out.Write(packettest.VXLAN(7, f)); err != nil {
						t.Fatal(err)
					}
				}
				return len(frames)
			}
			cs := make([]*packettest.Conn, conns)
			sent := 0
			for i := range cs {
				cs[i] = packettest.NewConn("10.1.0.5:"+strconv.Itoa(41000+i), "10.1.0.9:8080")
				sent += send(packettest.Cat(cs[i].Handshake(), cs[i].ClientData([]byte(packettest.ReqA), 0)))
			}
			// The gap being measured, not a synchronisation: the answers
			// reach the kernel at least this long after the requests.
			time.Sleep(gap)
			for _, c := range cs {
				sent += send(packettest.Cat(c.ServerData([]byte(packettest.RespA), 0), packettest.One(c.ClientAck())))
			}
			serving := time.Now() // every datagram is queued: Serve reads them only now

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- rx.serve(ctx, pc, br) }()
			deadline := time.Now().Add(10 * time.Second)
			for st.PacketsTotal() < uint64(sent) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond) // polling a counter, not synchronising on time
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("serve: %v", err)
			}
			exs := got.Got()
			if len(exs) != conns || st.PacketsTotal() != uint64(sent) {
				t.Fatalf("%d exchanges of %d datagrams, want %d of %d", len(exs), st.PacketsTotal(), conns, sent)
			}
			for _, ex := range exs {
				if l := time.Duration(ex.Response.LatencyNs); l < gap {
					t.Fatalf("latency %v, want at least %v: the read's time, not the kernel's", l, gap)
				}
				if capt := time.Unix(0, ex.CaptureTimeNs); !capt.Before(serving) {
					t.Fatalf("capture time %v is not before Serve began reading (%v)", capt, serving)
				}
			}
		})
	}
}

// controls finds the timestamp and the drop count among other control
// messages and ignores what is cut short.
func TestControls(t *testing.T) {
	want := time.Unix(1700000000, 123456789)
	ts := unix.NsecToTimespec(want.UnixNano())
	stamp := cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, unsafe.Slice((*byte)(unsafe.Pointer(&ts)), unsafe.Sizeof(ts)))
	drops := uint32(7)
	ovfl := cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, unsafe.Slice((*byte)(unsafe.Pointer(&drops)), 4))
	other := cmsg(unix.IPPROTO_IP, unix.IP_TTL, []byte{64, 0, 0, 0})
	cat := func(bs ...[]byte) []byte { return slices.Concat(bs...) }
	for _, tc := range []struct {
		name  string
		oob   []byte
		time  bool
		drops bool
	}{
		{"stamp", stamp, true, false},
		{"both after another", cat(other, stamp, ovfl), true, true},
		{"drops only", ovfl, false, true},
		{"none", other, false, false},
		{"empty", nil, false, false},
		{"stamp cut", stamp[:len(stamp)-8], false, false},
		{"drops after a cut one", cat(ovfl, stamp[:unix.CmsgLen(0)-1]), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := controls(tc.oob)
			if !c.time.IsZero() != tc.time || tc.time && !c.time.Equal(want) {
				t.Errorf("time %v, want %v: %v", c.time, tc.time, want)
			}
			if c.dropsSet != tc.drops || tc.drops && c.drops != drops {
				t.Errorf("drops %d (%v), want %v", c.drops, c.dropsSet, tc.drops)
			}
		})
	}
}

// Datagrams the kernel drops because the queue is full are counted: a small
// buffer is overflowed before the receiver reads, and the next datagram
// queued after the drops carries their number.
func TestServeCountsSocketDrops(t *testing.T) {
	const burst = 200
	st := &tcpstream.Stats{}
	rx := NewReceiver(tcpstream.NewTracker(&packettest.Collect{}, tcpstream.WithPorts(8080), tcpstream.WithStats(st)), WithReadBuffer(4096))
	pc, br, out := prepared(t, rx)
	junk := make([]byte, 1000) // not VXLAN: counted as malformed
	for range burst {
		if _, err := out.Write(junk); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rx.serve(ctx, pc, br) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	// What the queue held is read in one recvmmsg (it holds fewer than a
	// batch): once one is counted, the queue is empty again.
	poll := func(cond func() bool) bool {
		deadline := time.Now().Add(10 * time.Second)
		for !cond() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // polling counters, not synchronising on time
		}
		return cond()
	}
	if !poll(func() bool { return st.PacketsTotal() > 0 }) {
		t.Fatal("nothing read")
	}
	if _, err := out.Write(junk); err != nil { // queued after the drops
		t.Fatal(err)
	}
	// Every datagram sent is either read or dropped, and the last one read
	// told how many were dropped.
	if !poll(func() bool { return st.PacketsTotal()+rx.SocketDrops() == burst+1 }) {
		t.Fatalf("%d read + %d dropped, want %d sent", st.PacketsTotal(), rx.SocketDrops(), burst+1)
	}
	if rx.SocketDrops() == 0 || st.PacketsTotal() < 2 {
		t.Fatalf("%d read, %d dropped: the small buffer did not overflow", st.PacketsTotal(), rx.SocketDrops())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(rx.Metrics())
	if got := testutil.ToFloat64(rx.Metrics()); got != float64(rx.SocketDrops()) {
		t.Fatalf("mirrorline_vpc_socket_drops_total %v, want %d", got, rx.SocketDrops())
	}
	if n, err := testutil.GatherAndCount(reg, "mirrorline_vpc_socket_drops_total"); err != nil || n != 1 {
		t.Fatalf("gathered %d series: %v", n, err)
	}
}

// prepared listens on loopback UDP, prepares the socket as Serve does before
// any datagram arrives (buffer size, receive times and drop counts on)
// without reading it, and dials it.
func prepared(t *testing.T, rx *Receiver) (net.PacketConn, *batchReader, net.Conn) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	br := rx.prepare(pc)
	if br == nil {
		t.Fatal("no batched reads")
	}
	out, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	return pc, br, out
}

// cmsg builds one control message.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

// A receive buffer the kernel caps (net.core.rmem_max) is said at start,
// with what was asked and what was granted.
func TestPrepareWarnsOfACappedBuffer(t *testing.T) {
	if b, err := os.ReadFile("/proc/sys/net/core/rmem_max"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 1<<30 {
			t.Skipf("net.core.rmem_max is %d: 1 GiB is not capped", n)
		}
	}
	var logs strings.Builder
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})
	rx := NewReceiver(tcpstream.NewTracker(&packettest.Collect{}), WithReadBuffer(1<<30), WithLogger(log))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if rx.prepare(pc) == nil {
		t.Fatal("no batched reads")
	}
	if got := logs.String(); !strings.Contains(got, "socket receive buffer smaller than asked") || !strings.Contains(got, "asked_bytes=1073741824") {
		t.Fatalf("logs %q", got)
	}
}
