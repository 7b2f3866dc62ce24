package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/comparator"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/redactor"
	"github.com/mirrorline/mirrorline/telemetry"
)

// maxPrimeRecords bounds the records read to relearn noise at start.
const maxPrimeRecords = 200000

func (a *app) compareCmd() *cobra.Command {
	cc := &a.cfg.Compare
	var untilDone bool
	c := &cobra.Command{
		Use:   "compare",
		Short: "Join primary and shadow responses, decide same/different per exchange, publish mirror.diff.SERVICE",
		Long: `Consume mirror.clean.SERVICE (the primary's responses, recorded at capture) and
mirror.shadow.SERVICE (the shadow's, recorded by the replayer), join them by
exchange id within --join-window, whichever arrives first, and decide per
exchange: same, different, shadow-error, primary-error or missing. Status,
--headers and bodies are diffed (JSON structurally, text by lines, binary by
hash); noise is learned from a --secondary (a second instance of the primary
version) and from volatile values (timestamps, ids) that differ in nearly every
exchange of an endpoint. One diff record per exchange goes to
mirror.diff.SERVICE; 'mirrorline compare report' summarizes them.
Shadow responses are scrubbed with the redactor's rules (compare.redact, else
redact.rules) before they are diffed.
Every verdict belongs to one replay job. By default the comparator judges the
live replayer's records (job "live") and ignores window replays; --job NAME
judges window replay job NAME instead, in its own group, looking up each
replayed record's primary on mirror.clean.SERVICE. See docs/comparator.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireServiceAndBrokers(); err != nil {
				return err
			}
			if err := a.bindMetrics(); err != nil {
				return err
			}
			tel := telemetry.NewServer()
			comp, runner, cl, err := a.newComparator(tel, comparator.WithUntilDone(untilDone))
			if err != nil {
				return err
			}
			defer cl.Close()
			tel.AddCheck("kafka", kafkaCheck(cl))
			a.primeComparator(cmd.Context(), comp)
			a.log.Info("comparing", "service", a.cfg.Service, "group", cc.Group, "topics", strings.Join(runner.Topics(), ","),
				"join_window", cc.JoinWindow.String(), "secondary", cc.Secondary.On())
			ctx, stop := context.WithCancel(cmd.Context())
			defer stop()
			return a.runAll(ctx, tel, func(ctx context.Context) error {
				// Run returns nil when stopped, or done with --until-done:
				// then everything stops.
				defer stop()
				return runner.Run(ctx, cl)
			})
		},
	}
	f := c.Flags()
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	cc.BindFlags(f)
	a.cfg.GRPC.BindFlags(f)
	f.BoolVar(&untilDone, "until-done", false, "exit once every record on the topics when it started is judged (e.g. a window job that has ended)")
	c.AddCommand(a.compareReportCmd())
	return c
}

// compareConfig validates the comparison settings.
func (a *app) compareConfig() (comparator.Config, error) {
	cfg := a.cfg.Compare.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, usagef("compare.%v", err)
	}
	return cfg, nil
}

// newComparator builds the comparator, its Kafka runner and client.
func (a *app) newComparator(tel *telemetry.Server, ropts ...comparator.Option) (*comparator.Comparator, *comparator.Runner, *kgo.Client, error) {
	cc := &a.cfg.Compare
	cfg, err := a.compareConfig()
	if err != nil {
		return nil, nil, nil, err
	}
	cc.Group = cmp.Or(cc.Group, comparator.JobGroup(a.cfg.Service, cfg.ShadowJob))
	// A window job's records are usually written before its comparator
	// starts: its new group starts at the earliest record.
	fromStart := cfg.ShadowJob != comparator.LiveJob
	if cc.Start != "" { // checked by config.Compare.Validate
		fromStart = cc.Start == "earliest"
	}
	if _, err := cc.PrimeSince(time.Now()); err != nil {
		return nil, nil, nil, usageError{err}
	}
	rules, key := a.cfg.Redact.Rules, "redact.rules"
	if cc.Redact != nil {
		rules, key = *cc.Redact, "compare.redact"
	}
	schema, err := a.grpcSchema()
	if err != nil {
		return nil, nil, nil, err
	}
	// Shadow answers are scrubbed like the primary's were: with the same
	// schema, so a field redacted on one side is redacted on the other.
	engine, err := redactor.NewEngine(rules, redactor.WithSchema(schema))
	if err != nil {
		return nil, nil, nil, usagef("%s: %v", key, err)
	}
	m := comparator.NewMetrics(tel.Registry)
	comp, err := comparator.New(a.cfg.Service, cfg,
		comparator.WithSchema(schema),
		comparator.WithMetrics(m),
		comparator.WithLogger(a.log.Named("compare")),
		comparator.WithScrubber(func(ex *mlv1.Exchange) error {
			_, err := engine.Redact(ex)
			return err
		}),
	)
	if err != nil {
		return nil, nil, nil, usagef("compare.%v", err)
	}
	budget := broker.NewBudget(a.cfg.Kafka.ProducerMaxBytes())
	runner := comparator.NewRunner(comp, append([]comparator.Option{comparator.WithBudget(budget),
		comparator.WithLookup(comparator.KafkaLookup(a.cfg.Kafka)), comparator.WithFromStart(fromStart)}, ropts...)...)
	cl, err := broker.NewClient(a.cfg.Kafka, append(runner.ClientOpts(cc.Group), a.cfg.Membership(0).Opts()...)...)
	if err != nil {
		return nil, nil, nil, usageError{err}
	}
	a.lookupBudget(context.Background(), budget, cl, broker.Diff, true)
	return comp, runner, cl, nil
}

// primeComparator relearns noise from the recent diff records of the job it
// judges (another job's records never change its verdicts), so a restart
// does not start from nothing. Failure is logged, not fatal.
func (a *app) primeComparator(ctx context.Context, comp *comparator.Comparator) {
	since, _ := a.cfg.Compare.PrimeSince(time.Now())
	if since.IsZero() {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	job := comp.Config().ShadowJob
	learned := 0
	n, err := comparator.ReadDiffs(pctx, a.cfg.Kafka, broker.Topic(broker.Diff, a.cfg.Service), since, maxPrimeRecords, func(d *mlv1.Diff) {
		if comparator.JobOf(d) == job {
			comp.Learn(d)
			learned++
		}
	})
	if err != nil {
		a.log.Warn("relearning noise from past diff records failed; starting fresh", "error", broker.Explain(err, a.cfg.Kafka.Brokers))
		return
	}
	a.log.Info("relearned noise from past diff records", "job", job, "records", learned, "read", n, "since", since.UTC().Format(time.RFC3339))
}

func (a *app) compareReportCmd() *cobra.Command {
	var (
		since, htmlPath string
		top, maxRecords int
		asJSON, noise   bool
		failOn, jobs    bool
		job             string
	)
	c := &cobra.Command{
		Use:   "report",
		Short: "Summarize mirror.diff.SERVICE: top differing endpoints with an example diff, latency, noise",
		Long: `Read the diff records of mirror.diff.SERVICE (from --since, default all retained),
re-judge them with the noise learned over all of them, and print the top
differing endpoints (the fields that differ and an example diff), latency
percentiles of primary and shadow per endpoint (flagging tail regressions),
and the endpoints without significant differences. --html FILE also writes a
self-contained HTML report; --json prints the report as JSON instead of text.
The report covers one replay job's verdicts: --job NAME (default live);
--jobs lists the jobs with verdicts, when they were decided and their counts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireServiceAndBrokers(); err != nil {
				return err
			}
			cfg, err := a.compareConfig()
			if err != nil {
				return err
			}
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			if top <= 0 {
				return usagef("top: must be positive, got %d", top)
			}
			var diffs []*mlv1.Diff
			topic := broker.Topic(broker.Diff, a.cfg.Service)
			if _, err := comparator.ReadDiffs(cmd.Context(), a.cfg.Kafka, topic, from, maxRecords, func(d *mlv1.Diff) { diffs = append(diffs, d) }); err != nil {
				return fmt.Errorf("compare report: %w", err)
			}
			if jobs {
				list := comparator.SummarizeJobs(diffs)
				return printAs(cmd.OutOrStdout(), "compare report --jobs", asJSON, list, func(w io.Writer) error { return comparator.WriteJobs(w, a.cfg.Service, list) })
			}
			mine := comparator.OfJob(diffs, job)
			if len(mine) == 0 && len(diffs) > 0 {
				a.log.Warn("no verdicts of this replay job; compare report --jobs lists the jobs with verdicts", "job", job, "records", len(diffs))
			}
			rep := comparator.BuildReport(a.cfg.Service, cfg, comparator.Dedupe(mine), time.Now())
			rep.Job = job
			if htmlPath != "" {
				if err := writeHTMLReport(htmlPath, rep, comparator.HTMLOptions{Top: top, ShowNoise: noise}); err != nil {
					return err
				}
			}
			text := func(w io.Writer) error {
				return comparator.WriteText(w, rep, comparator.TextOptions{Top: top, ShowNoise: noise})
			}
			if err := printAs(cmd.OutOrStdout(), "compare report", asJSON, rep, text); err != nil {
				return err
			}
			if failOn {
				if err := comparator.FailOnSignificant(rep); err != nil {
					return fmt.Errorf("compare report: %w", err)
				}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topic mirror.diff.SERVICE)")
	f.StringVar(&since, "since", "", "only exchanges captured since: RFC 3339 time or a duration back from now (\"1h\"); default all retained")
	f.IntVar(&top, "top", 10, "how many differing endpoints to detail")
	f.StringVar(&htmlPath, "html", "", "also write a self-contained HTML report to this file")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON instead of text")
	f.BoolVar(&noise, "show-noise", false, "list the fields judged noise")
	f.IntVar(&maxRecords, "max-records", 2000000, "read at most this many diff records")
	f.StringVar(&job, "job", comparator.LiveJob, "report the verdicts of this replay job (a window replay's --job)")
	f.BoolVar(&jobs, "jobs", false, "list the replay jobs with verdicts: when decided, capture span, counts per verdict")
	f.BoolVar(&failOn, "fail-on-significant", false, "exit 1 when an endpoint differs significantly or has a tail latency regression")
	return c
}

// printAs prints v to out as indented JSON, or else with text; op names
// the operation in the error.
func printAs(out io.Writer, op string, asJSON bool, v any, text func(io.Writer) error) error {
	var err error
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		err = enc.Encode(v)
	} else {
		err = text(out)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// parseSince parses --since: empty (all), an RFC 3339 time, or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		d, derr := time.ParseDuration(s)
		if derr != nil || d <= 0 {
			return time.Time{}, usagef("since: %q is not an RFC 3339 time or a positive duration", s)
		}
		t = now.Add(-d)
	}
	if epoch := time.Unix(0, 0).UTC(); t.Before(epoch) {
		return time.Time{}, usagef("since: %s is %s, before %s (Kafka record timestamps start at the Unix epoch)", s, t.UTC().Format(time.RFC3339), epoch.Format(time.RFC3339))
	}
	return t, nil
}

func writeHTMLReport(path string, rep *comparator.Report, opt comparator.HTMLOptions) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("compare report --html: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("compare report --html: %w", cerr)
		}
	}()
	if err := comparator.WriteHTML(f, rep, opt); err != nil {
		return fmt.Errorf("compare report --html: %w", err)
	}
	return nil
}
