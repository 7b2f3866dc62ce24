package middleware

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

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

	// grace is how long Close waits after closing stdin, then after
	// SIGTERM (default DefaultGrace); tests shorten it.
	grace time.Duration
}

// Defaults of Config.
const (
	DefaultTimeout  = 2 * time.Second
	DefaultRestarts = 3
	// RestartWindow is the period over which restarts are counted.
	RestartWindow = time.Minute
	// DefaultGrace is how long Close lets the program exit after its
	// stdin is closed, then after SIGTERM, before SIGKILL.
	DefaultGrace = 2 * time.Second
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
	// ErrExited: the program exited (or was stopped for breaking the
	// protocol) while the request waited; the error names the exit status.
	// It is restarted if the budget allows.
	ErrExited = errors.New("middleware exited")
	// ErrClosed: Close was called, or Start's context ended.
	ErrClosed = errors.New("middleware closed")
)

// Meta is what the program is told about a request besides the request.
type Meta struct {
	ID, Service, Route, Target string
}

// Middleware is a running program.
type Middleware struct {
	cfg      Config
	timeout  time.Duration
	restarts int
	grace    time.Duration
	log      hclog.Logger
	m        *Metrics

	ctx     context.Context // Start's
	runCtx  context.Context // the programs' exec context, ended last
	stopRun context.CancelFunc
	closing chan struct{} // closed by Close
	done    chan struct{} // closed when the supervisor returned
	errc    chan error    // Err

	mu      sync.Mutex
	proc    *proc            // the running program; nil while restarting
	ready   chan struct{}    // closed when proc is set, failed or closed
	pending map[string]*call // callers waiting for an answer, by wire id
	late    lateIDs          // ids of callers that stopped waiting
	failed  error            // set once: the program failed for good
	closed  bool
	seq     uint64
	stopErr error // Close's result

	closeOnce sync.Once
	warnedBad atomic.Bool // an invalid answer was logged at warn level
}

// call is a Request waiting for its answer.
type call struct {
	id  string
	res chan result // buffered: the sender never blocks
}

type result struct {
	ans *rawAnswer
	err error
}

// Validate checks cfg without starting anything.
func (c Config) Validate() error {
	if len(c.Command) == 0 || c.Command[0] == "" {
		return errors.New("middleware: command is empty")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("middleware: timeout %s is negative", c.Timeout)
	}
	if c.Restarts != nil && *c.Restarts < 0 {
		return fmt.Errorf("middleware: restarts %d is negative", *c.Restarts)
	}
	return nil
}

// Start starts the program (it must be found and start; the error says why
// not) and returns it running; it stops when ctx ends or Close is called.
func Start(ctx context.Context, cfg Config, log hclog.Logger, m *Metrics) (*Middleware, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	mw := &Middleware{
		cfg: cfg, timeout: cfg.Timeout, restarts: DefaultRestarts, grace: cfg.grace,
		log: log, m: m, ctx: ctx,
		closing: make(chan struct{}), done: make(chan struct{}), errc: make(chan error, 1),
		ready: make(chan struct{}), pending: map[string]*call{},
	}
	if mw.timeout == 0 {
		mw.timeout = DefaultTimeout
	}
	if cfg.Restarts != nil {
		mw.restarts = *cfg.Restarts
	}
	if mw.grace <= 0 {
		mw.grace = DefaultGrace
	}
	mw.runCtx, mw.stopRun = context.WithCancel(context.WithoutCancel(ctx))
	p, err := mw.spawn()
	if err != nil {
		mw.stopRun()
		return nil, err
	}
	mw.setProc(p)
	go mw.supervise(p)
	return mw, nil
}

// Request passes req to the program and returns the request to send (a new
// value; req is not changed) or drop true. Safe for concurrent use: requests
// are answered in any order, matched by Meta.ID.
func (mw *Middleware) Request(ctx context.Context, meta Meta, req *mlv1.Request) (out *mlv1.Request, drop bool, err error) {
	if req == nil {
		return nil, false, errors.New("middleware request: no request")
	}
	start := time.Now()
	timer := time.NewTimer(mw.timeout)
	defer timer.Stop()
	var (
		c *call
		p *proc
	)
	for c == nil {
		mw.mu.Lock()
		switch {
		case mw.failed != nil:
			err = mw.failed
		case mw.closed:
			err = ErrClosed
		case mw.proc != nil:
			p, c = mw.proc, mw.register(meta.ID)
		}
		ready := mw.ready
		mw.mu.Unlock()
		if err != nil {
			mw.m.Requests.WithLabelValues(OutcomeFailed).Inc()
			return nil, false, fmt.Errorf("request %s: %w", meta.ID, err)
		}
		if c != nil {
			break
		}
		select { // the program is being restarted
		case <-ready:
		case <-timer.C:
			return mw.gaveUp(nil, meta.ID, req, start, OutcomeTimeout, mw.timeoutErr())
		case <-ctx.Done():
			return mw.gaveUp(nil, meta.ID, req, start, OutcomeCanceled, ctx.Err())
		}
	}
	line, err := encodeRequest(c.id, meta, req)
	if err != nil {
		mw.abandon(c, false)
		mw.m.Requests.WithLabelValues(OutcomeFailed).Inc()
		return nil, false, fmt.Errorf("request %s: %w", meta.ID, err)
	}
	select {
	case p.in <- line:
	case <-p.dead: // c has its result (the program's exit) or an answer
	case <-timer.C:
		return mw.gaveUp(c, meta.ID, req, start, OutcomeTimeout, mw.timeoutErr())
	case <-ctx.Done():
		return mw.gaveUp(c, meta.ID, req, start, OutcomeCanceled, ctx.Err())
	}
	var r result
	select {
	case r = <-c.res:
	case <-timer.C:
		return mw.gaveUp(c, meta.ID, req, start, OutcomeTimeout, mw.timeoutErr())
	case <-ctx.Done():
		return mw.gaveUp(c, meta.ID, req, start, OutcomeCanceled, ctx.Err())
	}
	return mw.finish(meta.ID, req, r, start)
}

// finish interprets the result of a call.
func (mw *Middleware) finish(id string, req *mlv1.Request, r result, start time.Time) (*mlv1.Request, bool, error) {
	if r.err != nil {
		mw.m.Requests.WithLabelValues(OutcomeFailed).Inc()
		return nil, false, fmt.Errorf("request %s: %w", id, r.err)
	}
	mw.m.Latency.Observe(time.Since(start).Seconds())
	out, drop, modified, err := decodeAnswer(r.ans, req)
	switch {
	case err != nil:
		mw.m.Requests.WithLabelValues(OutcomeBadAnswer).Inc()
		logf := mw.log.Debug
		if mw.warnedBad.CompareAndSwap(false, true) {
			logf = mw.log.Warn
		}
		logf("middleware answer is invalid; the request is not sent (further ones are logged at debug level)", "id", id, "error", err)
		return nil, false, fmt.Errorf("request %s: %w", id, err)
	case drop:
		mw.m.Requests.WithLabelValues(OutcomeDropped).Inc()
	case modified:
		mw.m.Requests.WithLabelValues(OutcomeModified).Inc()
	default:
		mw.m.Requests.WithLabelValues(OutcomeSent).Inc()
	}
	return out, drop, nil
}

func (mw *Middleware) timeoutErr() error {
	return fmt.Errorf("%w (%s)", ErrTimeout, mw.timeout)
}

// gaveUp ends a Request that stops waiting; an answer that came meanwhile
// is used all the same.
func (mw *Middleware) gaveUp(c *call, id string, req *mlv1.Request, start time.Time, outcome string, cause error) (*mlv1.Request, bool, error) {
	if c != nil && !mw.abandon(c, true) {
		// Answered (or failed) just now: its result is on its way.
		return mw.finish(id, req, <-c.res, start)
	}
	mw.m.Requests.WithLabelValues(outcome).Inc()
	return nil, false, fmt.Errorf("request %s: %w", id, cause)
}

// register adds a waiting call under a wire id unique among those waiting:
// meta.ID, or meta.ID~N when it is taken (or empty, or not UTF-8).
// mw.mu is held.
func (mw *Middleware) register(id string) *call {
	wire := id
	for {
		if _, taken := mw.pending[wire]; wire != "" && !taken && utf8.ValidString(wire) {
			break
		}
		mw.seq++
		wire = fmt.Sprintf("%s~%d", utf8Safe(id), mw.seq)
	}
	c := &call{id: wire, res: make(chan result, 1)}
	mw.pending[wire] = c
	return c
}

func utf8Safe(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return "id"
}

// abandon removes c from the waiting calls; it reports false when c was
// not waiting any more (its result is sent or about to be). late records
// its id so that a later answer is counted late.
func (mw *Middleware) abandon(c *call, late bool) bool {
	mw.mu.Lock()
	defer mw.mu.Unlock()
	if mw.pending[c.id] != c {
		return false
	}
	delete(mw.pending, c.id)
	if late {
		mw.late.add(c.id)
	}
	return true
}

// Response passes a shadow response, and the primary's, to the program when
// Config.Responses is set (else it does nothing); it never waits for the
// program.
func (mw *Middleware) Response(meta Meta, shadow, primary *mlv1.Response) {
	if !mw.cfg.Responses {
		return
	}
	mw.mu.Lock()
	p := mw.proc
	mw.mu.Unlock()
	if p == nil {
		mw.m.Responses.WithLabelValues(ResponseSkipped).Inc()
		return
	}
	line, err := encodeResponse(meta, shadow, primary)
	if err != nil {
		mw.m.Responses.WithLabelValues(ResponseSkipped).Inc()
		return
	}
	select {
	case p.in <- line:
		mw.m.Responses.WithLabelValues(ResponsePassed).Inc()
	default:
		mw.m.Responses.WithLabelValues(ResponseSkipped).Inc()
	}
}

// Err is closed with the error when the program failed for good (its
// restarts spent); Request then returns ErrFailed. It receives nothing when
// the program is closed.
func (mw *Middleware) Err() <-chan error { return mw.errc }

// Close stops the program (stdin closed, then SIGTERM, then SIGKILL after a
// grace period) and waits for it. Its error says how the program ended
// when it did not exit with status 0 on its own once stdin was closed.
func (mw *Middleware) Close() error {
	mw.closeOnce.Do(func() { close(mw.closing) })
	<-mw.done
	mw.mu.Lock()
	defer mw.mu.Unlock()
	return mw.stopErr
}

// lateIDs remembers the ids of the last calls that stopped waiting.
type lateIDs struct {
	set  map[string]struct{}
	ring []string
	next int
}

const lateMax = 4096

func (l *lateIDs) add(id string) {
	if l.set == nil {
		l.set = make(map[string]struct{}, 64)
	}
	if len(l.ring) < lateMax {
		l.ring = append(l.ring, id)
	} else {
		delete(l.set, l.ring[l.next])
		l.ring[l.next] = id
		l.next = (l.next + 1) % lateMax
	}
	l.set[id] = struct{}{}
}

// take reports whether id was recorded, and forgets it.
func (l *lateIDs) take(id string) bool {
	if _, ok := l.set[id]; !ok {
		return false
	}
	delete(l.set, id)
	return true
}
