package config

import (
	"time"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/ebpf"
	"github.com/mirrorline/mirrorline/collector/tcpstream"
	"github.com/mirrorline/mirrorline/comparator"
	"github.com/mirrorline/mirrorline/redactor"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/stage"
)

// File is the YAML file given with -c. Every command reads the sections it
// needs; flags given on the command line override the file, and the file
// overrides the defaults. Unknown keys are an error.
type File struct {
	Kafka       broker.Config `yaml:",inline"`
	Service     string        `yaml:"service"`
	MetricsAddr string        `yaml:"metrics_addr"`
	LogLevel    string        `yaml:"log_level"`
	LogJSON     bool          `yaml:"log_json"`
	Embedded    Embedded      `yaml:"embedded"`
	Topics      Topics        `yaml:"topics"`
	Proxy       Proxy         `yaml:"proxy"`
	Replay      Replay        `yaml:"replay"`
	Redact      Redact        `yaml:"redact"`
	VPC         VPC           `yaml:"vpc"`
	EBPF        EBPF          `yaml:"ebpf"`
	Import      Import        `yaml:"import"`
	Sink        Sink          `yaml:"sink"`
	Compare     Compare       `yaml:"compare"`
	// InstanceID is the static group membership id of this process's
	// consumers (redactor, live replayer, comparator); empty: dynamic
	// members. See stage.Membership.
	InstanceID string `yaml:"instance_id"`
	// Collectors are the capture collectors `up` runs (proxy, sink, vpc,
	// ebpf); default: proxy when proxy.primary is set.
	Collectors []string `yaml:"collectors"`

	// set are the dotted keys the loaded file sets (see Set).
	set map[string]bool
}

// Default returns the configuration before any file or flag: every
// default in one place.
func Default() File {
	f := File{
		LogLevel: DefaultLogLevel,
		Embedded: Embedded{Addr: DefaultEmbeddedAddr},
		Topics:   Topics{Partitions: DefaultPartitions, Replication: DefaultReplication},
		Proxy: Proxy{
			Listen:       DefaultProxyListen,
			Sample:       DefaultSample,
			BodyLimit:    collector.DefaultBodyLimit,
			QueueRecords: collector.DefaultQueueRecords,
			QueueBytes:   collector.DefaultQueueBytes,
		},
		Sink: Sink{
			Listen:       DefaultSinkListen,
			BodyLimit:    collector.DefaultBodyLimit,
			QueueRecords: collector.DefaultQueueRecords,
			QueueBytes:   collector.DefaultQueueBytes,
		},
		Redact: Redact{OnFailure: string(redactor.Quarantine), Batch: redactor.DefaultBatch, SessionTimeout: stage.DefaultSessionTimeout},
		Replay: Replay{
			Concurrency: replayer.DefaultConcurrency,
			Timeout:     replayer.DefaultTimeout,
			BodyLimit:   replayer.DefaultResponseBodyLimit,
			MaxRate:     replayer.FormatRate(replayer.DefaultMaxRate),
			MaxLag:      replayer.DefaultMaxLag,
		},
		Compare: Compare{Prime: DefaultPrime, Config: comparator.Config{}.WithDefaults()},
	}
	f.fillDefaults()
	return f
}

// fillDefaults gives the zero fields of the sections whose zero values mean
// "the default" (vpc, ebpf, import) their defaults; Load calls it after
// decoding, as those sections document.
func (f *File) fillDefaults() {
	f.VPC.fillDefaults()
	f.EBPF.fillDefaults()
	if f.Import.BodyLimit == 0 {
		f.Import.BodyLimit = collector.DefaultBodyLimit
	}
}

// Set reports whether the loaded file sets the dotted key path (e.g.
// "replay.max_rate", "metrics_addr"), whatever its value; a section is set
// when the file has it. A File that was not loaded sets nothing.
func (f *File) Set(path string) bool { return f.set[path] }

// Membership is how this process's consumers join their groups: the static
// instance id, if any, and the session timeout (0: the default).
func (f *File) Membership(session time.Duration) stage.Membership {
	return stage.Membership{InstanceID: f.InstanceID, SessionTimeout: session}
}

// Embedded configures the in-process broker of `mirrorline up`.
type Embedded struct {
	Addr    string `yaml:"addr"`
	DataDir string `yaml:"data_dir"`
}

// Topics is how `topics create` and `up` create topics.
type Topics struct {
	Partitions  int32                    `yaml:"partitions"`
	Replication int16                    `yaml:"replication"`
	Retention   map[string]time.Duration `yaml:"retention"`
}

// Proxy configures the proxy collector.
type Proxy struct {
	Listen       string            `yaml:"listen"`
	Primary      string            `yaml:"primary"`
	Sample       float64           `yaml:"sample"`
	BodyLimit    int64             `yaml:"body_limit"`
	PreserveHost bool              `yaml:"preserve_host"`
	QueueRecords int               `yaml:"queue_records"`
	QueueBytes   int               `yaml:"queue_bytes"`
	CollectorID  string            `yaml:"collector_id"`
	Routes       []collector.Route `yaml:"routes"`
	// Limits: max_conns, read_header_timeout, idle_timeout,
	// max_header_bytes, body_timeout, min_body_rate.
	collector.Limits `yaml:",inline"`
}

// Sink configures the mirror sink collector.
type Sink struct {
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

// SampleOrDefault is the sink's sample fraction (default 1).
func (s Sink) SampleOrDefault() float64 {
	if s.Sample == nil {
		return DefaultSample
	}
	return *s.Sample
}

// Redact configures the redactor: its Kafka session and the rules
// (layered over the built-in safe defaults, see docs/redaction.md).
type Redact struct {
	Group           string          `yaml:"group"`
	TransactionalID string          `yaml:"transactional_id"`
	OnFailure       string          `yaml:"on_failure"`
	Batch           int             `yaml:"batch"`
	SessionTimeout  time.Duration   `yaml:"session_timeout"`
	Rules           redactor.Config `yaml:"rules"`
}

// Replay configures the replayer (live and window replays).
type Replay struct {
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
}

// VPC configures the VPC Traffic Mirroring collector (`mirrorline vpc`);
// zero values take the defaults shown by `mirrorline vpc --help`.
type VPC struct {
	Listen     string   `yaml:"listen"`
	VNIs       []uint32 `yaml:"vnis"`
	Ports      []uint16 `yaml:"ports"`
	ReadBuffer int      `yaml:"read_buffer"`
	TCPCapture `yaml:",inline"`
}

func (c *VPC) fillDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultVPCListen
	}
	if c.ReadBuffer == 0 {
		c.ReadBuffer = DefaultVPCReadBuffer
	}
	c.TCPCapture.fillDefaults()
}

// EBPF configures the eBPF kernel-capture collector (`mirrorline ebpf`);
// zero values take the defaults shown by `mirrorline ebpf --help`.
type EBPF struct {
	Interfaces []string `yaml:"interfaces"`
	Ports      []uint16 `yaml:"ports"`
	Hooks      string   `yaml:"hooks"`
	SnapLen    int      `yaml:"snaplen"`
	RingBuffer int      `yaml:"ring_buffer"`
	TCPCapture `yaml:",inline"`
}

func (c *EBPF) fillDefaults() {
	if len(c.Interfaces) == 0 {
		c.Interfaces = []string{ebpf.DefaultInterface}
	}
	if c.Hooks == "" {
		c.Hooks = string(ebpf.HooksAuto)
	}
	if c.SnapLen == 0 {
		c.SnapLen = ebpf.MaxSnapLen
	}
	if c.RingBuffer == 0 {
		c.RingBuffer = ebpf.DefaultRingSize
	}
	c.TCPCapture.fillDefaults()
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

func (c *TCPCapture) fillDefaults() {
	if c.BodyLimit == 0 {
		c.BodyLimit = collector.DefaultBodyLimit
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
		{&c.QueueRecords, collector.DefaultQueueRecords},
		{&c.QueueBytes, collector.DefaultQueueBytes},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
}

// Import configures `mirrorline import`; zero values take the defaults.
type Import struct {
	Ports       []uint16 `yaml:"ports"`
	BodyLimit   int64    `yaml:"body_limit"`
	CollectorID string   `yaml:"collector_id"`
}

// Compare configures the comparator (see docs/comparator.md): its Kafka
// group, where a new group starts, how much of mirror.diff.S is read at
// start to relearn noise, the redaction rules applied to shadow and
// secondary responses (default: redact.rules, the rules that produced the
// primary's clean records), and the comparison settings.
type Compare struct {
	Group             string           `yaml:"group"`
	Start             string           `yaml:"start"`
	Prime             string           `yaml:"prime"`
	Redact            *redactor.Config `yaml:"redact"`
	comparator.Config `yaml:",inline"`
}
