package middleware

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Config configures the middleware program.
type Config struct {
	// Command is the program and its arguments (no shell).
	Command []string `yaml:"command"`
	// Timeout bounds the wait for the program's answer to one request
	// (default DefaultTimeout); a request not answered in time is not sent.
	Timeout time.Duration `yaml:"timeout,omitempty"`
	// Restarts is how many times the program is started again after it
	// exits, within RestartWindow (nil: DefaultRestarts; 0: never).
	Restarts *int `yaml:"restarts,omitempty"`
	// Responses also passes each shadow response (with the primary's
	// captured response) to the program, which answers nothing to them.
	Responses bool `yaml:"responses,omitempty"`
}

// Defaults of Config.
const (
	DefaultTimeout  = 2 * time.Second
	DefaultRestarts = 3
	// RestartWindow is the period over which restarts are counted.
	RestartWindow = time.Minute
)

// Errors of Request; the records they concern are not sent.
var (
	// ErrTimeout: the program did not answer within Timeout.
	ErrTimeout = errors.New("middleware did not answer in time")
	// ErrFailed: the program exited and may not be restarted any more
	// (the error names its exit status).
	ErrFailed = errors.New("middleware failed")
	// ErrBadAnswer: the program wrote a line that is not a valid answer.
	ErrBadAnswer = errors.New("middleware answer is invalid")
)

// Meta is what the program is told about a request besides the request.
type Meta struct {
	ID, Service, Route, Target string
}

// Metrics of the middleware: mirrorline_replayer_middleware_*.
type Metrics struct{}

// NewMetrics creates the metrics and registers them on reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics { panic("middleware: NewMetrics not written yet") }

// Middleware is a running program.
type Middleware struct{}

// Validate checks cfg without starting anything.
func (c Config) Validate() error { panic("middleware: Config.Validate not written yet") }

// Start starts the program (it must be found and start; the error says why
// not) and returns it running; it stops when ctx ends or Close is called.
func Start(ctx context.Context, cfg Config, log hclog.Logger, m *Metrics) (*Middleware, error) {
	panic("middleware: Start not written yet")
}

// Request passes req to the program and returns the request to send (a new
// value; req is not changed) or drop true. Safe for concurrent use: requests
// are answered in any order, matched by Meta.ID.
func (mw *Middleware) Request(ctx context.Context, meta Meta, req *mlv1.Request) (out *mlv1.Request, drop bool, err error) {
	panic("middleware: Request not written yet")
}

// Response passes a shadow response, and the primary's, to the program when
// Config.Responses is set (else it does nothing); it never waits for the
// program.
func (mw *Middleware) Response(meta Meta, shadow, primary *mlv1.Response) {
	panic("middleware: Response not written yet")
}

// Err is closed with the error when the program failed for good (its
// restarts spent); Request then returns ErrFailed.
func (mw *Middleware) Err() <-chan error { panic("middleware: Err not written yet") }

// Close stops the program (stdin closed, then SIGTERM, then SIGKILL after a
// grace period) and waits for it.
func (mw *Middleware) Close() error { panic("middleware: Close not written yet") }
