package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/mirrorline/mirrorline/bench/benchproc"
)

// benchHeader carries the run step, a sequence number and the send time of
// each request, so the shadow can count distinct arrivals and their
// capture-to-shadow delay. It is spelled in letters only (hex digits mapped to
// a..p): the redactor's detectors look for digit runs (cards, phones, IPs) and
// must leave it alone.
const benchHeader = "X-Bench"

func letters(v uint64) string {
	return strings.Map(func(r rune) rune {
		if r <= '9' {
			return r - '0' + 'a'
		}
		return r - 'a' + 'k'
	}, strconv.FormatUint(v, 16))
}

func unletters(s string) (uint64, bool) {
	if s == "" || len(s) > 16 {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 'a' || c > 'p' {
			return 0, false
		}
		v = v<<4 | uint64(c-'a')
	}
	return v, true
}

func benchValue(step, seq uint64, sent time.Time) string {
	return string(appendBenchValue(nil, step, seq, sent))
}

// appendBenchValue appends benchValue(step, seq, sent) to b.
func appendBenchValue(b []byte, step, seq uint64, sent time.Time) []byte {
	b = appendLetters(b, step)
	b = append(b, 'z')
	b = appendLetters(b, seq)
	b = append(b, 'z')
	return appendLetters(b, uint64(sent.UnixNano()))
}

// appendLetters appends letters(v): v's hex digits, each nibble d as 'a'+d.
func appendLetters(b []byte, v uint64) []byte {
	shift := 60
	for shift > 0 && v>>shift == 0 {
		shift -= 4
	}
	for ; shift >= 0; shift -= 4 {
		b = append(b, byte('a'+(v>>shift)&0xf))
	}
	return b
}

func parseBenchHeader(v string) (step, seq uint64, sent time.Time, ok bool) {
	parts := strings.Split(v, "z")
	if len(parts) != 3 {
		return 0, 0, time.Time{}, false
	}
	var ok1, ok2, ok3 bool
	var ns uint64
	step, ok1 = unletters(parts[0])
	seq, ok2 = unletters(parts[1])
	ns, ok3 = unletters(parts[2])
	return step, seq, time.Unix(0, int64(ns)), ok1 && ok2 && ok3
}

// mix builds the i-th request of the mix against base.
type mix struct {
	base string
	step uint64
	seq  atomic.Uint64
}

func (m *mix) next() (method, url string, body []byte, h http.Header) {
	n := m.seq.Add(1)
	h = http.Header{}
	h.Set("Accept", "application/json")
	h.Set("User-Agent", "mirrorline-bench/1")
	h.Set(benchHeader, benchValue(m.step, n, time.Now()))
	if n%2 == 0 {
		h.Set("Content-Type", "application/json")
		return "POST", m.base + "/payments", []byte(benchproc.PaymentJSON), h
	}
	return "GET", m.base + "/payments/p-" + strconv.FormatUint(n, 36) + "?expand=card", nil, h
}

// latencies summarises one run.
type latencies struct {
	Requests int64         // answered with 2xx
	Errors   int64         // transport errors and non-2xx
	Elapsed  time.Duration // first send to last answer
	P50      time.Duration
	P99      time.Duration
	Max      time.Duration
	hist     *hdrhistogram.Histogram

	// Of paced only: the 99th percentile of how late sends were against
	// the schedule, the rate the schedule was dispatched at, and how many
	// senders it took.
	Late99  time.Duration
	Offered float64
	Senders int
}

func (l latencies) rate() float64 {
	if l.Elapsed <= 0 {
		return 0
	}
	return float64(l.Requests) / l.Elapsed.Seconds()
}

func newHist() *hdrhistogram.Histogram {
	// 1 µs .. 60 s, 3 significant digits.
	return hdrhistogram.New(1, 60_000_000, 3)
}

func record(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	if us < 1 {
		us = 1
	}
	_ = h.RecordValue(min(us, 60_000_000))
}

func summarise(h *hdrhistogram.Histogram, ok, errs int64, elapsed time.Duration) latencies {
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return latencies{
		Requests: ok, Errors: errs, Elapsed: elapsed,
		P50: us(h.ValueAtQuantile(50)), P99: us(h.ValueAtQuantile(99)), Max: us(h.Max()), hist: h,
	}
}

// merge combines the runs of several rounds: latency quantiles over all their
// requests, and the mean rate.
func merge(runs []latencies) latencies {
	h := newHist()
	var ok, errs int64
	var el time.Duration
	for _, r := range runs {
		if r.hist != nil {
			h.Merge(r.hist)
		}
		ok += r.Requests
		errs += r.Errors
		el += r.Elapsed
	}
	return summarise(h, ok, errs, el)
}

// spread is the median, lowest and highest of one figure over rounds.
type spread struct{ med, lo, hi float64 }

// over returns the spread of f over runs.
func over(runs []latencies, f func(latencies) float64) spread {
	if len(runs) == 0 {
		return spread{}
	}
	rs := make([]float64, len(runs))
	for i, r := range runs {
		rs[i] = f(r)
	}
	slices.Sort(rs)
	m := rs[len(rs)/2]
	if len(rs)%2 == 0 {
		m = (rs[len(rs)/2-1] + rs[len(rs)/2]) / 2
	}
	return spread{m, rs[0], rs[len(rs)-1]}
}

func p50(l latencies) float64 { return float64(l.P50) }
func p99(l latencies) float64 { return float64(l.P99) }
func rps(l latencies) float64 { return l.rate() }

func newTransport(maxConns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil, // loopback only, never through an environment proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1024,
		MaxConnsPerHost:     maxConns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
}

// openLoop sends the mix at a fixed rate for d with vegeta (open model: a slow
// answer does not delay the next send) over keep-alive connections.
func openLoop(ctx context.Context, base string, step uint64, rate int, d time.Duration) latencies {
	tr := newTransport(0)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	atk := vegeta.NewAttacker(vegeta.Client(client), vegeta.Workers(32), vegeta.MaxWorkers(4096), vegeta.MaxBody(64<<10))
	m := &mix{base: base, step: step}
	targeter := func(t *vegeta.Target) error {
		t.Method, t.URL, t.Body, t.Header = m.next()
		return nil
	}
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	h := newHist()
	var ok, errs int64
	var first, last time.Time
	for res := range atk.Attack(targeter, vegeta.Rate{Freq: rate, Per: time.Second}, d, "bench") {
		if first.IsZero() || res.Timestamp.Before(first) {
			first = res.Timestamp
		}
		if end := res.Timestamp.Add(res.Latency); end.After(last) {
			last = end
		}
		if res.Error != "" || res.Code < 200 || res.Code >= 300 {
			errs++
			continue
		}
		ok++
		record(h, res.Latency)
	}
	return summarise(h, ok, errs, last.Sub(first))
}

// closedLoop runs workers keep-alive workers, each sending the mix back to
// back, for d or until maxRequests were sent, whichever comes first.
func closedLoop(ctx context.Context, base string, step uint64, workers int, d time.Duration, maxRequests int64) latencies {
	tr := newTransport(workers)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	m := &mix{base: base, step: step}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var sent atomic.Int64
	var mu sync.Mutex
	total := newHist()
	var ok, errs int64
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := newHist()
			var myOK, myErr int64
			for ctx.Err() == nil && sent.Add(1) <= maxRequests {
				method, url, body, hdr := m.next()
				req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
				if err != nil {
					myErr++
					continue
				}
				if body == nil {
					req.Body, req.ContentLength = http.NoBody, 0
				}
				req.Header = hdr
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						myErr++
					}
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode < 200 || resp.StatusCode >= 300 {
					if ctx.Err() == nil {
						myErr++
					}
					continue
				}
				myOK++
				record(h, time.Since(t0))
			}
			mu.Lock()
			total.Merge(h)
			ok += myOK
			errs += myErr
			mu.Unlock()
		}()
	}
	wg.Wait()
	return summarise(total, ok, errs, time.Since(start))
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
