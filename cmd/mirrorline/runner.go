package main

import (
	"context"
	"net"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/telemetry"
)

// runAll runs fns and the telemetry endpoint until ctx ends or one fails.
func (a *app) runAll(ctx context.Context, tel *telemetry.Server, fns ...func(context.Context) error) error {
	if err := a.bindMetrics(); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	if a.metricsLn != nil { // bound unless --metrics-addr is empty
		a.log.Info("serving /metrics /healthz /readyz", "addr", a.metricsLn.Addr().String())
	}
	g.Go(func() error { return a.serveMetrics(gctx, tel) })
	for _, fn := range fns {
		g.Go(func() error { return fn(gctx) })
	}
	return g.Wait()
}

// serveMetrics serves tel (with Go's profiles when --pprof is set) until
// ctx ends: on the listener bound before (bindMetrics), else on
// --metrics-addr (empty: not at all). A window replay serves metrics this
// way, so several workers of one job on one host run although only the
// first gets the port.
func (a *app) serveMetrics(ctx context.Context, tel *telemetry.Server) error {
	tel.Profiling = a.pprof
	if ln := a.takeMetricsListener(); ln != nil {
		return tel.ServeListener(ctx, ln)
	}
	return tel.Serve(ctx, a.cfg.MetricsAddr, nil)
}

// takeMetricsListener hands over the metrics listener bound at start, once.
func (a *app) takeMetricsListener() net.Listener {
	ln := a.metricsLn
	a.metricsLn = nil
	return ln
}

// closeMetrics closes the metrics listener if no command took it.
func (a *app) closeMetrics() {
	if ln := a.takeMetricsListener(); ln != nil {
		_ = ln.Close()
	}
}

// kafkaCheck is a readiness check that the brokers answer.
func kafkaCheck(cl *kgo.Client) telemetry.Check {
	return func(ctx context.Context) error { return broker.Explain(cl.Ping(ctx), nil) }
}
