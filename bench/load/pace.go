package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mirrorline/mirrorline/bench/benchproc"
)

// The end-to-end section drives the pipeline with paced, its own open-loop
// generator, rather than vegeta: at several thousand requests per second on
// a machine the pipeline shares, the generator's own cost per request decides
// whether a step measures the pipeline or the generator. paced builds every
// request's bytes once (request line and headers; only the X-Bench value is
// written per send), writes each request in one write on a kept-alive
// HTTP/1.1 connection and reads the answer without building a Response;
// it sends on a fixed schedule from a pool of senders that grows when every
// sender is busy (a slow answer never delays the next send), and reports how
// late the sends were against that schedule, so a step the generator could
// not keep up with says so.

// pacedMaxWorkers bounds the senders (each one connection).
const pacedMaxWorkers = 4096

// pacedGETs is how many distinct GET URLs the mix cycles through.
const pacedGETs = 256

// pacedTimeout bounds one request and its answer.
const pacedTimeout = 10 * time.Second

// slot is one scheduled send: its sequence number and when it is due.
type slot struct {
	n  uint64
	at time.Time
}

// shapes are the pre-built bytes of the request mix against one server: each
// head ends with "X-Bench: ", the value and the body follow per send.
type shapes struct {
	addr string
	gets [][]byte
	post []byte
	body []byte
}

func newShapes(base string) (*shapes, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("paced: base %q is not an http:// URL", base)
	}
	s := &shapes{addr: u.Host, body: []byte(benchproc.PaymentJSON)}
	common := "Host: " + u.Host + "\r\nAccept: application/json\r\nUser-Agent: mirrorline-bench/1\r\n"
	s.post = []byte("POST " + u.Path + "/payments HTTP/1.1\r\n" + common + "Content-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(s.body)) + "\r\n" + benchHeader + ": ")
	for i := range pacedGETs {
		s.gets = append(s.gets, []byte("GET "+u.Path+"/payments/p-"+strconv.FormatUint(uint64(i)+1, 36)+"?expand=card HTTP/1.1\r\n"+common+benchHeader+": "))
	}
	return s, nil
}

// request appends request number n of the mix (even: a POST, odd: a GET, as
// mix.next does), sent at sent, to buf.
func (s *shapes) request(buf []byte, step, n uint64, sent time.Time) []byte {
	post := n%2 == 0
	if post {
		buf = append(buf, s.post...)
	} else {
		buf = append(buf, s.gets[n%pacedGETs]...)
	}
	buf = appendBenchValue(buf, step, n, sent)
	buf = append(buf, "\r\n\r\n"...)
	if post {
		buf = append(buf, s.body...)
	}
	return buf
}

// sender is one worker with its own connection, opened on first use and
// again after an error.
type sender struct {
	ctx   context.Context
	sh    *shapes
	step  uint64
	hists *pacedHists
	conn  net.Conn
	stop  func() bool // ends the close-on-cancel of conn
	r     *bufio.Reader
	buf   []byte
	ok    int64
	errs  int64
	first time.Time
	last  time.Time
}

// pacedHists are the histograms every sender records into (one pair, not
// one per sender: a stall can start thousands of senders).
type pacedHists struct {
	mu   sync.Mutex
	lat  *hdrhistogram.Histogram // answer latency from the send
	late *hdrhistogram.Histogram // send time behind the schedule
}

func (p *pacedHists) add(late, lat time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	record(p.late, late)
	if lat >= 0 {
		record(p.lat, lat)
	}
}

func newSender(ctx context.Context, sh *shapes, step uint64, hists *pacedHists) *sender {
	return &sender{ctx: ctx, sh: sh, step: step, hists: hists, buf: make([]byte, 0, 2048)}
}

func (s *sender) close() {
	if s.conn != nil {
		s.stop()
		s.conn.Close()
		s.conn, s.r = nil, nil
	}
}

// send sends the request of sl and records its latency.
func (s *sender) send(sl slot) {
	now := time.Now()
	late := now.Sub(sl.at)
	if s.first.IsZero() {
		s.first = now
	}
	err := s.roundTrip(now, sl.n)
	end := time.Now()
	if err != nil {
		s.close()
		s.hists.add(late, -1)
		if s.ctx.Err() == nil {
			s.errs++
		}
		return
	}
	s.last = end
	s.ok++
	s.hists.add(late, end.Sub(now))
}

func (s *sender) roundTrip(now time.Time, n uint64) error {
	if s.conn == nil {
		c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(s.ctx, "tcp", s.sh.addr)
		if err != nil {
			return err
		}
		s.conn, s.r = c, bufio.NewReaderSize(c, 4096)
		s.stop = context.AfterFunc(s.ctx, func() { c.Close() })
	}
	if err := s.conn.SetDeadline(now.Add(pacedTimeout)); err != nil {
		return err
	}
	s.buf = s.sh.request(s.buf[:0], s.step, n, now)
	if _, err := s.conn.Write(s.buf); err != nil {
		return err
	}
	return readAnswer(s.r)
}

// errAnswer is an answer paced does not count as a success.
var errAnswer = errors.New("paced: not a 2xx HTTP/1.1 answer with a length")

// readAnswer reads one HTTP/1.1 response from r and discards its body; it
// fails on a status other than 2xx, a body without a length, or a server
// closing the connection (the next send opens a new one).
func readAnswer(r *bufio.Reader) error {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 2")) {
		return errAnswer
	}
	length, chunked, closing := int64(-1), false, false
	for {
		h, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return errAnswer
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return errAnswer
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case chunked:
		err = discardChunks(r)
	case length >= 0:
		_, err = r.Discard(int(length))
	default:
		err = errAnswer
	}
	if err == nil && closing {
		err = io.EOF
	}
	return err
}

// discardChunks reads a chunked body (and its empty trailer) from r.
func discardChunks(r *bufio.Reader) error {
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil || n < 0 {
			return errAnswer
		}
		if n == 0 {
			for {
				t, err := r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := r.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}

// paced sends the mix to base at rate per second for d (open model) and
// returns the answers' latencies, with Late99 the 99th percentile of how far
// sends fell behind their schedule.
func paced(ctx context.Context, base string, step uint64, rate int, d time.Duration) latencies {
	sh, err := newShapes(base)
	if err != nil {
		return latencies{Errors: 1}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Unbuffered: a slot no sender is free for starts a new sender at once,
	// rather than waiting in a queue (which would close the loop).
	slots := make(chan slot)
	var (
		mu      sync.Mutex
		senders []*sender
		wg      sync.WaitGroup
	)
	hists := &pacedHists{lat: newHist(), late: newHist()}
	spawn := func() {
		s := newSender(ctx, sh, step, hists)
		mu.Lock()
		senders = append(senders, s)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.close()
			for sl := range slots {
				s.send(sl)
			}
		}()
	}
	for range 32 {
		spawn()
	}

	total := uint64(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var next uint64
	for next < total && ctx.Err() == nil {
		// Every slot due by now goes out, however late the dispatcher woke.
		due := min(uint64(time.Since(start)/interval)+1, total)
		for ; next < due; next++ {
			sl := slot{n: next + 1, at: start.Add(time.Duration(next) * interval)}
			select {
			case slots <- sl:
				continue
			default:
			}
			if mu.Lock(); len(senders) < pacedMaxWorkers {
				mu.Unlock()
				spawn()
			} else {
				mu.Unlock()
			}
			select {
			case slots <- sl:
			case <-ctx.Done():
			}
		}
		if wait := time.Until(start.Add(time.Duration(next) * interval)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
	}
	dispatched := time.Since(start)
	close(slots)
	wg.Wait()

	var ok, errs int64
	var first, last time.Time
	for _, s := range senders {
		ok += s.ok
		errs += s.errs
		if !s.first.IsZero() && (first.IsZero() || s.first.Before(first)) {
			first = s.first
		}
		if s.last.After(last) {
			last = s.last
		}
	}
	res := summarise(hists.lat, ok, errs, last.Sub(first))
	res.Late99 = time.Duration(hists.late.ValueAtQuantile(99)) * time.Microsecond
	res.Offered = float64(next) / max(dispatched, interval).Seconds()
	res.Senders = len(senders)
	return res
}
