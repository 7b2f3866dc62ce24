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
