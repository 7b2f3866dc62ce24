package tcpstream

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorline/mirrorline/collector/h2stream"
	"github.com/mirrorline/mirrorline/collector/httpstream"
)

// Result is what became of one packet, counted in
// mirrorline_vpc_packets_total{result}.
type Result int

// Packet results.
const (
	// ResultAccepted: the segment was used.
	ResultAccepted Result = iota
	// ResultRetransmit: every byte of it had been seen already.
	ResultRetransmit
	// ResultFiltered: not to a configured port or VNI.
	ResultFiltered
	// ResultIgnored: a segment of no known stream that opens none (bare ACK, RST).
	ResultIgnored
	// ResultNotTCP: no TCP segment in it (or an IP fragment).
	ResultNotTCP
	// ResultMalformed: it does not decode.
	ResultMalformed
	// ResultStreamLimit: it would open a stream beyond the stream limit.
	ResultStreamLimit
	numResults
)

// ResultNames are the label values of the results, by Result.
var ResultNames = [numResults]string{"accepted", "retransmit", "filtered", "ignored", "not_tcp", "malformed", "stream_limit"}

// String returns the result's label value.
func (r Result) String() string {
	if r < 0 || r >= numResults {
		return "unknown"
	}
	return ResultNames[r]
}

// Stats are the counters of a Tracker (and of the receiver feeding it). They are
// safe to read while the Tracker runs.
type Stats struct {
	Packets         [numResults]atomic.Uint64
	Gaps            atomic.Uint64
	GapBytes        atomic.Uint64
	Streams         atomic.Uint64
	StreamsActive   atomic.Int64
	StreamsEnded    [numEnds]atomic.Uint64
	StreamsRejected atomic.Uint64
	BufferedBytes   atomic.Int64
	BufferOverflows atomic.Uint64
	Exchanges       atomic.Uint64
	PublishErrors   atomic.Uint64
	HTTP            httpstream.Stats
	H2              h2stream.Stats
}

// Count adds one packet with result r.
func (s *Stats) Count(r Result) {
	if r >= 0 && r < numResults {
		s.Packets[r].Add(1)
	}
}

// CountDecodeError counts a packet the Decoder rejected with err (not_tcp or
// malformed) and returns its result.
func (s *Stats) CountDecodeError(err error) Result {
	res := ResultMalformed
	if errors.Is(err, ErrNotTCP) {
		res = ResultNotTCP
	}
	s.Count(res)
	return res
}

// PacketsTotal returns the number of packets counted with any result.
func (s *Stats) PacketsTotal() uint64 {
	var n uint64
	for i := range s.Packets {
		n += s.Packets[i].Load()
	}
	return n
}

// StreamCollector exposes Stats as Prometheus metrics named
// mirrorline_<stage>_* (packets, TCP gaps and streams, HTTP pairing). The VPC
// receiver and the eBPF collector share it. Register it on the component's
// registry, never the global one.
type StreamCollector struct {
	stats                                           *Stats
	packets, gaps, gapBytes, active, streams, ended *prometheus.Desc
	rejected, buffered, overflows                   *prometheus.Desc
	exchanges, noResp, orphans, parseErr            *prometheus.Desc
	h2Conns, h2Dropped, h2Skipped, h2Cut, h2Budget  *prometheus.Desc
}

// NewStreamCollector returns the collector of s for stage ("vpc", "ebpf").
func NewStreamCollector(stage string, s *Stats) *StreamCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("mirrorline_"+stage+"_"+name, help, labels, nil)
	}
	return &StreamCollector{
		stats:     s,
		packets:   d("packets_total", "Captured packets, by what became of them.", "result"),
		gaps:      d("tcp_gaps_total", "Runs of TCP payload bytes missing from the capture (lost segments, cut-off packets, ring buffer drops)."),
		gapBytes:  d("tcp_gap_bytes_total", "TCP payload bytes missing from the capture."),
		active:    d("streams_active", "TCP connections tracked now."),
		streams:   d("streams_total", "TCP connections tracked since start."),
		ended:     d("streams_ended_total", "TCP connections no longer tracked, by why (fin, rst, idle, close).", "reason"),
		rejected:  d("streams_rejected_total", "TCP connections not tracked because the stream limit was reached."),
		buffered:  d("buffered_bytes", "Out-of-order TCP payload bytes waiting for missing segments."),
		overflows: d("buffer_overflows_total", "Missing segments given up on because a stream's or the total buffer was full."),
		exchanges: d("http_exchanges_total", "HTTP exchanges parsed and handed to the publisher."),
		noResp:    d("http_unanswered_total", "HTTP requests published without a response (none captured)."),
		orphans:   d("http_orphan_responses_total", "HTTP responses that matched no captured request."),
		parseErr:  d("http_parse_errors_total", "Times an HTTP stream lost its place on malformed data and resynchronised."),
		h2Conns:   d("h2_connections_total", "HTTP/2 connections parsed (seen from their client preface)."),
		h2Dropped: d("h2_connections_dropped_total", "HTTP/2 connections not parsed or no longer parsed, by reason (midstream: joined after its preface; bad_preface, malformed, hpack, gap).", "reason"),
		h2Skipped: d("h2_streams_skipped_total", "HTTP/2 streams not published, by reason (stream_limit, header_limit, malformed, push, connection_dropped).", "reason"),
		h2Cut:     d("h2_streams_cut_total", "HTTP/2 streams published cut short by a reset or the end of their connection."),
		h2Budget:  d("h2_over_budget_total", "HTTP/2 stream directions whose bodies or messages stopped being kept: their connection's open streams held 16 body limits."),
	}
}

// Describe implements prometheus.Collector (Collect sends every metric each time).
func (c *StreamCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

// Collect implements prometheus.Collector.
func (c *StreamCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for i := range s.Packets {
		counter(c.packets, s.Packets[i].Load(), ResultNames[i])
	}
	for i := range s.StreamsEnded {
		counter(c.ended, s.StreamsEnded[i].Load(), EndNames[i])
	}
	counter(c.gaps, s.Gaps.Load())
	counter(c.gapBytes, s.GapBytes.Load())
	counter(c.streams, s.Streams.Load())
	counter(c.rejected, s.StreamsRejected.Load())
	counter(c.overflows, s.BufferOverflows.Load())
	counter(c.exchanges, s.Exchanges.Load())
	counter(c.noResp, s.HTTP.Unanswered.Load())
	counter(c.orphans, s.HTTP.Orphans.Load())
	counter(c.parseErr, s.HTTP.ParseErrors.Load())
	counter(c.h2Conns, s.H2.Connections.Load())
	counter(c.h2Cut, s.H2.Cut.Load())
	counter(c.h2Budget, s.H2.OverBudget.Load())
	for i := range s.H2.Dropped {
		counter(c.h2Dropped, s.H2.Dropped[i].Load(), h2stream.DropNames[i])
	}
	for i := range s.H2.Skipped {
		counter(c.h2Skipped, s.H2.Skipped[i].Load(), h2stream.SkipNames[i])
	}
	ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(s.StreamsActive.Load()))
	ch <- prometheus.MustNewConstMetric(c.buffered, prometheus.GaugeValue, float64(s.BufferedBytes.Load()))
}
