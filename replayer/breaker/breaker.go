package breaker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a breaker. It is on when ErrorRate or P99 is set.
type Config struct {
	// ErrorRate (0..1) opens the breaker when at least this share of the
	// window's requests failed (0: not watched).
	ErrorRate float64 `yaml:"error_rate,omitempty"`
	// P99 opens the breaker when the window's p99 latency is above it (0:
	// not watched).
	P99 time.Duration `yaml:"p99,omitempty"`
	// Window is the sliding window (default DefaultWindow).
	Window time.Duration `yaml:"window,omitempty"`
	// MinRequests is how many requests the window needs before it can
	// open the breaker (default DefaultMinRequests).
	MinRequests int `yaml:"min_requests,omitempty"`
	// OpenFor is how long the breaker stays open before it probes
	// (default DefaultOpenFor).
	OpenFor time.Duration `yaml:"open_for,omitempty"`
	// Probes is how many requests in a row must succeed, half-open, to
	// close it (default DefaultProbes); one failure opens it again.
	Probes int `yaml:"probes,omitempty"`
	// WhenOpen is what happens to records meant for an open breaker's
	// target: skip (default: counted and committed) or pause (they wait,
	// and polling with them).
	WhenOpen string `yaml:"when_open,omitempty"`
}

// Defaults of Config.
const (
	DefaultWindow      = 10 * time.Second
	DefaultMinRequests = 20
	DefaultOpenFor     = 5 * time.Second
	DefaultProbes      = 3
	WhenOpenSkip       = "skip"
	WhenOpenPause      = "pause"
)

// State is a breaker's state; its value is the state metric's.
type State int

// States.
const (
	Closed   State = 0
	HalfOpen State = 1
	Open     State = 2
)

// String is "closed", "half-open" or "open".
func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	}
	return "open"
}

// ErrOpen is returned by Allow when the breaker does not let a request go.
var ErrOpen = errors.New("circuit breaker open")

// Enabled reports whether c turns a breaker on.
func (c Config) Enabled() bool { return c.ErrorRate > 0 || c.P99 > 0 }

// Validate checks c; the error names the key (breaker.error_rate, ...).
// Every bad key is reported, one error per line, as
// "replay.breaker.KEY: MSG".
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("replay.breaker.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if math.IsNaN(c.ErrorRate) || c.ErrorRate < 0 || c.ErrorRate > 1 {
		bad("error_rate", "%v is not a share between 0 and 1", c.ErrorRate)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"p99", c.P99}, {"window", c.Window}, {"open_for", c.OpenFor}} {
		if d.v < 0 {
			bad(d.key, "must not be negative, got %s", d.v)
		}
	}
	if c.MinRequests < 0 {
		bad("min_requests", "must not be negative, got %d", c.MinRequests)
	}
	if c.Probes < 0 {
		bad("probes", "must not be negative, got %d", c.Probes)
	}
	if c.WhenOpen != "" && c.WhenOpen != WhenOpenSkip && c.WhenOpen != WhenOpenPause {
		bad("when_open", "%q is not one of skip, pause", c.WhenOpen)
	}
	return errors.Join(errs...)
}

// withDefaults is c with its zero knobs set to their defaults.
func (c Config) withDefaults() Config {
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.MinRequests <= 0 {
		c.MinRequests = DefaultMinRequests
	}
	if c.OpenFor <= 0 {
		c.OpenFor = DefaultOpenFor
	}
	if c.Probes <= 0 {
		c.Probes = DefaultProbes
	}
	if c.WhenOpen == "" {
		c.WhenOpen = WhenOpenSkip
	}
	return c
}

// Metrics are the breakers' metrics: mirrorline_replayer_breaker_state{target}
// and mirrorline_replayer_breaker_transitions_total{target,state}.
type Metrics struct {
	// State is the state of each target's breaker: 0 closed, 1 half-open,
	// 2 open.
	State *prometheus.GaugeVec
	// Transitions counts the state changes of each target's breaker by the
	// state it entered.
	Transitions *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		State: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mirrorline_replayer_breaker_state",
			Help: "State of the circuit breaker of each replay target: 0 closed, 1 half-open, 2 open.",
		}, []string{"target"}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrorline_replayer_breaker_transitions_total",
			Help: "State changes of the circuit breaker of each replay target, by the state entered.",
		}, []string{"target", "state"}),
	}
	if reg != nil {
		reg.MustRegister(m.State, m.Transitions)
	}
	return m
}

// Option configures a Breaker.
type Option func(*Breaker)

// WithLogger sets the logger of state changes (default none).
func WithLogger(log hclog.Logger) Option {
	return func(b *Breaker) {
		if log != nil {
			b.log = log
		}
	}
}

// WithMetrics sets the metrics (default unregistered).
func WithMetrics(m *Metrics) Option {
	return func(b *Breaker) {
		if m != nil {
			b.metrics = m
		}
	}
}

// WithClock sets the clock (default time.Now), for tests.
func WithClock(now func() time.Time) Option {
	return func(b *Breaker) {
		if now != nil {
			b.now = now
		}
	}
}

// The window is cut into windowBuckets buckets of Window/windowBuckets each;
// the oldest is dropped as the clock enters a new one, so a request counts
// for between 9/10 of Window and Window.
const windowBuckets = 10

// Latencies are counted in histBuckets logarithmic buckets, histSub per
// doubling from histBase: bucket i holds (upper(i-1), upper(i)], the last
// everything above (about 12 minutes). The p99 in a log line is its bucket's
// upper bound (at most the window's slowest request): about 19 % above the
// truth at worst. The decision to open is exact (see p99Above).
const (
	histBase    = 50 * time.Microsecond
	histSub     = 4
	histBuckets = 96
)

func histIndex(d time.Duration) int {
	if d <= histBase {
		return 0
	}
	i := int(math.Ceil(math.Log2(float64(d)/float64(histBase)) * histSub))
	return min(i, histBuckets-1)
}

func histUpper(i int) time.Duration {
	return time.Duration(float64(histBase) * math.Exp2(float64(i)/histSub))
}

// counts are the outcomes of a stretch of time: one window bucket, or the
// sum of the window's.
type counts struct {
	requests, failures int
	slow               int // latency above P99
	max                time.Duration
	hist               [histBuckets]uint32
}

func (c *counts) add(failed, slow bool, latency time.Duration) {
	c.requests++
	if failed {
		c.failures++
	}
	if slow {
		c.slow++
	}
	c.max = max(c.max, latency)
	c.hist[histIndex(latency)]++
}

// sub takes o (a bucket leaving the window) out of c; c.max is recomputed
// by the caller.
func (c *counts) sub(o *counts) {
	c.requests -= o.requests
	c.failures -= o.failures
	c.slow -= o.slow
	for i, n := range o.hist {
		c.hist[i] -= n
	}
}

// Breaker is the circuit breaker of one target.
type Breaker struct {
	target  string
	cfg     Config
	log     hclog.Logger
	metrics *Metrics
	now     func() time.Time
	width   time.Duration // of a window bucket
	origin  time.Time     // epoch 0 of the window buckets

	mu    sync.Mutex
	state State
	// gen counts state changes: a request's outcome counts only in the
	// state (and, half-open, as the probe) it was let go in.
	gen uint64
	// changed is closed (and replaced) when a request may go that could
	// not before: a state change, a probe slot freed. Wait waits on it.
	changed chan struct{}
	// Closed: the sliding window.
	head    int64 // epoch of the newest bucket
	buckets [windowBuckets]counts
	window  counts // sum of the buckets
	// Open: since when.
	openedAt time.Time
	// Half-open: probes in flight, and successful in a row.
	inflight, succeeded int
}

// transition is a state change, logged once the lock is released.
type transition struct {
	from, to State
	reason   string
	fields   []any
}

// New returns the breaker of target (its label value) configured by c
// (defaults filled in).
func New(target string, c Config, opts ...Option) *Breaker {
	b := &Breaker{target: target, cfg: c.withDefaults(), log: hclog.NewNullLogger(), now: time.Now, changed: make(chan struct{})}
	for _, o := range opts {
		o(b)
	}
	if b.metrics == nil {
		b.metrics = NewMetrics(nil)
	}
	b.width = max(b.cfg.Window/windowBuckets, 1)
	b.origin = b.now()
	b.metrics.State.WithLabelValues(target).Set(float64(Closed))
	for _, s := range []State{Closed, HalfOpen, Open} {
		b.metrics.Transitions.WithLabelValues(target, s.String())
	}
	return b
}

// Allow asks to send one request: ErrOpen when the breaker is open (or
// half-open with its probes in flight); otherwise done must be called with
// the request's outcome (failed: a transport error or a 5xx; its latency).
// done is called once (later calls are ignored), by one goroutine; a
// half-open breaker waits for its probes' done.
func (b *Breaker) Allow() (done func(failed bool, latency time.Duration), err error) {
	b.mu.Lock()
	now := b.now()
	tr := b.expireLocked(now)
	gen := b.gen
	var probe bool
	switch b.state {
	case Open:
		err = ErrOpen
	case HalfOpen:
		if b.inflight >= b.cfg.Probes {
			err = ErrOpen
		} else {
			b.inflight++
			probe = true
		}
	}
	b.mu.Unlock()
	b.logTransition(tr)
	if err != nil {
		return nil, err
	}
	var once bool
	return func(failed bool, latency time.Duration) {
		if once {
			return
		}
		once = true
		b.done(gen, probe, failed, latency)
	}, nil
}

// done counts the outcome of a request let go in generation gen.
func (b *Breaker) done(gen uint64, probe, failed bool, latency time.Duration) {
	slow := b.cfg.P99 > 0 && latency > b.cfg.P99
	b.mu.Lock()
	var tr *transition
	if gen == b.gen { // else the breaker changed state since: not counted
		now := b.now()
		switch {
		case probe:
			b.inflight--
			switch {
			case failed:
				tr = b.openLocked(now, "probe failed", "latency", latency)
			case slow:
				tr = b.openLocked(now, "probe slower than p99", "latency", latency, "p99_limit", b.cfg.P99)
			default:
				b.succeeded++
				if b.succeeded >= b.cfg.Probes {
					tr = b.closeLocked(now)
				} else {
					b.signalLocked() // a probe slot is free
				}
			}
		case b.state == Closed:
			b.rotateLocked(now)
			b.buckets[b.head%windowBuckets].add(failed, slow, latency)
			b.window.add(failed, slow, latency)
			tr = b.tripLocked(now)
		}
	}
	b.mu.Unlock()
	b.logTransition(tr)
}

// tripLocked opens the breaker if the window is past a threshold.
func (b *Breaker) tripLocked(now time.Time) *transition {
	w := &b.window
	if w.requests < b.cfg.MinRequests {
		return nil
	}
	if rate := float64(w.failures) / float64(w.requests); b.cfg.ErrorRate > 0 && rate >= b.cfg.ErrorRate {
		return b.openLocked(now, "error rate", "error_rate", rate, "error_rate_limit", b.cfg.ErrorRate,
			"requests", w.requests, "failures", w.failures, "window", b.cfg.Window)
	}
	if b.cfg.P99 > 0 && b.p99AboveLocked() {
		return b.openLocked(now, "p99 latency", "p99", b.p99Locked(), "p99_limit", b.cfg.P99,
			"requests", w.requests, "slower", w.slow, "window", b.cfg.Window)
	}
	return nil
}

// p99Rank is the 1-based rank of the p99 of n values (nearest rank).
func p99Rank(n int) int { return (99*n + 99) / 100 }

// p99AboveLocked reports whether the window's p99 is above P99: exactly,
// from the count of requests slower than P99 (the p99 is above P99 when
// fewer than its rank are at most P99).
func (b *Breaker) p99AboveLocked() bool {
	w := &b.window
	return w.requests-w.slow < p99Rank(w.requests)
}

// p99Locked estimates the window's p99 from its histogram (for the log).
func (b *Breaker) p99Locked() time.Duration {
	w := &b.window
	rank, seen := p99Rank(w.requests), 0
	slowest := time.Duration(0)
	for i := range b.buckets {
		slowest = max(slowest, b.buckets[i].max)
	}
	for i, n := range w.hist {
		if seen += int(n); seen >= rank {
			return min(histUpper(i), slowest)
		}
	}
	return slowest
}

// rotateLocked drops the buckets that left the window at now.
func (b *Breaker) rotateLocked(now time.Time) {
	epoch := int64(now.Sub(b.origin) / b.width)
	if epoch <= b.head { // same bucket (or a clock gone back)
		return
	}
	for e := b.head + 1; e <= epoch && e <= b.head+windowBuckets; e++ {
		old := &b.buckets[e%windowBuckets]
		b.window.sub(old)
		*old = counts{}
	}
	b.head = epoch
	b.window.max = 0
	for i := range b.buckets {
		b.window.max = max(b.window.max, b.buckets[i].max)
	}
}

// expireLocked turns an open breaker half-open once OpenFor has passed.
func (b *Breaker) expireLocked(now time.Time) *transition {
	if b.state != Open || now.Sub(b.openedAt) < b.cfg.OpenFor {
		return nil
	}
	b.inflight, b.succeeded = 0, 0
	return b.setLocked(HalfOpen, "open_for elapsed", "open_for", b.cfg.OpenFor)
}

func (b *Breaker) openLocked(now time.Time, reason string, fields ...any) *transition {
	b.openedAt = now
	// Half-open when open_for ends even with no request to ask: the state
	// metric and the waiters see it then (State checks the clock: with a
	// test clock, nothing happens until it moved).
	time.AfterFunc(b.cfg.OpenFor, func() { b.State() })
	return b.setLocked(Open, reason, append(fields, "open_for", b.cfg.OpenFor)...)
}

// closeLocked closes the breaker with an empty window.
func (b *Breaker) closeLocked(now time.Time) *transition {
	b.buckets = [windowBuckets]counts{}
	b.window = counts{}
	b.head = int64(now.Sub(b.origin) / b.width)
	return b.setLocked(Closed, "probes succeeded", "probes", b.cfg.Probes)
}

func (b *Breaker) setLocked(to State, reason string, fields ...any) *transition {
	tr := &transition{from: b.state, to: to, reason: reason, fields: fields}
	b.state = to
	b.gen++
	b.metrics.State.WithLabelValues(b.target).Set(float64(to))
	b.metrics.Transitions.WithLabelValues(b.target, to.String()).Inc()
	b.signalLocked()
	return tr
}

// signalLocked wakes the waiters.
func (b *Breaker) signalLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *Breaker) logTransition(tr *transition) {
	if tr == nil {
		return
	}
	args := append([]any{"target", b.target, "from", tr.from.String(), "to", tr.to.String(), "reason", tr.reason}, tr.fields...)
	if tr.to == Open {
		b.log.Warn("circuit breaker state change", args...)
		return
	}
	b.log.Info("circuit breaker state change", args...)
}

// Wait blocks until the breaker would let a request go (or ctx ends): what
// WhenOpen pause does before Allow. Several goroutines may be let go by one
// free probe slot: Allow may still say ErrOpen after Wait (Acquire loops).
func (b *Breaker) Wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		now := b.now()
		tr := b.expireLocked(now)
		ready := b.state == Closed || b.state == HalfOpen && b.inflight < b.cfg.Probes
		changed := b.changed
		var left time.Duration
		if b.state == Open {
			left = b.cfg.OpenFor - now.Sub(b.openedAt)
		}
		b.mu.Unlock()
		b.logTransition(tr)
		if ready {
			return nil
		}
		var timer *time.Timer
		var expired <-chan time.Time
		if left > 0 {
			timer = time.NewTimer(left)
			expired = timer.C
		}
		var err error
		select {
		case <-changed:
		case <-expired:
		case <-ctx.Done():
			err = fmt.Errorf("wait for circuit breaker of %s: %w", b.target, ctx.Err())
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return err
		}
	}
}

// Acquire is Wait then Allow, until Allow lets the request go or ctx ends:
// what WhenOpen pause does.
func (b *Breaker) Acquire(ctx context.Context) (done func(failed bool, latency time.Duration), err error) {
	for {
		if done, err = b.Allow(); err == nil {
			return done, nil
		}
		if err = b.Wait(ctx); err != nil {
			return nil, err
		}
	}
}

// State is the breaker's state now. An open breaker turns half-open when
// OpenFor ends (or when asked after that, with a test clock).
func (b *Breaker) State() State {
	b.mu.Lock()
	tr := b.expireLocked(b.now())
	s := b.state
	b.mu.Unlock()
	b.logTransition(tr)
	return s
}

// Pause reports whether records wait while the breaker is open (WhenOpen
// pause).
func (b *Breaker) Pause() bool { return b.cfg.WhenOpen == WhenOpenPause }

// Target is the target the breaker watches (its metric label).
func (b *Breaker) Target() string { return b.target }
