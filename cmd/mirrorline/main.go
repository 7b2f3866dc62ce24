// Command mirrorline mirrors production HTTP traffic into Kafka and replays it,
// scrubbed of personal data, against shadow deployments. This package only wires
// flags and configuration to the stage packages.
package main

import (
	"context"
	"errors"
	"fmt"
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
	root, err := newRoot(args)
	if err == nil {
		root.SetArgs(args)
		err = root.ExecuteContext(ctx)
	}
	if err != nil {
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
}

func defaultConfig() Config {
	return Config{
		MetricsAddr: ":9464",
		LogLevel:    "info",
		Embedded:    EmbeddedConfig{Addr: "127.0.0.1:19092"},
		Topics:      TopicsConfig{Partitions: 6, Replication: -1},
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
	a := &app{cfg: defaultConfig()}
	if p := configPathFromArgs(args); p != "" {
		a.cfgPath = p
		if err := loadConfigFile(p, &a.cfg); err != nil {
			return nil, err
		}
	}
	if v := os.Getenv("MIRRORLINE_BROKERS"); v != "" {
		a.cfg.Kafka.Brokers = splitList(v)
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
			return nil
		},
	}
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
	pf.StringVar(&a.cfg.MetricsAddr, "metrics-addr", a.cfg.MetricsAddr, "address serving /metrics, /healthz and /readyz (empty disables)")
	pf.StringVar(&a.cfg.LogLevel, "log-level", a.cfg.LogLevel, "trace, debug, info, warn or error")
	pf.BoolVar(&a.cfg.LogJSON, "log-json", a.cfg.LogJSON, "log as JSON lines")

	root.AddCommand(a.proxyCmd(), a.replayCmd(), a.topicsCmd(), a.redactCmd(), a.upCmd(), a.sinkCmd(), a.lagCmd(), a.vpcCmd(), a.importCmd(), a.compareCmd(), a.ebpfCmd())
	return root, nil
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

func (a *app) requireService(flag string) error {
	if a.cfg.Service == "" {
		return usagef("%s: required", flag)
	}
	if err := broker.ValidateService(a.cfg.Service); err != nil {
		return usageError{err}
	}
	return nil
}

// requireServiceAndBrokers checks what every command publishing or consuming
// one service's topics needs.
func (a *app) requireServiceAndBrokers() error {
	if err := a.requireService("service"); err != nil {
		return err
	}
	return a.requireBrokers()
}

func (a *app) requireBrokers() error {
	if len(a.cfg.Kafka.Brokers) == 0 {
		return usagef("brokers: required (--brokers, MIRRORLINE_BROKERS or brokers: in -c FILE)")
	}
	return nil
}
