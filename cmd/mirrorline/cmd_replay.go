package main

import (
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/telemetry"
)

func (a *app) replayCmd() *cobra.Command {
	var live bool
	c := &cobra.Command{
		Use:   "replay",
		Short: "Consume a service's clean topic into a shadow target",
		Long: `Consume mirror.clean.SERVICE and send every request to --target.

--live joins the consumer group (default mirrorline-replay-SERVICE): start several
replayers with the same group and they share the partitions. The shadow's responses
are published to mirror.shadow.SERVICE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !live {
				return usagef("replay: --live is required")
			}
			if err := a.requireService("service"); err != nil {
				return err
			}
			if err := a.requireBrokers(); err != nil {
				return err
			}
			tel := telemetry.NewServer()
			l, cl, err := a.newLiveReplayer(tel)
			if err != nil {
				return err
			}
			defer cl.Close()
			tel.AddCheck("kafka", kafkaCheck(cl))
			a.log.Info("live replay", "service", a.cfg.Service, "target", a.cfg.Replay.Target, "group", a.cfg.Replay.Group)
			return a.runAll(cmd.Context(), tel, l.Run)
		},
	}
	f := c.Flags()
	f.BoolVar(&live, "live", false, "shadow live traffic as a consumer group")
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	f.StringVar(&a.cfg.Replay.Target, "target", a.cfg.Replay.Target, "base URL of the shadow deployment")
	f.IntVar(&a.cfg.Replay.Concurrency, "concurrency", a.cfg.Replay.Concurrency, "requests in flight at most (one connection's requests stay in order)")
	f.StringVar(&a.cfg.Replay.Instance, "instance", a.cfg.Replay.Instance, "name of this replayer in shadow records (default HOST-PID)")
	f.StringVar(&a.cfg.Replay.Group, "group", a.cfg.Replay.Group, "consumer group (default mirrorline-replay-SERVICE)")
	f.StringVar(&a.cfg.Replay.Topic, "topic", a.cfg.Replay.Topic, "topic to consume (default mirror.clean.SERVICE)")
	f.StringVar(&a.cfg.Replay.Start, "start", a.cfg.Replay.Start, "where a new group starts: latest (default) or earliest")
	f.DurationVar(&a.cfg.Replay.Timeout, "timeout", a.cfg.Replay.Timeout, "timeout of each request to the target")
	f.BoolVar(&a.cfg.Replay.KeepHost, "keep-host", a.cfg.Replay.KeepHost, "send the captured Host header instead of the target's")
	f.Int64Var(&a.cfg.Replay.BodyLimit, "body-limit", a.cfg.Replay.BodyLimit, "response body bytes recorded per shadow response")
	return c
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
		rc.Instance = replayer.DefaultInstance()
	}
	if rc.Concurrency <= 0 {
		return nil, nil, usagef("concurrency: must be positive, got %d", rc.Concurrency)
	}
	sender, err := replayer.NewSender(rc.Target, rc.Concurrency, replayer.Timeout(rc.Timeout), replayer.KeepHost(rc.KeepHost), replayer.ResponseBodyLimit(rc.BodyLimit))
	if err != nil {
		return nil, nil, usageError{err}
	}
	cl, err := broker.NewClient(a.cfg.Kafka, replayer.LiveClientOpts(rc.Group, rc.Topic, fromStart)...)
	if err != nil {
		return nil, nil, usageError{err}
	}
	l := replayer.NewLive(cl, sender, a.cfg.Service,
		replayer.Concurrency(rc.Concurrency),
		replayer.WithMetrics(replayer.NewMetrics(tel.Registry)),
		replayer.WithLogger(a.log.Named("replay")),
		replayer.Job("live", rc.Instance),
	)
	return l, cl, nil
}
