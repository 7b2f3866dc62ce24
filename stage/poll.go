package stage

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Poller is the slice of a kgo client (or group transact session) the
// runtime polls.
type Poller interface {
	PollRecords(ctx context.Context, maxPollRecords int) kgo.Fetches
}

// Polling says how Poll polls.
type Polling struct {
	// Max is the most records one poll returns (0: 1000).
	Max int
	// Tick, when positive, bounds how long one poll waits: fn is called at
	// least that often, with no records when none came (timers of the
	// stage, such as the comparator's windows, run in fn).
	Tick time.Duration
	// Log receives fetch errors (nil: not logged).
	Log hclog.Logger
	// Metrics counts polled records and fetch errors (nil: not counted).
	Metrics *Metrics
	// OnFetchError, when set, is also told of each fetch error (a stage's
	// own error counter).
	OnFetchError func(topic string, partition int32, err error)
}

// ErrDone ends Poll without an error: fn returns it when the stage is done
// (a bounded run reached its end).
var ErrDone = errors.New("stage done")

// Poll is the one poll loop of the pipeline. It polls p until ctx ends or
// the client is closed (then it returns nil) and calls fn with each poll's
// fetches; fn's error ends the loop and is returned (ErrDone: nil). Fetch
// errors are logged and counted, never returned: the client retries them.
// fn is not called when ctx ended during the poll.
func Poll(ctx context.Context, p Poller, o Polling, fn func(kgo.Fetches) error) error {
	max := o.Max
	if max <= 0 {
		max = 1000
	}
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if o.Tick > 0 {
			pctx, cancel = context.WithTimeout(ctx, o.Tick)
		}
		fs := p.PollRecords(pctx, max)
		cancel()
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		o.countErrors(fs)
		if o.Metrics != nil {
			o.Metrics.Polled.Add(float64(fs.NumRecords()))
		}
		if err := fn(fs); err != nil {
			if errors.Is(err, ErrDone) {
				return nil
			}
			return err
		}
	}
}

// countErrors logs and counts the fetch errors of fs, leaving out the ends
// of polls (a cancelled or timed out context).
func (o Polling) countErrors(fs kgo.Fetches) {
	fs.EachError(func(topic string, partition int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		if o.Log != nil {
			o.Log.Warn("fetch error", "topic", topic, "partition", partition, "error", err)
		}
		if o.Metrics != nil {
			o.Metrics.FetchErrors.WithLabelValues(topic).Inc()
		}
		if o.OnFetchError != nil {
			o.OnFetchError(topic, partition, err)
		}
	})
}
