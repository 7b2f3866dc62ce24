package config

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/ebpf"
	"github.com/mirrorline/mirrorline/collector/vpc"
	"github.com/mirrorline/mirrorline/redactor"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/stub"
)

// invalid is the error of a bad value at the YAML path key whose flag is
// flag: "FLAG: MSG (KEY, --FLAG)", as a user may have given either; a key
// without a flag gives "KEY: MSG".
func invalid(key, flag, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if flag == "" {
		return fmt.Errorf("%s: %s", key, msg)
	}
	return fmt.Errorf("%s: %s (%s, --%s)", flag, msg, key, flag)
}

// Validate checks every section and returns all their errors joined (one
// per line), each naming the YAML path and the flag of the bad value.
// Settings a command requires (service, brokers, proxy.primary, ...) are
// checked by the command: a file may leave them to flags.
func (f *File) Validate() error {
	var logLevel error
	if hclog.LevelFromString(f.LogLevel) == hclog.NoLevel {
		logLevel = invalid("log_level", "log-level", "%q is not one of trace, debug, info, warn, error", f.LogLevel)
	}
	var compression error
	if c := f.Kafka.Compression; c != "" && !slices.Contains(broker.Compressions, c) {
		compression = invalid("compression", "kafka-compression", "%q is not one of %s", c, strings.Join(broker.Compressions, ", "))
	}
	var linger error
	if l := f.Kafka.Linger; l < 0 || l > time.Second {
		linger = invalid("linger", "kafka-linger", "%s is not between 0 and 1s", l)
	}
	return errors.Join(logLevel, compression, linger, // nil errors are left out
		f.Topics.Validate(), f.Proxy.Validate(), f.Sink.Validate(), f.Redact.Validate(), f.Replay.Validate(),
		f.VPC.Validate(), f.EBPF.Validate(), f.Import.Validate(), f.Compare.Validate(),
		f.Stub.Validate(),
	)
}

// Validate checks the topics section.
func (t *Topics) Validate() error {
	if err := positive("topics", "partitions", t.Partitions); err != nil {
		return err
	}
	for k, d := range t.Retention {
		if !slices.Contains(broker.Stages, broker.Stage(k)) {
			return invalid("topics.retention", "retention", "unknown stage %q (want raw, clean, shadow, diff or quarantine)", k)
		}
		if d <= 0 {
			return invalid("topics.retention."+k, "retention", "must be a positive duration, got %s", d)
		}
	}
	return nil
}

// Validate checks the proxy section (proxy.primary is checked by the
// commands that run the proxy).
func (p *Proxy) Validate() error {
	return errors.Join(
		checkSample("proxy.sample", p.Sample),
		checkCapture("proxy", p.BodyLimit, p.QueueRecords, p.QueueBytes),
		checkLimits("proxy", p.Limits),
		p.checkHTTP2(),
		p.checkEgress(),
	)
}

// checkEgress checks that the egress allowlist goes with a forward proxy
// (proxy.egress without proxy.primary).
func (p *Proxy) checkEgress() error {
	if len(p.EgressAllow) > 0 && (!p.Egress || p.Primary != "") {
		return invalid("proxy.egress_allow", "egress-allow", "for the egress forward proxy only (proxy.egress without proxy.primary)")
	}
	return nil
}

// checkHTTP2 checks the proxy's TLS files (both or neither) and its
// primary protocol.
func (p *Proxy) checkHTTP2() error {
	switch p.PrimaryProtocol {
	case "", "auto", "http1", "h2", "h2c":
	default:
		return invalid("proxy.primary_protocol", "primary-protocol", "%q is not auto, http1, h2 or h2c", p.PrimaryProtocol)
	}
	if (p.TLSCert == "") != (p.TLSKey == "") {
		return invalid("proxy.tls_cert", "tls-cert", "needs proxy.tls_key (--tls-key) too, and the other way round")
	}
	return nil
}

// Validate checks the sink section.
func (s *Sink) Validate() error {
	return errors.Join(
		checkSample("sink.sample", s.SampleOrDefault()),
		checkCapture("sink", s.BodyLimit, s.QueueRecords, s.QueueBytes),
		checkLimits("sink", s.Limits),
	)
}

func checkSample(key string, v float64) error {
	if v < 0 || v > 1 {
		return invalid(key, "sample", "%v is not a fraction from 0 to 1", v)
	}
	return nil
}

// checkCapture checks what every collector has: its body limit and its
// publishing queue.
func checkCapture(section string, bodyLimit int64, queueRecords, queueBytes int) error {
	return cmp.Or(
		notNegative(section, "body_limit", bodyLimit),
		positive(section, "queue_records", queueRecords),
		positive(section, "queue_bytes", queueBytes),
	)
}

// checkLimits checks the client limits of an HTTP collector (zero: the
// default).
func checkLimits(section string, l collector.Limits) error { return firstNegative(section, &l) }

// firstNegative reports the first negative number or duration among the
// fields of the struct v points to, by its YAML key in section.
func firstNegative(section string, v any) error {
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		f := rv.Field(i)
		if f.CanInt() && f.Int() < 0 {
			key, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("yaml"), ",")
			return invalid(section+"."+key, flagOf(key), "must not be negative, got %v", f.Interface())
		}
	}
	return nil
}

// positive and notNegative check the number or duration v at key of
// section; the key's flag is the key with dashes.
func positive[T int | int32 | int64 | time.Duration](section, key string, v T) error {
	if v <= 0 {
		return invalid(section+"."+key, flagOf(key), "must be positive, got %v", v)
	}
	return nil
}

func notNegative[T int | int64 | time.Duration](section, key string, v T) error {
	if v < 0 {
		return invalid(section+"."+key, flagOf(key), "must not be negative, got %v", v)
	}
	return nil
}

func flagOf(key string) string { return strings.ReplaceAll(key, "_", "-") }

// Validate checks the redact section (its rules are checked when the
// redactor's engine is built from them).
func (r *Redact) Validate() error {
	return cmp.Or(
		positive("redact", "batch", r.Batch),
		oneOf("redact", "on_failure", r.OnFailure, string(redactor.Quarantine), string(redactor.Drop)),
		notNegative("redact", "session_timeout", r.SessionTimeout),
		notNegative("redact", "transaction_interval", r.TxInterval),
	)
}

// oneOf checks that the string v at key of section is one of want ("" in
// want: the key may be empty).
func oneOf(section, key, v string, want ...string) error {
	if slices.Contains(want, v) {
		return nil
	}
	want = slices.DeleteFunc(want, func(w string) bool { return w == "" })
	return invalid(section+"."+key, flagOf(key), "%q is not %s", v, strings.Join(want, " or "))
}

// Validate checks the replay section: what live and window replays share.
// Every request has a timeout (0 or negative would mean none: a hung
// shadow would hold a slot forever), and a rate cap, when given, is a
// positive rate.
func (r *Replay) Validate() error {
	if err := positive("replay", "timeout", r.Timeout); err != nil {
		return err
	}
	if r.MaxRate != "" {
		if _, err := replayer.ParseRate(r.MaxRate); err != nil {
			return invalid("replay.max_rate", "max-rate", "%v", err)
		}
	}
	if err := cmp.Or(
		positive("replay", "concurrency", r.Concurrency),
		oneOf("replay", "order", r.Order, "", "connection", "none"),
		oneOf("replay", "start", r.Start, "", "latest", "earliest"),
		notNegative("replay", "skip_older_than", r.SkipOlderThan),
		positive("replay", "max_lag", r.MaxLag),
		notNegative("replay", "body_limit", r.BodyLimit),
	); err != nil {
		return err
	}
	if _, err := replayer.NewAllowlist(r.AllowTargets); err != nil {
		// The allowlist's error names the flag and the entry already.
		return fmt.Errorf("%w (replay.allow_targets, --allow-target)", err)
	}
	if err := r.Routing().Validate(); err != nil {
		return err
	}
	if r.Middleware != nil {
		if err := r.Middleware.Validate(); err != nil {
			return fmt.Errorf("replay.%w", err)
		}
	}
	return nil
}

// Validate checks the vpc section (vpc.ports is required by the commands
// that run the collector).
func (c *VPC) Validate() error {
	return cmp.Or(notNegative("vpc", "read_buffer", c.ReadBuffer), firstNegative("vpc", &c.TCPCapture),
		c.TCPCapture.checkPoll("vpc", 0, vpc.MaxPollInterval))
}

// checkPoll checks that poll_interval is within least..most.
func (c *TCPCapture) checkPoll(section string, least, most time.Duration) error {
	switch {
	case c.PollInterval > most:
		return invalid(section+".poll_interval", "poll-interval", "%v is more than %v", c.PollInterval, most)
	case c.PollInterval >= 0 && c.PollInterval < least:
		return invalid(section+".poll_interval", "poll-interval", "%v is less than %v (the ring buffer is read on a timer)", c.PollInterval, least)
	}
	return nil
}

// Validate checks the ebpf section (ebpf.ports is required by the commands
// that run the collector; interfaces, snaplen and ring_buffer are checked
// by ebpf.Config.Validate when the capture opens).
func (c *EBPF) Validate() error {
	if _, err := ebpf.ParseHooks(c.Hooks); err != nil {
		return invalid("ebpf.hooks", "hooks", "%v", err)
	}
	return cmp.Or(firstNegative("ebpf", &c.TCPCapture), c.TCPCapture.checkPoll("ebpf", ebpf.MinPollInterval, ebpf.MaxPollInterval))
}

// Validate checks the import section.
func (c *Import) Validate() error {
	return notNegative("import", "body_limit", c.BodyLimit)
}

// Validate checks the compare section: the comparison settings (with their
// defaults), where a new group starts and compare.prime.
func (c *Compare) Validate() error {
	if err := c.Config.WithDefaults().Validate(); err != nil {
		return fmt.Errorf("compare.%w", err)
	}
	if err := oneOf("compare", "start", c.Start, "", "latest", "earliest"); err != nil {
		return err
	}
	if _, err := c.PrimeSince(time.Now()); err != nil {
		return err
	}
	return nil
}

// PrimeSince is where relearning noise at start begins: compare.prime (a
// duration, default DefaultPrime) back from now, or the zero time for
// "off".
func (c *Compare) PrimeSince(now time.Time) (time.Time, error) {
	s := c.Prime
	if s == "" {
		s = DefaultPrime
	}
	if s == "off" || s == "0" {
		return time.Time{}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, invalid("compare.prime", "prime", "%q is not a positive duration or off", s)
	}
	return now.Add(-d), nil
}

// Validate checks the stub section.
func (s *Stub) Validate() error {
	return cmp.Or(
		positive("stub", "since", s.Since), positive("stub", "max_records", s.MaxRecords), positive("stub", "max_bytes", s.MaxBytes),
		notNegative("stub", "wait", s.Wait), positive("stub", "body_limit", s.BodyLimit), positive("stub", "queue_records", s.QueueRecords),
		oneOf("stub", "latency", s.Latency, stub.LatencyNone, stub.LatencyRecorded), stubMissStatus(s.OnMissStatus),
	)
}

func stubMissStatus(v int) error {
	if v < 200 || v > 599 {
		return invalid("stub.on_miss_status", "on-miss-status", "must be an HTTP status 200..599, got %d", v)
	}
	return nil
}
