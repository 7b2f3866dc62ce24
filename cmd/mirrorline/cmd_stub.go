package main

import (
	"cmp"
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/stub"
	"github.com/mirrorline/mirrorline/telemetry"
)

func (a *app) stubCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "stub",
		Short: "The shadow's downstream endpoint: answer its outbound calls with the primary's recorded ones",
		Long: `Index the primary's recorded outbound calls (egress records of
mirror.clean.SERVICE, from --since back, then live) and answer each outbound
call of the shadow with the recorded response of the matching call: same
parent exchange (the "mirrorline" entry of the call's tracestate, else its
traceparent's trace id), same dependency host, method and path, the most
similar body; each recorded call answers once. The stub serves as the
shadow's HTTP_PROXY (absolute-form requests; CONNECT is refused) or as a
dependency's address (the Host header, or --dependency). A call with no
match gets the --on-miss-status answer with X-Mirrorline-Stub: miss, or
goes to the real dependency only when its host is given with
--allow-passthrough. Every answered call is published to
mirror.shadow.SERVICE for the comparator. See docs/isolation.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireServiceAndBrokers("stub-listen"); err != nil {
				return err
			}
			if err := a.bindMetrics(); err != nil {
				return err
			}
			tel := telemetry.NewServer()
			stages, closeStub, err := a.newStub(cmd.Context(), tel)
			if err != nil {
				return err
			}
			defer closeStub()
			return a.runAll(cmd.Context(), tel, stages...)
		},
	}
	f := c.Flags()
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name: the calling service (topics mirror.clean.SERVICE, mirror.shadow.SERVICE)")
	a.cfg.Stub.BindFlags(f)
	return c
}

// newStub builds the stub's stages: the index following mirror.clean.S,
// the publisher to mirror.shadow.S and the HTTP server on stub.listen. The
// returned func flushes and closes the producer once the stages ended.
func (a *app) newStub(ctx context.Context, tel *telemetry.Server) ([]stage, func(), error) {
	sc := a.cfg.Stub
	svc := a.cfg.Service
	opts, err := a.cfg.Kafka.Opts()
	if err != nil {
		return nil, nil, usageError{err}
	}
	log := a.log.Named("stub")
	m := stub.NewMetrics(tel.Registry)
	ix := stub.NewIndex(stub.WithBounds(sc.MaxRecords, sc.MaxBytes), stub.WithIndexMetrics(m))
	follower := stub.NewFollower(opts, broker.Topic(broker.Clean, svc), time.Now().Add(-sc.Since), ix, log)
	cl, err := broker.NewClient(a.cfg.Kafka, kgo.MaxBufferedRecords(sc.QueueRecords))
	if err != nil {
		return nil, nil, usageError{err}
	}
	budget := broker.NewBudget(a.cfg.Kafka.ProducerMaxBytes())
	a.lookupBudget(ctx, budget, cl, broker.Shadow, false)
	pub := stub.NewPublisher(cl, broker.Topic(broker.Shadow, svc), sc.QueueRecords, budget, m, log)
	srvOpts := []stub.Option{stub.WithWait(sc.Wait), stub.WithRecordedLatency(sc.Latency == stub.LatencyRecorded),
		stub.WithMissAnswer(sc.OnMissStatus, sc.OnMissBody), stub.WithPassthrough(sc.AllowPassthrough...),
		stub.WithBodyLimit(sc.BodyLimit), stub.WithPublisher(pub), stub.WithMetrics(m), stub.WithLogger(log),
		stub.WithInstance(cmp.Or(sc.Instance, replayer.DefaultInstance()))}
	if sc.Dependency != "" {
		srvOpts = append(srvOpts, stub.WithDependency(sc.Dependency))
	}
	srv, err := stub.NewServer(ix, svc, srvOpts...)
	if err != nil {
		cl.Close()
		return nil, nil, usagef("stub: %v", err)
	}
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		cl.Close()
		return nil, nil, usagef("--listen %s: %v", sc.Listen, unwrapOpError(err))
	}
	tel.AddCheck("kafka", kafkaCheck(cl))
	tel.AddCheck("stub index", follower.Ready)
	log.Info("stub listening", "addr", ln.Addr().String(), "service", svc, "dependency", sc.Dependency,
		"passthrough", len(sc.AllowPassthrough), "since", sc.Since.String(), "wait", sc.Wait.String())
	serve := func(ctx context.Context) error {
		hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: log.StandardLogger(nil)}
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
		}()
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	closeStub := func() {
		select { // the publisher hands over what is queued when it stops
		case <-pub.Done():
		case <-time.After(5 * time.Second):
		}
		broker.CloseFlushed(cl)
	}
	return []stage{follower.Run, pub.Run, serve}, closeStub, nil
}
