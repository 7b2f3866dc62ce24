package main

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/config"
	"github.com/mirrorline/mirrorline/telemetry"
)

func (a *app) upCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "up",
		Short: "Run the whole pipeline in one process (embedded broker unless brokers are set)",
		Long: `Run every configured stage of one service in this process: the capture
collectors named in collectors (proxy, sink, vpc, ebpf; default the proxy when
proxy.primary is set), the redactor, the live replayer and the comparator
(replay.target set), the stub (stub.listen set), and consumer-lag metrics, with one /metrics endpoint. Without brokers, an embedded Kafka-protocol broker
(franz-go kfake) listens on embedded.addr, so other mirrorline commands and Kafka
tools can connect to it. The topics are created when missing.`,
		Args: cobra.NoArgs,
		RunE: a.runUp,
	}
	c.Flags().StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	a.cfg.GRPC.BindFlags(c.Flags())
	return c
}

// stage is one part of a process run until its context ends.
type stage = func(context.Context) error

// runUp runs every configured stage of the service in this process.
func (a *app) runUp(cmd *cobra.Command, _ []string) error {
	if err := a.requireService(); err != nil {
		return err
	}
	ctx := cmd.Context()
	collectors, err := a.upCollectors()
	if err != nil {
		return err
	}
	if err := a.bindMetrics(); err != nil {
		return err
	}
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	if len(a.cfg.Kafka.Brokers) == 0 {
		e, err := a.startEmbedded()
		if err != nil {
			return err
		}
		closers = append(closers, func() { e.Close() })
	}
	if err := a.ensureTopics(ctx); err != nil {
		return err
	}
	tel := telemetry.NewServer()
	stages, err := a.upCollectorStages(tel, collectors, &closers)
	if err != nil {
		return err
	}
	more, err := a.upConsumerStages(ctx, tel, &closers)
	if err != nil {
		return err
	}
	a.reload.flags = cmd.Flags()
	stages = append(append(stages, more...), a.newConfigWatch(tel.Registry).run)
	a.log.Info("pipeline up", "service", a.cfg.Service, "brokers", a.cfg.Kafka.Brokers)
	return a.runAll(ctx, tel, stages...)
}

// startEmbedded starts the embedded broker `up` uses when no brokers are
// set, and points the configuration at it.
func (a *app) startEmbedded() (*broker.Embedded, error) {
	opts := []broker.EmbeddedOpt{broker.EmbeddedAddr(a.cfg.Embedded.Addr)}
	if a.cfg.Embedded.DataDir != "" {
		opts = append(opts, broker.EmbeddedDataDir(a.cfg.Embedded.DataDir))
	}
	e, err := broker.StartEmbedded(opts...)
	if err != nil {
		return nil, err
	}
	a.cfg.Kafka.Brokers = e.Addrs()
	a.log.Info("embedded broker", "addr", e.Addrs()[0])
	return e, nil
}

// upCollectorStages builds the collectors named, publishing through one
// queue for the process.
func (a *app) upCollectorStages(tel *telemetry.Server, names []string, closers *[]func()) ([]stage, error) {
	if len(names) == 0 {
		return nil, nil
	}
	em, cl, err := a.newEmitter(tel, a.cfg.Proxy.QueueRecords, a.cfg.Proxy.QueueBytes, "collector")
	if err != nil {
		return nil, err
	}
	*closers = append(*closers, func() { closeEmitter(em); broker.CloseFlushed(cl) })
	reg := a.collectorRegistry()
	var stages []stage
	for _, name := range names {
		c, err := reg.New(name, em, tel.Registry) // names checked by upCollectors
		if err != nil {
			return nil, err
		}
		run := c.Run
		if name != "proxy" {
			// Only the proxy is in front of users; another collector
			// failing leaves the rest of the pipeline running.
			run = a.isolate(tel, name, run)
		}
		stages = append(stages, run)
	}
	return stages, nil
}

// upConsumerStages builds the redactor, the live replayer and the
// comparator (with replay.target) and the lag metrics, each isolated.
func (a *app) upConsumerStages(ctx context.Context, tel *telemetry.Server, closers *[]func()) ([]stage, error) {
	rp, err := a.newRedactor(tel)
	if err != nil {
		return nil, err
	}
	*closers = append(*closers, rp.Close)
	// Readiness and lag use a client of their own: the redactor
	// replaces its session after a failed transaction.
	kc, err := broker.NewClient(a.cfg.Kafka)
	if err != nil {
		return nil, usageError{err}
	}
	*closers = append(*closers, kc.Close)
	tel.AddCheck("kafka", kafkaCheck(kc))
	stages := []stage{a.isolate(tel, "redactor", rp.Run)}
	if a.cfg.Replay.Target != "" {
		a.cfg.Replay.Start = cmp.Or(a.cfg.Replay.Start, "earliest")
		l, cl, err := a.newLiveReplayer(tel)
		if err != nil {
			return nil, err
		}
		*closers = append(*closers, cl.Close)
		a.log.Info("live replay", "target", a.cfg.Replay.Target, "group", a.cfg.Replay.Group)
		stages = append(stages, a.isolate(tel, "replayer", func(ctx context.Context) error { return l.Run(ctx, cl) }))

		// Compare the primary's responses with the shadow's the replayer records.
		a.cfg.Compare.Start = cmp.Or(a.cfg.Compare.Start, "earliest")
		comp, runner, ccl, err := a.newComparator(tel)
		if err != nil {
			return nil, err
		}
		*closers = append(*closers, ccl.Close)
		a.primeComparator(ctx, comp)
		stages = append(stages, a.isolate(tel, "comparator", func(ctx context.Context) error { return runner.Run(ctx, ccl) }))
	}
	if a.cfg.Stub.Listen != "" {
		// The shadow's downstream endpoint (docs/isolation.md).
		st, closeStub, err := a.newStub(ctx, tel)
		if err != nil {
			return nil, err
		}
		*closers = append(*closers, closeStub)
		for _, s := range st {
			stages = append(stages, a.isolate(tel, "stub", s))
		}
	}
	opts, err := a.cfg.Kafka.Opts()
	if err != nil {
		return nil, usageError{err}
	}
	lc := broker.NewLagCollector(broker.NewLagReader(kc, opts), config.DefaultLagInterval, a.log.Named("lag"))
	tel.Registry.MustRegister(lc)
	return append(stages, a.isolate(tel, "lag", lc.Run)), nil
}

// ensureTopics creates the service's topics when missing.
func (a *app) ensureTopics(ctx context.Context) error {
	spec, err := a.topicSpec(nil)
	if err != nil {
		return err
	}
	cl, err := broker.NewClient(a.cfg.Kafka)
	if err != nil {
		return usageError{err}
	}
	defer cl.Close()
	_, err = broker.CreateTopics(ctx, kadm.NewClient(cl), a.cfg.Service, spec)
	return err
}

// isolate keeps a failing stage of `up` from taking the others down with it:
// above all the proxy in front of the primary must keep serving. The stage's
// error is logged and turns /readyz not ready (naming the stage) until the
// process is restarted.
func (a *app) isolate(tel *telemetry.Server, name string, run func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		err := run(ctx)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		a.log.Error("stage stopped; the other stages keep running, /readyz reports it", "stage", name, "error", err)
		tel.AddCheck("stage "+name, func(context.Context) error { return fmt.Errorf("stopped: %w", err) })
		<-ctx.Done()
		return nil
	}
}

// collectorRegistry names the collectors `up` and the collector commands
// run, each built from its section of the configuration.
func (a *app) collectorRegistry() *collector.Registry {
	var r collector.Registry
	r.Register("proxy", a.newProxyCollector)
	r.Register("sink", a.newSink)
	r.Register("vpc", a.newVPC)
	r.Register("ebpf", a.newEBPF)
	return &r
}

// upCollectors returns the collectors `up` runs: the configured list, checked,
// or the proxy when proxy.primary is set.
func (a *app) upCollectors() ([]string, error) {
	if len(a.cfg.Collectors) == 0 {
		if a.cfg.Proxy.Primary != "" {
			return []string{"proxy"}, nil
		}
		return nil, nil
	}
	if err := a.collectorRegistry().Check(a.cfg.Collectors); err != nil {
		return nil, usageError{err}
	}
	return a.cfg.Collectors, nil
}

// runCollector runs collector name alone, as its own command does: with a
// publishing queue of its own, metrics and health endpoints, until ctx ends.
// kafkaReady makes /readyz depend on reaching Kafka.
func (a *app) runCollector(ctx context.Context, name string, queueRecords, queueBytes int, kafkaReady bool) error {
	if err := a.bindMetrics(); err != nil {
		return err
	}
	tel := telemetry.NewServer()
	em, cl, err := a.newEmitter(tel, queueRecords, queueBytes, name)
	if err != nil {
		return err
	}
	defer broker.CloseFlushed(cl)
	defer closeEmitter(em) // before the producer's flush: hands it what was accepted
	c, err := a.collectorRegistry().New(name, em, tel.Registry)
	if err != nil {
		return err
	}
	if kafkaReady {
		tel.AddCheck("kafka", kafkaCheck(cl))
	}
	return a.runAll(ctx, tel, c.Run, a.newConfigWatch(tel.Registry).run)
}

// closeEmitter hands what the collectors submitted to the producer (up to 5 s)
// before the producer is flushed and closed.
func closeEmitter(em *collector.Emitter) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = em.Close(ctx)
}
