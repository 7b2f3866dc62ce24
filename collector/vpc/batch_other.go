//go:build !linux

package vpc

import (
	"errors"
	"net"
	"time"
)

// batchSupported reports whether newBatchReader can work on this system:
// batched reads with kernel receive times are Linux only; elsewhere Serve
// reads one datagram at a time.
const batchSupported = false

type batchReader struct {
	queue int
	drops uint32
}

func newBatchReader(*net.UDPConn, int, int) (*batchReader, error) {
	return nil, errors.New("vpc: batched reads need Linux")
}

func (*batchReader) read(func() time.Time, func([]byte, time.Time, bool)) (int, int, error) {
	return 0, 0, errors.New("vpc: batched reads need Linux")
}
