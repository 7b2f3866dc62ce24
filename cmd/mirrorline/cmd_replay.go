package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"
	"golang.org/x/term"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/telemetry"
)

// windowFlags are the flags of window replays only.
type windowFlags struct {
	from, to           string
	speed, rate, ramp  string
	job                string
	workers, worker    int
	startAt            string
	startDelay         time.Duration
	dryRun             bool
	report             string
	noProgress         bool
	windowOnlyFlagList []string
	maxErrorRate       string
	progressInterval   time.Duration
}

func (a *app) replayCmd() *cobra.Command {
	var live bool
	wf := &windowFlags{workers: 1, startDelay: 5 * time.Second, progressInterval: replayer.DefaultProgressInterval}
	// The target written in the -c file is allowed without an allowlist; this
	// runs after the file is loaded and before flags are parsed.
	a.cfg.Replay.fileTarget = a.cfg.Replay.Target
	if a.cfg.Replay.MaxRate == "" {
		a.cfg.Replay.MaxRate = replayer.FormatRate(replayer.DefaultMaxRate)
	}
	if a.cfg.Replay.MaxLag == 0 {
		a.cfg.Replay.MaxLag = replayer.DefaultMaxLag
	}
	c := &cobra.Command{
		Use:   "replay",
		Short: "Consume a service's clean topic into a shadow target: live, or a time window",
		Long: `Consume mirror.clean.SERVICE and send every request to --target; the shadow's
responses are published to mirror.shadow.SERVICE.

--live joins the consumer group (default mirrorline-replay-SERVICE): start several
replayers with the same group and they share the partitions.

--from T [--to T] replays exactly the records captured in [from, to) (RFC 3339,
"now", or relative like -15m; --to defaults to now) and exits with a summary.
Timing keeps the captured inter-arrival times (default), --speed 5x compresses
them, --rate 500/s sends at a fixed rate, --ramp 1x..10x/10m steps the speed.
Sends never wait for the target: up to --concurrency requests are in flight and
a record more than --max-lag late is dropped and counted. --job NAME --workers N
--worker I splits a job's partitions between N processes that share one clock.
See docs/replay.md.

Targets must be loopback, the replay.target of -c FILE, or allowed with
--allow-target / replay.allow_targets.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			window := wf.from != "" || wf.to != ""
			switch {
			case live && window:
				return usagef("replay: --live and --from/--to exclude each other")
			case !live && !window:
				return usagef("replay: --live is required, or --from (and --to) for a window replay")
			}
			if live {
				// Live replays are capped only when asked to.
				a.cfg.Replay.maxRateSet = cmd.Flags().Changed("max-rate")
				for _, name := range wf.windowOnlyFlagList {
					if cmd.Flags().Changed(name) {
						return usagef("%s: only for window replays (--from/--to)", name)
					}
				}
			}
			var need []string
			switch {
			case live:
				need = append(need, "target")
			case !wf.dryRun:
				need = append(need, "window-target")
			}
			if err := a.requireServiceAndBrokers(need...); err != nil {
				return err
			}
			if window {
				for _, name := range []string{"group", "start"} {
					if cmd.Flags().Changed(name) {
						return usagef("%s: only for --live (window replays split partitions with --job/--workers/--worker)", name)
					}
				}
				if cmd.Flags().Changed("skip-older-than") {
					return usagef("skip-older-than: only for --live (window replays drop records late on their schedule with --max-lag)")
				}
				return a.runWindow(cmd, wf)
			}
			tel := telemetry.NewServer()
			l, cl, err := a.newLiveReplayer(tel)
			if err != nil {
				return err
			}
			defer cl.Close()
			tel.AddCheck("kafka", kafkaCheck(cl))
			a.log.Info("live replay", "service", a.cfg.Service, "target", a.cfg.Replay.Target, "group", a.cfg.Replay.Group)
			a.reload.flags = cmd.Flags()
			return a.runAll(cmd.Context(), tel, func(ctx context.Context) error { return l.Run(ctx, cl) }, a.watchConfig(tel.Registry))
		},
	}
	f := c.Flags()
	f.BoolVar(&live, "live", false, "shadow live traffic as a consumer group")
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	f.StringVar(&a.cfg.Replay.Target, "target", a.cfg.Replay.Target, "base URL of the shadow deployment")
	f.IntVar(&a.cfg.Replay.Concurrency, "concurrency", a.cfg.Replay.Concurrency, "requests in flight at most (window replays default to 64 unless set)")
	f.StringVar(&a.cfg.Replay.Order, "order", a.cfg.Replay.Order, "live: connection (a connection's requests in order, one at a time) or none (all --concurrency slots; keeps up with a slower shadow)")
	f.StringVar(&a.cfg.Replay.Instance, "instance", a.cfg.Replay.Instance, "name of this replayer in shadow records (default HOST-PID)")
	f.StringVar(&a.cfg.Replay.Group, "group", a.cfg.Replay.Group, "live: consumer group (default mirrorline-replay-SERVICE)")
	f.StringVar(&a.cfg.Replay.Topic, "topic", a.cfg.Replay.Topic, "topic to consume (default mirror.clean.SERVICE)")
	f.StringVar(&a.cfg.Replay.Start, "start", a.cfg.Replay.Start, "live: where a new group starts: latest (default) or earliest")
	f.DurationVar(&a.cfg.Replay.Timeout, "timeout", a.cfg.Replay.Timeout, "timeout of each request to the target")
	f.BoolVar(&a.cfg.Replay.KeepHost, "keep-host", a.cfg.Replay.KeepHost, "send the captured Host header instead of the target's")
	f.Int64Var(&a.cfg.Replay.BodyLimit, "body-limit", a.cfg.Replay.BodyLimit, "response body bytes recorded per shadow response")
	f.DurationVar(&a.cfg.Replay.SkipOlderThan, "skip-older-than", a.cfg.Replay.SkipOlderThan, "live: skip (and count as dropped{reason=\"too_old\"}) records captured longer ago than this, so a shadow that cannot keep up stays near live traffic (default 0: replay all)")
	f.StringArrayVar(&a.cfg.Replay.AllowTargets, "allow-target", a.cfg.Replay.AllowTargets, "allow replaying to host[:port], *.domain[:port] or CIDR (repeatable; replaces replay.allow_targets)")

	// window replays only
	f.StringVar(&wf.from, "from", "", "window start: RFC 3339, now, or relative like -15m")
	f.StringVar(&wf.to, "to", "", "window end, exclusive (default now)")
	f.StringVar(&wf.speed, "speed", "", "keep the captured timing, N times faster (e.g. 5x, 0.5x; default 1x)")
	f.StringVar(&wf.rate, "rate", "", "ignore the captured timing and send at a fixed rate (e.g. 500/s)")
	f.StringVar(&wf.ramp, "ramp", "", "step the speed or rate: FROM..TO/DURATION[:STEPS] (e.g. 1x..10x/10m, 100/s..1000/s/5m:5)")
	f.StringVar(&a.cfg.Replay.MaxRate, "max-rate", a.cfg.Replay.MaxRate, "cap on any speed or rate, per job; live: cap on the send rate, e.g. while catching up after a restart (default: none)")
	f.DurationVar(&a.cfg.Replay.MaxLag, "max-lag", a.cfg.Replay.MaxLag, "drop (and count) a record that cannot be sent within this of its planned time")
	f.BoolVar(&wf.dryRun, "dry-run", false, "schedule and report without sending (on a virtual clock: takes only the time to read)")
	f.StringVar(&wf.job, "job", "", "job name, shared by the workers of one job (default replay-SERVICE-TIME)")
	f.IntVar(&wf.workers, "workers", wf.workers, "processes sharing the job: each takes the partitions p with p mod N = --worker")
	f.IntVar(&wf.worker, "worker", 0, "this process's index in the job, 0..N-1")
	f.StringVar(&wf.startAt, "start-at", "", "job start (RFC 3339): the shared clock anchor (default: agreed through mirror.jobs when --workers > 1, else now)")
	f.DurationVar(&wf.startDelay, "start-delay", wf.startDelay, "with --workers > 1 and no --start-at: the job starts this long after the first worker proposes it")
	f.StringVar(&wf.report, "report", "", "also write the summary as JSON to this file")
	f.BoolVar(&wf.noProgress, "no-progress", false, "no progress output (a bar on a terminal, else a line on stderr every 10s)")
	f.StringVar(&wf.maxErrorRate, "max-error-rate", "", "the job failed (exit 1) when more than this share of its requests failed, e.g. 0.05 or 5% (default: only when every request failed)")
	f.DurationVar(&wf.progressInterval, "progress-interval", wf.progressInterval, "how often the progress line is printed when stderr is not a terminal")
	_ = f.MarkHidden("progress-interval")
	wf.windowOnlyFlagList = []string{"from", "to", "speed", "rate", "ramp", "max-lag", "dry-run", "job", "workers", "worker", "start-at", "start-delay", "report", "no-progress", "max-error-rate", "progress-interval"}
	return c
}

// checkTarget applies the target allowlist (see replayer.CheckTarget).
func checkTarget(rc ReplayConfig, s *replayer.Sender) error {
	allow, err := replayer.NewAllowlist(rc.AllowTargets)
	if err != nil {
		return usageError{err}
	}
	if err := replayer.CheckTarget(s.Target(), allow, rc.fileTarget); err != nil {
		return usageError{err}
	}
	return nil
}

// newLiveReplayer builds a live replayer and its Kafka client from the configuration.
func (a *app) newLiveReplayer(tel *telemetry.Server) (*replayer.Live, *kgo.Client, error) {
	rc := a.cfg.Replay
	if rc.Target == "" {
		return nil, nil, usagef("target: required")
	}
	if rc.Group == "" {
		rc.Group = replayer.DefaultGroup(a.cfg.Service)
		a.cfg.Replay.Group = rc.Group
	}
	if rc.Topic == "" {
		rc.Topic = broker.Topic(broker.Clean, a.cfg.Service)
	}
	var fromStart bool
	switch rc.Start {
	case "latest", "":
	case "earliest":
		fromStart = true
	default:
		return nil, nil, usagef("start: %q is not latest or earliest", rc.Start)
	}
	if rc.Instance == "" {
		rc.Instance = a.cfg.InstanceID
	}
	if rc.Instance == "" {
		rc.Instance = replayer.DefaultInstance()
	}
	if err := validateSendLimits(rc); err != nil {
		return nil, nil, err
	}
	var maxRate float64
	if rc.maxRateSet || replayKeyInFile(a.cfgPath, "max_rate") {
		// Validated above: live mode has no cap unless one was asked for.
		maxRate, _ = replayer.ParseRate(rc.MaxRate)
	}
	if rc.Order != "" && rc.Order != "connection" && rc.Order != "none" {
		return nil, nil, usagef("order: %q is not connection or none", rc.Order)
	}
	if rc.Concurrency <= 0 {
		return nil, nil, usagef("concurrency: must be positive, got %d", rc.Concurrency)
	}
	if rc.SkipOlderThan < 0 {
		return nil, nil, usagef("skip-older-than: must not be negative, got %s", rc.SkipOlderThan)
	}
	sender, err := replayer.NewSender(rc.Target, rc.Concurrency, replayer.Timeout(rc.Timeout), replayer.KeepHost(rc.KeepHost), replayer.ResponseBodyLimit(rc.BodyLimit))
	if err != nil {
		return nil, nil, usageError{err}
	}
	if err := checkTarget(rc, sender); err != nil {
		return nil, nil, err
	}
	budget := broker.NewBudget(a.cfg.Kafka.ProducerMaxBytes())
	l := replayer.NewLive(sender, a.cfg.Service,
		replayer.Concurrency(rc.Concurrency),
		replayer.Order(rc.Order != "none"),
		replayer.WithMetrics(replayer.NewMetrics(tel.Registry)),
		replayer.WithLogger(a.log.Named("replay")),
		replayer.Job("live", rc.Instance),
		replayer.SkipOlderThan(rc.SkipOlderThan),
		replayer.MaxRate(maxRate),
		replayer.ShadowBudget(budget),
	)
	cl, err := broker.NewClient(a.cfg.Kafka, append(l.ClientOpts(rc.Group, rc.Topic, fromStart), a.cfg.membership(0).Opts()...)...)
	if err != nil {
		return nil, nil, usageError{err}
	}
	a.lookupBudget(context.Background(), budget, cl, broker.Shadow, true)
	a.reload.add(reloadTarget{keys: []string{"replay.max_rate"}, prepare: a.prepareLiveReplay(l)})
	return l, cl, nil
}

// prepareLiveReplay checks the live replayer's reloadable key of a new
// configuration, replay.max_rate (absent: no cap; --max-rate given on the
// command line keeps its value), and returns what puts it in force.
func (a *app) prepareLiveReplay(l *replayer.Live) func(*Config, func(string) bool, hclog.Logger) (func(), error) {
	return func(nc *Config, flagSet func(string) bool, log hclog.Logger) (func(), error) {
		if flagSet("max-rate") {
			if nc.Replay.MaxRate != "" && nc.Replay.MaxRate != a.cfg.Replay.MaxRate {
				log.Warn("replay.max_rate: --max-rate on the command line overrides the file", "max_rate", a.cfg.Replay.MaxRate)
			}
			return func() {}, nil
		}
		var perSecond float64
		if nc.Replay.MaxRate != "" {
			var err error
			if perSecond, err = replayer.ParseRate(nc.Replay.MaxRate); err != nil {
				return nil, fmt.Errorf("replay.max_rate: %w", err)
			}
		}
		return func() {
			l.SetMaxRate(perSecond)
			log.Info("live replay rate cap in force", "max_rate_per_second", perSecond)
		}, nil
	}
}

// unixEpoch is the earliest time a Kafka record timestamp can hold.
var unixEpoch = time.Unix(0, 0).UTC()

// validateSendLimits checks what live and window replays share: every
// request has a timeout (0 or negative would mean none: a hung shadow would
// hold a slot forever), and a rate cap, when given, is a positive rate.
func validateSendLimits(rc ReplayConfig) error {
	if rc.Timeout <= 0 {
		return usagef("timeout: must be positive, got %s (replay.timeout, --timeout)", rc.Timeout)
	}
	if rc.MaxRate != "" {
		if _, err := replayer.ParseRate(rc.MaxRate); err != nil {
			return usagef("max-rate: %v (replay.max_rate, --max-rate)", err)
		}
	}
	return nil
}

// windowJob is a validated window replay request.
type windowJob struct {
	from, to    time.Time
	profile     replayer.Profile
	maxRate     float64
	concurrency int
	startAt     time.Time
	maxErrRate  float64
	sender      *replayer.Sender
	topic       string
	job         string
	instance    string
}

// validateWindow turns the flags and configuration into a windowJob; every
// error is a usage error naming the flag.
func (a *app) validateWindow(cmd *cobra.Command, wf *windowFlags, now time.Time) (*windowJob, error) {
	rc := a.cfg.Replay
	j := &windowJob{}
	var err error
	if j.from, j.to, err = windowBounds(wf, now); err != nil {
		return nil, err
	}
	if j.profile, err = replayer.ParseTiming(wf.speed, wf.rate, wf.ramp); err != nil {
		return nil, usageError{err}
	}
	if j.maxRate, err = replayer.ParseRate(rc.MaxRate); err != nil {
		return nil, usagef("max-rate: %v", err)
	}
	if j.profile.Unit == replayer.Records && j.profile.MaxPerSecond() > j.maxRate {
		return nil, usagef("rate: %s goes up to %s, above --max-rate %s", j.profile.Spec, replayer.FormatRate(j.profile.MaxPerSecond()), replayer.FormatRate(j.maxRate))
	}
	if rc.MaxLag <= 0 {
		return nil, usagef("max-lag: must be positive, got %s", rc.MaxLag)
	}
	if err := validateSendLimits(rc); err != nil {
		return nil, err
	}
	j.concurrency = rc.Concurrency
	if !cmd.Flags().Changed("concurrency") && !replayKeyInFile(a.cfgPath, "concurrency") {
		j.concurrency = replayer.DefaultInFlight
	}
	if j.concurrency <= 0 {
		return nil, usagef("concurrency: must be positive, got %d", j.concurrency)
	}
	if j.startAt, err = workerSettings(wf); err != nil {
		return nil, err
	}
	j.maxErrRate = 1
	if wf.maxErrorRate != "" {
		if j.maxErrRate, err = replayer.ParseErrorRate(wf.maxErrorRate); err != nil {
			return nil, usagef("max-error-rate: %v", err)
		}
	}
	if wf.progressInterval <= 0 {
		return nil, usagef("progress-interval: must be positive, got %s", wf.progressInterval)
	}
	if rc.Target == "" && !wf.dryRun {
		return nil, usagef("target: required (or --dry-run)")
	}
	if rc.Target != "" {
		if j.sender, err = replayer.NewSender(rc.Target, j.concurrency, replayer.Timeout(rc.Timeout), replayer.KeepHost(rc.KeepHost), replayer.ResponseBodyLimit(rc.BodyLimit)); err != nil {
			return nil, usageError{err}
		}
		if err := checkTarget(rc, j.sender); err != nil {
			return nil, err
		}
	}
	j.topic = rc.Topic
	if j.topic == "" {
		j.topic = broker.Topic(broker.Clean, a.cfg.Service)
	}
	j.job = wf.job
	if j.job == "" {
		j.job = fmt.Sprintf("replay-%s-%s", a.cfg.Service, now.UTC().Format("20060102T150405.000Z"))
	}
	j.instance = rc.Instance
	if j.instance == "" {
		j.instance = replayer.DefaultInstance()
	}
	return j, nil
}

// windowBounds parses --from and --to (--to defaults to now) into the
// window, in milliseconds as record timestamps are; errors are usage errors
// naming the flag.
func windowBounds(wf *windowFlags, now time.Time) (from, to time.Time, err error) {
	if wf.from == "" {
		return time.Time{}, time.Time{}, usagef("from: required for a window replay (--to alone is not enough)")
	}
	if wf.to == "" {
		wf.to = "now"
	}
	if from, err = replayer.ParseWhen(wf.from, now); err != nil {
		return time.Time{}, time.Time{}, usagef("from: %v", err)
	}
	if to, err = replayer.ParseWhen(wf.to, now); err != nil {
		return time.Time{}, time.Time{}, usagef("to: %v", err)
	}
	// Kafka has no timestamps before the epoch: asked for one, it answers
	// UNSUPPORTED_VERSION, which says nothing of the cause.
	if from.Before(unixEpoch) {
		return time.Time{}, time.Time{}, usagef("from: %s is %s, before %s (Kafka record timestamps start at the Unix epoch)", wf.from, from.UTC().Format(time.RFC3339), unixEpoch.Format(time.RFC3339))
	}
	// Record timestamps are milliseconds: so is the window.
	from, to = from.Truncate(time.Millisecond), to.Truncate(time.Millisecond)
	if !from.Before(to) {
		return time.Time{}, time.Time{}, usagef("from: %s is not before --to %s", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	}
	if to.After(now.Add(time.Second)) {
		return time.Time{}, time.Time{}, usagef("to: %s is in the future; a window replay reads traffic already captured (use --live to follow new traffic)", to.Format(time.RFC3339Nano))
	}
	return from, to, nil
}

// workerSettings checks --workers, --worker, --job, --start-at and
// --start-delay, and returns the parsed --start-at (zero without it).
func workerSettings(wf *windowFlags) (startAt time.Time, err error) {
	if wf.workers < 1 || wf.workers > 10000 {
		return time.Time{}, usagef("workers: must be 1..10000, got %d", wf.workers)
	}
	if wf.worker < 0 || wf.worker >= wf.workers {
		return time.Time{}, usagef("worker: must be 0..%d (--workers %d), got %d", wf.workers-1, wf.workers, wf.worker)
	}
	if wf.workers > 1 && wf.job == "" {
		return time.Time{}, usagef("job: required with --workers %d: every worker of the job is given the same --job", wf.workers)
	}
	if wf.startAt != "" {
		if startAt, err = time.Parse(time.RFC3339Nano, wf.startAt); err != nil {
			return time.Time{}, usagef("start-at: %q is not RFC 3339 (2006-01-02T15:04:05Z)", wf.startAt)
		}
	}
	if wf.startDelay < 0 {
		return time.Time{}, usagef("start-delay: must not be negative, got %s", wf.startDelay)
	}
	return startAt, nil
}

// runWindow runs a window replay to its end and prints its summary.
func (a *app) runWindow(cmd *cobra.Command, wf *windowFlags) error {
	ctx := cmd.Context()
	now := time.Now()
	j, err := a.validateWindow(cmd, wf, now)
	if err != nil {
		return err
	}
	cl, err := broker.NewClient(a.cfg.Kafka)
	if err != nil {
		return usageError{err}
	}
	defer closeClient(cl)
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ranges, err := replayer.PlanWindow(pctx, kadm.NewClient(cl), j.topic, j.from, j.to)
	if err != nil {
		return err
	}
	plan := replayer.Plan{
		Job: j.job, Topic: j.topic, From: j.from, To: j.to, Timing: j.profile.Spec, Workers: wf.workers,
		Params: replayer.JobParams(j.topic, wf.from, wf.to, j.profile.Spec, wf.workers, wf.startAt),
		Ranges: ranges, Creator: j.instance, Created: now, Start: j.startAt,
	}
	if wf.workers > 1 && !wf.dryRun {
		if plan.Start.IsZero() {
			plan.Start = now.Add(wf.startDelay)
		}
		plan.Ends = plan.Start.Add(replayer.NewSchedule(j.profile, j.from, 1, 0).Span(plan.Offsets(), j.to))
		agreed, err := replayer.AgreePlan(pctx, a.cfg.Kafka, plan, now)
		if errors.Is(err, replayer.ErrJobConflict) || errors.Is(err, replayer.ErrJobOver) {
			return usageError{err}
		}
		if err != nil {
			return err
		}
		plan = agreed
		if plan.Creator != j.instance {
			a.log.Info("joined job", "job", plan.Job, "creator", plan.Creator, "start", plan.Start)
		}
	}
	cancel()
	mine := plan.Share(wf.worker, wf.workers)
	sched := replayer.NewSchedule(j.profile, plan.From, replayer.ShareOf(mine, plan.Ranges), float64(wf.worker)/float64(wf.workers))

	cons, err := broker.NewClient(a.cfg.Kafka, replayer.WindowConsumeOpts(plan.Topic, mine)...)
	if err != nil {
		return usageError{err}
	}
	defer closeClient(cons)
	tel := telemetry.NewServer()
	tel.AddCheck("kafka", kafkaCheck(cons))
	metrics := replayer.NewMetrics(tel.Registry)
	lg := a.log.Named("replay")
	src := replayer.NewKafkaSource(cons, plan.Topic, plan.From, plan.To, mine, replayer.WithLogger(lg), replayer.WithMetrics(metrics))
	defer src.Close()

	// The cap is per job: each worker takes its share of it.
	capRate := j.maxRate * replayer.ShareOf(mine, plan.Ranges)
	opts := []replayer.Option{
		replayer.Concurrency(j.concurrency), replayer.MaxLag(a.cfg.Replay.MaxLag), replayer.MaxRate(capRate),
		replayer.DryRun(wf.dryRun), replayer.WithMetrics(metrics), replayer.WithLogger(lg),
		replayer.Job(plan.Job, j.instance), replayer.MaxErrorRate(j.maxErrRate),
		replayer.PlannedSpan(replayer.NewSchedule(j.profile, plan.From, 1, 0).Span(plan.Offsets(), plan.To)),
	}
	if !plan.Start.IsZero() {
		opts = append(opts, replayer.StartAt(plan.Start))
	}
	var req replayer.Requester
	if wf.dryRun {
		opts = append(opts, replayer.WithClock(replayer.NewVirtualClock(time.Now())))
	} else {
		req = j.sender
		opts = append(opts, replayer.PublishTo(cons, broker.Topic(broker.Shadow, a.cfg.Service)),
			replayer.ShadowBudget(a.recordBudget(ctx, cons, broker.Shadow, true)))
	}
	bar := newProgress(!wf.noProgress, plan.Job)
	if bar != nil {
		opts = append(opts, replayer.OnProgress(bar.update))
	} else if !wf.noProgress {
		opts = append(opts, replayer.ProgressLines(os.Stderr, wf.progressInterval))
	}
	a.log.Info("window replay", "job", plan.Job, "topic", plan.Topic, "from", plan.From, "to", plan.To, "timing", j.profile.Spec,
		"worker", wf.worker, "workers", wf.workers, "partitions", replayer.DescribeRanges(mine), "target", a.cfg.Replay.Target, "dry_run", wf.dryRun)

	mctx, stopMetrics := context.WithCancel(ctx)
	metricsDone := make(chan struct{})
	go func() {
		defer close(metricsDone)
		if err := a.serveMetrics(mctx, tel); err != nil {
			lg.Warn("metrics endpoint not served", "error", err)
		}
	}()
	sum, runErr := replayer.NewWindow(src, sched, req, opts...).Run(ctx)
	stopMetrics()
	<-metricsDone
	bar.finish()

	sum.Topic, sum.From, sum.To, sum.Timing = plan.Topic, plan.From, plan.To, j.profile.Spec
	sum.Worker, sum.Workers, sum.Target = wf.worker, wf.workers, a.cfg.Replay.Target
	if err := sum.WriteText(cmd.OutOrStdout()); err != nil {
		return fmt.Errorf("replay %s: print summary: %w", plan.Job, err)
	}
	if wf.report != "" {
		if err := writeReport(wf.report, sum); err != nil {
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

func writeReport(path string, sum *replayer.Summary) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := sum.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// replayKeyInFile reports whether the -c file sets replay.KEY.
func replayKeyInFile(path, key string) bool {
	if path == "" {
		return false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var doc struct {
		Replay map[string]any `yaml:"replay"`
	}
	if yaml.Unmarshal(b, &doc) != nil {
		return false
	}
	_, ok := doc.Replay[key]
	return ok
}

// progress is the terminal progress bar of a window replay.
type progress struct {
	desc string
	bar  *progressbar.ProgressBar
}

// newProgress returns a progress bar on stderr, or nil when disabled or when
// stderr is not a terminal.
func newProgress(enabled bool, job string) *progress {
	if !enabled || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return &progress{desc: job}
}

func (p *progress) update(done, total int64) {
	if p.bar == nil {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(p.desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rec"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetWidth(30),
		)
	}
	_ = p.bar.Set64(done)
}

func (p *progress) finish() {
	if p == nil || p.bar == nil {
		return
	}
	_ = p.bar.Finish()
	fmt.Fprintln(os.Stderr)
}
