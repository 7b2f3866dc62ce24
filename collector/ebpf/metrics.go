package ebpf

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorline/mirrorline/collector/vpc"
)

// metric descriptions of the Collector.
var (
	descKPackets  = prometheus.NewDesc("mirrorline_ebpf_kernel_packets_total", "Packets to or from a watched port seen by the TC program.", nil, nil)
	descKBytes    = prometheus.NewDesc("mirrorline_ebpf_kernel_bytes_total", "Bytes (from the IP header on) of the packets seen by the TC program.", nil, nil)
	descCaptured  = prometheus.NewDesc("mirrorline_ebpf_captured_bytes_total", "TCP payload bytes copied into the ring buffer.", nil, nil)
	descTruncated = prometheus.NewDesc("mirrorline_ebpf_truncated_packets_total", "Packets with more TCP payload than the snap length (the rest is a capture gap).", nil, nil)
	descRBDrops   = prometheus.NewDesc("mirrorline_ebpf_ringbuf_drops_total", "Packet copies (records of up to 16 KiB of payload) lost because the ring buffer was full; the packets themselves pass.", nil, nil)
	descKErrors   = prometheus.NewDesc("mirrorline_ebpf_kernel_errors_total", "Packet copies lost because the packet could not be read.", nil, nil)
	descRead      = prometheus.NewDesc("mirrorline_ebpf_read_packets_total", "Packets read from the ring buffer by userspace, by hook.", []string{"hook"}, nil)
	descPending   = prometheus.NewDesc("mirrorline_ebpf_ringbuf_pending_bytes", "Bytes waiting in the ring buffer.", nil, nil)
	descAttached  = prometheus.NewDesc("mirrorline_ebpf_attached", "TC hooks the capture program is attached to.", []string{"interface", "hook"}, nil)
	descPackets   = prometheus.NewDesc("mirrorline_ebpf_packets_total", "Captured packets, by what became of them in userspace.", []string{"result"}, nil)
	descGaps      = prometheus.NewDesc("mirrorline_ebpf_tcp_gaps_total", "Runs of TCP payload bytes missing from the capture (ring buffer drops, snap length).", nil, nil)
	descGapBytes  = prometheus.NewDesc("mirrorline_ebpf_tcp_gap_bytes_total", "TCP payload bytes missing from the capture.", nil, nil)
	descActive    = prometheus.NewDesc("mirrorline_ebpf_streams_active", "TCP connections tracked now.", nil, nil)
	descStreams   = prometheus.NewDesc("mirrorline_ebpf_streams_total", "TCP connections tracked since start.", nil, nil)
	descEnded     = prometheus.NewDesc("mirrorline_ebpf_streams_ended_total", "TCP connections no longer tracked, by why (fin, rst, idle, close).", []string{"reason"}, nil)
	descRejected  = prometheus.NewDesc("mirrorline_ebpf_streams_rejected_total", "TCP connections not tracked because the stream limit was reached.", nil, nil)
	descBuffered  = prometheus.NewDesc("mirrorline_ebpf_buffered_bytes", "Out-of-order TCP payload bytes waiting for missing segments.", nil, nil)
	descOverflows = prometheus.NewDesc("mirrorline_ebpf_buffer_overflows_total", "Missing segments given up on because a stream's or the total buffer was full.", nil, nil)
	descExchanges = prometheus.NewDesc("mirrorline_ebpf_http_exchanges_total", "HTTP exchanges parsed and handed to the publisher.", nil, nil)
	descNoResp    = prometheus.NewDesc("mirrorline_ebpf_http_unanswered_total", "HTTP requests published without a response (none captured).", nil, nil)
	descOrphans   = prometheus.NewDesc("mirrorline_ebpf_http_orphan_responses_total", "HTTP responses that matched no captured request.", nil, nil)
	descParseErr  = prometheus.NewDesc("mirrorline_ebpf_http_parse_errors_total", "Times an HTTP stream lost its place on malformed data and resynchronised.", nil, nil)
)

// Collector exposes a Capture's counters as Prometheus metrics
// (mirrorline_ebpf_*): the BPF program's, read from its per-CPU map at scrape
// time, and the userspace TCP/HTTP path's. Register it on the component's
// registry, never the global one.
type Collector struct{ Capture *Capture }

// Describe implements prometheus.Collector.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descKPackets, descKBytes, descCaptured, descTruncated, descRBDrops, descKErrors,
		descRead, descPending, descAttached, descPackets, descGaps, descGapBytes, descActive, descStreams, descEnded,
		descRejected, descBuffered, descOverflows, descExchanges, descNoResp, descOrphans, descParseErr} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ks := c.Capture.KernelStats()
	counter(descKPackets, ks.Packets)
	counter(descKBytes, ks.Bytes)
	counter(descCaptured, ks.CapturedBytes)
	counter(descTruncated, ks.Truncated)
	counter(descRBDrops, ks.RingbufDrops)
	counter(descKErrors, ks.Errors)
	in, out := c.Capture.Packets()
	counter(descRead, in, "ingress")
	counter(descRead, out, "egress")
	gauge(descPending, float64(c.Capture.PendingBytes()))
	for _, a := range c.Capture.Attached() {
		gauge(descAttached, 1, a.Interface, a.Hook)
	}

	s := c.Capture.Stats()
	for i := range s.Packets {
		counter(descPackets, s.Packets[i].Load(), vpc.ResultNames[i])
	}
	for i := range s.StreamsEnded {
		counter(descEnded, s.StreamsEnded[i].Load(), vpc.EndNames[i])
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
	gauge(descActive, float64(s.StreamsActive.Load()))
	gauge(descBuffered, float64(s.BufferedBytes.Load()))
}
