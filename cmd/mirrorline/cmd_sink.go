package main

import (
	"context"
	"fmt"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/sink"
)

func (a *app) sinkCmd() *cobra.Command {
	var sample float64
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
			if cmd.Flags().Changed("sample") {
				a.cfg.Sink.Sample = &sample
			}
			a.reload.flags = cmd.Flags()
			// In front of the mirroring proxy, like the proxy in front of users:
			// ready whether Kafka is reachable or not.
			return a.runCollector(cmd.Context(), "sink", a.cfg.Sink.QueueRecords, a.cfg.Sink.QueueBytes, false)
		},
	}
	f := c.Flags()
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	f.StringVar(&a.cfg.Sink.Listen, "listen", a.cfg.Sink.Listen, "address to listen on")
	sample = 1
	if a.cfg.Sink.Sample != nil {
		sample = *a.cfg.Sink.Sample
	}
	f.Float64Var(&sample, "sample", sample, "fraction of copies published (0..1); the others are still answered 200")
	f.Int64Var(&a.cfg.Sink.BodyLimit, "body-limit", a.cfg.Sink.BodyLimit, "body bytes captured per request")
	f.StringVar(&a.cfg.Sink.KeyHeader, "key-header", a.cfg.Sink.KeyHeader, "key records by this header's first value (e.g. X-Forwarded-For) to keep a client's requests in order")
	f.StringSliceVar(&a.cfg.Sink.StripHeaders, "strip-header", a.cfg.Sink.StripHeaders, "headers added by the mirroring proxy to remove (repeatable)")
	f.IntVar(&a.cfg.Sink.QueueRecords, "queue-records", a.cfg.Sink.QueueRecords, "records buffered for Kafka before new captures are dropped")
	f.IntVar(&a.cfg.Sink.QueueBytes, "queue-bytes", a.cfg.Sink.QueueBytes, "bytes buffered for Kafka before new captures are dropped")
	f.StringVar(&a.cfg.Sink.CollectorID, "collector-id", a.cfg.Sink.CollectorID, "name of this collector in records (default: host name)")
	addLimitFlags(c, &a.cfg.Sink.Limits)
	return c
}

// newSink builds the sink publishing through em and opens its listener; it
// returns the sink's run func.
func (a *app) newSink(em *collector.Emitter) (func(context.Context) error, error) {
	sc := a.cfg.Sink
	filter, err := collector.NewFilter(sinkSample(sc), sc.Routes)
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
	return func(ctx context.Context) error { return s.Serve(ctx, ln) }, nil
}

// sinkSample is the sink's sample fraction (default 1).
func sinkSample(sc SinkConfig) float64 {
	if sc.Sample == nil {
		return 1
	}
	return *sc.Sample
}

// prepareSink checks the sink's reloadable keys of a new configuration
// (sample, routes, body_limit; a flag given on the command line keeps its
// value) and returns what puts them in force.
func (a *app) prepareSink(s *sink.Sink) func(*Config, func(string) bool, hclog.Logger) (func(), error) {
	return func(nc *Config, flagSet func(string) bool, log hclog.Logger) (func(), error) {
		sc, cur := nc.Sink, a.cfg.Sink
		sample := flagOverFile(flagSet, log, "sink.sample", "sample", sinkSample(sc), sinkSample(cur))
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
