// Command mirrorline mirrors production HTTP traffic into Kafka and replays it,
// scrubbed of personal data, against shadow deployments. This package only wires
// flags and configuration to the stage packages.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/comparator"
	"github.com/mirrorline/mirrorline/config"
	"github.com/mirrorline/mirrorline/grpcwire"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, root, err := newApp(args)
	if err == nil {
		root.SetArgs(args)
		err = root.ExecuteContext(ctx)
		a.closeMetrics()
		// Kafka not reachable at all: say so in one line, whichever request
		// found out first.
		err = broker.Explain(err, a.cfg.Kafka.Brokers)
	}
	if err != nil {
		err = explainUnknownCommand(err)
		// One line, and nothing an error quotes (a name read from Kafka, an
		// endpoint) can drive the terminal.
		fmt.Fprintf(os.Stderr, "mirrorline: %s\n", comparator.TerminalSafe(strings.ReplaceAll(err.Error(), "\n", "; ")))
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// app is the state shared by the commands: the configuration (defaults, then the
// -c file, then MIRRORLINE_* variables, then flags) and the logger.
type app struct {
	cfg     config.File
	cfgPath string
	log     hclog.Logger
	// reload holds the components a reload of the -c file changes.
	reload reloader
	// replayFileTarget is replay.target as the -c file set it (before
	// flags), which is allowed without an allowlist.
	replayFileTarget string
	// replayMaxRateSet: --max-rate was given (live replays are capped only
	// when --max-rate or replay.max_rate is set).
	replayMaxRateSet bool
	// proxyCLIRoutes is the route of --path-prefix/--method/--header-match,
	// kept on top of the file's routes across reloads.
	proxyCLIRoutes []collector.Route
	// gc is the garbage collector's target `mirrorline proxy` set and where
	// it came from (proxyGC), for its start-up log; empty elsewhere.
	gc []any
	// metricsCmd is the command serving metrics, for error messages.
	metricsCmd string
	// metricsLn is the metrics listener bound before the command opens its
	// data path (bindMetrics); runAll serves on it. metricsBound: it was.
	metricsLn    net.Listener
	metricsBound bool
	// pprof: --pprof, Go's runtime profiles beside the metrics.
	pprof bool
	// schema and schemaLoaded: the grpc section's schemas, read once
	// (grpcSchema) for every stage of the process.
	schema       *grpcwire.Schema
	schemaLoaded bool
}

// newApp builds the command tree over the configuration: defaults, the -c
// file in args, then the MIRRORLINE_* variables (flags come last, when the
// tree executes).
func newApp(args []string) (*app, *cobra.Command, error) {
	a := &app{cfg: config.Default()}
	if p := configPathFromArgs(args); p != "" {
		a.cfgPath = p
		if err := usage(config.Load(p, &a.cfg)); err != nil {
			return nil, nil, err
		}
	}
	a.replayFileTarget = a.cfg.Replay.Target
	if v := os.Getenv("MIRRORLINE_BROKERS"); v != "" {
		a.cfg.Kafka.Brokers = splitList(v)
	}
	a.cfg.Service = cmp.Or(os.Getenv("MIRRORLINE_SERVICE"), a.cfg.Service)
	a.cfg.InstanceID = cmp.Or(os.Getenv("MIRRORLINE_INSTANCE_ID"), a.cfg.InstanceID)
	root := &cobra.Command{
		Use:           "mirrorline",
		Short:         "Mirror production HTTP traffic into Kafka and replay it, scrubbed, against shadow deployments",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// Defaults, file, environment and flags together: every
			// section, whichever the command reads.
			if err := a.cfg.Validate(); err != nil {
				return usageError{err}
			}
			a.log = hclog.New(&hclog.LoggerOptions{Name: "mirrorline", Level: hclog.LevelFromString(a.cfg.LogLevel), JSONFormat: a.cfg.LogJSON, Output: os.Stderr})
			a.cfg.Kafka.Brokers = splitList(strings.Join(a.cfg.Kafka.Brokers, ","))
			a.resolveMetricsAddr(cmd)
			return nil
		},
	}
	setVersion(root)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringP("config", "c", a.cfgPath, "YAML configuration file (unknown keys are an error)")
	a.cfg.BindFlags(pf)
	pf.StringVar(&a.cfg.MetricsAddr, "metrics-addr", a.cfg.MetricsAddr, "address serving /metrics, /healthz and /readyz (empty disables; default: the command's own port: "+metricsPortsUsage()+")")
	pf.BoolVar(&a.pprof, "pprof", false, "also serve Go's runtime profiles at /debug/pprof/ on --metrics-addr (CPU, heap, goroutines, execution traces: code paths, never traffic)")

	root.AddCommand(a.proxyCmd(), a.replayCmd(), a.topicsCmd(), a.redactCmd(), a.upCmd(), a.sinkCmd(), a.lagCmd(), a.vpcCmd(), a.importCmd(), a.compareCmd(), a.ebpfCmd(), a.stubCmd(), a.versionCmd())
	groupsRefuseUnknown(root)
	return a, root, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// requireService checks that the service and the extra settings named (see
// settings) are set, every missing one listed at once, and that the service
// name is valid.
func (a *app) requireService(extra ...string) error {
	if err := a.requireSettings(append([]string{"service"}, extra...)...); err != nil {
		return err
	}
	return usage(broker.ValidateService(a.cfg.Service))
}

// requireServiceAndBrokers checks what every command publishing or consuming
// one service's topics needs, and the extra settings named.
func (a *app) requireServiceAndBrokers(extra ...string) error {
	return a.requireService(append([]string{"brokers"}, extra...)...)
}
