// Command mirrorline mirrors production HTTP traffic into Kafka and replays it,
// scrubbed of personal data, against shadow deployments. This package only wires
// flags and configuration to the stage packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/comparator"
	"github.com/mirrorline/mirrorline/redactor"
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
	cfg     Config
	cfgPath string
	log     hclog.Logger
	// reload holds the components a reload of the -c file changes.
	reload reloader
	// metricsAddrSet: metrics_addr is set in the -c file, so it overrides
	// the command's own default port.
	metricsAddrSet bool
	// metricsCmd is the command serving metrics, for error messages.
	metricsCmd string
	// metricsLn is the metrics listener bound before the command opens its
	// data path (bindMetrics); runAll serves on it. metricsBound: it was.
	metricsLn    net.Listener
	metricsBound bool
}

func defaultConfig() Config {
	return Config{
		LogLevel: "info",
		Embedded: EmbeddedConfig{Addr: "127.0.0.1:19092"},
		Topics:   TopicsConfig{Partitions: 6, Replication: -1},
		Proxy: ProxyConfig{
			Listen:       ":8080",
			Sample:       1,
			BodyLimit:    1 << 20,
			QueueRecords: 10000,
			QueueBytes:   64 << 20,
		},
		Sink:   SinkConfig{Listen: ":9080", BodyLimit: 1 << 20, QueueRecords: 10000, QueueBytes: 64 << 20},
		Redact: RedactConfig{OnFailure: string(redactor.Quarantine), Batch: 1000, SessionTimeout: broker.DefaultSessionTimeout},
		Replay: ReplayConfig{Concurrency: 16, Timeout: 10 * time.Second, BodyLimit: 1 << 20},
	}
}

func newRoot(args []string) (*cobra.Command, error) {
	_, root, err := newApp(args)
	return root, err
}

// newApp builds the command tree over the configuration: defaults, the -c
// file in args, then the MIRRORLINE_* variables (flags come last, when the
// tree executes).
func newApp(args []string) (*app, *cobra.Command, error) {
	a := &app{cfg: defaultConfig()}
	if p := configPathFromArgs(args); p != "" {
		a.cfgPath = p
		keys, err := loadConfig(p, &a.cfg)
		if err != nil {
			return nil, nil, err
		}
		a.metricsAddrSet = keys["metrics_addr"]
	}
	if v := os.Getenv("MIRRORLINE_BROKERS"); v != "" {
		a.cfg.Kafka.Brokers = splitList(v)
	}
	if v := os.Getenv("MIRRORLINE_SERVICE"); v != "" {
		a.cfg.Service = v
	}
	if v := os.Getenv("MIRRORLINE_INSTANCE_ID"); v != "" {
		a.cfg.InstanceID = v
	}
	root := &cobra.Command{
		Use:           "mirrorline",
		Short:         "Mirror production HTTP traffic into Kafka and replay it, scrubbed, against shadow deployments",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			lvl := hclog.LevelFromString(a.cfg.LogLevel)
			if lvl == hclog.NoLevel {
				return usagef("log-level: %q is not one of trace, debug, info, warn, error", a.cfg.LogLevel)
			}
			a.log = hclog.New(&hclog.LoggerOptions{Name: "mirrorline", Level: lvl, JSONFormat: a.cfg.LogJSON, Output: os.Stderr})
			a.cfg.Kafka.Brokers = splitList(strings.Join(a.cfg.Kafka.Brokers, ","))
			a.resolveMetricsAddr(cmd)
			return nil
		},
	}
	setVersion(root)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringP("config", "c", a.cfgPath, "YAML configuration file (unknown keys are an error)")
	pf.StringSliceVar(&a.cfg.Kafka.Brokers, "brokers", a.cfg.Kafka.Brokers, "Kafka bootstrap brokers host:port,... (env MIRRORLINE_BROKERS)")
	pf.BoolVar(&a.cfg.Kafka.TLS.Enabled, "kafka-tls", a.cfg.Kafka.TLS.Enabled, "connect to Kafka with TLS")
	pf.StringVar(&a.cfg.Kafka.TLS.CAFile, "kafka-tls-ca", a.cfg.Kafka.TLS.CAFile, "PEM file of CAs to trust for Kafka")
	pf.StringVar(&a.cfg.Kafka.TLS.CertFile, "kafka-tls-cert", a.cfg.Kafka.TLS.CertFile, "client certificate PEM file for Kafka")
	pf.StringVar(&a.cfg.Kafka.TLS.KeyFile, "kafka-tls-key", a.cfg.Kafka.TLS.KeyFile, "client key PEM file for Kafka")
	pf.StringVar(&a.cfg.Kafka.SASL.Mechanism, "kafka-sasl-mechanism", a.cfg.Kafka.SASL.Mechanism, "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	pf.StringVar(&a.cfg.Kafka.SASL.Username, "kafka-sasl-user", a.cfg.Kafka.SASL.Username, "SASL user name")
	pf.StringVar(&a.cfg.Kafka.SASL.PasswordFile, "kafka-sasl-password-file", a.cfg.Kafka.SASL.PasswordFile, "file holding the SASL password")
	pf.StringVar(&a.cfg.Kafka.SASL.PasswordEnv, "kafka-sasl-password-env", a.cfg.Kafka.SASL.PasswordEnv, "environment variable holding the SASL password")
	pf.StringVar(&a.cfg.InstanceID, "instance-id", a.cfg.InstanceID, "static consumer group member id of the redactor, replayer and comparator, stable across restarts of this replica (env MIRRORLINE_INSTANCE_ID; default: dynamic membership)")
	pf.StringVar(&a.cfg.MetricsAddr, "metrics-addr", a.cfg.MetricsAddr, "address serving /metrics, /healthz and /readyz (empty disables; default: the command's own port: "+metricsPortsUsage()+")")
	pf.StringVar(&a.cfg.LogLevel, "log-level", a.cfg.LogLevel, "trace, debug, info, warn or error")
	pf.BoolVar(&a.cfg.LogJSON, "log-json", a.cfg.LogJSON, "log as JSON lines")

	root.AddCommand(a.proxyCmd(), a.replayCmd(), a.topicsCmd(), a.redactCmd(), a.upCmd(), a.sinkCmd(), a.lagCmd(), a.vpcCmd(), a.importCmd(), a.compareCmd(), a.ebpfCmd(), a.versionCmd())
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

// requireService checks that the service is set and valid.
func (a *app) requireService() error {
	if err := a.requireSettings("service"); err != nil {
		return err
	}
	if err := broker.ValidateService(a.cfg.Service); err != nil {
		return usageError{err}
	}
	return nil
}

// requireServiceAndBrokers checks what every command publishing or consuming
// one service's topics needs, and the extra settings named (see settings);
// every missing one is listed at once.
func (a *app) requireServiceAndBrokers(extra ...string) error {
	if err := a.requireSettings(append([]string{"service", "brokers"}, extra...)...); err != nil {
		return err
	}
	return a.requireService()
}

func (a *app) requireBrokers() error { return a.requireSettings("brokers") }
