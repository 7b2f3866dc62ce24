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
// of the exchanges it carries do not depend on when it was read.
type batchReader struct {
	pc   *ipv4.PacketConn // ReadBatch only: works on IPv4 and IPv6 sockets alike
	msgs []ipv4.Message
	// queue is the socket's receive buffer as the kernel sizes it (bytes of
	// datagrams and their overhead).
	queue int
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
			queue, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		}
	}); err != nil {
		return nil, fmt.Errorf("vpc: socket: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("vpc: receive timestamps: %w", serr)
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

// oobSize holds one SCM_TIMESTAMPNS control message and room for another.
var oobSize = 2 * unix.CmsgSpace(16)

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
		ts, ok := rxTime(m.OOB[:m.NN])
		if !ok {
			ts = now()
		}
		bytes += m.N
		handle(m.Buffers[0][:m.N], ts, m.Flags&unix.MSG_TRUNC != 0)
		m.Addr = nil
	}
	return n, bytes, nil
}

// rxTime returns the SCM_TIMESTAMPNS time in the control messages oob.
func rxTime(oob []byte) (time.Time, bool) {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return time.Time{}, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			return time.Unix(int64(ts.Sec), int64(ts.Nsec)), true
		}
		oob = rest
	}
	return time.Time{}, false
}
