package config

import (
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/comparator"
)

// The BindFlags methods bind a section's command-line flags to its fields:
// call them after Load, so a flag's default is the value of the defaults
// and the file, and a flag given overrides both.

// BindFlags binds the flags every command has: Kafka's connection, the
// static member id and logging.
func (f *File) BindFlags(fs *pflag.FlagSet) {
	k := &f.Kafka
	fs.StringSliceVar(&k.Brokers, "brokers", k.Brokers, "Kafka bootstrap brokers host:port,... (env MIRRORLINE_BROKERS)")
	fs.BoolVar(&k.TLS.Enabled, "kafka-tls", k.TLS.Enabled, "connect to Kafka with TLS")
	fs.StringVar(&k.TLS.CAFile, "kafka-tls-ca", k.TLS.CAFile, "PEM file of CAs to trust for Kafka")
	fs.StringVar(&k.TLS.CertFile, "kafka-tls-cert", k.TLS.CertFile, "client certificate PEM file for Kafka")
	fs.StringVar(&k.TLS.KeyFile, "kafka-tls-key", k.TLS.KeyFile, "client key PEM file for Kafka")
	fs.StringVar(&k.SASL.Mechanism, "kafka-sasl-mechanism", k.SASL.Mechanism, "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&k.SASL.Username, "kafka-sasl-user", k.SASL.Username, "SASL user name")
	fs.StringVar(&k.SASL.PasswordFile, "kafka-sasl-password-file", k.SASL.PasswordFile, "file holding the SASL password")
	fs.StringVar(&k.SASL.PasswordEnv, "kafka-sasl-password-env", k.SASL.PasswordEnv, "environment variable holding the SASL password")
	fs.StringVar(&f.InstanceID, "instance-id", f.InstanceID, "static consumer group member id of the redactor, replayer and comparator, stable across restarts of this replica (env MIRRORLINE_INSTANCE_ID; default: dynamic membership)")
	fs.StringVar(&f.LogLevel, "log-level", f.LogLevel, "trace, debug, info, warn or error")
	fs.BoolVar(&f.LogJSON, "log-json", f.LogJSON, "log as JSON lines")
}

// BindFlags binds the flags of `topics create`.
func (t *Topics) BindFlags(fs *pflag.FlagSet) {
	fs.Int32Var(&t.Partitions, "partitions", t.Partitions, "partitions per topic")
	fs.Int16Var(&t.Replication, "replication", t.Replication, "replication factor (-1: broker default)")
}

// BindFlags binds the proxy's flags.
func (p *Proxy) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&p.Listen, "listen", p.Listen, "address to listen on")
	fs.StringVar(&p.Primary, "primary", p.Primary, "URL of the primary service")
	fs.Float64Var(&p.Sample, "sample", p.Sample, "fraction of matching requests captured (0..1)")
	fs.Int64Var(&p.BodyLimit, "body-limit", p.BodyLimit, "body bytes captured per request and response; longer bodies are flagged truncated")
	fs.BoolVar(&p.PreserveHost, "preserve-host", p.PreserveHost, "send the client's Host header to the primary")
	bindQueue(fs, &p.QueueRecords, &p.QueueBytes)
	bindCollectorID(fs, &p.CollectorID)
	bindLimits(fs, &p.Limits)
}

// BindFlags binds the sink's flags.
func (s *Sink) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&s.Listen, "listen", s.Listen, "address to listen on")
	fs.Var(&optionalFloat{p: &s.Sample, def: DefaultSample}, "sample", "fraction of copies published (0..1); the others are still answered 200")
	fs.Int64Var(&s.BodyLimit, "body-limit", s.BodyLimit, "body bytes captured per request")
	fs.StringVar(&s.KeyHeader, "key-header", s.KeyHeader, "key records by this header's first value (e.g. X-Forwarded-For) to keep a client's requests in order")
	fs.StringSliceVar(&s.StripHeaders, "strip-header", s.StripHeaders, "headers added by the mirroring proxy to remove (repeatable)")
	bindQueue(fs, &s.QueueRecords, &s.QueueBytes)
	bindCollectorID(fs, &s.CollectorID)
	bindLimits(fs, &s.Limits)
}

// BindFlags binds the vpc collector's flags but --port and --vni, which
// the command converts.
func (c *VPC) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "UDP address receiving the VXLAN packets of the mirror session")
	fs.IntVar(&c.ReadBuffer, "read-buffer", c.ReadBuffer, "UDP socket receive buffer in bytes (capped by net.core.rmem_max)")
	c.TCPCapture.BindFlags(fs)
}

// BindFlags binds the ebpf collector's flags but --port, which the command
// converts.
func (c *EBPF) BindFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&c.Interfaces, "interface", c.Interfaces, "network interface to attach to (repeatable; pick interfaces each packet crosses once)")
	fs.StringVar(&c.Hooks, "hooks", c.Hooks, "TC hooks per interface: auto (egress only on loopback, else both), both, ingress or egress")
	fs.IntVar(&c.SnapLen, "snaplen", c.SnapLen, "TCP payload bytes copied per packet; the rest becomes a capture gap")
	fs.IntVar(&c.RingBuffer, "ring-buffer", c.RingBuffer, "BPF ring buffer size in bytes (a power of two); when full, copies are dropped and counted")
	c.TCPCapture.BindFlags(fs)
}

// BindFlags binds the reassembly, pairing and queue flags of a packet
// collector.
func (c *TCPCapture) BindFlags(fs *pflag.FlagSet) {
	fs.Int64Var(&c.BodyLimit, "body-limit", c.BodyLimit, "body bytes captured per request and response; longer bodies are flagged truncated")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "flush and forget a TCP stream without packets for this long")
	fs.DurationVar(&c.GapTimeout, "gap-timeout", c.GapTimeout, "give up on a missing TCP segment after this long")
	fs.IntVar(&c.MaxStreams, "max-streams", c.MaxStreams, "TCP streams tracked at once; packets of new streams beyond it are dropped and counted")
	fs.IntVar(&c.StreamBuffer, "stream-buffer", c.StreamBuffer, "out-of-order bytes buffered per stream direction")
	fs.IntVar(&c.MaxBuffered, "max-buffered", c.MaxBuffered, "out-of-order bytes buffered over all streams")
	bindQueue(fs, &c.QueueRecords, &c.QueueBytes)
	bindCollectorID(fs, &c.CollectorID)
}

// BindFlags binds the import's flags but --port, which the command
// converts.
func (c *Import) BindFlags(fs *pflag.FlagSet) {
	fs.Int64Var(&c.BodyLimit, "body-limit", c.BodyLimit, "body bytes kept per request and response; longer bodies are flagged truncated")
	bindCollectorID(fs, &c.CollectorID)
}

// BindFlags binds the redactor's flags.
func (r *Redact) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&r.Group, "group", r.Group, "consumer group (default mirrorline-redact-SERVICE)")
	fs.StringVar(&r.TransactionalID, "transactional-id", r.TransactionalID, "Kafka transactional id, stable per instance (default mirrorline-redact-SERVICE-HOSTNAME)")
	fs.StringVar(&r.OnFailure, "on-failure", r.OnFailure, "what to do with a record that cannot be scrubbed: quarantine or drop")
	fs.IntVar(&r.Batch, "batch", r.Batch, "records per transaction at most")
	fs.DurationVar(&r.SessionTimeout, "session-timeout", r.SessionTimeout, "consumer group session timeout: how soon a dead redactor's partitions move to another")
}

// BindFlags binds the replayer's flags of the replay section (the window
// job's own flags are the command's).
func (r *Replay) BindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&r.Target, "target", r.Target, "base URL of the shadow deployment")
	fs.IntVar(&r.Concurrency, "concurrency", r.Concurrency, "requests in flight at most (window replays default to 64 unless set)")
	fs.StringVar(&r.Order, "order", r.Order, "live: connection (a connection's requests in order, one at a time) or none (all --concurrency slots; keeps up with a slower shadow)")
	fs.StringVar(&r.Instance, "instance", r.Instance, "name of this replayer in shadow records (default HOST-PID)")
	fs.StringVar(&r.Group, "group", r.Group, "live: consumer group (default mirrorline-replay-SERVICE)")
	fs.StringVar(&r.Topic, "topic", r.Topic, "topic to consume (default mirror.clean.SERVICE)")
	fs.StringVar(&r.Start, "start", r.Start, "live: where a new group starts: latest (default) or earliest")
	fs.DurationVar(&r.Timeout, "timeout", r.Timeout, "timeout of each request to the target")
	fs.BoolVar(&r.KeepHost, "keep-host", r.KeepHost, "send the captured Host header instead of the target's")
	fs.Int64Var(&r.BodyLimit, "body-limit", r.BodyLimit, "response body bytes recorded per shadow response")
	fs.DurationVar(&r.SkipOlderThan, "skip-older-than", r.SkipOlderThan, "live: skip (and count as dropped{reason=\"too_old\"}) records captured longer ago than this, so a shadow that cannot keep up stays near live traffic (default 0: replay all)")
	fs.StringArrayVar(&r.AllowTargets, "allow-target", r.AllowTargets, "allow replaying to host[:port], *.domain[:port] or CIDR (repeatable; replaces replay.allow_targets)")
	fs.StringVar(&r.MaxRate, "max-rate", r.MaxRate, "cap on any speed or rate, per job; live: cap on the send rate, e.g. while catching up after a restart (default: none)")
	fs.DurationVar(&r.MaxLag, "max-lag", r.MaxLag, "drop (and count) a record that cannot be sent within this of its planned time")
}

// BindFlags binds the comparator's flags.
func (c *Compare) BindFlags(fs *pflag.FlagSet) {
	fs.DurationVar(&c.JoinWindow, "join-window", c.JoinWindow, "how long to wait for the other side of an exchange before it is missing")
	fs.StringSliceVar(&c.Headers, "headers", c.Headers, "response headers to compare")
	fs.BoolVar(&c.Secondary.Enabled, "secondary", c.Secondary.Enabled, "learn noise from a secondary: shadow-topic records of replay job \""+comparator.DefaultSecondaryJob+"\" (see --secondary-job/-target/-topic)")
	fs.StringVar(&c.Secondary.Job, "secondary-job", c.Secondary.Job, "secondary = shadow-topic records of this replay job")
	fs.StringVar(&c.Secondary.Target, "secondary-target", c.Secondary.Target, "secondary = shadow-topic records replayed to a target URL starting with this")
	fs.StringVar(&c.Secondary.Topic, "secondary-topic", c.Secondary.Topic, "secondary = every record of this topic")
	fs.StringVar(&c.ShadowJob, "job", c.ShadowJob, "replay job to judge: "+comparator.LiveJob+" (default), or a window replay's --job (its own group, starting at the earliest record)")
	fs.StringVar(&c.ShadowJob, "shadow-job", c.ShadowJob, "same as --job")
	_ = fs.MarkHidden("shadow-job")
	fs.StringArrayVar(&c.Ignore.JSONPaths, "ignore-path", c.Ignore.JSONPaths, "JSON path never compared (\"created_at\", \"items.*.etag\", \"**.trace_id\"); repeatable")
	fs.StringArrayVar(&c.Ignore.Headers, "ignore-header", c.Ignore.Headers, "header never compared ('*' wildcards); repeatable")
	fs.BoolVar(&c.JSON.UnorderedArrays, "unordered-arrays", c.JSON.UnorderedArrays, "compare JSON arrays as multisets (order ignored)")
	fs.StringArrayVar(&c.Endpoints, "endpoint", c.Endpoints, "explicit endpoint template (\"/users/{id}\", \"GET /files/{path...}\"); repeatable")
	fs.IntVar(&c.Noise.MinSamples, "noise-min-samples", c.Noise.MinSamples, "exchanges of an endpoint needed before noise is learned (its decisions wait until then)")
	fs.Float64Var(&c.Alert.Rate, "alert-rate", c.Alert.Rate, "alert when an endpoint's difference rate over --alert-window reaches this")
	fs.IntVar(&c.Alert.MinSamples, "alert-min-samples", c.Alert.MinSamples, "exchanges an endpoint needs in the window before it can alert")
	fs.DurationVar(&c.Alert.Window, "alert-window", c.Alert.Window, "sliding window of the alert rate")
	fs.StringVar(&c.Group, "group", c.Group, "consumer group (default mirrorline-compare-SERVICE)")
	fs.StringVar(&c.Start, "start", c.Start, "where a new group starts: latest (default) or earliest")
	fs.StringVar(&c.Prime, "prime", c.Prime, "relearn noise at start from this much of mirror.diff.SERVICE (duration, or off)")
}

func bindQueue(fs *pflag.FlagSet, records, bytes *int) {
	fs.IntVar(records, "queue-records", *records, "records buffered for Kafka before new captures are dropped")
	fs.IntVar(bytes, "queue-bytes", *bytes, "bytes buffered for Kafka before new captures are dropped")
}

func bindCollectorID(fs *pflag.FlagSet, id *string) {
	fs.StringVar(id, "collector-id", *id, "name of this collector in records (default: host name)")
}

// bindLimits binds the client limits of an HTTP collector (proxy, sink);
// zero values take collector.DefaultLimits.
func bindLimits(fs *pflag.FlagSet, l *collector.Limits) {
	d := collector.DefaultLimits()
	withDefault := func(v, def int64) int64 {
		if v == 0 {
			return def
		}
		return v
	}
	fs.IntVar(&l.MaxConns, "max-conns", l.MaxConns, "client connections held at most; at the cap a new one closes the oldest idle one, or gets 503 when all are busy (0: half the open-file limit after a reserve)")
	fs.DurationVar(&l.ReadHeaderTimeout, "read-header-timeout", durOr(l.ReadHeaderTimeout, d.ReadHeaderTimeout), "time a client has to send a request head (also a new connection's first one)")
	fs.DurationVar(&l.IdleTimeout, "idle-timeout", durOr(l.IdleTimeout, d.IdleTimeout), "close keep-alive connections idle this long")
	fs.IntVar(&l.MaxHeaderBytes, "max-header-bytes", int(withDefault(int64(l.MaxHeaderBytes), int64(d.MaxHeaderBytes))), "largest request head accepted; longer ones are answered 431")
	fs.DurationVar(&l.BodyTimeout, "body-timeout", durOr(l.BodyTimeout, d.BodyTimeout), "time a request body may take, plus one second per --min-body-rate bytes received; slower bodies are cut (408) and not published")
	fs.Int64Var(&l.MinBodyRate, "min-body-rate", withDefault(l.MinBodyRate, d.MinBodyRate), "bytes per second that extend --body-timeout")
}

// optionalFloat is a float flag over a *float64 field that stays nil (the
// default def) unless the flag is given.
type optionalFloat struct {
	p   **float64
	def float64
}

func (o *optionalFloat) String() string {
	if o.p == nil || *o.p == nil {
		return strconv.FormatFloat(o.def, 'g', -1, 64)
	}
	return strconv.FormatFloat(**o.p, 'g', -1, 64)
}

func (o *optionalFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	*o.p = &v
	return nil
}

func (o *optionalFloat) Type() string { return "float64" }

func durOr(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}
