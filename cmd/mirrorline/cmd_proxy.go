package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/proxy"
	"github.com/mirrorline/mirrorline/telemetry"
)

func (a *app) proxyCmd() *cobra.Command {
	var prefix string
	var methods, headerMatch []string
	c := &cobra.Command{
		Use:   "proxy",
		Short: "Reverse proxy in front of the primary; publishes each request and the primary's response",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireServiceAndBrokers("primary"); err != nil {
				return err
			}
			if prefix != "" || len(methods) > 0 || len(headerMatch) > 0 {
				r := proxy.Route{PathPrefix: prefix, Methods: methods}
				if len(headerMatch) > 0 {
					r.Headers = map[string]string{}
					for _, hm := range headerMatch {
						name, expr, ok := strings.Cut(hm, "=")
						if !ok || name == "" {
							return usagef("header-match: %q is not NAME=REGEX", hm)
						}
						r.Headers[name] = expr
					}
				}
				a.cfg.Proxy.Routes = append(a.cfg.Proxy.Routes, r)
				a.cfg.Proxy.cliRoutes = []proxy.Route{r}
			}
			a.reload.flags = cmd.Flags()
			if err := a.bindMetrics(); err != nil {
				return err
			}
			tel := telemetry.NewServer()
			p, cl, err := a.newProxy(tel)
			if err != nil {
				return err
			}
			defer closeClient(cl)
			ln, err := net.Listen("tcp", a.cfg.Proxy.Listen)
			if err != nil {
				return usagef("listen %s: %v", a.cfg.Proxy.Listen, err)
			}
			a.log.Info("proxy listening", "addr", ln.Addr().String(), "primary", a.cfg.Proxy.Primary, "service", a.cfg.Service)
			return a.runAll(cmd.Context(), tel, func(ctx context.Context) error { return p.Serve(ctx, ln) }, a.watchConfig(tel.Registry))
		},
	}
	f := c.Flags()
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	f.StringVar(&a.cfg.Proxy.Listen, "listen", a.cfg.Proxy.Listen, "address to listen on")
	f.StringVar(&a.cfg.Proxy.Primary, "primary", a.cfg.Proxy.Primary, "URL of the primary service")
	f.Float64Var(&a.cfg.Proxy.Sample, "sample", a.cfg.Proxy.Sample, "fraction of matching requests captured (0..1)")
	f.Int64Var(&a.cfg.Proxy.BodyLimit, "body-limit", a.cfg.Proxy.BodyLimit, "body bytes captured per request and response; longer bodies are flagged truncated")
	f.BoolVar(&a.cfg.Proxy.PreserveHost, "preserve-host", a.cfg.Proxy.PreserveHost, "send the client's Host header to the primary")
	f.IntVar(&a.cfg.Proxy.QueueRecords, "queue-records", a.cfg.Proxy.QueueRecords, "records buffered for Kafka before new captures are dropped")
	f.IntVar(&a.cfg.Proxy.QueueBytes, "queue-bytes", a.cfg.Proxy.QueueBytes, "bytes buffered for Kafka before new captures are dropped")
	f.StringVar(&a.cfg.Proxy.CollectorID, "collector-id", a.cfg.Proxy.CollectorID, "name of this collector in records (default: host name)")
	f.StringVar(&prefix, "path-prefix", "", "capture only paths with this prefix")
	f.StringSliceVar(&methods, "method", nil, "capture only these methods (repeatable)")
	f.StringArrayVar(&headerMatch, "header-match", nil, "capture only requests with header NAME matching RE2 REGEX, as NAME=REGEX (repeatable)")
	addLimitFlags(c, &a.cfg.Proxy.Limits)
	return c
}

// addLimitFlags registers the client limits of an HTTP collector (proxy,
// sink); zero values take collector.DefaultLimits.
func addLimitFlags(c *cobra.Command, l *collector.Limits) {
	f, d := c.Flags(), collector.DefaultLimits()
	withDefault := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v
	}
	f.IntVar(&l.MaxConns, "max-conns", l.MaxConns, "client connections held at most; at the cap a new one closes the oldest idle one, or gets 503 when all are busy (0: half the open-file limit after a reserve)")
	f.DurationVar(&l.ReadHeaderTimeout, "read-header-timeout", withDefault(l.ReadHeaderTimeout, d.ReadHeaderTimeout), "time a client has to send a request head (also a new connection's first one)")
	f.DurationVar(&l.IdleTimeout, "idle-timeout", withDefault(l.IdleTimeout, d.IdleTimeout), "close keep-alive connections idle this long")
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	f.IntVar(&l.MaxHeaderBytes, "max-header-bytes", l.MaxHeaderBytes, "largest request head accepted; longer ones are answered 431")
	f.DurationVar(&l.BodyTimeout, "body-timeout", withDefault(l.BodyTimeout, d.BodyTimeout), "time a request body may take, plus one second per --min-body-rate bytes received; slower bodies are cut (408) and not published")
	if l.MinBodyRate == 0 {
		l.MinBodyRate = d.MinBodyRate
	}
	f.Int64Var(&l.MinBodyRate, "min-body-rate", l.MinBodyRate, "bytes per second that extend --body-timeout")
}

// newProxy builds the proxy collector and its Kafka client from the configuration.
func (a *app) newProxy(tel *telemetry.Server) (*proxy.Proxy, *kgo.Client, error) {
	pc := a.cfg.Proxy
	if pc.Primary == "" {
		return nil, nil, usagef("primary: required")
	}
	em, cl, err := a.newEmitter(tel, pc.QueueRecords, pc.QueueBytes, "proxy")
	if err != nil {
		return nil, nil, err
	}
	p, err := a.buildProxy(em)
	if err != nil {
		cl.Close()
		return nil, nil, err
	}
	return p, cl, nil
}

// buildProxy builds the proxy collector publishing through em.
func (a *app) buildProxy(em *collector.Emitter) (*proxy.Proxy, error) {
	pc := a.cfg.Proxy
	if pc.Primary == "" {
		return nil, usagef("proxy.primary: required")
	}
	filter, err := proxy.NewFilter(pc.Sample, pc.Routes)
	if err != nil {
		return nil, usageError{err}
	}
	opts := []proxy.Option{
		proxy.WithFilter(filter),
		proxy.WithBodyLimit(pc.BodyLimit),
		proxy.WithPreserveHost(pc.PreserveHost),
		proxy.WithLogger(a.log.Named("proxy")),
		proxy.WithLimits(pc.Limits),
	}
	if pc.CollectorID != "" {
		opts = append(opts, proxy.WithCollectorID(pc.CollectorID))
	}
	p, err := proxy.New(pc.Primary, em, opts...)
	if err != nil {
		return nil, usageError{err}
	}
	a.reload.add(reloadTarget{keys: []string{"proxy.sample", "proxy.routes", "proxy.body_limit"}, prepare: a.prepareProxy(p)})
	return p, nil
}

// prepareProxy checks the proxy's reloadable keys of a new configuration
// (sample, routes, body_limit; a flag given on the command line keeps its
// value) and returns what puts them in force.
func (a *app) prepareProxy(p *proxy.Proxy) func(*Config, func(string) bool, hclog.Logger) (func(), error) {
	return func(nc *Config, flagSet func(string) bool, log hclog.Logger) (func(), error) {
		pc, cur := nc.Proxy, a.cfg.Proxy
		pc.Sample = flagOverFile(flagSet, log, "proxy.sample", "sample", pc.Sample, cur.Sample)
		pc.BodyLimit = flagOverFile(flagSet, log, "proxy.body_limit", "body-limit", pc.BodyLimit, cur.BodyLimit)
		routes := append(slices.Clone(pc.Routes), cur.cliRoutes...)
		pol, err := collector.NewPolicy(pc.Sample, routes, pc.BodyLimit)
		if err != nil {
			return nil, fmt.Errorf("proxy.%w", err)
		}
		return func() {
			p.Reload(pol)
			log.Info("proxy policy in force", "sample", pc.Sample, "routes", len(routes), "body_limit", pc.BodyLimit)
		}, nil
	}
}

// newEmitter builds the emitter every collector publishes through: a Kafka client
// with a bounded buffer, so a slow or dead Kafka drops captures instead of
// blocking the capture path.
func (a *app) newEmitter(tel *telemetry.Server, queueRecords, queueBytes int, name string) (*collector.Emitter, *kgo.Client, error) {
	if queueRecords <= 0 || queueBytes <= 0 {
		return nil, nil, usagef("queue-records, queue-bytes: must be positive")
	}
	cl, err := broker.NewClient(a.cfg.Kafka,
		kgo.MaxBufferedRecords(queueRecords),
		kgo.MaxBufferedBytes(queueBytes),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	if err != nil {
		return nil, nil, usageError{err}
	}
	budget := a.recordBudget(context.Background(), cl, broker.Raw, false)
	return collector.NewEmitter(cl, a.cfg.Service, collector.NewMetrics(tel.Registry), a.log.Named(name), collector.WithBudget(budget)), cl, nil
}
