package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The end-to-end section drives the pipeline with paced, its own open-loop
// generator, rather than vegeta: at several thousand requests per second on
// a machine the pipeline shares, the generator's own cost per request decides
// whether a step measures the pipeline or the generator. paced builds every
// request shape once (URLs parsed, headers set, body shared), reuses
// keep-alive connections, sends on a fixed schedule from a pool of workers
// that grows when every worker is busy (a slow answer never delays the next
// send), and reports how late the sends were against that schedule, so a
// step the generator could not keep up with says so.

// pacedMaxWorkers bounds the senders (each at most one connection).
const pacedMaxWorkers = 4096

// pacedGETs is how many distinct GET URLs the mix cycles through.
const pacedGETs = 256

// slot is one scheduled send: its sequence number and when it is due.
type slot struct {
	n  uint64
	at time.Time
}

// shapes are the pre-built parts of the request mix against one base URL.
type shapes struct {
	gets []*url.URL
	post *url.URL
	body []byte
}

func newShapes(base string) (*shapes, error) {
	s := &shapes{body: []byte(paymentJSON)}
	var err error
	if s.post, err = url.Parse(base + "/payments"); err != nil {
		return nil, err
	}
	for i := range pacedGETs {
		u, err := url.Parse(base + "/payments/p-" + strconv.FormatUint(uint64(i)+1, 36) + "?expand=card")
		if err != nil {
			return nil, err
		}
		s.gets = append(s.gets, u)
	}
	return s, nil
}

// sender is one worker: its own header maps, reused for every send once the
// previous answer's body is closed (net/http's rule for reusing a request).
type sender struct {
	ctx    context.Context
	client *http.Client
	sh     *shapes
	step   uint64
	get    http.Header
	post   http.Header
	hists  *pacedHists
	ok     int64
	errs   int64
	first  time.Time
	last   time.Time
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

func newSender(ctx context.Context, client *http.Client, sh *shapes, step uint64, hists *pacedHists) *sender {
	s := &sender{ctx: ctx, client: client, sh: sh, step: step, hists: hists,
		get: http.Header{}, post: http.Header{}}
	for _, h := range []http.Header{s.get, s.post} {
		h.Set("Accept", "application/json")
		h.Set("User-Agent", "mirrorline-bench/1")
	}
	s.post.Set("Content-Type", "application/json")
	return s
}

// send sends the mix's request number sl.n (even: a POST, odd: a GET, as
// mix.next does) and records its latency.
func (s *sender) send(sl slot) {
	now := time.Now()
	late := now.Sub(sl.at)
	req := &http.Request{Method: http.MethodGet, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Body: http.NoBody}
	h := s.get
	if sl.n%2 == 0 {
		h = s.post
		req.Method, req.URL, req.ContentLength = http.MethodPost, s.sh.post, int64(len(s.sh.body))
		req.Body = io.NopCloser(bytes.NewReader(s.sh.body))
	} else {
		req.URL = s.sh.gets[sl.n%pacedGETs]
	}
	req.Host = req.URL.Host
	h[benchHeader] = []string{benchValue(s.step, sl.n, now)}
	req.Header = h
	req = req.WithContext(s.ctx)
	if s.first.IsZero() {
		s.first = now
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.hists.add(late, -1)
		if s.ctx.Err() == nil {
			s.errs++
		}
		return
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	end := time.Now()
	s.last = end
	if err != nil || resp.StatusCode < 200 || resp.StatusCode >= 300 {
		s.hists.add(late, -1)
		s.errs++
		return
	}
	s.ok++
	s.hists.add(late, end.Sub(now))
}

// paced sends the mix to base at rate per second for d (open model) and
// returns the answers' latencies, with Late99 the 99th percentile of how far
// sends fell behind their schedule.
func paced(ctx context.Context, base string, step uint64, rate int, d time.Duration) latencies {
	sh, err := newShapes(base)
	if err != nil {
		return latencies{Errors: 1}
	}
	tr := newTransport(0)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
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
		s := newSender(ctx, client, sh, step, hists)
		mu.Lock()
		senders = append(senders, s)
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
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
