package main

import (
	"context"
	"net"

	"github.com/spf13/cobra"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/sink"
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
			// In front of the mirroring proxy, like the proxy in front of users:
			// ready whether Kafka is reachable or not.
			return a.runCollector(cmd.Context(), "sink", a.cfg.Sink.QueueRecords, a.cfg.Sink.QueueBytes, false)
		},
	}
	f := c.Flags()
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	f.StringVar(&a.cfg.Sink.Listen, "listen", a.cfg.Sink.Listen, "address to listen on")
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
	opts := []sink.Option{sink.WithBodyLimit(sc.BodyLimit), sink.WithKeyHeader(sc.KeyHeader), sink.WithStripHeaders(sc.StripHeaders...), sink.WithLogger(a.log.Named("sink")), sink.WithLimits(sc.Limits)}
	if sc.CollectorID != "" {
		opts = append(opts, sink.WithCollectorID(sc.CollectorID))
	}
	s, err := sink.New(em, opts...)
	if err != nil {
		return nil, usageError{err}
	}
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		return nil, usagef("sink listen %s: %v", sc.Listen, err)
	}
	a.log.Info("sink listening", "addr", ln.Addr().String(), "service", a.cfg.Service)
	return func(ctx context.Context) error { return s.Serve(ctx, ln) }, nil
}
