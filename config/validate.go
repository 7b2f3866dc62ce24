package config

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/ebpf"
	"github.com/mirrorline/mirrorline/redactor"
	"github.com/mirrorline/mirrorline/replayer"
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
	var errs []error
	if hclog.LevelFromString(f.LogLevel) == hclog.NoLevel {
		errs = append(errs, invalid("log_level", "log-level", "%q is not one of trace, debug, info, warn, error", f.LogLevel))
	}
	for _, err := range []error{
		f.Topics.Validate(), f.Proxy.Validate(), f.Sink.Validate(), f.Redact.Validate(), f.Replay.Validate(),
		f.VPC.Validate(), f.EBPF.Validate(), f.Import.Validate(), f.Compare.Validate(),
	} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Validate checks the topics section.
func (t *Topics) Validate() error {
	if t.Partitions <= 0 {
		return invalid("topics.partitions", "partitions", "must be positive, got %d", t.Partitions)
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
	)
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
	switch {
	case bodyLimit < 0:
		return invalid(section+".body_limit", "body-limit", "must not be negative, got %d", bodyLimit)
	case queueRecords <= 0:
		return invalid(section+".queue_records", "queue-records", "must be positive, got %d", queueRecords)
	case queueBytes <= 0:
		return invalid(section+".queue_bytes", "queue-bytes", "must be positive, got %d", queueBytes)
	}
	return nil
}

// checkLimits checks the client limits of an HTTP collector (zero: the
// default).
func checkLimits(section string, l collector.Limits) error {
	return firstNegative(section, []value{
		{"max_conns", "max-conns", l.MaxConns < 0, l.MaxConns},
		{"read_header_timeout", "read-header-timeout", l.ReadHeaderTimeout < 0, l.ReadHeaderTimeout},
		{"idle_timeout", "idle-timeout", l.IdleTimeout < 0, l.IdleTimeout},
		{"max_header_bytes", "max-header-bytes", l.MaxHeaderBytes < 0, l.MaxHeaderBytes},
		{"body_timeout", "body-timeout", l.BodyTimeout < 0, l.BodyTimeout},
		{"min_body_rate", "min-body-rate", l.MinBodyRate < 0, l.MinBodyRate},
	})
}

// value is a setting of a section, its key, flag, whether it is negative
// and the value itself.
type value struct {
	key, flag string
	negative  bool
	v         any
}

// firstNegative reports the first negative of values of section.
func firstNegative(section string, values []value) error {
	for _, c := range values {
		if c.negative {
			return invalid(section+"."+c.key, c.flag, "must not be negative, got %v", c.v)
		}
	}
	return nil
}

// Validate checks the redact section (its rules are checked when the
// redactor's engine is built from them).
func (r *Redact) Validate() error {
	switch {
	case r.Batch <= 0:
		return invalid("redact.batch", "batch", "must be positive, got %d", r.Batch)
	case r.OnFailure != string(redactor.Quarantine) && r.OnFailure != string(redactor.Drop):
		return invalid("redact.on_failure", "on-failure", "%q is not quarantine or drop", r.OnFailure)
	case r.SessionTimeout < 0:
		return invalid("redact.session_timeout", "session-timeout", "must not be negative, got %s", r.SessionTimeout)
	}
	return nil
}

// Validate checks the replay section: what live and window replays share.
// Every request has a timeout (0 or negative would mean none: a hung
// shadow would hold a slot forever), and a rate cap, when given, is a
// positive rate.
func (r *Replay) Validate() error {
	if r.Timeout <= 0 {
		return invalid("replay.timeout", "timeout", "must be positive, got %s", r.Timeout)
	}
	if r.MaxRate != "" {
		if _, err := replayer.ParseRate(r.MaxRate); err != nil {
			return invalid("replay.max_rate", "max-rate", "%v", err)
		}
	}
	switch {
	case r.Concurrency <= 0:
		return invalid("replay.concurrency", "concurrency", "must be positive, got %d", r.Concurrency)
	case r.Order != "" && r.Order != "connection" && r.Order != "none":
		return invalid("replay.order", "order", "%q is not connection or none", r.Order)
	case r.Start != "" && r.Start != "latest" && r.Start != "earliest":
		return invalid("replay.start", "start", "%q is not latest or earliest", r.Start)
	case r.SkipOlderThan < 0:
		return invalid("replay.skip_older_than", "skip-older-than", "must not be negative, got %s", r.SkipOlderThan)
	case r.MaxLag <= 0:
		return invalid("replay.max_lag", "max-lag", "must be positive, got %s", r.MaxLag)
	case r.BodyLimit < 0:
		return invalid("replay.body_limit", "body-limit", "must not be negative, got %d", r.BodyLimit)
	}
	if _, err := replayer.NewAllowlist(r.AllowTargets); err != nil {
		// The allowlist's error names the flag and the entry already.
		return fmt.Errorf("%w (replay.allow_targets, --allow-target)", err)
	}
	return nil
}

// Validate checks the vpc section (vpc.ports is required by the commands
// that run the collector).
func (c *VPC) Validate() error {
	if c.ReadBuffer < 0 {
		return invalid("vpc.read_buffer", "read-buffer", "must not be negative, got %d", c.ReadBuffer)
	}
	return c.TCPCapture.validate("vpc")
}

// Validate checks the ebpf section (ebpf.ports is required by the commands
// that run the collector; interfaces, snaplen and ring_buffer are checked
// by ebpf.Config.Validate when the capture opens).
func (c *EBPF) Validate() error {
	if _, err := ebpf.ParseHooks(c.Hooks); err != nil {
		return invalid("ebpf.hooks", "hooks", "%v", err)
	}
	return c.TCPCapture.validate("ebpf")
}

// validate checks the sizes, limits and timeouts of the packet collector
// section.
func (c *TCPCapture) validate(section string) error {
	return firstNegative(section, []value{
		{"body_limit", "body-limit", c.BodyLimit < 0, c.BodyLimit},
		{"idle_timeout", "idle-timeout", c.IdleTimeout < 0, c.IdleTimeout},
		{"gap_timeout", "gap-timeout", c.GapTimeout < 0, c.GapTimeout},
		{"max_streams", "max-streams", c.MaxStreams < 0, c.MaxStreams},
		{"stream_buffer", "stream-buffer", c.StreamBuffer < 0, c.StreamBuffer},
		{"max_buffered", "max-buffered", c.MaxBuffered < 0, c.MaxBuffered},
		{"queue_records", "queue-records", c.QueueRecords < 0, c.QueueRecords},
		{"queue_bytes", "queue-bytes", c.QueueBytes < 0, c.QueueBytes},
	})
}

// Validate checks the import section.
func (c *Import) Validate() error {
	if c.BodyLimit < 0 {
		return invalid("import.body_limit", "body-limit", "must not be negative, got %d", c.BodyLimit)
	}
	return nil
}

// Validate checks the compare section: the comparison settings (with their
// defaults), where a new group starts and compare.prime.
func (c *Compare) Validate() error {
	if err := c.Config.WithDefaults().Validate(); err != nil {
		return fmt.Errorf("compare.%w", err)
	}
	if c.Start != "" && c.Start != "latest" && c.Start != "earliest" {
		return invalid("compare.start", "start", "%q is not latest or earliest", c.Start)
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
