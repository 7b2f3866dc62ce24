package config

import (
	"cmp"
	"time"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/ebpf"
	"github.com/mirrorline/mirrorline/collector/tcpstream"
	"github.com/mirrorline/mirrorline/collector/vpc"
	"github.com/mirrorline/mirrorline/comparator"
	"github.com/mirrorline/mirrorline/redactor"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/replayer/breaker"
	"github.com/mirrorline/mirrorline/replayer/credential"
	"github.com/mirrorline/mirrorline/replayer/middleware"
	"github.com/mirrorline/mirrorline/replayer/route"
	"github.com/mirrorline/mirrorline/stage"
	"github.com/mirrorline/mirrorline/stub"
)

// File is the YAML file given with -c. Every command reads the sections it
// needs; flags given on the command line override the file, and the file
// overrides the defaults. Unknown keys are an error.
type File struct {
	Kafka       broker.Config `yaml:",inline" flag:",inline"`
	Service     string        `yaml:"service"`
	MetricsAddr string        `yaml:"metrics_addr"`
	LogLevel    string        `yaml:"log_level" flag:"log-level" help:"trace, debug, info, warn or error"`
	LogJSON     bool          `yaml:"log_json" flag:"log-json" help:"log as JSON lines"`
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
	GRPC        GRPC          `yaml:"grpc"`
	Stub        Stub          `yaml:"stub"`
	// InstanceID: see stage.Membership.
	InstanceID string `yaml:"instance_id" flag:"instance-id" help:"static consumer group member id of the redactor, replayer and comparator, stable across restarts of this replica (env MIRRORLINE_INSTANCE_ID; default: dynamic membership)"`
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
			TraceContext: true,
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
		Stub: Stub{Since: stub.DefaultSince, MaxRecords: stub.DefaultMaxRecords, MaxBytes: stub.DefaultMaxBytes, Wait: stub.DefaultWait,
			Latency: stub.LatencyNone, OnMissStatus: stub.DefaultMissStatus, OnMissBody: stub.DefaultMissBody,
			BodyLimit: stub.DefaultBodyLimit, QueueRecords: stub.DefaultQueueRecords},
	}
	f.fillDefaults()
	return f
}

// fillDefaults gives the zero fields of the sections whose zero values mean
// "the default" (vpc, ebpf, import) their defaults; Load calls it after
// decoding, as those sections document.
func (f *File) fillDefaults() {
	// A poll interval the file sets is kept as written, 0 included (vpc:
	// read as soon as datagrams are queued; ebpf: refused by Validate).
	f.VPC.fillDefaults(f.Set("vpc.poll_interval"))
	f.EBPF.fillDefaults(f.Set("ebpf.poll_interval"))
	setDefault(&f.Import.BodyLimit, collector.DefaultBodyLimit)
}

// setDefault sets *v to def when it is zero.
func setDefault[T comparable](v *T, def T) { *v = cmp.Or(*v, def) }

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
	Partitions  int32                    `yaml:"partitions" flag:"partitions" help:"partitions per topic"`
	Replication int16                    `yaml:"replication" flag:"replication" help:"replication factor (-1: broker default)"`
	Retention   map[string]time.Duration `yaml:"retention"`
}

// Proxy configures the proxy collector.
type Proxy struct {
	Listen       string            `yaml:"listen" flag:"listen" help:"address to listen on"`
	Primary      string            `yaml:"primary" flag:"primary" help:"URL of the primary service"`
	Sample       float64           `yaml:"sample" flag:"sample" help:"fraction of matching requests captured (0..1)"`
	BodyLimit    int64             `yaml:"body_limit" flag:"body-limit" help:"body bytes captured per request and response; longer bodies are flagged truncated"`
	PreserveHost bool              `yaml:"preserve_host" flag:"preserve-host" help:"send the client's Host header to the primary"`
	QueueRecords int               `yaml:"queue_records" flag:"queue-records" help:"records buffered for Kafka before new captures are dropped"`
	QueueBytes   int               `yaml:"queue_bytes" flag:"queue-bytes" help:"bytes buffered for Kafka before new captures are dropped"`
	CollectorID  string            `yaml:"collector_id" flag:"collector-id" help:"name of this collector in records (default: host name)"`
	Routes       []collector.Route `yaml:"routes"`
	// TLSCert and TLSKey serve clients over TLS (HTTP/2 and HTTP/1.1 by
	// ALPN); without them plaintext HTTP/1.1 and h2c.
	TLSCert string `yaml:"tls_cert" flag:"tls-cert" help:"PEM certificate (chain) file: serve clients over TLS, HTTP/2 or HTTP/1.1 by ALPN (with --tls-key; default: plaintext HTTP/1.1 and h2c)"`
	TLSKey  string `yaml:"tls_key" flag:"tls-key" help:"PEM private key file of --tls-cert"`
	// PrimaryProtocol: see proxy.PrimaryAuto and friends.
	PrimaryProtocol string `yaml:"primary_protocol" flag:"primary-protocol" help:"protocol to the primary: auto (HTTP/2 where TLS ALPN offers it; to an http:// primary HTTP/1.1, gRPC over h2c), http1, h2 (TLS) or h2c (prior knowledge)"`
	// TraceContext, Egress and EgressAllow: isolation (docs/isolation.md).
	TraceContext bool     `yaml:"trace_context" flag:"trace-context" help:"add W3C trace context to captured requests (traceparent when absent or invalid, tracestate mirrorline=<exchange id>), tying the service's outbound calls to them"`
	Egress       bool     `yaml:"egress" flag:"egress" help:"capture the service's outbound calls instead of its inbound requests: a forward proxy (the service's HTTP_PROXY) without --primary, a reverse proxy to the one dependency --primary with it"`
	EgressAllow  []string `yaml:"egress_allow" flag:"egress-allow,array" help:"hosts (host or host:port) the egress forward proxy may reach (repeatable; default: every host the service asks for)"`
	// Limits: max_conns, read_header_timeout, idle_timeout,
	// max_header_bytes, body_timeout, min_body_rate.
	collector.Limits `yaml:",inline"`
}

// Sink configures the mirror sink collector.
type Sink struct {
	Listen       string   `yaml:"listen" flag:"listen" help:"address to listen on"`
	BodyLimit    int64    `yaml:"body_limit" flag:"body-limit" help:"body bytes captured per request"`
	KeyHeader    string   `yaml:"key_header" flag:"key-header" help:"key records by this header's first value (e.g. X-Forwarded-For) to keep a client's requests in order"`
	StripHeaders []string `yaml:"strip_headers" flag:"strip-header" help:"headers added by the mirroring proxy to remove (repeatable)"`
	QueueRecords int      `yaml:"queue_records" flag:"queue-records" help:"records buffered for Kafka before new captures are dropped"`
	QueueBytes   int      `yaml:"queue_bytes" flag:"queue-bytes" help:"bytes buffered for Kafka before new captures are dropped"`
	CollectorID  string   `yaml:"collector_id" flag:"collector-id" help:"name of this collector in records (default: host name)"`
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
	Group           string          `yaml:"group" flag:"group" help:"consumer group (default mirrorline-redact-SERVICE)"`
	TransactionalID string          `yaml:"transactional_id" flag:"transactional-id" help:"Kafka transactional id, stable per instance (default mirrorline-redact-SERVICE-HOSTNAME)"`
	OnFailure       string          `yaml:"on_failure" flag:"on-failure" help:"what to do with a record that cannot be scrubbed: quarantine or drop"`
	Batch           int             `yaml:"batch" flag:"batch" help:"records per transaction at most"`
	TxInterval      time.Duration   `yaml:"transaction_interval" flag:"transaction-interval" help:"begin transactions at least this far apart: fewer, fuller transactions when traffic is light, for at most this much more delay (0: each as soon as the previous ended)"`
	SessionTimeout  time.Duration   `yaml:"session_timeout" flag:"session-timeout" help:"consumer group session timeout: how soon a dead redactor's partitions move to another"`
	Rules           redactor.Config `yaml:"rules"`
}

// GRPC says where the protobuf schemas of gRPC services come from: with
// them the redactor's rules and the comparator's diffs name message fields
// by name; without, redaction runs its detectors on the messages' strings
// and diffs name fields by number.
type GRPC struct {
	DescriptorSets []string `yaml:"descriptor_sets" flag:"descriptor-set,array" help:"FileDescriptorSet file of the services' protos (protoc --include_imports --descriptor_set_out=FILE, or buf build -o FILE); repeatable"`
	Reflection     string   `yaml:"reflection" flag:"grpc-reflection" help:"host:port of a gRPC server with server reflection to read the schemas from (h2c; https://host:port for TLS)"`
}

// Replay configures the replayer (live and window replays).
type Replay struct {
	Target      string        `yaml:"target" flag:"target" help:"base URL of the shadow deployment"`
	Concurrency int           `yaml:"concurrency" flag:"concurrency" help:"requests in flight at most (window replays default to 64 unless set)"`
	Group       string        `yaml:"group" flag:"group" help:"live: consumer group (default mirrorline-replay-SERVICE)"`
	Instance    string        `yaml:"instance" flag:"instance" help:"name of this replayer in shadow records (default HOST-PID)"`
	Topic       string        `yaml:"topic" flag:"topic" help:"topic to consume (default mirror.clean.SERVICE)"`
	Start       string        `yaml:"start" flag:"start" help:"live: where a new group starts: latest (default) or earliest"`
	Timeout     time.Duration `yaml:"timeout" flag:"timeout" help:"timeout of each request to the target"`
	KeepHost    bool          `yaml:"keep_host" flag:"keep-host" help:"send the captured Host header instead of the target's"`
	Order       string        `yaml:"order" flag:"order" help:"live: connection (a connection's requests in order, one at a time) or none (all --concurrency slots; keeps up with a slower shadow)"`
	BodyLimit   int64         `yaml:"body_limit" flag:"body-limit" help:"response body bytes recorded per shadow response"`
	// AllowTargets admits replay targets (host[:port], *.domain[:port], CIDR);
	// see replayer.CheckTarget for what is admitted without it.
	AllowTargets []string `yaml:"allow_targets" flag:"allow-target,array" help:"allow replaying to host[:port], *.domain[:port] or CIDR (repeatable; replaces replay.allow_targets)"`
	// MaxRate is a rate such as "10000/s" (the default caps window replays).
	MaxRate       string        `yaml:"max_rate" flag:"max-rate" help:"cap on any speed or rate, per job; live: cap on the send rate, e.g. while catching up after a restart (default: none)"`
	MaxLag        time.Duration `yaml:"max_lag" flag:"max-lag" help:"drop (and count) a record that cannot be sent within this of its planned time"`
	SkipOlderThan time.Duration `yaml:"skip_older_than" flag:"skip-older-than" help:"live: skip (and count as dropped{reason=\"too_old\"}) records captured longer ago than this, so a shadow that cannot keep up stays near live traffic (default 0: replay all)"`
	// Safe, Select, Routes, Credentials, JWT and Breaker say which records
	// are replayed, where, rewritten how and with which credentials (see
	// replayer.Routing); Middleware is a program every request passes
	// through. Default: everything, unchanged, to Target.
	Safe        bool                   `yaml:"safe" flag:"safe" help:"replay only GET, HEAD and OPTIONS requests (the others are counted as dropped{reason=\"filtered\"})"`
	Select      route.Match            `yaml:"select"`
	Routes      []replayer.RouteConfig `yaml:"routes"`
	Credentials []credential.Header    `yaml:"credentials"`
	JWT         *credential.JWT        `yaml:"jwt"`
	Middleware  *middleware.Config     `yaml:"middleware"`
	Breaker     breaker.Config         `yaml:"breaker"`
}

// Routing is the replay section's routing (select, safe, routes,
// credentials, jwt, breaker).
func (r *Replay) Routing() replayer.Routing {
	return replayer.Routing{Select: r.Select, Safe: r.Safe, Routes: r.Routes, Credentials: r.Credentials, JWT: r.JWT, Breaker: r.Breaker}
}

// VPC configures the VPC Traffic Mirroring collector (`mirrorline vpc`);
// zero values take the defaults shown by `mirrorline vpc --help`.
type VPC struct {
	Listen     string   `yaml:"listen" flag:"listen" help:"UDP address receiving the VXLAN packets of the mirror session"`
	VNIs       []uint32 `yaml:"vnis"`
	Ports      []uint16 `yaml:"ports"`
	ReadBuffer int      `yaml:"read_buffer" flag:"read-buffer" help:"UDP socket receive buffer in bytes (capped by net.core.rmem_max)"`
	TCPCapture `yaml:",inline"`
}

func (c *VPC) fillDefaults(pollSet bool) {
	setDefault(&c.Listen, DefaultVPCListen)
	setDefault(&c.ReadBuffer, DefaultVPCReadBuffer)
	if !pollSet {
		setDefault(&c.PollInterval, vpc.DefaultPollInterval)
	}
	c.TCPCapture.fillDefaults()
}

// EBPF configures the eBPF kernel-capture collector (`mirrorline ebpf`);
// zero values take the defaults shown by `mirrorline ebpf --help`.
type EBPF struct {
	Interfaces []string `yaml:"interfaces" flag:"interface" help:"network interface to attach to (repeatable; pick interfaces each packet crosses once)"`
	Ports      []uint16 `yaml:"ports"`
	Hooks      string   `yaml:"hooks" flag:"hooks" help:"TC hooks per interface: auto (egress only on loopback, else both), both, ingress or egress"`
	SnapLen    int      `yaml:"snaplen" flag:"snaplen" help:"TCP payload bytes copied per packet; the rest becomes a capture gap"`
	RingBuffer int      `yaml:"ring_buffer" flag:"ring-buffer" help:"BPF ring buffer size in bytes (a power of two); when full, copies are dropped and counted"`
	TLS        EBPFTLS  `yaml:",inline" flag:",inline"`
	TCPCapture `yaml:",inline"`
}

// EBPFTLS configures `mirrorline ebpf --tls`: TLS plaintext captured with
// uprobes on OpenSSL and Go's crypto/tls of the selected processes.
type EBPFTLS struct {
	Enabled  bool     `yaml:"tls" flag:"tls" help:"capture the TLS plaintext of the --pid/--binary/--cgroup processes (OpenSSL libssl, Go crypto/tls) with uprobes instead of packets"`
	PIDs     []int    `yaml:"pids" flag:"pid" help:"with --tls: capture this process and its descendants (repeatable)"`
	Binaries []string `yaml:"binaries" flag:"binary" help:"with --tls: capture the processes running this executable (repeatable)"`
	Cgroups  []string `yaml:"cgroups" flag:"cgroup" help:"with --tls: capture the processes in this cgroup v2 group or below, as /system.slice/x.service (repeatable)"`
	LibSSL   string   `yaml:"libssl" flag:"libssl" help:"with --tls: OpenSSL libssl to probe instead of the one each process maps"`
}

func (c *EBPF) fillDefaults(pollSet bool) {
	if len(c.Interfaces) == 0 {
		c.Interfaces = []string{ebpf.DefaultInterface}
	}
	setDefault(&c.Hooks, string(ebpf.HooksAuto))
	setDefault(&c.SnapLen, ebpf.MaxSnapLen)
	setDefault(&c.RingBuffer, ebpf.DefaultRingSize)
	if !pollSet {
		setDefault(&c.PollInterval, ebpf.DefaultPollInterval)
	}
	c.TCPCapture.fillDefaults()
}

// TCPCapture is what the packet collectors (vpc, ebpf) share: TCP reassembly
// and HTTP pairing limits, and the publishing queue.
type TCPCapture struct {
	BodyLimit    int64         `yaml:"body_limit" flag:"body-limit" help:"body bytes captured per request and response; longer bodies are flagged truncated"`
	IdleTimeout  time.Duration `yaml:"idle_timeout" flag:"idle-timeout" help:"flush and forget a TCP stream without packets for this long"`
	GapTimeout   time.Duration `yaml:"gap_timeout" flag:"gap-timeout" help:"give up on a missing TCP segment after this long"`
	MaxStreams   int           `yaml:"max_streams" flag:"max-streams" help:"TCP streams tracked at once; packets of new streams beyond it are dropped and counted"`
	StreamBuffer int           `yaml:"stream_buffer" flag:"stream-buffer" help:"out-of-order bytes buffered per stream direction"`
	MaxBuffered  int           `yaml:"max_buffered" flag:"max-buffered" help:"out-of-order bytes buffered over all streams"`
	QueueRecords int           `yaml:"queue_records" flag:"queue-records" help:"records buffered for Kafka before new captures are dropped"`
	QueueBytes   int           `yaml:"queue_bytes" flag:"queue-bytes" help:"bytes buffered for Kafka before new captures are dropped"`
	CollectorID  string        `yaml:"collector_id" flag:"collector-id" help:"name of this collector in records (default: host name)"`
	PollInterval time.Duration `yaml:"poll_interval" flag:"poll-interval" help:"longest captured packets wait in the kernel before they are read, in batches (sooner when many wait): longer means fewer wake-ups and less CPU for that much more delay (at most 1s)"`
}

func (c *TCPCapture) fillDefaults() {
	setDefault(&c.BodyLimit, collector.DefaultBodyLimit)
	setDefault(&c.IdleTimeout, tcpstream.DefaultIdleTimeout)
	setDefault(&c.GapTimeout, tcpstream.DefaultGapTimeout)
	setDefault(&c.MaxStreams, tcpstream.DefaultMaxStreams)
	setDefault(&c.StreamBuffer, tcpstream.DefaultMaxStreamBuffer)
	setDefault(&c.MaxBuffered, tcpstream.DefaultMaxBuffered)
	setDefault(&c.QueueRecords, collector.DefaultQueueRecords)
	setDefault(&c.QueueBytes, collector.DefaultQueueBytes)
}

// Import configures `mirrorline import`; zero values take the defaults.
type Import struct {
	Ports       []uint16 `yaml:"ports"`
	BodyLimit   int64    `yaml:"body_limit" flag:"body-limit" help:"body bytes kept per request and response; longer bodies are flagged truncated"`
	CollectorID string   `yaml:"collector_id" flag:"collector-id" help:"name of this collector in records (default: host name)"`
}

// Compare configures the comparator (see docs/comparator.md): its Kafka
// group, where a new group starts, how much of mirror.diff.S is read at
// start to relearn noise, the redaction rules applied to shadow and
// secondary responses (default: redact.rules, the rules that produced the
// primary's clean records), and the comparison settings.
type Compare struct {
	Group             string           `yaml:"group" flag:"group" help:"consumer group (default mirrorline-compare-SERVICE)"`
	Start             string           `yaml:"start" flag:"start" help:"where a new group starts: latest (default) or earliest"`
	Prime             string           `yaml:"prime" flag:"prime" help:"relearn noise at start from this much of mirror.diff.SERVICE (duration, or off)"`
	Redact            *redactor.Config `yaml:"redact"`
	comparator.Config `yaml:",inline"`
}

// Stub configures the stub (`mirrorline stub`, and `up` when listen is
// set): the shadow's downstream endpoint answering its outbound calls with
// the primary's recorded ones (see docs/isolation.md).
type Stub struct {
	Listen       string        `yaml:"listen" flag:"listen" help:"address the shadow's outbound calls come to (its HTTP_PROXY, or a dependency's address)"`
	Dependency   string        `yaml:"dependency" flag:"dependency" help:"host[:port] of the one dependency this stub stands for (default: the Host of each call)"`
	Since        time.Duration `yaml:"since" flag:"since" help:"index the recorded egress calls of mirror.clean.SERVICE from this far back, then follow live"`
	MaxRecords   int           `yaml:"max_records" flag:"max-records" help:"recorded calls kept in the index at most (oldest evicted first)"`
	MaxBytes     int64         `yaml:"max_bytes" flag:"max-bytes" help:"bytes of recorded calls kept in the index at most (oldest evicted first)"`
	Wait         time.Duration `yaml:"wait" flag:"wait" help:"how long a call with no recorded match waits for an index behind the clean topic (0: not at all)"`
	Latency      string        `yaml:"latency" flag:"latency" help:"none, or recorded: answer a hit no sooner than the primary's recorded latency"`
	OnMissStatus int           `yaml:"on_miss_status" flag:"on-miss-status" help:"status of the answer to a call with no recorded match (always with X-Mirrorline-Stub: miss)"`
	OnMissBody   string        `yaml:"on_miss_body" flag:"on-miss-body" help:"body of the answer to a call with no recorded match"`
	// AllowPassthrough: unmatched calls to exactly these hosts go to the
	// real dependency; none by default.
	AllowPassthrough []string `yaml:"allow_passthrough" flag:"allow-passthrough,array" help:"let unmatched calls to exactly this host[:port] reach the real dependency (repeatable; default none)"`
	BodyLimit        int64    `yaml:"body_limit" flag:"body-limit" help:"request body bytes read and matched per call"`
	QueueRecords     int      `yaml:"queue_records" flag:"queue-records" help:"shadow egress records buffered for Kafka before new ones are dropped"`
	Instance         string   `yaml:"instance" flag:"instance" help:"name of this stub in its records (default HOST-PID)"`
}
