package breaker

import (
	"context"
	"errors"
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
func (c Config) Validate() error { panic("breaker: Config.Validate not written yet") }

// Metrics are the breakers' metrics: mirrorline_replayer_breaker_state{target}
// and mirrorline_replayer_breaker_transitions_total{target,state}.
type Metrics struct{}

// NewMetrics creates the metrics and registers them on reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics { panic("breaker: NewMetrics not written yet") }

// Option configures a Breaker.
type Option func(*Breaker)

// WithLogger sets the logger of state changes (default none).
func WithLogger(log hclog.Logger) Option { panic("breaker: WithLogger not written yet") }

// WithMetrics sets the metrics (default unregistered).
func WithMetrics(m *Metrics) Option { panic("breaker: WithMetrics not written yet") }

// WithClock sets the clock (default time.Now), for tests.
func WithClock(now func() time.Time) Option { panic("breaker: WithClock not written yet") }

// Breaker is the circuit breaker of one target.
type Breaker struct{}

// New returns the breaker of target (its label value) configured by c
// (defaults filled in).
func New(target string, c Config, opts ...Option) *Breaker { panic("breaker: New not written yet") }

// Allow asks to send one request: ErrOpen when the breaker is open (or
// half-open with its probes in flight); otherwise done must be called with
// the request's outcome (failed: a transport error or a 5xx; its latency).
func (b *Breaker) Allow() (done func(failed bool, latency time.Duration), err error) {
	panic("breaker: Allow not written yet")
}

// Wait blocks until the breaker would let a request go (or ctx ends): what
// WhenOpen pause does before Allow.
func (b *Breaker) Wait(ctx context.Context) error { panic("breaker: Wait not written yet") }

// State is the breaker's state now.
func (b *Breaker) State() State { panic("breaker: State not written yet") }

// Pause reports whether records wait while the breaker is open (WhenOpen
// pause).
func (b *Breaker) Pause() bool { panic("breaker: Pause not written yet") }
