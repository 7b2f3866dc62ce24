package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/term"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/config"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/telemetry"
)

// windowFlags are the flags of window replays only (bound by their tags).
type windowFlags struct {
	From         string        `flag:"from" help:"window start: RFC 3339, now, or relative like -15m"`
	To           string        `flag:"to" help:"window end, exclusive (default now)"`
	Speed        string        `flag:"speed" help:"keep the captured timing, N times faster (e.g. 5x, 0.5x; default 1x)"`
	Rate         string        `flag:"rate" help:"ignore the captured timing and send at a fixed rate (e.g. 500/s)"`
	Ramp         string        `flag:"ramp" help:"step the speed or rate: FROM..TO/DURATION[:STEPS] (e.g. 1x..10x/10m, 100/s..1000/s/5m:5)"`
	DryRun       bool          `flag:"dry-run" help:"schedule and report without sending (on a virtual clock: takes only the time to read)"`
	Job          string        `flag:"job" help:"job name, shared by the workers of one job (default replay-SERVICE-TIME)"`
	Workers      int           `flag:"workers" help:"processes sharing the job: each takes the partitions p with p mod N = --worker"`
	Worker       int           `flag:"worker" help:"this process's index in the job, 0..N-1"`
	StartAt      string        `flag:"start-at" help:"job start (RFC 3339): the shared clock anchor (default: agreed through mirror.jobs when --workers > 1, else now)"`
	StartDelay   time.Duration `flag:"start-delay" help:"with --workers > 1 and no --start-at: the job starts this long after the first worker proposes it"`
	Report       string        `flag:"report" help:"also write the summary as JSON to this file"`
	NoProgress   bool          `flag:"no-progress" help:"no progress output (a bar on a terminal, else a line on stderr every 10s)"`
	MaxErrorRate string        `flag:"max-error-rate" help:"the job failed (exit 1) when more than this share of its requests failed, e.g. 0.05 or 5% (default: only when every request failed)"`
	// ProgressInterval's flag is hidden.
	ProgressInterval time.Duration `flag:"progress-interval" help:"how often the progress line is printed when stderr is not a terminal"`
}

// windowOnlyFlags are the flags of window replays only, the replay
// section's max-lag with the windowFlags.
var windowOnlyFlags = []string{"from", "to", "speed", "rate", "ramp", "max-lag", "dry-run", "job", "workers", "worker", "start-at", "start-delay", "report", "no-progress", "max-error-rate", "progress-interval"}

func (a *app) replayCmd() *cobra.Command {
	var live bool
	wf := &windowFlags{Workers: 1, StartDelay: 5 * time.Second, ProgressInterval: replayer.DefaultProgressInterval}
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
			window, err := a.replayMode(cmd, live, wf)
			if err != nil {
				return err
			}
			if window {
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
			return a.runAll(cmd.Context(), tel, func(ctx context.Context) error { return l.Run(ctx, cl) }, a.newConfigWatch(tel.Registry).run)
		},
	}
	f := c.Flags()
	f.BoolVar(&live, "live", false, "shadow live traffic as a consumer group")
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	a.cfg.Replay.BindFlags(f)

	config.BindTagged(f, wf) // window replays only
	_ = f.MarkHidden("progress-interval")
	return c
}

// replayMode checks the flags of `replay` against its mode, live or a
// window (window is true), and the settings the mode requires.
func (a *app) replayMode(cmd *cobra.Command, live bool, wf *windowFlags) (window bool, err error) {
	window = wf.From != "" || wf.To != ""
	switch {
	case live && window:
		return false, usagef("replay: --live and --from/--to exclude each other")
	case !live && !window:
		return false, usagef("replay: --live is required, or --from (and --to) for a window replay")
	}
	changed := cmd.Flags().Changed
	if live {
		// Live replays are capped only when asked to.
		a.replayMaxRateSet = changed("max-rate")
		for _, name := range windowOnlyFlags {
			if changed(name) {
				return false, usagef("%s: only for window replays (--from/--to)", name)
			}
		}
		return false, a.requireServiceAndBrokers("target")
	}
	var need []string
	if !wf.DryRun {
		need = append(need, "window-target")
	}
	if err := a.requireServiceAndBrokers(need...); err != nil {
		return true, err
	}
	for _, name := range []string{"group", "start"} {
		if changed(name) {
			return true, usagef("%s: only for --live (window replays split partitions with --job/--workers/--worker)", name)
		}
	}
	if changed("skip-older-than") {
		return true, usagef("skip-older-than: only for --live (window replays drop records late on their schedule with --max-lag)")
	}
	return true, nil
}

// newLiveReplayer builds a live replayer and its Kafka client from the configuration.
func (a *app) newLiveReplayer(tel *telemetry.Server) (*replayer.Live, *kgo.Client, error) {
	rc := a.cfg.Replay
	if rc.Target == "" {
		return nil, nil, usagef("target: required")
	}
	rc.Group = cmp.Or(rc.Group, replayer.DefaultGroup(a.cfg.Service))
	a.cfg.Replay.Group = rc.Group
	rc.Topic = cmp.Or(rc.Topic, broker.Topic(broker.Clean, a.cfg.Service))
	fromStart := rc.Start == "earliest" // checked by config.Replay.Validate
	rc.Instance = cmp.Or(rc.Instance, a.cfg.InstanceID, replayer.DefaultInstance())
	if err := usage(rc.Validate()); err != nil {
		return nil, nil, err
	}
	var maxRate float64
	if a.replayMaxRateSet || a.cfg.Set("replay.max_rate") {
		// Validated above: live mode has no cap unless one was asked for.
		maxRate, _ = replayer.ParseRate(rc.MaxRate)
	}
	sopts := []replayer.Option{replayer.Timeout(rc.Timeout), replayer.KeepHost(rc.KeepHost), replayer.ResponseBodyLimit(rc.BodyLimit)}
	sender, err := replayer.AllowedSender(rc.Target, a.replayFileTarget, rc.AllowTargets, rc.Concurrency, sopts...)
	if err != nil {
		return nil, nil, usageError{err}
	}
	metrics, log := replayer.NewMetrics(tel.Registry), a.log.Named("replay")
	// The middleware runs until the replayer's Run ends.
	req, mw, err := replayer.NewRequester(context.Background(), sender, rc.Routing(), rc.Middleware,
		replayer.RouteSender(rc.AllowTargets, rc.Concurrency, sopts...),
		replayer.WithMetrics(metrics), replayer.WithLogger(log))
	if err != nil {
		return nil, nil, usageError{err}
	}
	budget := broker.NewBudget(a.cfg.Kafka.ProducerMaxBytes())
	l := replayer.NewLive(req, a.cfg.Service,
		replayer.Concurrency(rc.Concurrency),
		replayer.Order(rc.Order != "none"),
		replayer.WithMetrics(metrics),
		replayer.WithLogger(log),
		replayer.WithMiddleware(mw),
		replayer.Job("live", rc.Instance),
		replayer.SkipOlderThan(rc.SkipOlderThan),
		replayer.MaxRate(maxRate),
		replayer.ShadowBudget(budget),
	)
	cl, err := broker.NewClient(a.cfg.Kafka, append(l.ClientOpts(rc.Group, rc.Topic, fromStart), a.cfg.Membership(0).Opts()...)...)
	if err != nil {
		if mw != nil {
			_ = mw.Close()
		}
		return nil, nil, usageError{err}
	}
	a.lookupBudget(context.Background(), budget, cl, broker.Shadow, true)
	a.reload.add(reloadTarget{keys: []string{"replay.max_rate"}, prepare: a.prepareLiveReplay(l)})
	return l, cl, nil
}

// prepareLiveReplay checks the live replayer's reloadable key of a new
// configuration, replay.max_rate (absent: no cap; --max-rate given on the
// command line keeps its value), and returns what puts it in force.
func (a *app) prepareLiveReplay(l *replayer.Live) func(*config.File, func(string) bool, hclog.Logger) (func(), error) {
	return func(nc *config.File, flagSet func(string) bool, log hclog.Logger) (func(), error) {
		if flagSet("max-rate") {
			if nc.Replay.MaxRate != "" && nc.Replay.MaxRate != a.cfg.Replay.MaxRate {
				log.Warn("replay.max_rate: --max-rate on the command line overrides the file", "max_rate", a.cfg.Replay.MaxRate)
			}
			return func() {}, nil
		}
		var perSecond float64
		if nc.Set("replay.max_rate") && nc.Replay.MaxRate != "" {
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

// runWindow runs a window replay to its end and prints its summary.
func (a *app) runWindow(cmd *cobra.Command, wf *windowFlags) error {
	rc := a.cfg.Replay
	concurrency := rc.Concurrency
	if !cmd.Flags().Changed("concurrency") && !a.cfg.Set("replay.concurrency") {
		concurrency = 0 // the window default, replayer.DefaultInFlight
	}
	spec := replayer.JobSpec{
		Service: a.cfg.Service, Kafka: a.cfg.Kafka,
		From: wf.From, To: wf.To, Speed: wf.Speed, Rate: wf.Rate, Ramp: wf.Ramp,
		MaxRate: rc.MaxRate, MaxLag: rc.MaxLag, Concurrency: concurrency,
		Job: wf.Job, Workers: wf.Workers, Worker: wf.Worker, StartAt: wf.StartAt, StartDelay: wf.StartDelay,
		DryRun: wf.DryRun, MaxErrorRate: wf.MaxErrorRate,
		Target: rc.Target, TrustedTarget: a.replayFileTarget, AllowTargets: rc.AllowTargets,
		Timeout: rc.Timeout, KeepHost: rc.KeepHost, BodyLimit: rc.BodyLimit,
		Routing: rc.Routing(), Middleware: rc.Middleware,
		Topic: rc.Topic, Instance: rc.Instance,
		Out: cmd.OutOrStdout(), ReportPath: wf.Report, ProgressInterval: wf.ProgressInterval,
		Logger: a.log.Named("replay"),
		Budget: func(ctx context.Context, cl *kgo.Client) *broker.Budget {
			return a.recordBudget(ctx, cl, broker.Shadow, true)
		},
		Serve: a.serveMetrics,
	}
	if bar := newProgress(!wf.NoProgress, cmp.Or(wf.Job, "replay-"+a.cfg.Service)); bar != nil {
		spec.OnProgress, spec.OnProgressDone = bar.update, bar.finish
	} else if !wf.NoProgress {
		spec.ProgressOut = os.Stderr
	}
	err := replayer.RunJob(cmd.Context(), spec)
	if errors.Is(err, replayer.ErrInvalidJob) {
		return usageError{err}
	}
	return err
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
