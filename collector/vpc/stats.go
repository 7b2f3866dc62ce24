package vpc

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

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
}

// Count adds one packet with result r.
func (s *Stats) Count(r Result) { s.count(r) }

func (s *Stats) count(r Result) {
	if r >= 0 && r < numResults {
		s.Packets[r].Add(1)
	}
}

// PacketsTotal returns the number of packets counted with any result.
func (s *Stats) PacketsTotal() uint64 {
	var n uint64
	for i := range s.Packets {
		n += s.Packets[i].Load()
	}
	return n
}

// metric descriptions of the Collector.
var (
	descPackets   = prometheus.NewDesc("mirrorline_vpc_packets_total", "Mirrored packets received, by what became of them.", []string{"result"}, nil)
	descGaps      = prometheus.NewDesc("mirrorline_vpc_tcp_gaps_total", "Runs of TCP payload bytes missing from the capture (lost segments, cut-off packets).", nil, nil)
	descGapBytes  = prometheus.NewDesc("mirrorline_vpc_tcp_gap_bytes_total", "TCP payload bytes missing from the capture.", nil, nil)
	descActive    = prometheus.NewDesc("mirrorline_vpc_streams_active", "TCP connections tracked now.", nil, nil)
	descStreams   = prometheus.NewDesc("mirrorline_vpc_streams_total", "TCP connections tracked since start.", nil, nil)
	descEnded     = prometheus.NewDesc("mirrorline_vpc_streams_ended_total", "TCP connections no longer tracked, by why (fin, rst, idle, close).", []string{"reason"}, nil)
	descRejected  = prometheus.NewDesc("mirrorline_vpc_streams_rejected_total", "TCP connections not tracked because the stream limit was reached.", nil, nil)
	descBuffered  = prometheus.NewDesc("mirrorline_vpc_buffered_bytes", "Out-of-order TCP payload bytes waiting for missing segments.", nil, nil)
	descOverflows = prometheus.NewDesc("mirrorline_vpc_buffer_overflows_total", "Missing segments given up on because a stream's or the total buffer was full.", nil, nil)
	descExchanges = prometheus.NewDesc("mirrorline_vpc_http_exchanges_total", "HTTP exchanges parsed and handed to the publisher.", nil, nil)
	descNoResp    = prometheus.NewDesc("mirrorline_vpc_http_unanswered_total", "HTTP requests published without a response (none captured).", nil, nil)
	descOrphans   = prometheus.NewDesc("mirrorline_vpc_http_orphan_responses_total", "HTTP responses that matched no captured request.", nil, nil)
	descParseErr  = prometheus.NewDesc("mirrorline_vpc_http_parse_errors_total", "Times an HTTP stream lost its place on malformed data and resynchronised.", nil, nil)
)

// Collector exposes Stats as Prometheus metrics (mirrorline_vpc_*). Register it
// on the component's registry: prometheus.Registerer.Register(vpc.Collector{s}).
type Collector struct{ Stats *Stats }

// Describe implements prometheus.Collector.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPackets, descGaps, descGapBytes, descActive, descStreams, descEnded, descRejected, descBuffered, descOverflows, descExchanges, descNoResp, descOrphans, descParseErr} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.Stats
	for i := range s.Packets {
		ch <- prometheus.MustNewConstMetric(descPackets, prometheus.CounterValue, float64(s.Packets[i].Load()), ResultNames[i])
	}
	for i := range s.StreamsEnded {
		ch <- prometheus.MustNewConstMetric(descEnded, prometheus.CounterValue, float64(s.StreamsEnded[i].Load()), EndNames[i])
	}
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(descGaps, s.Gaps.Load())
	counter(descGapBytes, s.GapBytes.Load())
	counter(descStreams, s.Streams.Load())
	counter(descRejected, s.StreamsRejected.Load())
	counter(descOverflows, s.BufferOverflows.Load())
	counter(descExchanges, s.Exchanges.Load())
	counter(descNoResp, s.HTTP.Unanswered.Load())
	counter(descOrphans, s.HTTP.Orphans.Load())
	counter(descParseErr, s.HTTP.ParseErrors.Load())
	ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(s.StreamsActive.Load()))
	ch <- prometheus.MustNewConstMetric(descBuffered, prometheus.GaugeValue, float64(s.BufferedBytes.Load()))
}
