package main

import (
	"context"
	"net"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/httpstream"
	"github.com/mirrorline/mirrorline/collector/tcpstream"
	"github.com/mirrorline/mirrorline/collector/vpc"
	"github.com/mirrorline/mirrorline/config"
)

func (a *app) vpcCmd() *cobra.Command {
	c := &a.cfg.VPC
	var vnis []int
	cmd := a.packetCmd(&cobra.Command{
		Use:   "vpc",
		Short: "AWS VPC Traffic Mirroring target: decode VXLAN (UDP 4789), reassemble TCP, publish HTTP/1.x exchanges",
		Long: "Receives the VXLAN-encapsulated packets a VPC Traffic Mirroring session sends, follows the TCP\n" +
			"connections to the mirrored service's --port(s), pairs HTTP/1.x requests with responses and\n" +
			"publishes them to mirror.raw.SERVICE. See docs/collectors.md.",
	}, &c.TCPCapture, &c.Ports, "TCP port of the mirrored service (repeatable; required)", func(cmd *cobra.Command) error {
		if cmd.Flags().Changed("vni") {
			c.VNIs = c.VNIs[:0]
			for _, v := range vnis {
				if v < 0 || v >= 1<<24 {
					return usagef("vni: %d is not a VXLAN network identifier (0-16777215)", v)
				}
				c.VNIs = append(c.VNIs, uint32(v))
			}
		}
		return checkVPC(*c)
	})
	f := cmd.Flags()
	f.IntSliceVar(&vnis, "vni", nil, "accept only this VXLAN network identifier (repeatable; default any)")
	c.BindFlags(f)
	return cmd
}

// packetCmd makes cmd run the packet collector cmd names alone, with
// --service and --port (help portHelp) setting ports; check converts the
// command's own flags and says what the collector's section lacks.
func (a *app) packetCmd(cmd *cobra.Command, capt *config.TCPCapture, ports *[]uint16, portHelp string, check func(*cobra.Command) error) *cobra.Command {
	var in []int
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := a.requireServiceAndBrokers(); err != nil {
			return err
		}
		if err := setPorts(cmd, in, ports); err != nil {
			return err
		}
		if err := check(cmd); err != nil {
			return err
		}
		return a.runCollector(cmd.Context(), cmd.Name(), capt.QueueRecords, capt.QueueBytes, true)
	}
	f := cmd.Flags()
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	f.IntSliceVar(&in, "port", nil, portHelp)
	return cmd
}

// setPorts sets ports to the --port values in, checking their range, when
// the flag was given.
func setPorts(cmd *cobra.Command, in []int, ports *[]uint16) error {
	if !cmd.Flags().Changed("port") {
		return nil
	}
	out := make([]uint16, 0, len(in))
	for _, p := range in {
		if p < 1 || p > 65535 {
			return usagef("port: %d is not a TCP port (1-65535)", p)
		}
		out = append(out, uint16(p))
	}
	*ports = out
	return nil
}

// checkVPC reports what the vpc section lacks to run (its values are
// checked by config.VPC.Validate).
func checkVPC(c config.VPC) error {
	if len(c.Ports) == 0 {
		return usagef("port: at least one --port of the mirrored service is required")
	}
	return usage(c.Validate())
}

// newVPC checks the vpc configuration and opens the UDP listener of the
// receiver, publishing through em; metrics go to reg.
func (a *app) newVPC(em *collector.Emitter, reg prometheus.Registerer) (collector.Collector, error) {
	c := a.cfg.VPC
	if err := checkVPC(c); err != nil {
		return nil, err
	}
	log := a.log.Named("vpc")
	stats := &tcpstream.Stats{}
	reg.MustRegister(tcpstream.NewStreamCollector("vpc", stats))
	topts := append(trackerOptions(c.TCPCapture), tcpstream.WithPorts(c.Ports...), tcpstream.WithStats(stats), tcpstream.WithLogger(log))
	rx := vpc.NewReceiver(tcpstream.NewTracker(em, topts...), vpc.WithVNIs(c.VNIs...), vpc.WithReadBuffer(c.ReadBuffer), vpc.WithPollInterval(c.PollInterval), vpc.WithLogger(log))
	reg.MustRegister(rx.Metrics())
	pc, err := net.ListenPacket("udp", c.Listen)
	if err != nil {
		return nil, usagef("listen %s: %v", c.Listen, err)
	}
	log.Info("VPC mirror target listening", "addr", pc.LocalAddr().String(), "ports", c.Ports, "vnis", c.VNIs, "service", a.cfg.Service)
	return collector.RunFunc(func(ctx context.Context) error { return rx.Serve(ctx, pc) }), nil
}

// trackerOptions are the TCP reassembly and HTTP pairing settings of a
// packet collector as tcpstream.Tracker options.
func trackerOptions(c config.TCPCapture) []tcpstream.TrackerOption {
	opts := []tcpstream.TrackerOption{
		tcpstream.WithIdleTimeout(c.IdleTimeout),
		tcpstream.WithGapTimeout(c.GapTimeout),
		tcpstream.WithMaxStreams(c.MaxStreams),
		tcpstream.WithMaxStreamBuffer(c.StreamBuffer),
		tcpstream.WithMaxBuffered(c.MaxBuffered),
		tcpstream.WithHTTPOptions(httpstream.WithBodyLimit(c.BodyLimit)),
	}
	if c.CollectorID != "" {
		opts = append(opts, tcpstream.WithCollectorID(c.CollectorID))
	}
	return opts
}
