package comparator

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults applied by Config.WithDefaults to zero fields (see Config).
const (
	DefaultJoinWindow = 2 * time.Minute
	// DefaultDownstreamWait is how long a joined exchange waits for late
	// egress records once some are seen (downstream_wait 0).
	DefaultDownstreamWait  = 5 * time.Second
	DefaultMaxPending      = 100000
	DefaultMaxEndpoints    = 500
	DefaultMaxBodyBytes    = 8 << 20
	DefaultMaxDifferences  = 100
	DefaultSecondaryJob    = "secondary"
	DefaultShadowJob       = LiveJob
	DefaultNoiseMinSamples = 20
	DefaultVolatileRatio   = 0.9
	DefaultNoiseRelative   = 0.2
	DefaultNoiseAbsolute   = 0.03
	DefaultLatencyMin      = 20
	DefaultLatencyRelative = 0.25
	DefaultLatencyAbsolute = 5 * time.Millisecond
	DefaultAlertWindow     = 10 * time.Minute
	DefaultAlertRate       = 0.05
	DefaultAlertMinSamples = 50
)

// DefaultHeaders are the response headers compared when none are configured.
var DefaultHeaders = []string{"Content-Type"}

// Config is the comparator configuration (the compare: section of the YAML
// file; see docs/comparator.md). Zero fields take the defaults above.
type Config struct {
	// JoinWindow is how long the comparator waits, from the first record of an
	// exchange, for the other side(s); after it the exchange is "missing"
	// (or, when only the secondary is late, decided without it).
	JoinWindow time.Duration `yaml:"join_window" flag:"join-window" help:"how long to wait for the other side of an exchange before it is missing"`
	// DownstreamWait is how long a joined exchange waits for its egress
	// records (its outbound calls) arriving after it: positive, every
	// exchange waits that long; 0 (default), DefaultDownstreamWait once the
	// comparator has seen an egress record (exchanges joined before the
	// first one are not held); negative, never.
	DownstreamWait time.Duration `yaml:"downstream_wait"`
	// Headers are the response headers compared (case-insensitive names).
	Headers []string `yaml:"headers" flag:"headers" help:"response headers to compare"`
	// Secondary selects the responses of a second instance of the primary
	// version, used to learn noise (see SecondaryConfig).
	Secondary SecondaryConfig `yaml:"secondary" flag:",inline"`
	// ShadowJob is the replay job this comparator judges (default "live"):
	// only shadow-topic records of this job are taken as the shadow, records
	// of other jobs (window replays) are ignored, and every verdict carries
	// the job (Diff.shadow_job). The live job is joined with the clean topic
	// as it is written; any other job is judged by looking up each shadow
	// record's primary at its source offset (see Runner). A shadow record
	// without a job counts as "live".
	ShadowJob string `yaml:"shadow_job" flag:"job" help:"replay job to judge: live (default), or a window replay's --job (its own group, starting at the earliest record)"`
	// Ignore lists what is never compared.
	Ignore IgnoreConfig `yaml:"ignore" flag:",inline"`
	// JSON tunes the structural JSON diff.
	JSON JSONConfig `yaml:"json" flag:",inline"`
	// Noise tunes noise learning.
	Noise NoiseConfig `yaml:"noise" flag:",inline"`
	// Latency tunes the latency comparison.
	Latency LatencyConfig `yaml:"latency"`
	// Alert sets when an endpoint's difference rate raises an alert.
	Alert AlertConfig `yaml:"alert" flag:",inline"`
	// Endpoints are explicit path templates ("/users/{id}", "GET /files/{path...}")
	// tried before automatic templating.
	Endpoints []string `yaml:"endpoints" flag:"endpoint,array" help:"explicit endpoint template (\"/users/{id}\", \"GET /files/{path...}\"); repeatable"`
	// MaxEndpoints caps the distinct endpoint names; later ones are
	// "METHOD (other)". Bounds metric label cardinality.
	MaxEndpoints int `yaml:"max_endpoints"`
	// MaxPending caps the exchanges waiting for their other side; beyond it the
	// oldest is decided as missing.
	MaxPending int `yaml:"max_pending"`
	// MaxBodyBytes caps a (decompressed) body that is diffed; larger bodies are
	// compared by hash only.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxDifferences caps the differences recorded per exchange.
	MaxDifferences int `yaml:"max_differences"`
}

// SecondaryConfig selects secondary responses: records of Topic, or records
// of the shadow topic whose Replay.job equals Job or whose Replay.target
// starts with Target. Enabled turns on the default (Job "secondary").
type SecondaryConfig struct {
	// Enabled selects the default, Job "secondary".
	Enabled bool `yaml:"enabled" flag:"secondary" help:"learn noise from a secondary: shadow-topic records of replay job \"secondary\" (see --secondary-job/-target/-topic)"`
	// Job selects shadow-topic records whose Replay.job is Job.
	Job string `yaml:"job" flag:"secondary-job" help:"secondary = shadow-topic records of this replay job"`
	// Target selects shadow-topic records whose Replay.target starts with Target.
	Target string `yaml:"target" flag:"secondary-target" help:"secondary = shadow-topic records replayed to a target URL starting with this"`
	// Topic selects every record of Topic.
	Topic string `yaml:"topic" flag:"secondary-topic" help:"secondary = every record of this topic"`
}

// On reports whether a secondary is configured.
func (s SecondaryConfig) On() bool {
	return s.Enabled || s.Job != "" || s.Target != "" || s.Topic != ""
}

// IgnoreConfig lists fields that are never compared.
type IgnoreConfig struct {
	// Headers are header names ('*' wildcards, case-insensitive).
	Headers []string `yaml:"headers" flag:"ignore-header,array" help:"header never compared ('*' wildcards); repeatable"`
	// JSONPaths are JSON path patterns: "created_at", "items.*.etag",
	// "**.trace_id" ('*' one segment or part of one, '**' any number of
	// segments; case-insensitive).
	JSONPaths []string `yaml:"json_paths" flag:"ignore-path,array" help:"JSON path never compared (\"created_at\", \"items.*.etag\", \"**.trace_id\"); repeatable"`
	// Endpoints scopes more rules to endpoints.
	Endpoints []EndpointIgnore `yaml:"endpoints"`
}

// EndpointIgnore is an ignore rule for some endpoints only.
type EndpointIgnore struct {
	// Endpoint is an endpoint name as reported ("GET /users/{id}"), '*'
	// wildcards allowed ("* /users/*").
	Endpoint string `yaml:"endpoint"`
	// Headers and JSONPaths are ignored at those endpoints (syntax as in IgnoreConfig).
	Headers   []string `yaml:"headers"`
	JSONPaths []string `yaml:"json_paths"`
}

// JSONConfig tunes the JSON diff.
type JSONConfig struct {
	// UnorderedArrays compares every array as a multiset.
	UnorderedArrays bool `yaml:"unordered_arrays" flag:"unordered-arrays" help:"compare JSON arrays as multisets (order ignored)"`
	// UnorderedPaths lists path patterns of arrays compared as multisets.
	UnorderedPaths []string `yaml:"unordered_paths"`
}

// NoiseConfig tunes noise learning (docs/comparator.md, "Noise").
type NoiseConfig struct {
	// MinSamples is how many compared exchanges of an endpoint (and, for
	// volatile fields, half as many with the field; for the secondary, as
	// many with a secondary) are needed before noise is learned; decisions
	// of an endpoint are held until then (Warmup).
	MinSamples int `yaml:"min_samples" flag:"noise-min-samples" help:"exchanges of an endpoint needed before noise is learned (its decisions wait until then)"`
	// VolatileRatio: a field whose values look volatile is noise when they
	// differ in at least this share of the exchanges that have it.
	VolatileRatio float64 `yaml:"volatile_ratio"`
	// Volatile enables learning from volatile-looking values (default true).
	Volatile *bool `yaml:"volatile"`
	// Relative and Absolute are Diffy's thresholds: a field that also differs
	// between primary and secondary (noise rate n) is reported only when its
	// primary/shadow difference rate r exceeds n by more than Absolute and by
	// more than Relative times n.
	Relative float64 `yaml:"relative"`
	Absolute float64 `yaml:"absolute"`
	// Warmup holds an endpoint's decisions until MinSamples exchanges are
	// learned (at most JoinWindow), so early exchanges are judged with the
	// learned noise (default true).
	Warmup *bool `yaml:"warmup"`
}

// LatencyConfig sets when the shadow's latency counts as a regression.
type LatencyConfig struct {
	// MinSamples per side and endpoint before latency is judged.
	MinSamples int `yaml:"min_samples"`
	// A percentile regresses when the shadow's is more than Relative (0.25 =
	// 25 %) and more than Absolute above the primary's.
	Relative float64       `yaml:"relative"`
	Absolute time.Duration `yaml:"absolute"`
}

// AlertConfig sets when an endpoint raises an alert: its difference rate
// ((different + shadow-error) / (same + different + shadow-error)) over the
// last Window is at least Rate, with at least MinSamples exchanges.
type AlertConfig struct {
	// Window is the sliding window (default 10m).
	Window time.Duration `yaml:"window" flag:"alert-window" help:"sliding window of the alert rate"`
	// Rate is the difference rate that raises the alert (default 0.05).
	Rate float64 `yaml:"rate" flag:"alert-rate" help:"alert when an endpoint's difference rate over --alert-window reaches this"`
	// MinSamples is the least number of exchanges in the window (default 50).
	MinSamples int `yaml:"min_samples" flag:"alert-min-samples" help:"exchanges an endpoint needs in the window before it can alert"`
}

func boolPtr(b bool) *bool { return &b }

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	setDefault(&c.JoinWindow, DefaultJoinWindow)
	if len(c.Headers) == 0 {
		c.Headers = append([]string(nil), DefaultHeaders...)
	}
	if c.Secondary.Enabled && c.Secondary.Job == "" && c.Secondary.Target == "" && c.Secondary.Topic == "" {
		c.Secondary.Job = DefaultSecondaryJob
	}
	setDefault(&c.ShadowJob, DefaultShadowJob)
	setDefault(&c.MaxPending, DefaultMaxPending)
	setDefault(&c.MaxEndpoints, DefaultMaxEndpoints)
	setDefault(&c.MaxBodyBytes, DefaultMaxBodyBytes)
	setDefault(&c.MaxDifferences, DefaultMaxDifferences)
	setDefault(&c.Noise.MinSamples, DefaultNoiseMinSamples)
	setDefault(&c.Noise.VolatileRatio, DefaultVolatileRatio)
	setDefault(&c.Noise.Volatile, boolPtr(true))
	setDefault(&c.Noise.Relative, DefaultNoiseRelative)
	setDefault(&c.Noise.Absolute, DefaultNoiseAbsolute)
	setDefault(&c.Noise.Warmup, boolPtr(true))
	setDefault(&c.Latency.MinSamples, DefaultLatencyMin)
	setDefault(&c.Latency.Relative, DefaultLatencyRelative)
	setDefault(&c.Latency.Absolute, DefaultLatencyAbsolute)
	setDefault(&c.Alert.Window, DefaultAlertWindow)
	setDefault(&c.Alert.Rate, DefaultAlertRate)
	setDefault(&c.Alert.MinSamples, DefaultAlertMinSamples)
	return c
}

// setDefault sets *v to def when it is the zero value.
func setDefault[T comparable](v *T, def T) { *v = cmp.Or(*v, def) }

// Validate reports the first invalid setting, naming its key (relative to
// the compare: section). Call it on a Config with defaults applied.
func (c Config) Validate() error {
	switch {
	case c.JoinWindow < 0:
		return fmt.Errorf("join_window: must be positive, got %s", c.JoinWindow)
	case c.MaxPending < 0:
		return fmt.Errorf("max_pending: must be positive, got %d", c.MaxPending)
	case c.MaxEndpoints < 0:
		return fmt.Errorf("max_endpoints: must be positive, got %d", c.MaxEndpoints)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("max_body_bytes: must be positive, got %d", c.MaxBodyBytes)
	case c.MaxDifferences < 0:
		return fmt.Errorf("max_differences: must be positive, got %d", c.MaxDifferences)
	case c.Noise.MinSamples < 0:
		return fmt.Errorf("noise.min_samples: must be positive, got %d", c.Noise.MinSamples)
	case c.Noise.VolatileRatio < 0 || c.Noise.VolatileRatio > 1:
		return fmt.Errorf("noise.volatile_ratio: %v is not between 0 and 1", c.Noise.VolatileRatio)
	case c.Noise.Relative < 0:
		return fmt.Errorf("noise.relative: must not be negative, got %v", c.Noise.Relative)
	case c.Noise.Absolute < 0 || c.Noise.Absolute > 1:
		return fmt.Errorf("noise.absolute: %v is not between 0 and 1", c.Noise.Absolute)
	case c.Latency.MinSamples < 0:
		return fmt.Errorf("latency.min_samples: must be positive, got %d", c.Latency.MinSamples)
	case c.Latency.Relative < 0:
		return fmt.Errorf("latency.relative: must not be negative, got %v", c.Latency.Relative)
	case c.Latency.Absolute < 0:
		return fmt.Errorf("latency.absolute: must not be negative, got %s", c.Latency.Absolute)
	case c.Alert.Window < 0:
		return fmt.Errorf("alert.window: must be positive, got %s", c.Alert.Window)
	case c.Alert.Rate < 0 || c.Alert.Rate > 1:
		return fmt.Errorf("alert.rate: %v is not between 0 and 1", c.Alert.Rate)
	case c.Alert.MinSamples < 0:
		return fmt.Errorf("alert.min_samples: must be positive, got %d", c.Alert.MinSamples)
	}
	if c.ShadowJob != LiveJob && c.Secondary.On() {
		return fmt.Errorf("shadow_job: %q is a window job, judged without a secondary (secondary.* is for the live job)", c.ShadowJob)
	}
	if c.ShadowJob == c.Secondary.Job && c.Secondary.Job != "" {
		return fmt.Errorf("shadow_job: %q is also secondary.job", c.ShadowJob)
	}
	for i, h := range c.Headers {
		if strings.TrimSpace(h) == "" {
			return fmt.Errorf("headers[%d]: empty header name", i)
		}
	}
	for i, e := range c.Ignore.Endpoints {
		if strings.TrimSpace(e.Endpoint) == "" {
			return fmt.Errorf("ignore.endpoints[%d].endpoint: required", i)
		}
	}
	if _, err := compileRules(c); err != nil {
		return err
	}
	if _, err := NewTemplater(c.Endpoints, c.MaxEndpoints); err != nil {
		return err
	}
	return nil
}

// errEmptyPattern is returned for an empty path pattern.
var errEmptyPattern = errors.New("empty pattern")
