package main

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// metricsPorts is the default --metrics-addr port of each command that serves
// /metrics, /healthz and /readyz: one port per command, as Prometheus
// exporters have, so every stage runs side by side on one host. `up` keeps
// 9464. README.md and docs/operations.md show
// this table.
var metricsPorts = []struct {
	command string
	port    int
}{
	{"up", 9464},
	{"proxy", 9465},
	{"sink", 9466},
	{"ebpf", 9467},
	{"vpc", 9468},
	{"redact", 9469},
	{"replay", 9470},
	{"compare", 9471},
	{"lag", 9472}, // with --serve
	{"stub", 9473},
}

// metricsPort is the default metrics port of cmd, and whether cmd serves
// metrics at all (`lag` only with --serve; `compare report` does not).
func metricsPort(cmd *cobra.Command) (int, bool) {
	if cmd.Parent() == nil || cmd.Parent().Parent() != nil {
		return 0, false // the root, or a sub-subcommand such as `compare report`
	}
	for _, p := range metricsPorts {
		if p.command != cmd.Name() {
			continue
		}
		if p.command == "lag" {
			if serve, _ := cmd.Flags().GetBool("serve"); !serve {
				return 0, false
			}
		}
		return p.port, true
	}
	return 0, false
}

// metricsPortsUsage lists the defaults for the --metrics-addr help.
func metricsPortsUsage() string {
	parts := make([]string, 0, len(metricsPorts))
	for _, p := range metricsPorts {
		parts = append(parts, fmt.Sprintf("%s :%d", p.command, p.port))
	}
	return strings.Join(parts, ", ")
}

// resolveMetricsAddr sets --metrics-addr for cmd to its own default port,
// unless the flag or metrics_addr in -c FILE set it. Commands that serve no
// metrics keep it empty.
func (a *app) resolveMetricsAddr(cmd *cobra.Command) {
	port, ok := metricsPort(cmd)
	if ok {
		a.metricsCmd = cmd.Name()
	}
	if f := cmd.Flags().Lookup("metrics-addr"); (f != nil && f.Changed) || a.cfg.Set("metrics_addr") {
		return
	}
	a.cfg.MetricsAddr = ""
	if ok {
		a.cfg.MetricsAddr = ":" + strconv.Itoa(port)
	}
}

// bindMetrics binds --metrics-addr, once: commands call it after checking
// their settings and before they open their data path (listen for traffic,
// fence a predecessor, start the embedded broker), and runAll calls it in
// any case. So a second instance on the same port fails here, before it
// logs that it listens.
func (a *app) bindMetrics() error {
	if a.metricsBound || a.cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return usagef("--metrics-addr %s: address already in use (another mirrorline %s? pass --metrics-addr)", a.cfg.MetricsAddr, cmp.Or(a.metricsCmd, "process"))
		}
		return usagef("--metrics-addr %s: %v", a.cfg.MetricsAddr, unwrapOpError(err))
	}
	a.metricsBound = true
	a.metricsLn = ln
	return nil
}

// unwrapOpError drops the "listen tcp ADDR:" prefix of a net.OpError, which
// repeats the address the message already names.
func unwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
