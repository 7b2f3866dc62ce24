package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/httpstream"
	"github.com/mirrorline/mirrorline/collector/proxy"
	"github.com/mirrorline/mirrorline/collector/tcpstream"
	"github.com/mirrorline/mirrorline/comparator"
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
	VPC         VPCConfig      `yaml:"vpc"`
	EBPF        EBPFConfig     `yaml:"ebpf"`
	Import      ImportConfig   `yaml:"import"`
	Sink        SinkConfig     `yaml:"sink"`
	Compare     CompareConfig  `yaml:"compare"`
	// InstanceID is the static group membership id of this process's
	// consumers (redactor, live replayer, comparator); empty: dynamic
	// members. See broker.Membership.
	InstanceID string `yaml:"instance_id"`
	// Collectors are the capture collectors `up` runs (proxy, sink, vpc,
	// ebpf); default: proxy when proxy.primary is set.
	Collectors []string `yaml:"collectors"`
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
	// Sample is the fraction of copies published (default 1) and Routes
	// select them, as for the proxy; reloadable with body_limit.
	Sample *float64          `yaml:"sample"`
	Routes []collector.Route `yaml:"routes"`
	// Limits: max_conns, read_header_timeout, idle_timeout,
	// max_header_bytes, body_timeout, min_body_rate.
	collector.Limits `yaml:",inline"`
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
	// Limits: max_conns, read_header_timeout, idle_timeout,
	// max_header_bytes, body_timeout, min_body_rate.
	collector.Limits `yaml:",inline"`

	// cliRoutes is the route of --path-prefix/--method/--header-match, kept
	// on top of the file's routes across reloads.
	cliRoutes []proxy.Route
}

// ReplayConfig configures the replayer (live and window replays).
type ReplayConfig struct {
	Target      string        `yaml:"target"`
	Concurrency int           `yaml:"concurrency"`
	Group       string        `yaml:"group"`
	Instance    string        `yaml:"instance"`
	Topic       string        `yaml:"topic"`
	Start       string        `yaml:"start"`
	Timeout     time.Duration `yaml:"timeout"`
	KeepHost    bool          `yaml:"keep_host"`
	Order       string        `yaml:"order"`
	BodyLimit   int64         `yaml:"body_limit"`
	// AllowTargets admits replay targets (host[:port], *.domain[:port], CIDR);
	// see replayer.CheckTarget for what is admitted without it.
	AllowTargets []string `yaml:"allow_targets"`
	// MaxRate caps window replays, e.g. "10000/s" (the default), and, when
	// set, the send rate of a live replay (its catch-up after a restart).
	MaxRate string `yaml:"max_rate"`
	// MaxLag is how late a window-replay send may be before it is dropped.
	MaxLag time.Duration `yaml:"max_lag"`
	// SkipOlderThan: live mode skips records captured longer ago than this
	// (0: replay everything).
	SkipOlderThan time.Duration `yaml:"skip_older_than"`

	// fileTarget is Target as the -c file set it (before flags), which is
	// allowed without an allowlist.
	fileTarget string
	// maxRateSet: --max-rate was given (live replays are capped only when
	// --max-rate or replay.max_rate is set).
	maxRateSet bool
}

// membership is how this process's consumers join their groups: the static
// instance id, if any, and the session timeout (0: the default).
func (c *Config) membership(session time.Duration) broker.Membership {
	return broker.Membership{InstanceID: c.InstanceID, SessionTimeout: session}
}

// usageError is a bad flag or configuration: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// loadConfigFile decodes path into cfg (over the values already in it).
func loadConfigFile(path string, cfg *Config) error {
	_, err := loadConfig(path, cfg)
	return err
}

// loadConfig decodes path into cfg (over the values already in it) and
// returns the top-level keys the file sets. An error names the file, the
// line and the YAML path ("config x.yaml: line 3: proxy.smaple: unknown key;
// did you mean sample?"), never a Go type.
func loadConfig(path string, cfg *Config) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("config: %v", err)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, usagef("config %s: %s", path, stripYAMLPrefix(err.Error()))
	}
	if err := checkConfigNode(&doc, reflect.TypeOf(*cfg)); err != nil {
		return nil, usagef("config %s: %v", path, err)
	}
	keys := map[string]bool{}
	if len(doc.Content) > 0 && doc.Content[0].Kind == yaml.MappingNode {
		m := doc.Content[0].Content
		for i := 0; i+1 < len(m); i += 2 {
			keys[m[i].Value] = true
		}
	}
	// The walker found nothing wrong; the strict decoder stays as a
	// backstop.
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, usagef("config %s: %s", path, strings.Join(te.Errors, "; "))
		}
		return nil, usagef("config %s: %s", path, stripYAMLPrefix(err.Error()))
	}
	return keys, nil
}

// stripYAMLPrefix drops the "yaml: " the parser puts before its messages.
func stripYAMLPrefix(s string) string { return strings.TrimPrefix(s, "yaml: ") }

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

// VPCConfig configures the VPC Traffic Mirroring collector (`mirrorline vpc`);
// zero values take the defaults shown by `mirrorline vpc --help`.
type VPCConfig struct {
	Listen     string   `yaml:"listen"`
	VNIs       []uint32 `yaml:"vnis"`
	Ports      []uint16 `yaml:"ports"`
	ReadBuffer int      `yaml:"read_buffer"`
	TCPCapture `yaml:",inline"`
}

// ImportConfig configures `mirrorline import`; zero values take the defaults.
type ImportConfig struct {
	Ports       []uint16 `yaml:"ports"`
	BodyLimit   int64    `yaml:"body_limit"`
	CollectorID string   `yaml:"collector_id"`
}

// CompareConfig configures the comparator (see docs/comparator.md): its
// Kafka group, where a new group starts, how much of mirror.diff.S is read
// at start to relearn noise, the redaction rules applied to shadow and
// secondary responses (default: redact.rules, the rules that produced the
// primary's clean records), and the comparison settings.
type CompareConfig struct {
	Group             string           `yaml:"group"`
	Start             string           `yaml:"start"`
	Prime             string           `yaml:"prime"`
	Redact            *redactor.Config `yaml:"redact"`
	comparator.Config `yaml:",inline"`
}

// EBPFConfig configures the eBPF kernel-capture collector (`mirrorline ebpf`);
// zero values take the defaults shown by `mirrorline ebpf --help`.
type EBPFConfig struct {
	Interfaces []string `yaml:"interfaces"`
	Ports      []uint16 `yaml:"ports"`
	Hooks      string   `yaml:"hooks"`
	SnapLen    int      `yaml:"snaplen"`
	RingBuffer int      `yaml:"ring_buffer"`
	TCPCapture `yaml:",inline"`
}

// TCPCapture is what the packet collectors (vpc, ebpf) share: TCP reassembly
// and HTTP pairing limits, and the publishing queue.
type TCPCapture struct {
	BodyLimit    int64         `yaml:"body_limit"`
	IdleTimeout  time.Duration `yaml:"idle_timeout"`
	GapTimeout   time.Duration `yaml:"gap_timeout"`
	MaxStreams   int           `yaml:"max_streams"`
	StreamBuffer int           `yaml:"stream_buffer"`
	MaxBuffered  int           `yaml:"max_buffered"`
	QueueRecords int           `yaml:"queue_records"`
	QueueBytes   int           `yaml:"queue_bytes"`
	CollectorID  string        `yaml:"collector_id"`
}

// trackerOptions are the TCP reassembly and HTTP pairing settings of a
// packet collector as tcpstream.Tracker options.
func (c TCPCapture) trackerOptions() []tcpstream.TrackerOption {
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
