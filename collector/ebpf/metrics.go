package ebpf

import "github.com/prometheus/client_golang/prometheus"

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
)

// Collector exposes a Capture's own counters as Prometheus metrics
// (mirrorline_ebpf_*): the BPF program's, read from its per-CPU map at scrape
// time, and the ring buffer reader's. The TCP/HTTP path's metrics come from
// tcpstream.NewStreamCollector("ebpf", capture.Stats()). Register both on the
// component's registry, never the global one.
type Collector struct{ Capture *Capture }

// Describe implements prometheus.Collector.
func (c Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descKPackets, descKBytes, descCaptured, descTruncated, descRBDrops, descKErrors,
		descRead, descPending, descAttached} {
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
}

// metric descriptions of the TLSCollector.
var (
	descTLSCalls     = prometheus.NewDesc("mirrorline_ebpf_tls_calls_total", "SSL/TLS reads and writes of selected processes that moved plaintext.", nil, nil)
	descTLSBytes     = prometheus.NewDesc("mirrorline_ebpf_tls_bytes_total", "Plaintext bytes those calls moved.", nil, nil)
	descTLSCaptured  = prometheus.NewDesc("mirrorline_ebpf_tls_captured_bytes_total", "Plaintext bytes copied into the ring buffer.", nil, nil)
	descTLSTruncated = prometheus.NewDesc("mirrorline_ebpf_tls_truncated_calls_total", "Calls that moved more than 1 MiB (the rest is a capture gap).", nil, nil)
	descTLSRBDrops   = prometheus.NewDesc("mirrorline_ebpf_tls_ringbuf_drops_total", "Plaintext records (up to 16 KiB of one call) lost because the ring buffer was full.", nil, nil)
	descTLSErrors    = prometheus.NewDesc("mirrorline_ebpf_tls_errors_total", "Plaintext records lost because the process memory could not be read.", nil, nil)
	descTLSPending   = prometheus.NewDesc("mirrorline_ebpf_tls_ringbuf_pending_bytes", "Bytes waiting in the TLS ring buffer.", nil, nil)
	descTLSProcs     = prometheus.NewDesc("mirrorline_ebpf_tls_processes", "Selected processes being captured.", nil, nil)
)

// TLSCollector exposes a TLSCapture's own counters as Prometheus metrics
// (mirrorline_ebpf_tls_*). Register it on the component's registry with
// tcpstream.NewStreamCollector("ebpf", capture.Stats()).
type TLSCollector struct{ Capture *TLSCapture }

// Describe implements prometheus.Collector.
func (c TLSCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTLSCalls, descTLSBytes, descTLSCaptured, descTLSTruncated, descTLSRBDrops,
		descTLSErrors, descTLSPending, descTLSProcs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c TLSCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	ks := c.Capture.KernelStats()
	counter(descTLSCalls, ks.Calls)
	counter(descTLSBytes, ks.Bytes)
	counter(descTLSCaptured, ks.CapturedBytes)
	counter(descTLSTruncated, ks.Truncated)
	counter(descTLSRBDrops, ks.RingbufDrops)
	counter(descTLSErrors, ks.Errors)
	ch <- prometheus.MustNewConstMetric(descTLSPending, prometheus.GaugeValue, float64(c.Capture.PendingBytes()))
	ch <- prometheus.MustNewConstMetric(descTLSProcs, prometheus.GaugeValue, float64(c.Capture.Processes()))
}
