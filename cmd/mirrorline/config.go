package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector/proxy"
	"github.com/mirrorline/mirrorline/redactor"
)

// Config is the YAML file given with -c. Every command reads the sections it
// needs; flags given on the command line override the file, and the file
// overrides built-in defaults. Unknown keys are an error.
type Config struct {
	Kafka       broker.Config  `yaml:",inline"`
	Service     string         `yaml:"service"`
	MetricsAddr string         `yaml:"metrics_addr"`
	LogLevel    string         `yaml:"log_level"`
	LogJSON     bool           `yaml:"log_json"`
	Embedded    EmbeddedConfig `yaml:"embedded"`
	Topics      TopicsConfig   `yaml:"topics"`
	Proxy       ProxyConfig    `yaml:"proxy"`
	Replay      ReplayConfig   `yaml:"replay"`
	Redact      RedactConfig   `yaml:"redact"`
	Sink        SinkConfig     `yaml:"sink"`
}

// SinkConfig configures the mirror sink collector.
type SinkConfig struct {
	Listen       string   `yaml:"listen"`
	BodyLimit    int64    `yaml:"body_limit"`
	KeyHeader    string   `yaml:"key_header"`
	StripHeaders []string `yaml:"strip_headers"`
	QueueRecords int      `yaml:"queue_records"`
	QueueBytes   int      `yaml:"queue_bytes"`
	CollectorID  string   `yaml:"collector_id"`
}

// RedactConfig configures the redactor: its Kafka session and the rules
// (layered over the built-in safe defaults, see docs/redaction.md).
type RedactConfig struct {
	Group           string          `yaml:"group"`
	TransactionalID string          `yaml:"transactional_id"`
	OnFailure       string          `yaml:"on_failure"`
	Batch           int             `yaml:"batch"`
	SessionTimeout  time.Duration   `yaml:"session_timeout"`
	Rules           redactor.Config `yaml:"rules"`
}

// EmbeddedConfig configures the in-process broker of `mirrorline up`.
type EmbeddedConfig struct {
	Addr    string `yaml:"addr"`
	DataDir string `yaml:"data_dir"`
}

// TopicsConfig is how `topics create` and `up` create topics.
type TopicsConfig struct {
	Partitions  int32                    `yaml:"partitions"`
	Replication int16                    `yaml:"replication"`
	Retention   map[string]time.Duration `yaml:"retention"`
}

// ProxyConfig configures the proxy collector.
type ProxyConfig struct {
	Listen       string        `yaml:"listen"`
	Primary      string        `yaml:"primary"`
	Sample       float64       `yaml:"sample"`
	BodyLimit    int64         `yaml:"body_limit"`
	PreserveHost bool          `yaml:"preserve_host"`
	QueueRecords int           `yaml:"queue_records"`
	QueueBytes   int           `yaml:"queue_bytes"`
	CollectorID  string        `yaml:"collector_id"`
	Routes       []proxy.Route `yaml:"routes"`
}

// ReplayConfig configures the replayer.
type ReplayConfig struct {
	Target      string        `yaml:"target"`
	Concurrency int           `yaml:"concurrency"`
	Group       string        `yaml:"group"`
	Instance    string        `yaml:"instance"`
	Topic       string        `yaml:"topic"`
	Start       string        `yaml:"start"`
	Timeout     time.Duration `yaml:"timeout"`
	KeepHost    bool          `yaml:"keep_host"`
	BodyLimit   int64         `yaml:"body_limit"`
}

// usageError is a bad flag or configuration: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// loadConfigFile decodes path into cfg (over the values already in it).
func loadConfigFile(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return usagef("config: %v", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return usagef("config %s: %s", path, strings.Join(te.Errors, "; "))
		}
		return usagef("config %s: %v", path, err)
	}
	return nil
}

// configPathFromArgs finds -c/--config in args before flag parsing, so the file
// can be loaded under the flags.
func configPathFromArgs(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return ""
		case a == "-c" || a == "--config":
			if i+1 < len(args) {
				return args[i+1]
			}
		case strings.HasPrefix(a, "-c="):
			return a[3:]
		case strings.HasPrefix(a, "--config="):
			return a[len("--config="):]
		}
	}
	return ""
}
