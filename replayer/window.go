package replayer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Window replay defaults.
const (
	// DefaultInFlight is how many requests a window replay keeps in flight at most.
	DefaultInFlight = 64
	// DefaultMaxLag is the default of MaxLag.
	DefaultMaxLag = time.Second
	// DefaultMaxRate caps any speed or rate, in records per second.
	DefaultMaxRate = 10000.0
	// LateAfter is the lag past which a send counts as late.
	LateAfter = 10 * time.Millisecond
	// DropMaxLag is the drop reason of records more than --max-lag late.
	DropMaxLag = "max_lag"
	// DropTooOld is the drop reason of live records older than SkipOlderThan.
	DropTooOld = "too_old"
	// IdleAfter is the wait before the first send from which a window replay
	// says (in its log and summary) that the window starts idle.
	IdleAfter = time.Second
	// DefaultProgressInterval is how often ProgressLines prints.
	DefaultProgressInterval = 10 * time.Second
)

// Requester replays one captured request: *Sender (one target, the request
// unchanged) and *Router (selection, routes, transforms, credentials,
// middleware and breakers) are the two.
type Requester interface {
	// Replay sends ex and returns what happened. The error is non-nil when
	// the record was not sent: a *Skipped (by choice: counted in
	// dropped_total) or why it cannot be replayed (errors_total).
	Replay(ctx context.Context, ex *mlv1.Exchange) (Outcome, error)
	// Target is the default target (the one a summary names).
	Target() *url.URL
}

// Outcome is the replay of one record.
type Outcome struct {
	// Target is the base URL of the target the request went to.
	Target string
	// Route names the route that sent it ("" without routing).
	Route string
	// Sent is the request as sent, with credentials masked, when it
	// differs from the captured one (a transform, the middleware or
	// credentials changed it); nil otherwise.
	Sent *mlv1.Request
	// Response is the target's response (Error set when the request
	// failed); Failure says why it failed (ErrorReason), "" when it did not.
	Response *mlv1.Response
	Failure  string
}

// Publisher takes the shadow records; *kgo.Client is one.
type Publisher interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	Flush(ctx context.Context) error
}

// Window replays a time window of captured traffic on a schedule: every record
// is sent at its planned time (see Schedule) however the target behaves (no
// coordinated omission): requests run concurrently up to Concurrency, and a
// record that cannot be sent within MaxLag of its time is dropped and counted.
type Window struct {
	options
	src    Source
	sched  *Schedule
	sender Requester
	// ticker paces the progress lines and wall reads the time they are
	// measured in (tests inject both).
	ticker func(time.Duration) (<-chan time.Time, func())
	wall   func() time.Time
	// warmAhead is WarmAhead (tests widen it).
	warmAhead time.Duration
}

// NewWindow returns a window replay of the records of src on sched, sent with
// sender (nil for a dry run).
func NewWindow(src Source, sched *Schedule, sender Requester, opts ...Option) *Window {
	w := &Window{options: newOptions(opts, Concurrency(DefaultInFlight), MaxRate(DefaultMaxRate)), src: src, sched: sched, sender: sender, ticker: realTicker, wall: time.Now, warmAhead: WarmAhead}
	w.job, w.dry = cmp.Or(w.job, "window"), w.dry || sender == nil
	return w
}

// Run replays the window and returns its summary. On cancellation it stops
// scheduling, waits for the requests in flight and returns the partial summary
// (Interrupted set) with the context's error.
func (w *Window) Run(ctx context.Context) (*Summary, error) {
	st := newStats(w.anchor)
	sum := &Summary{Job: w.job, Instance: w.instance, DryRun: w.dry, Started: w.clock.Now()}
	if w.sender != nil {
		sum.Target = w.sender.Target().String()
	}
	var interval time.Duration
	if w.maxRate > 0 {
		interval = time.Duration(float64(time.Second) / w.maxRate)
	}
	var (
		pool     = newWorkers(w.conc)
		sem      = make(chan struct{}, w.conc)
		anchor   = w.anchor
		index    int64
		nextFree time.Time
		runErr   error
	)
	if w.lines != nil {
		defer w.printProgress(st)()
	}
	warmer, _ := w.sender.(Warmer)
	ahead := &lookahead{src: w.src}
	for {
		it, err := ahead.next(ctx)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				runErr = err
			}
			break
		}
		if anchor.IsZero() {
			anchor = w.start(warmer != nil, st)
		}
		w.reportProgress()
		if !w.schedulable(it, st) {
			continue
		}
		planned := anchor.Add(w.sched.At(index, it.Capture))
		if index == 0 {
			w.announceIdle(anchor, planned, it.Capture)
		}
		index++
		st.planned(planned)
		slot := planned
		if interval > 0 && nextFree.After(slot) {
			slot = nextFree
		}
		if warmer != nil && !w.dry && slot.Sub(w.clock.Now()) >= WarmSpan {
			if err := w.warm(ctx, warmer, ahead, slot, anchor, index); err != nil {
				runErr = err
				break
			}
		}
		if err := sleepUntil(ctx, w.clock, slot); err != nil {
			runErr = err
			break
		}
		deadline := planned.Add(w.maxLag)
		if !w.clock.Now().After(deadline) && (w.dry || w.acquire(ctx, sem, deadline)) {
			now := w.clock.Now()
			lag := max(now.Sub(planned), 0)
			if interval > 0 {
				// The cap spaces the slots, not the sends: a send that
				// went out late does not push the ones after it.
				nextFree = slot.Add(interval)
			}
			late := lag > LateAfter
			st.dispatch(now, lag, late)
			w.metrics.ScheduleLag.Observe(lag.Seconds())
			if late {
				w.metrics.Late.Inc()
			}
			if w.dry {
				continue
			}
			pool.run(func() {
				defer func() { <-sem }()
				w.send(ctx, it, now, lag, st)
			})
			continue
		}
		if ctx.Err() != nil {
			runErr = ctx.Err()
			break
		}
		st.drop()
		w.metrics.Dropped.WithLabelValues(DropMaxLag).Inc()
		w.log.Debug("record dropped: too late", "partition", it.Partition, "offset", it.Offset, "max_lag", w.maxLag)
	}
	pool.wait()
	w.reportProgress()
	if w.pub != nil && !w.dry {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		err := w.pub.Flush(fctx)
		cancel()
		if err != nil && runErr == nil {
			runErr = fmt.Errorf("replay %s: flush shadow records: %w", w.job, err)
		}
	}
	if g, ok := w.src.(goneCounter); ok {
		if n := g.Gone(); n > 0 {
			st.mu.Lock()
			st.errors[ReasonGone] += n
			st.mu.Unlock()
		}
	}
	sum.Finished = w.clock.Now()
	st.summary(sum)
	sum.judge(w.maxErrRate)
	if _, total := w.src.Progress(); total > 0 {
		sum.Offsets = total
	}
	sum.Interrupted = runErr != nil && ctx.Err() != nil
	return sum, runErr
}

// goneCounter is a Source that can tell how many records of its share Kafka
// no longer had when it came to read them (KafkaSource).
type goneCounter interface{ Gone() int64 }

// warm waits until WarmAhead before slot, then opens a connection for each
// record due in the WarmSpan from slot (at most Concurrency): after an idle
// wait the burst finds its connections ready. It fails only when ctx ends.
func (w *Window) warm(ctx context.Context, warmer Warmer, ahead *lookahead, slot, anchor time.Time, index int64) error {
	if err := sleepUntil(ctx, w.clock, slot.Add(-w.warmAhead)); err != nil {
		return err
	}
	wctx, cancel := context.WithDeadline(ctx, slot)
	defer cancel()
	n := 1 + ahead.burst(wctx, w.conc-1, slot.Add(WarmSpan), func(k int, it Item) time.Time {
		return anchor.Add(w.sched.At(index+int64(k), it.Capture))
	})
	dialled, err := warmer.Warm(wctx, n)
	if err != nil && ctx.Err() == nil {
		w.log.Debug("connections not warmed", "job", w.job, "want", n, "dialled", dialled, "error", err)
	}
	return ctx.Err()
}

// start returns the job start when the first record is read: now, or, when
// connections are warmed (warm), WarmAhead later, time to open the first
// burst's connections.
func (w *Window) start(warm bool, st *stats) time.Time {
	anchor := w.clock.Now()
	if warm && !w.dry {
		anchor = anchor.Add(w.warmAhead)
	}
	st.start(anchor)
	return anchor
}

// schedulable reports whether it is scheduled: decoded, replayable and
// selected by the sender's routing (so --rate paces only the records that
// are sent). What is not is counted in st, in a dry run too; Replay checks
// again.
func (w *Window) schedulable(it Item, st *stats) bool {
	if it.Exchange == nil {
		st.error("decode")
		w.metrics.Errors.WithLabelValues("decode").Inc()
		return false
	}
	if skipEgress(w.metrics, it.Exchange) {
		st.skip(DropEgress)
		return false
	}
	if err := checkRecord(it.Exchange); err != nil {
		st.error(w.metrics.countSkip(err))
		return false
	}
	if reason := w.selects(it.Exchange); reason != "" {
		st.skip(reason)
		w.metrics.Dropped.WithLabelValues(reason).Inc()
		return false
	}
	return true
}

// selects returns why the sender's routing would not send ex ("": it would),
// for a Requester that selects (a *Router).
func (w *Window) selects(ex *mlv1.Exchange) string {
	if s, ok := w.sender.(interface{ Selects(*mlv1.Exchange) string }); ok {
		return s.Selects(ex)
	}
	return ""
}

// acquire takes a request slot, waiting until deadline at most.
func (w *Window) acquire(ctx context.Context, sem chan struct{}, deadline time.Time) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
	}
	ch, stop := w.clock.Timer(deadline)
	defer stop()
	select {
	case sem <- struct{}{}:
		return true
	case <-ch:
		return false
	case <-ctx.Done():
		return false
	}
}

// announceIdle logs, when the first record is due IdleAfter or more after
// the job start, when it was captured and how long the replay waits for it.
func (w *Window) announceIdle(anchor, planned, captured time.Time) {
	idle := planned.Sub(anchor)
	if idle < IdleAfter {
		return
	}
	msg := "window starts idle: waiting for the first record"
	if w.dry {
		msg = "window starts idle: a replay would wait for the first record"
	}
	w.log.Info(msg, "job", w.job, "first_record", captured.UTC().Format(time.RFC3339Nano),
		"wait", max(planned.Sub(w.clock.Now()), 0).Round(time.Millisecond).String(),
		"idle", idle.Round(time.Millisecond).String(), "timing", w.sched.Profile().Spec)
}

func (w *Window) reportProgress() {
	if w.progress != nil {
		w.progress(w.src.Progress())
	}
}

// send replays one record and publishes the shadow's response.
func (w *Window) send(ctx context.Context, it Item, sent time.Time, lag time.Duration, st *stats) {
	ex := it.Exchange
	out, err := w.sender.Replay(withPace(ctx, w.sched.messagePace(it.Capture)), ex)
	if err != nil {
		reason := w.metrics.countSkip(err)
		if errors.As(err, new(*Skipped)) {
			st.skip(reason)
		} else {
			st.error(reason)
		}
		w.log.Debug("record not replayed", "id", ex.GetId(), "reason", reason)
		return
	}
	resp := out.Response
	if resp.Error != "" && ctx.Err() != nil {
		return // cut short by the end of the replay: not a target error
	}
	class := w.metrics.countResponse(resp, out.Failure)
	st.response(class, out.Failure, time.Duration(resp.LatencyNs))
	if w.pub == nil {
		return
	}
	src := &kgo.Record{Topic: it.Topic, Partition: it.Partition, Offset: it.Offset, Key: it.Key, Timestamp: it.Capture}
	w.publish(ctx, src, ex, out, sent, lag, func(reason string) {
		if reason != "" {
			st.error(reason)
		}
	})
}
