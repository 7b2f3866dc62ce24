package replayer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/replayer/middleware"
	"github.com/mirrorline/mirrorline/telemetry"
)

// ErrInvalidJob marks the errors of a JobSpec that cannot run (a bad window,
// timing, worker or target setting); their text names the flag.
var ErrInvalidJob = errors.New("invalid window replay job")

// invalidJob is an error of a JobSpec that cannot run.
type invalidJob struct{ err error }

func (e invalidJob) Error() string   { return e.err.Error() }
func (e invalidJob) Unwrap() []error { return []error{e.err, ErrInvalidJob} }

func invalidf(format string, args ...any) error { return invalidJob{fmt.Errorf(format, args...)} }

// maxWorkers bounds --workers.
const maxWorkers = 10000

// unixEpoch is the earliest time a Kafka record timestamp can hold.
var unixEpoch = time.Unix(0, 0).UTC()

// JobSpec is a window replay as a command gives it: the settings as typed
// (checked by RunJob), and where the summary, progress and metrics go.
type JobSpec struct {
	Service string
	Kafka   broker.Config
	// From and To bound the window (RFC 3339, "now", or relative like
	// -15m); To defaults to now.
	From, To string
	// Speed, Rate and Ramp are the timing (see ParseTiming).
	Speed, Rate, Ramp string
	// MaxRate caps any speed or rate, per job (e.g. "10000/s").
	MaxRate string
	// MaxLag is how late a send may be before it is dropped.
	MaxLag time.Duration
	// Concurrency is the requests in flight at most (0: DefaultInFlight).
	Concurrency int
	// Job names the job (default replay-SERVICE-TIME); Workers processes
	// share it, this one is Worker (0..Workers-1).
	Job             string
	Workers, Worker int
	// StartAt anchors the job's clock (RFC 3339; default: agreed through
	// JobsTopic when Workers > 1, else now), StartDelay after the first
	// proposal of an agreed job.
	StartAt    string
	StartDelay time.Duration
	// DryRun schedules and reports without sending, on a virtual clock.
	DryRun bool
	// MaxErrorRate fails the job above this share of failed requests
	// (e.g. "0.05" or "5%"; default: only when every request failed).
	MaxErrorRate string
	// Target is the shadow's base URL; TrustedTarget is admitted without
	// AllowTargets (the target of the configuration file).
	Target, TrustedTarget string
	AllowTargets          []string
	Timeout               time.Duration
	KeepHost              bool
	BodyLimit             int64
	// Routing selects, routes and rewrites the records (replay.select,
	// .safe, .routes, .credentials, .jwt, .breaker); Middleware, when set,
	// is the program every request passes through.
	Routing    Routing
	Middleware *middleware.Config
	// Topic is read (default mirror.clean.SERVICE); Instance names this
	// replayer in shadow records (default DefaultInstance).
	Topic, Instance string
	// Out receives the text summary; ReportPath, when set, the JSON one.
	Out        io.Writer
	ReportPath string
	// OnProgress, when set, is told the records done and scheduled, and
	// OnProgressDone when the replay ends, before the summary is written;
	// otherwise ProgressOut, when set, gets a line every ProgressInterval.
	OnProgress       func(done, total int64)
	OnProgressDone   func()
	ProgressOut      io.Writer
	ProgressInterval time.Duration
	Logger           hclog.Logger
	// Budget returns the shadow topic's record budget for cl (nil: the
	// producers' default).
	Budget func(ctx context.Context, cl *kgo.Client) *broker.Budget
	// Serve serves the job's metrics and health until ctx ends (nil: not
	// served).
	Serve func(ctx context.Context, tel *telemetry.Server) error
}

// job is a checked JobSpec.
type job struct {
	spec        JobSpec
	from, to    time.Time
	profile     Profile
	maxRate     float64
	concurrency int
	startAt     time.Time
	maxErrRate  float64
	sender      *Sender
}

// RunJob checks spec, plans the window's offsets, agrees the plan with the
// job's other workers, replays this worker's share, writes the summary (and
// the JSON report) and returns the job's verdict: nil, an error wrapping
// ErrInvalidJob (ErrJobConflict, ErrJobOver) for settings that cannot run, or
// the failure (interrupted, error rate above the cap, Kafka).
func RunJob(ctx context.Context, spec JobSpec) error {
	now := time.Now()
	j, err := checkJob(spec, now)
	if err != nil {
		return err
	}
	cl, err := broker.NewClient(spec.Kafka)
	if err != nil {
		return invalidJob{err}
	}
	defer broker.CloseFlushed(cl)
	plan, err := j.plan(ctx, cl, now)
	if err != nil {
		return err
	}
	sum, runErr := j.replay(ctx, plan)
	if spec.OnProgressDone != nil {
		spec.OnProgressDone()
	}
	if sum == nil {
		return runErr
	}
	sum.Topic, sum.From, sum.To, sum.Timing = plan.Topic, plan.From, plan.To, j.profile.Spec
	sum.Worker, sum.Workers, sum.Target = spec.Worker, spec.Workers, spec.Target
	if err := sum.WriteText(spec.Out); err != nil {
		return fmt.Errorf("replay %s: print summary: %w", plan.Job, err)
	}
	if spec.ReportPath != "" {
		if err := writeReport(spec.ReportPath, sum); err != nil {
			return err
		}
	}
	if runErr != nil && ctx.Err() != nil {
		return fmt.Errorf("replay %s: interrupted after %d of %d scheduled records", plan.Job, sum.Sent+sum.Dropped, sum.Scheduled)
	}
	if runErr == nil && sum.Failed {
		return fmt.Errorf("replay %s failed: %s", plan.Job, sum.Failure)
	}
	return runErr
}

// checkJob turns spec into a job; every error names the flag.
func checkJob(spec JobSpec, now time.Time) (*job, error) {
	spec.To = cmp.Or(spec.To, "now") // as the job's parameters, which its workers compare
	j := &job{spec: spec}
	err := j.window(now)
	if err != nil {
		return nil, err
	}
	if j.profile, err = ParseTiming(spec.Speed, spec.Rate, spec.Ramp); err != nil {
		return nil, invalidJob{err}
	}
	if j.maxRate, err = ParseRate(spec.MaxRate); err != nil {
		return nil, invalidf("max-rate: %v", err)
	}
	if j.profile.Unit == Records && j.profile.MaxPerSecond() > j.maxRate {
		return nil, invalidf("rate: %s goes up to %s, above --max-rate %s", j.profile.Spec, FormatRate(j.profile.MaxPerSecond()), FormatRate(j.maxRate))
	}
	if spec.MaxLag <= 0 {
		return nil, invalidf("max-lag: must be positive, got %s", spec.MaxLag)
	}
	if j.concurrency = cmp.Or(spec.Concurrency, DefaultInFlight); j.concurrency < 0 {
		return nil, invalidf("concurrency: must be positive, got %d", j.concurrency)
	}
	if err := j.workerSettings(); err != nil {
		return nil, err
	}
	j.maxErrRate = 1
	if spec.MaxErrorRate != "" {
		if j.maxErrRate, err = ParseErrorRate(spec.MaxErrorRate); err != nil {
			return nil, invalidf("max-error-rate: %v", err)
		}
	}
	if spec.ProgressInterval <= 0 {
		return nil, invalidf("progress-interval: must be positive, got %s", spec.ProgressInterval)
	}
	if err := j.checkTarget(); err != nil {
		return nil, err
	}
	j.defaults(now)
	return j, nil
}

// checkTarget builds the sender of the target, admitted by the allowlist;
// a dry run needs none.
func (j *job) checkTarget() error {
	s := j.spec
	if s.Target == "" {
		if s.DryRun {
			return nil
		}
		return invalidf("target: required (or --dry-run)")
	}
	if s.Timeout <= 0 {
		return invalidf("timeout: must be positive, got %s", s.Timeout)
	}
	if err := s.Routing.Validate(); err != nil {
		return invalidJob{err}
	}
	if s.Middleware != nil {
		if err := s.Middleware.Validate(); err != nil {
			return invalidf("replay.%v", err)
		}
	}
	var err error
	if j.sender, err = AllowedSender(s.Target, s.TrustedTarget, s.AllowTargets, j.concurrency, j.senderOpts()...); err != nil {
		return invalidJob{err}
	}
	return nil
}

// senderOpts are the options of the job's senders.
func (j *job) senderOpts() []Option {
	s := j.spec
	return []Option{Timeout(s.Timeout), KeepHost(s.KeepHost), ResponseBodyLimit(s.BodyLimit)}
}

// RouteSender returns the newSender of NewRequester: AllowedSender with the
// replay's allowlist, connections and options for a route's target, which
// is written in the configuration file as the trusted target is and so is
// trusted alike.
func RouteSender(allow []string, conns int, opts ...Option) func(target string) (*Sender, error) {
	return func(target string) (*Sender, error) { return AllowedSender(target, target, allow, conns, opts...) }
}

// AllowedSender is NewSender(target, conns, opts...) for a target that
// CheckTarget admits with the allowlist of the entries allow and trusted (the
// target of the configuration file).
func AllowedSender(target, trusted string, allow []string, conns int, opts ...Option) (*Sender, error) {
	sender, err := NewSender(target, conns, opts...)
	if err != nil {
		return nil, err
	}
	list, err := NewAllowlist(allow)
	if err != nil {
		return nil, err
	}
	if err := CheckTarget(sender.Target(), list, trusted); err != nil {
		return nil, err
	}
	return sender, nil
}

// defaults names the topic, the job and the instance when the spec does not.
func (j *job) defaults(now time.Time) {
	s := &j.spec
	s.Topic = cmp.Or(s.Topic, broker.Topic(broker.Clean, s.Service))
	s.Job = cmp.Or(s.Job, fmt.Sprintf("replay-%s-%s", s.Service, now.UTC().Format("20060102T150405.000Z")))
	s.Instance = cmp.Or(s.Instance, DefaultInstance())
	if s.Logger == nil {
		s.Logger = hclog.NewNullLogger()
	}
}

// window parses --from and --to into the window, in milliseconds as record
// timestamps are.
func (j *job) window(now time.Time) (err error) {
	s := j.spec
	if s.From == "" {
		return invalidf("from: required for a window replay (--to alone is not enough)")
	}
	if j.from, err = ParseWhen(s.From, now); err != nil {
		return invalidf("from: %v", err)
	}
	if j.to, err = ParseWhen(s.To, now); err != nil {
		return invalidf("to: %v", err)
	}
	// Kafka has no timestamps before the epoch: asked for one, it answers
	// UNSUPPORTED_VERSION, which says nothing of the cause.
	if j.from.Before(unixEpoch) {
		return invalidf("from: %s is %s, before %s (Kafka record timestamps start at the Unix epoch)", s.From, j.from.UTC().Format(time.RFC3339), unixEpoch.Format(time.RFC3339))
	}
	j.from, j.to = j.from.Truncate(time.Millisecond), j.to.Truncate(time.Millisecond)
	if !j.from.Before(j.to) {
		return invalidf("from: %s is not before --to %s", j.from.Format(time.RFC3339Nano), j.to.Format(time.RFC3339Nano))
	}
	if j.to.After(now.Add(time.Second)) {
		return invalidf("to: %s is in the future; a window replay reads traffic already captured (use --live to follow new traffic)", j.to.Format(time.RFC3339Nano))
	}
	return nil
}

// workerSettings checks --workers, --worker, --job, --start-at and
// --start-delay, and parses --start-at (zero without it).
func (j *job) workerSettings() (err error) {
	s := j.spec
	if s.Workers < 1 || s.Workers > maxWorkers {
		return invalidf("workers: must be 1..%d, got %d", maxWorkers, s.Workers)
	}
	if s.Worker < 0 || s.Worker >= s.Workers {
		return invalidf("worker: must be 0..%d (--workers %d), got %d", s.Workers-1, s.Workers, s.Worker)
	}
	if s.Workers > 1 && s.Job == "" {
		return invalidf("job: required with --workers %d: every worker of the job is given the same --job", s.Workers)
	}
	if s.StartAt != "" {
		if j.startAt, err = time.Parse(time.RFC3339Nano, s.StartAt); err != nil {
			return invalidf("start-at: %q is not RFC 3339 (2006-01-02T15:04:05Z)", s.StartAt)
		}
	}
	if s.StartDelay < 0 {
		return invalidf("start-delay: must not be negative, got %s", s.StartDelay)
	}
	return nil
}

// plan finds the window's offsets and, with several workers, agrees the
// plan through mirror.jobs.
func (j *job) plan(ctx context.Context, cl *kgo.Client, now time.Time) (Plan, error) {
	s := j.spec
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ranges, err := PlanWindow(pctx, kadm.NewClient(cl), s.Topic, j.from, j.to)
	if err != nil {
		return Plan{}, err
	}
	plan := Plan{
		Job: s.Job, Topic: s.Topic, From: j.from, To: j.to, Timing: j.profile.Spec, Workers: s.Workers,
		Params: JobParams(s.Topic, s.From, s.To, j.profile.Spec, s.Workers, s.StartAt),
		Ranges: ranges, Creator: s.Instance, Created: now, Start: j.startAt,
	}
	if s.Workers == 1 || s.DryRun {
		return plan, nil
	}
	if plan.Start.IsZero() {
		plan.Start = now.Add(s.StartDelay)
	}
	plan.Ends = plan.Start.Add(NewSchedule(j.profile, j.from, 1, 0).Span(plan.Offsets(), j.to))
	agreed, err := AgreePlan(pctx, s.Kafka, plan, now)
	if errors.Is(err, ErrJobConflict) || errors.Is(err, ErrJobOver) {
		return Plan{}, invalidJob{err}
	}
	if err != nil {
		return Plan{}, err
	}
	if agreed.Creator != s.Instance {
		s.Logger.Info("joined job", "job", agreed.Job, "creator", agreed.Creator, "start", agreed.Start)
	}
	return agreed, nil
}

// replay replays this worker's share of plan and returns its summary.
func (j *job) replay(ctx context.Context, plan Plan) (*Summary, error) {
	s := j.spec
	mine := plan.Share(s.Worker, s.Workers)
	share := ShareOf(mine, plan.Ranges)
	sched := NewSchedule(j.profile, plan.From, share, float64(s.Worker)/float64(s.Workers))
	cons, err := broker.NewClient(s.Kafka, WindowConsumeOpts(plan.Topic, mine)...)
	if err != nil {
		return nil, invalidJob{err}
	}
	defer broker.CloseFlushed(cons)
	tel := telemetry.NewServer()
	tel.AddCheck("kafka", func(ctx context.Context) error { return broker.Explain(cons.Ping(ctx), nil) })
	metrics := NewMetrics(tel.Registry)
	src := NewKafkaSource(cons, plan.Topic, plan.From, plan.To, mine, WithLogger(s.Logger), WithMetrics(metrics))
	defer src.Close()

	opts := []Option{
		Concurrency(j.concurrency), MaxLag(s.MaxLag),
		MaxRate(j.maxRate * share), // the cap is per job: each worker takes its share
		DryRun(s.DryRun), WithMetrics(metrics), WithLogger(s.Logger),
		Job(plan.Job, s.Instance), MaxErrorRate(j.maxErrRate),
		PlannedSpan(NewSchedule(j.profile, plan.From, 1, 0).Span(plan.Offsets(), plan.To)),
	}
	if !plan.Start.IsZero() {
		opts = append(opts, StartAt(plan.Start))
	}
	var (
		req Requester
		mw  *middleware.Middleware
	)
	if s.DryRun {
		opts = append(opts, WithClock(NewVirtualClock(time.Now())))
		if j.sender != nil && s.Routing.Active() {
			// Nothing is sent, but what routing would skip is not
			// scheduled either (the middleware is not run).
			if req, _, err = NewRequester(ctx, j.sender, s.Routing, nil, RouteSender(s.AllowTargets, j.concurrency, j.senderOpts()...), WithLogger(s.Logger), WithMetrics(metrics)); err != nil {
				return nil, invalidJob{err}
			}
		}
	} else {
		req, mw, err = NewRequester(ctx, j.sender, s.Routing, s.Middleware, RouteSender(s.AllowTargets, j.concurrency, j.senderOpts()...), WithLogger(s.Logger), WithMetrics(metrics))
		if err != nil {
			return nil, invalidJob{err}
		}
		if mw != nil {
			defer mw.Close()
			opts = append(opts, WithMiddleware(mw))
		}
		opts = append(opts, PublishTo(cons, broker.Topic(broker.Shadow, s.Service)))
		if s.Budget != nil {
			opts = append(opts, ShadowBudget(s.Budget(ctx, cons)))
		}
	}
	if s.OnProgress != nil {
		opts = append(opts, OnProgress(s.OnProgress))
	} else if s.ProgressOut != nil {
		opts = append(opts, ProgressLines(s.ProgressOut, s.ProgressInterval))
	}
	s.Logger.Info("window replay", "job", plan.Job, "topic", plan.Topic, "from", plan.From, "to", plan.To, "timing", j.profile.Spec,
		"worker", s.Worker, "workers", s.Workers, "partitions", DescribeRanges(mine), "target", s.Target, "dry_run", s.DryRun)

	mctx, stopMetrics := context.WithCancel(ctx)
	var served sync.WaitGroup
	if s.Serve != nil {
		served.Go(func() {
			if err := s.Serve(mctx, tel); err != nil {
				s.Logger.Warn("metrics endpoint not served", "error", err)
			}
		})
	}
	var sum *Summary
	err = supervise(ctx, mw, func(ctx context.Context) (err error) {
		sum, err = NewWindow(src, sched, req, opts...).Run(ctx)
		return err
	})
	stopMetrics()
	served.Wait()
	return sum, err
}

// writeReport writes sum as JSON to path.
func writeReport(path string, sum *Summary) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	err = sum.WriteJSON(f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("report: %w", cerr)
	}
	return err
}
