package main

import (
	"context"
	"net"

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
	a.reload.add(a.policyReload("sink", s.Reload, func(c *config.File) (float64, []collector.Route, int64) {
		return c.Sink.SampleOrDefault(), c.Sink.Routes, c.Sink.BodyLimit
	}))
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		return nil, usagef("sink listen %s: %v", sc.Listen, err)
	}
	a.log.Info("sink listening", "addr", ln.Addr().String(), "service", a.cfg.Service)
	return collector.RunFunc(func(ctx context.Context) error { return s.Serve(ctx, ln) }), nil
}
