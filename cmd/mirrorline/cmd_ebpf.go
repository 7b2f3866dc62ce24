package main

import (
	"cmp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/ebpf"
	"github.com/mirrorline/mirrorline/collector/tcpstream"
	"github.com/mirrorline/mirrorline/config"
)

func (a *app) ebpfCmd() *cobra.Command {
	c := &a.cfg.EBPF
	cmd := a.packetCmd(&cobra.Command{
		Use:   "ebpf",
		Short: "eBPF kernel capture (TC/tcx) of HTTP/1.x traffic of local services on given ports and interfaces",
		Long: "Attaches a TC program (tcx links) to the --interface(s) that copies the TCP packets to and from the\n" +
			"--port(s) into a BPF ring buffer, reassembles the connections, pairs HTTP/1.x requests with responses\n" +
			"and publishes them to mirror.raw.SERVICE. Needs root (CAP_BPF and CAP_NET_ADMIN) and Linux 6.6+.\n" +
			"See docs/collectors.md.",
	}, &c.TCPCapture, &c.Ports, "TCP port of the captured service (repeatable; required)", checkEBPFRun(c))
	c.BindFlags(cmd.Flags())
	return cmd
}

// newEBPF checks the ebpf configuration, loads and attaches the capture
// publishing through em, and registers its metrics on reg.
func (a *app) newEBPF(em *collector.Emitter, reg prometheus.Registerer) (collector.Collector, error) {
	c := a.cfg.EBPF
	if err := checkEBPF(c); err != nil {
		return nil, err
	}
	if c.TLS.Enabled {
		return a.newEBPFTLS(em, reg)
	}
	hooks, _ := ebpf.ParseHooks(c.Hooks) // checked by checkEBPF
	ecfg := ebpf.Config{
		Interfaces:   c.Interfaces,
		Ports:        c.Ports,
		Hooks:        hooks,
		SnapLen:      c.SnapLen,
		RingSize:     c.RingBuffer,
		PollInterval: c.PollInterval,
	}
	if err := ecfg.Validate(); err != nil {
		return nil, usageError{err}
	}
	log := a.log.Named("ebpf")
	ecfg.Logger = log
	ecfg.TrackerOptions = trackerOptions(c.TCPCapture)
	capt, err := ebpf.Open(em, ecfg)
	if err != nil {
		return nil, err
	}
	reg.MustRegister(ebpf.Collector{Capture: capt}, tcpstream.NewStreamCollector("ebpf", capt.Stats()))
	log.Info("eBPF capture running", "service", a.cfg.Service, "ports", c.Ports, "interfaces", c.Interfaces)
	return capt, nil
}

// checkEBPF reports what the ebpf section lacks to run (its values are
// checked by config.EBPF.Validate).
func checkEBPF(c config.EBPF) error {
	if c.TLS.Enabled {
		return usage(cmp.Or(c.Validate(), ebpfTLSConfig(c).Validate()))
	}
	if len(c.TLS.PIDs)+len(c.TLS.Binaries)+len(c.TLS.Cgroups) > 0 || c.TLS.LibSSL != "" {
		return usagef("pid, binary, cgroup, libssl: these select TLS capture, which needs --tls")
	}
	if len(c.Ports) == 0 {
		return usagef("port: at least one --port of the captured service is required")
	}
	return usage(c.Validate())
}

// ebpfTLSConfig is the TLS capture's configuration from the ebpf section.
func ebpfTLSConfig(c config.EBPF) ebpf.TLSConfig {
	return ebpf.TLSConfig{
		PIDs:         c.TLS.PIDs,
		Binaries:     c.TLS.Binaries,
		Cgroups:      c.TLS.Cgroups,
		LibSSL:       c.TLS.LibSSL,
		RingSize:     c.RingBuffer,
		PollInterval: c.PollInterval,
	}
}

// newEBPFTLS loads and attaches the TLS plaintext capture (`ebpf --tls`)
// publishing through em, and registers its metrics on reg.
func (a *app) newEBPFTLS(em *collector.Emitter, reg prometheus.Registerer) (collector.Collector, error) {
	c := a.cfg.EBPF
	tcfg := ebpfTLSConfig(c)
	log := a.log.Named("ebpf")
	tcfg.Logger = log
	tcfg.TrackerOptions = trackerOptions(c.TCPCapture)
	capt, err := ebpf.OpenTLS(em, tcfg)
	if err != nil {
		return nil, err
	}
	reg.MustRegister(ebpf.TLSCollector{Capture: capt}, tcpstream.NewStreamCollector("ebpf", capt.Stats()))
	log.Info("eBPF TLS capture running", "service", a.cfg.Service, "probed", capt.Attached(), "processes", capt.Processes())
	return capt, nil
}

// checkEBPFRun checks the ebpf section before the command touches Kafka; a
// TLS capture's processes and libraries are checked too (exit code 1: not a
// usage error).
func checkEBPFRun(c *config.EBPF) func(*cobra.Command) error {
	return func(*cobra.Command) error {
		if err := checkEBPF(*c); err != nil {
			return err
		}
		if c.TLS.Enabled {
			return ebpfTLSConfig(*c).Check()
		}
		return nil
	}
}
