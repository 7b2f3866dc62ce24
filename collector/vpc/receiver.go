package vpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

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

// DefaultPollInterval is the longest datagrams wait in the socket's queue
// before they are read (WithPollInterval).
const DefaultPollInterval = 20 * time.Millisecond

// MaxPollInterval is the longest poll interval.
const MaxPollInterval = time.Second

// WithPollInterval sets the longest datagrams wait in the socket's queue
// before they are read, in batches (default DefaultPollInterval; 0 reads
// again as soon as datagrams are queued). Longer means fewer wake-ups and less CPU, for up
// to that much more delay before an exchange reaches Kafka; each datagram
// keeps the kernel's receive time.
func WithPollInterval(d time.Duration) ReceiverOption {
	return func(r *Receiver) { r.poll = min(max(d, 0), MaxPollInterval) }
}

// WithLogger sets the logger.
func WithLogger(l hclog.Logger) ReceiverOption { return func(r *Receiver) { r.log = l } }

// Receiver is an AWS VPC Traffic Mirroring target: it reads VXLAN datagrams,
// decodes the mirrored packets and hands their TCP segments to a tcpstream.Tracker.
type Receiver struct {
	tracker    *tcpstream.Tracker
	vnis       map[uint32]bool
	readBuffer int
	poll       time.Duration
	log        hclog.Logger
	dec        *tcpstream.Decoder
	seg        tcpstream.Segment
	now        func() time.Time
	drops      atomic.Uint64 // datagrams the kernel dropped, queue full
}

// SocketDrops is the number of datagrams the kernel dropped because the
// socket's receive queue was full, as of the last datagram read (Linux; 0
// elsewhere). Raise the read buffer (and net.core.rmem_max) or shorten the
// poll interval when it grows.
func (r *Receiver) SocketDrops() uint64 { return r.drops.Load() }

// Metrics returns the receiver's own metric, for the component's registry:
// mirrorline_vpc_socket_drops_total (SocketDrops).
func (r *Receiver) Metrics() prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "mirrorline_vpc_socket_drops_total",
		Help: "Datagrams the kernel dropped because the receive queue was full (raise --read-buffer and net.core.rmem_max, or shorten --poll-interval).",
	}, func() float64 { return float64(r.SocketDrops()) })
}

// NewReceiver returns a Receiver feeding t.
func NewReceiver(t *tcpstream.Tracker, opts ...ReceiverOption) *Receiver {
	r := &Receiver{
		tracker:    t,
		vnis:       map[uint32]bool{},
		readBuffer: 8 << 20,
		poll:       DefaultPollInterval,
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
//
// On Linux a UDP socket is read in batches (recvmmsg), each datagram with the
// kernel's receive time: after a read that emptied the socket's queue, Serve
// lets datagrams gather for up to the poll interval before it reads again,
// one wake-up for many datagrams instead of one each. The wait starts short
// after an idle spell and doubles while traffic lasts, and it is never longer
// than the rate just seen takes to fill an eighth of the socket's receive
// buffer, so a burst does not overflow the queue.
func (r *Receiver) Serve(ctx context.Context, pc net.PacketConn) error {
	return r.serve(ctx, pc, r.prepare(pc))
}

// prepare sizes pc's receive buffer and returns a reader of its datagrams
// in batches, or nil to read one at a time (not Linux, not a UDP socket).
func (r *Receiver) prepare(pc net.PacketConn) *batchReader {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return nil
	}
	if r.readBuffer > 0 {
		if err := uc.SetReadBuffer(r.readBuffer); err != nil {
			r.log.Warn("set socket receive buffer", "bytes", r.readBuffer, "error", err)
		}
	}
	if !batchSupported {
		return nil
	}
	br, err := newBatchReader(uc, batchLen, batchSize)
	if err != nil {
		r.log.Warn("reading one datagram at a time", "error", err)
		return nil
	}
	// The kernel reports twice what it grants (the rest is for its own
	// bookkeeping) and caps the request at net.core.rmem_max.
	if r.readBuffer > 0 && br.queue/2 < r.readBuffer {
		r.log.Warn("socket receive buffer smaller than asked: bursts may overflow it (mirrorline_vpc_socket_drops_total); raise net.core.rmem_max",
			"asked_bytes", r.readBuffer, "granted_bytes", br.queue/2)
	}
	return br
}

// serve is Serve reading pc with br, or one datagram at a time when br is
// nil.
func (r *Receiver) serve(ctx context.Context, pc net.PacketConn, br *batchReader) error {
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
	if br != nil {
		err = r.serveBatches(ctx, pc, br)
	} else {
		err = r.serveOne(ctx, pc)
	}
	cancel()
	wg.Wait()
	r.tracker.Close(r.now())
	return err
}

// Batched reads: datagrams per read and the largest datagram.
const (
	batchLen  = 32
	batchSize = 64 << 10
	// minPoll is the first wait after an idle spell.
	minPoll = time.Millisecond
)

// serveBatches is Serve's loop reading br.
func (r *Receiver) serveBatches(ctx context.Context, pc net.PacketConn, br *batchReader) error {
	t := time.NewTimer(time.Hour)
	t.Stop()
	handle := func(p []byte, ts time.Time, truncated bool) {
		if truncated {
			r.tracker.Stats().CountDecodeError(errTruncated)
			return
		}
		r.HandleDatagram(p, ts)
	}
	pace := pacer{poll: r.poll, queue: br.queue, slept: r.now()}
	pace.woke = pace.slept
	for {
		n, b, err := br.read(r.now, handle)
		r.drops.Store(uint64(br.drops))
		if err != nil {
			if err = readError(ctx, pc, err); err == errRetry {
				continue
			}
			return err
		}
		pace.read += b
		if n == batchLen || r.poll == 0 {
			continue // more are queued, or no waiting
		}
		t.Reset(pace.next(r.now()))
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		pace.woke = r.now()
	}
}

// pacer decides how long the receiver lets datagrams gather after a read
// that emptied the queue: up to poll, starting at minPoll after an idle
// spell and doubling while traffic lasts, and never longer than the rate
// since the last wait began takes to fill an eighth of the socket's buffer
// (which also holds each datagram's overhead).
type pacer struct {
	poll  time.Duration
	queue int // the socket's receive buffer, bytes
	wait  time.Duration
	slept time.Time // when the last wait began
	woke  time.Time // and ended
	read  int       // bytes read since it began
}

// next returns the wait that begins at now.
func (p *pacer) next(now time.Time) time.Duration {
	if now.Sub(p.woke) > p.poll {
		p.wait = 0 // the queue was empty for long: an idle spell
	}
	p.wait = min(p.poll, max(minPoll, 2*p.wait))
	if el := now.Sub(p.slept).Seconds(); el > 0 && p.read > 0 {
		if fill := time.Duration(float64(p.queue/8) / (float64(p.read) / el) * 1e9); fill < p.wait {
			p.wait = max(fill, 0)
		}
	}
	p.slept, p.read = now, 0
	return p.wait
}

// serveOne is Serve's loop reading one datagram at a time.
func (r *Receiver) serveOne(ctx context.Context, pc net.PacketConn) error {
	buf := make([]byte, batchSize)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			if err = readError(ctx, pc, err); err == errRetry {
				continue
			}
			return err
		}
		r.HandleDatagram(buf[:n], r.now())
	}
}

// errRetry is readError's answer to a read that timed out.
var errRetry = errors.New("retry")

// errTruncated: a datagram larger than the read buffer.
var errTruncated = errors.New("vpc: datagram larger than 64 KiB")

// readError is what a failed read on pc means for Serve: nil when ctx ended
// or pc was closed, errRetry for a timeout, else the error.
func readError(ctx context.Context, pc net.PacketConn, err error) error {
	if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errRetry
	}
	return fmt.Errorf("vpc receive on %s: %w", pc.LocalAddr(), err)
}
