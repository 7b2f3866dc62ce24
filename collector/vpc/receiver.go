package vpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/collector/tcpstream"
)

// VXLANPort is the UDP port VPC Traffic Mirroring sends to.
const VXLANPort = 4789

// flushEvery is how often idle streams and stalled gaps are flushed.
const flushEvery = time.Second

// ReceiverOption configures a Receiver.
type ReceiverOption func(*Receiver)

// WithVNIs accepts only packets of these VXLAN network identifiers (default:
// any).
func WithVNIs(vnis ...uint32) ReceiverOption {
	return func(r *Receiver) {
		for _, v := range vnis {
			r.vnis[v] = true
		}
	}
}

// WithReadBuffer sets the socket receive buffer in bytes (default 8 MiB; the
// kernel may cap it at net.core.rmem_max).
func WithReadBuffer(n int) ReceiverOption { return func(r *Receiver) { r.readBuffer = n } }

// WithLogger sets the logger.
func WithLogger(l hclog.Logger) ReceiverOption { return func(r *Receiver) { r.log = l } }

// Receiver is an AWS VPC Traffic Mirroring target: it reads VXLAN datagrams,
// decodes the mirrored packets and hands their TCP segments to a tcpstream.Tracker.
type Receiver struct {
	tracker    *tcpstream.Tracker
	vnis       map[uint32]bool
	readBuffer int
	log        hclog.Logger
	dec        *tcpstream.Decoder
	seg        tcpstream.Segment
	now        func() time.Time
}

// NewReceiver returns a Receiver feeding t.
func NewReceiver(t *tcpstream.Tracker, opts ...ReceiverOption) *Receiver {
	r := &Receiver{
		tracker:    t,
		vnis:       map[uint32]bool{},
		readBuffer: 8 << 20,
		log:        hclog.NewNullLogger(),
		dec:        tcpstream.NewDecoder(),
		now:        time.Now,
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// HandleDatagram processes the payload of one VXLAN datagram received at ts. It
// is not safe for concurrent use (Serve calls it from one goroutine).
func (r *Receiver) HandleDatagram(payload []byte, ts time.Time) tcpstream.Result {
	st := r.tracker.Stats()
	if err := r.dec.DecodeVXLAN(payload, &r.seg); err != nil {
		return st.CountDecodeError(err)
	}
	if len(r.vnis) > 0 && !r.vnis[r.seg.VNI] {
		st.Count(tcpstream.ResultFiltered)
		return tcpstream.ResultFiltered
	}
	r.tracker.Handle(&r.seg, ts)
	return tcpstream.ResultAccepted
}

// Serve reads datagrams from pc until ctx ends, then closes pc and flushes every
// stream (pending requests are published without response).
func (r *Receiver) Serve(ctx context.Context, pc net.PacketConn) error {
	if uc, ok := pc.(*net.UDPConn); ok && r.readBuffer > 0 {
		if err := uc.SetReadBuffer(r.readBuffer); err != nil {
			r.log.Warn("set socket receive buffer", "bytes", r.readBuffer, "error", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.tracker.FlushEvery(ctx, flushEvery, r.now) // until ctx ends
		_ = pc.Close()
	}()
	var err error
	buf := make([]byte, 64<<10)
	for {
		n, _, rerr := pc.ReadFrom(buf)
		if rerr != nil {
			if ctx.Err() != nil || errors.Is(rerr, net.ErrClosed) {
				break
			}
			var ne net.Error
			if errors.As(rerr, &ne) && ne.Timeout() {
				continue
			}
			err = fmt.Errorf("vpc receive on %s: %w", pc.LocalAddr(), rerr)
			break
		}
		r.HandleDatagram(buf[:n], r.now())
	}
	cancel()
	wg.Wait()
	r.tracker.Close(r.now())
	return err
}
