package replayer

import (
	"crypto/tls"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/replayer/middleware"
)

// Option configures a Live or Window replayer, a KafkaSource, a Sender or a Router:
// one option type for the package, as kgo.Opt is for franz-go. Each option
// says what it applies to; the others ignore it.
type Option func(*options)

// options is the one private configuration of the package's constructors;
// the defaults that differ between Live and Window are their constructors'.
type options struct {
	log     hclog.Logger
	metrics *Metrics
	// Live and Window.
	conc          int
	maxRate       float64
	budget        *broker.Budget
	job, instance string
	pub           Publisher
	shadow        string
	// Live.
	unordered bool
	maxAge    time.Duration
	// Window.
	maxLag     time.Duration
	dry        bool
	clock      Clock
	anchor     time.Time
	progress   func(done, total int64)
	maxErrRate float64
	lines      io.Writer
	every      time.Duration
	span       time.Duration
	// Router.
	mw *middleware.Middleware
	// KafkaSource.
	buffer int
	// Sender.
	keepHost  bool
	timeout   time.Duration
	bodyLimit int64
	tlsConfig *tls.Config // tests: the roots of a test target
}

// newOptions applies the constructor's defaults, then opts.
func newOptions(opts []Option, defaults ...Option) options {
	o := options{log: hclog.NewNullLogger(), instance: DefaultInstance(), maxLag: DefaultMaxLag, clock: RealClock{}, maxErrRate: 1, buffer: 500, timeout: DefaultTimeout, bodyLimit: DefaultResponseBodyLimit}
	for _, fn := range append(defaults, opts...) {
		fn(&o)
	}
	if o.metrics == nil {
		o.metrics = NewMetrics(nil)
	}
	o.conc = max(o.conc, 1)
	return o
}

// WithLogger sets the logger (default: none). Payloads are never logged.
func WithLogger(lg hclog.Logger) Option { return func(o *options) { o.log = lg } }

// WithMetrics sets the metrics (default: unregistered).
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// Concurrency bounds the requests in flight (Live: default
// DefaultConcurrency; Window: default DefaultInFlight; see MaxLag).
func Concurrency(n int) Option { return func(o *options) { o.conc = n } }

// MaxRate caps the requests sent per second (0: no cap). Live: default no
// cap, the job's, shared by the consumer group's replayers by their
// partitions; a backlog (after a restart, or a shadow that was down) is caught up at
// most this fast, the wait counted in
// mirrorline_replayer_throttled_seconds_total; SetMaxRate changes it while
// the replayer runs. Window: default DefaultMaxRate, whatever the profile
// asks; the delay counts as schedule lag.
func MaxRate(perSecond float64) Option { return func(o *options) { o.maxRate = perSecond } }

// ShadowBudget sets the shadow topic's record budget of a Live or Window
// replayer (default: a budget of broker.DefaultMaxMessageBytes); larger
// shadow responses are cut to fit.
func ShadowBudget(b *broker.Budget) Option { return func(o *options) { o.budget = b } }

// Job names the replay job and this instance in shadow records (Live,
// Window) and the summary (Window).
func Job(job, instance string) Option { return func(o *options) { o.job, o.instance = job, instance } }

// Order says whether a Live replayer sends the requests of one connection
// (record key) one at a time in order (true, the default: as the client sent
// them) or freely over all Concurrency slots (false). Against a shadow slower
// than the primary, keeping that order caps the replay rate at connections /
// shadow latency: turn it off when requests do not depend on each other.
func Order(byConnection bool) Option { return func(o *options) { o.unordered = !byConnection } }

// SkipOlderThan makes a Live replayer skip (dropped, reason "too_old", offsets
// committed) records captured longer ago than d when a worker takes them, so
// that a shadow that cannot keep up stays close to live traffic instead of
// falling ever further behind. 0 (the default) replays everything.
func SkipOlderThan(d time.Duration) Option { return func(o *options) { o.maxAge = d } }

// MaxLag is how late a window replay's send may be before the record is
// dropped (default DefaultMaxLag): a due record waits for a Concurrency slot
// until then; the schedule of the records after it does not move.
func MaxLag(d time.Duration) Option { return func(o *options) { o.maxLag = d } }

// DryRun makes a window replay schedule every record and report without
// sending anything or publishing shadow records. The schedule runs on a
// virtual clock, so a dry run takes only the time to read the window.
func DryRun(b bool) Option { return func(o *options) { o.dry = b } }

// WithClock sets a window replay's clock (default RealClock).
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// StartAt anchors a window replay's schedule: a record due d after the job
// start is sent at t+d. Workers of one job share t. Default: when the first
// record is read, plus WarmAhead when the sender can warm its connections
// (a Warmer) so that the first burst finds them open.
func StartAt(t time.Time) Option { return func(o *options) { o.anchor = t } }

// PublishTo makes a window replay publish a shadow record for every response
// to topic (a Live replayer publishes to mirror.shadow.<service>).
func PublishTo(p Publisher, topic string) Option {
	return func(o *options) { o.pub, o.shadow = p, topic }
}

// OnProgress is called with a window replay source's progress as records
// are scheduled.
func OnProgress(fn func(done, total int64)) Option { return func(o *options) { o.progress = fn } }

// MaxErrorRate sets the error rate (0..1) above which a window replay job
// failed (Summary.Failed); a job every request of which failed always fails.
// Default 1: only then.
func MaxErrorRate(r float64) Option { return func(o *options) { o.maxErrRate = r } }

// ProgressLines makes a window replay write a one-line progress report to out
// every interval (default DefaultProgressInterval when 0) while it runs: for
// logs and CI, where no progress bar is drawn.
func ProgressLines(out io.Writer, every time.Duration) Option {
	return func(o *options) {
		if every <= 0 {
			every = DefaultProgressInterval
		}
		o.lines, o.every = out, every
	}
}

// PlannedSpan is the planned duration of a window replay job from its start
// (see Schedule.Span); progress lines estimate the time left from it.
func PlannedSpan(d time.Duration) Option { return func(o *options) { o.span = d } }

// WithMiddleware makes a Router pass every request it sends (and, when the
// middleware asks for them, the responses) to mw, a running program.
func WithMiddleware(mw *middleware.Middleware) Option { return func(o *options) { o.mw = mw } }

// Buffer is how many decoded records a KafkaSource holds per partition before
// fetching that partition pauses (default 500).
func Buffer(n int) Option { return func(o *options) { o.buffer = max(n, 2) } }

// KeepHost makes a Sender send the captured Host header instead of the
// target's host.
func KeepHost(b bool) Option { return func(o *options) { o.keepHost = b } }

// Timeout bounds each request of a Sender (default 10 s).
func Timeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// ResponseBodyLimit caps the response bodies a Sender records (default 1 MiB).
func ResponseBodyLimit(n int64) Option { return func(o *options) { o.bodyLimit = n } }
