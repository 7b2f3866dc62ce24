package comparator

import (
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/grpcwire"
)

// Option configures a Comparator (New) or a Runner (NewRunner): one option
// type for the package, as kgo.Opt is for franz-go. A Runner starts from the
// options of its Comparator (logger, metrics, ...) and applies its own over
// them; an option that does not apply to what it is given to is ignored by
// it (WithScrubber by a Runner, WithBudget by a Comparator).
type Option func(*options)

// options is the one private configuration of the package's constructors.
type options struct {
	log       hclog.Logger
	metrics   *Metrics
	scrub     Scrubber
	budget    *broker.Budget
	lookup    PrimaryLookup
	tick      time.Duration
	untilDone bool
	fromStart bool
	schema    *grpcwire.Schema
}

// apply applies opts over o and fills the defaults left unset.
func (o options) apply(opts []Option) options {
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = hclog.NewNullLogger()
	}
	if o.metrics == nil {
		o.metrics = NewMetrics(nil)
	}
	if o.tick <= 0 {
		o.tick = 500 * time.Millisecond
	}
	return o
}

// WithLogger sets the logger (default: none; a Runner: its Comparator's).
// Payloads are never logged.
func WithLogger(l hclog.Logger) Option { return func(o *options) { o.log = l } }

// WithMetrics sets the metrics (default: unregistered; a Runner: its
// Comparator's).
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// WithScrubber sets the function that redacts shadow and secondary responses
// before they are diffed (default: none; they are diffed as recorded).
func WithScrubber(s Scrubber) Option { return func(o *options) { o.scrub = s } }

// WithBudget sets a Runner's record budget of mirror.diff.S (default: a
// budget of broker.DefaultMaxMessageBytes); larger diff records are cut to
// fit.
func WithBudget(b *broker.Budget) Option { return func(o *options) { o.budget = b } }

// WithLookup sets how a Runner judging a window job (shadow_job other than
// "live") finds each shadow record's primary (default: none, every such
// record is decided missing; the command uses KafkaLookup).
func WithLookup(l PrimaryLookup) Option { return func(o *options) { o.lookup = l } }

// WithTick sets how often, at most, a Runner expires windows and publishes
// their decisions while no records arrive (default 500 ms).
func WithTick(d time.Duration) Option { return func(o *options) { o.tick = d } }

// WithUntilDone makes a Runner's Run return once every record written to its
// topics before it started is decided (or ignored) and its diff record
// published: a bounded run, e.g. to judge a window job that has ended.
func WithUntilDone(on bool) Option { return func(o *options) { o.untilDone = on } }

// WithFromStart makes a Runner's new consumer group start at the earliest
// record of its topics (default: at their end, only new records).
func WithFromStart(on bool) Option { return func(o *options) { o.fromStart = on } }
