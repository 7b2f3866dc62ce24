//go:build linux

package vpc

import (
	"fmt"
	"net"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// batchReader reads a UDP socket's datagrams many at a time (recvmmsg), each
// with the time the kernel received it (SO_TIMESTAMPNS): a datagram that
// waited in the socket's queue keeps its own arrival time, so the latencies
// of the exchanges it carries do not depend on when it was read. Each also
// carries the number of datagrams the kernel has dropped so far because the
// queue was full (SO_RXQ_OVFL).
type batchReader struct {
	pc   *ipv4.PacketConn // ReadBatch only: works on IPv4 and IPv6 sockets alike
	msgs []ipv4.Message
	// queue is the socket's receive buffer as the kernel sizes it (bytes of
	// datagrams and their overhead).
	queue int
	// drops is the kernel's count of datagrams dropped, queue full, as of
	// the last datagram read.
	drops uint32
}

// batchSupported reports whether newBatchReader can work on this system.
const batchSupported = true

// newBatchReader prepares batched reads of n datagrams of up to size bytes
// from uc.
func newBatchReader(uc *net.UDPConn, n, size int) (*batchReader, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("vpc: socket: %w", err)
	}
	var serr error
	queue := 0
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
		if serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
		}
		if serr == nil {
			queue, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		}
	}); err != nil {
		return nil, fmt.Errorf("vpc: socket: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("vpc: receive timestamps and drop counts: %w", serr)
	}
	b := &batchReader{pc: ipv4.NewPacketConn(uc), msgs: make([]ipv4.Message, n), queue: queue}
	buf := make([]byte, n*size)
	oob := make([]byte, n*oobSize)
	for i := range b.msgs {
		b.msgs[i].Buffers = [][]byte{buf[i*size : (i+1)*size : (i+1)*size]}
		b.msgs[i].OOB = oob[i*oobSize : (i+1)*oobSize : (i+1)*oobSize]
	}
	return b, nil
}

// oobSize holds an SCM_TIMESTAMPNS and an SO_RXQ_OVFL control message, and
// room for another.
var oobSize = 2*unix.CmsgSpace(16) + unix.CmsgSpace(4)

// read waits for at least one datagram and calls handle with each of those
// queued (at most a batch), with its kernel receive time (now() when the
// kernel gave none) and whether it was cut to the buffer's size. The payload
// is valid until handle returns. It returns the number of datagrams and
// their bytes.
func (b *batchReader) read(now func() time.Time, handle func(p []byte, ts time.Time, truncated bool)) (int, int, error) {
	n, err := b.pc.ReadBatch(b.msgs, 0)
	if err != nil {
		return 0, 0, err
	}
	bytes := 0
	for i := range b.msgs[:n] {
		m := &b.msgs[i]
		c := controls(m.OOB[:m.NN])
		ts := c.time
		if ts.IsZero() {
			ts = now()
		}
		if c.dropsSet {
			b.drops = c.drops
		}
		bytes += m.N
		handle(m.Buffers[0][:m.N], ts, m.Flags&unix.MSG_TRUNC != 0)
		m.Addr = nil
	}
	return n, bytes, nil
}

// control is what the kernel said of a datagram in control messages.
type control struct {
	time     time.Time // SCM_TIMESTAMPNS; zero when absent
	drops    uint32    // SO_RXQ_OVFL: datagrams dropped so far, queue full
	dropsSet bool
}

// controls reads the control messages oob.
func controls(oob []byte) control {
	var c control
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		switch {
		case h.Level != unix.SOL_SOCKET:
		case h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			c.time = time.Unix(int64(ts.Sec), int64(ts.Nsec))
		case h.Type == unix.SO_RXQ_OVFL && len(data) >= 4:
			c.drops, c.dropsSet = *(*uint32)(unsafe.Pointer(&data[0])), true
		}
		oob = rest
	}
	return c
}
