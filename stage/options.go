package stage

import (
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Option configures a Group or a Tx (one option type for the package, as
// kgo.Opt is for franz-go; an option that does not apply to a runtime is
// ignored by it).
type Option func(*config)

// config is the one private configuration of the runtimes.
type config struct {
	log         hclog.Logger
	metrics     *Metrics
	polling     Polling
	commitEvery time.Duration
	balancer    kgo.GroupBalancer
	fromStart   bool
	onAssigned  func(map[string][]int32)
	onCommitErr func(error)
	reopen      func() (*kgo.GroupTransactSession, error)
	txInterval  time.Duration
}

func newConfig(opts []Option) config {
	c := config{log: hclog.NewNullLogger(), commitEvery: time.Second, balancer: kgo.CooperativeStickyBalancer()}
	for _, o := range opts {
		o(&c)
	}
	if c.metrics == nil {
		c.metrics = NewMetrics(nil, "")
	}
	c.polling.Log, c.polling.Metrics = c.log, c.metrics
	return c
}

// WithLogger sets the logger (default: none). Payloads are never logged.
func WithLogger(l hclog.Logger) Option { return func(c *config) { c.log = l } }

// WithMetrics sets the runtime metrics (default: unregistered).
func WithMetrics(m *Metrics) Option { return func(c *config) { c.metrics = m } }

// WithPolling sets how records are polled: Max (records per poll; for Tx,
// per transaction), Tick, OnFetchError. The logger and metrics are the
// runtime's.
func WithPolling(p Polling) Option { return func(c *config) { c.polling = p } }

// CommitEvery sets how often a Group commits the offsets done while running
// (default 1 s); it commits on revocation and on stop too. What a crash
// processes twice is what was done since the last commit.
func CommitEvery(d time.Duration) Option { return func(c *config) { c.commitEvery = d } }

// Balancer sets a Group's balancer (default cooperative sticky: a member
// joining or leaving moves only the partitions that change hands). A stage
// that joins partition p of several topics uses the range balancer.
func Balancer(b kgo.GroupBalancer) Option { return func(c *config) { c.balancer = b } }

// FromStart makes a new group start at the start of its topics (default:
// at their end, only new records).
func FromStart(yes bool) Option { return func(c *config) { c.fromStart = yes } }

// OnAssigned is told of the partitions assigned to a Group's member.
func OnAssigned(fn func(map[string][]int32)) Option { return func(c *config) { c.onAssigned = fn } }

// OnCommitError is also told of each failed offset commit of a Group (a
// stage's own error counter).
func OnCommitError(fn func(error)) Option { return func(c *config) { c.onCommitErr = fn } }

// TxInterval makes a Tx begin its transactions at least d apart (default 0:
// each as soon as the previous one ended). Records that arrive meanwhile
// wait for the next one: at most d more delay, for fewer and fuller
// transactions when traffic is light, which costs the stage and the brokers
// less CPU per record. Under load a transaction takes longer than d anyway.
func TxInterval(d time.Duration) Option { return func(c *config) { c.txInterval = d } }

// Reopen lets a Tx ride out a transaction that fails to begin or end (Kafka
// unreachable mid-commit, e.g. a broker restart; a fenced producer): it
// closes its session and opens a new one with open, which fences the old
// producer, aborts what it left open and resumes from the committed
// offsets. Without it, Run returns the error.
func Reopen(open func() (*kgo.GroupTransactSession, error)) Option {
	return func(c *config) { c.reopen = open }
}
