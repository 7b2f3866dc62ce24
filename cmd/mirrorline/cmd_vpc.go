package main

import (
	"context"
	"net"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mirrorline/mirrorline/collector/httpstream"
	"github.com/mirrorline/mirrorline/collector/tcpstream"
	"github.com/mirrorline/mirrorline/collector/vpc"
	"github.com/mirrorline/mirrorline/telemetry"
)

// vpcDefaults fills the zero fields of c with the defaults.
func vpcDefaults(c *VPCConfig) {
	if c.Listen == "" {
		c.Listen = ":4789"
	}
	if c.ReadBuffer == 0 {
		c.ReadBuffer = 8 << 20
	}
	c.TCPCapture.defaults()
}

// portList converts --port values, checking their range.
func portList(flag string, in []int) ([]uint16, error) {
	out := make([]uint16, 0, len(in))
	for _, p := range in {
		if p < 1 || p > 65535 {
			return nil, usagef("%s: %d is not a TCP port (1-65535)", flag, p)
		}
		out = append(out, uint16(p))
	}
	return out, nil
}

func (a *app) vpcCmd() *cobra.Command {
	c := &a.cfg.VPC
	vpcDefaults(c)
	var ports, vnis []int
	cmd := &cobra.Command{
		Use:   "vpc",
		Short: "AWS VPC Traffic Mirroring target: decode VXLAN (UDP 4789), reassemble TCP, publish HTTP/1.x exchanges",
		Long: "Receives the VXLAN-encapsulated packets a VPC Traffic Mirroring session sends, follows the TCP\n" +
			"connections to the mirrored service's --port(s), pairs HTTP/1.x requests with responses and\n" +
			"publishes them to mirror.raw.SERVICE. See docs/collectors.md.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireServiceAndBrokers(); err != nil {
				return err
			}
			if cmd.Flags().Changed("port") {
				p, err := portList("port", ports)
				if err != nil {
					return err
				}
				c.Ports = p
			}
			if cmd.Flags().Changed("vni") {
				c.VNIs = c.VNIs[:0]
				for _, v := range vnis {
					if v < 0 || v >= 1<<24 {
						return usagef("vni: %d is not a VXLAN network identifier (0-16777215)", v)
					}
					c.VNIs = append(c.VNIs, uint32(v))
				}
			}
			if err := checkVPC(*c); err != nil {
				return err
			}
			return a.runCollector(cmd.Context(), "vpc", c.QueueRecords, c.QueueBytes, true)
		},
	}
	f := cmd.Flags()
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	f.StringVar(&c.Listen, "listen", c.Listen, "UDP address receiving the VXLAN packets of the mirror session")
	f.IntSliceVar(&ports, "port", nil, "TCP port of the mirrored service (repeatable; required)")
	f.IntSliceVar(&vnis, "vni", nil, "accept only this VXLAN network identifier (repeatable; default any)")
	f.IntVar(&c.ReadBuffer, "read-buffer", c.ReadBuffer, "UDP socket receive buffer in bytes (capped by net.core.rmem_max)")
	c.TCPCapture.flags(f)
	return cmd
}

// defaults fills the zero fields of c with the defaults.
func (c *TCPCapture) defaults() {
	if c.BodyLimit == 0 {
		c.BodyLimit = httpstream.DefaultBodyLimit
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = tcpstream.DefaultIdleTimeout
	}
	if c.GapTimeout == 0 {
		c.GapTimeout = tcpstream.DefaultGapTimeout
	}
	for _, d := range []struct {
		v   *int
		def int
	}{
		{&c.MaxStreams, tcpstream.DefaultMaxStreams},
		{&c.StreamBuffer, tcpstream.DefaultMaxStreamBuffer},
		{&c.MaxBuffered, tcpstream.DefaultMaxBuffered},
		{&c.QueueRecords, 10000},
		{&c.QueueBytes, 64 << 20},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
}

// flags adds the flags of c.
func (c *TCPCapture) flags(f *pflag.FlagSet) {
	f.Int64Var(&c.BodyLimit, "body-limit", c.BodyLimit, "body bytes captured per request and response; longer bodies are flagged truncated")
	f.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "flush and forget a TCP stream without packets for this long")
	f.DurationVar(&c.GapTimeout, "gap-timeout", c.GapTimeout, "give up on a missing TCP segment after this long")
	f.IntVar(&c.MaxStreams, "max-streams", c.MaxStreams, "TCP streams tracked at once; packets of new streams beyond it are dropped and counted")
	f.IntVar(&c.StreamBuffer, "stream-buffer", c.StreamBuffer, "out-of-order bytes buffered per stream direction")
	f.IntVar(&c.MaxBuffered, "max-buffered", c.MaxBuffered, "out-of-order bytes buffered over all streams")
	f.IntVar(&c.QueueRecords, "queue-records", c.QueueRecords, "records buffered for Kafka before new captures are dropped")
	f.IntVar(&c.QueueBytes, "queue-bytes", c.QueueBytes, "bytes buffered for Kafka before new captures are dropped")
	f.StringVar(&c.CollectorID, "collector-id", c.CollectorID, "name of this collector in records (default: host name)")
}

// checkVPC reports what is missing or out of range in c.
func checkVPC(c VPCConfig) error {
	if len(c.Ports) == 0 {
		return usagef("port: at least one --port of the mirrored service is required")
	}
	return c.TCPCapture.check("vpc")
}

// check reports negative sizes, limits and timeouts of the collector named.
func (c TCPCapture) check(collector string) error {
	if c.BodyLimit < 0 || c.IdleTimeout < 0 || c.GapTimeout < 0 || c.MaxStreams < 0 || c.StreamBuffer < 0 || c.MaxBuffered < 0 || c.QueueRecords < 0 || c.QueueBytes < 0 {
		return usagef("%s: body-limit, timeouts, limits and queue sizes must not be negative", collector)
	}
	return nil
}

// newVPC checks the vpc configuration, opens the UDP listener and returns the
// receiver's run func, publishing through em; metrics go to tel.
func (a *app) newVPC(tel *telemetry.Server, em tcpstream.Publisher) (func(context.Context) error, error) {
	c := a.cfg.VPC
	if err := checkVPC(c); err != nil {
		return nil, err
	}
	log := a.log.Named("vpc")
	stats := &tcpstream.Stats{}
	tel.Registry.MustRegister(tcpstream.NewStreamCollector("vpc", stats))
	topts := append(c.trackerOptions(), tcpstream.WithPorts(c.Ports...), tcpstream.WithStats(stats), tcpstream.WithLogger(log))
	rx := vpc.NewReceiver(tcpstream.NewTracker(em, topts...), vpc.WithVNIs(c.VNIs...), vpc.WithReadBuffer(c.ReadBuffer), vpc.WithLogger(log))
	pc, err := net.ListenPacket("udp", c.Listen)
	if err != nil {
		return nil, usagef("listen %s: %v", c.Listen, err)
	}
	log.Info("VPC mirror target listening", "addr", pc.LocalAddr().String(), "ports", c.Ports, "vnis", c.VNIs, "service", a.cfg.Service)
	return func(ctx context.Context) error { return rx.Serve(ctx, pc) }, nil
}
