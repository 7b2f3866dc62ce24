package main

import (
	"context"
	"fmt"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/sink"
	"github.com/mirrorline/mirrorline/config"
)

func (a *app) sinkCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "sink",
		Short: "Accept copies from Istio/Envoy or NGINX mirror, answer 200 at once, publish",
		Long: `Receive the copies an Istio/Envoy mirror or an NGINX mirror directive sends
(see deploy/istio and deploy/nginx), answer each with 200 at once, strip Envoy's
"-shadow" Host suffix, and publish the request to mirror.raw.SERVICE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireServiceAndBrokers(); err != nil {
				return err
			}
			a.reload.flags = cmd.Flags()
			// In front of the mirroring proxy, like the proxy in front of users:
			// ready whether Kafka is reachable or not.
			return a.runCollector(cmd.Context(), "sink", a.cfg.Sink.QueueRecords, a.cfg.Sink.QueueBytes, false)
		},
	}
	f := c.Flags()
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	a.cfg.Sink.BindFlags(f)
	return c
}

// newSink builds the sink publishing through em and opens its listener.
func (a *app) newSink(em *collector.Emitter, _ prometheus.Registerer) (collector.Collector, error) {
	sc := a.cfg.Sink
	filter, err := collector.NewFilter(sc.SampleOrDefault(), sc.Routes)
	if err != nil {
		return nil, usagef("sink.%v", err)
	}
	opts := []sink.Option{sink.WithFilter(filter), sink.WithBodyLimit(sc.BodyLimit), sink.WithKeyHeader(sc.KeyHeader), sink.WithStripHeaders(sc.StripHeaders...), sink.WithLogger(a.log.Named("sink")), sink.WithLimits(sc.Limits)}
	if sc.CollectorID != "" {
		opts = append(opts, sink.WithCollectorID(sc.CollectorID))
	}
	s, err := sink.New(em, opts...)
	if err != nil {
		return nil, usageError{err}
	}
	a.reload.add(reloadTarget{keys: []string{"sink.sample", "sink.routes", "sink.body_limit"}, prepare: a.prepareSink(s)})
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		return nil, usagef("sink listen %s: %v", sc.Listen, err)
	}
	a.log.Info("sink listening", "addr", ln.Addr().String(), "service", a.cfg.Service)
	return collector.RunFunc(func(ctx context.Context) error { return s.Serve(ctx, ln) }), nil
}

// prepareSink checks the sink's reloadable keys of a new configuration
// (sample, routes, body_limit; a flag given on the command line keeps its
// value) and returns what puts them in force.
func (a *app) prepareSink(s *sink.Sink) func(*config.File, func(string) bool, hclog.Logger) (func(), error) {
	return func(nc *config.File, flagSet func(string) bool, log hclog.Logger) (func(), error) {
		sc, cur := nc.Sink, a.cfg.Sink
		sample := flagOverFile(flagSet, log, "sink.sample", "sample", sc.SampleOrDefault(), cur.SampleOrDefault())
		sc.BodyLimit = flagOverFile(flagSet, log, "sink.body_limit", "body-limit", sc.BodyLimit, cur.BodyLimit)
		pol, err := collector.NewPolicy(sample, sc.Routes, sc.BodyLimit)
		if err != nil {
			return nil, fmt.Errorf("sink.%w", err)
		}
		return func() {
			s.Reload(pol)
			log.Info("sink policy in force", "sample", sample, "routes", len(sc.Routes), "body_limit", sc.BodyLimit)
		}, nil
	}
}
