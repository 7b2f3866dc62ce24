package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/proxy"
	"github.com/mirrorline/mirrorline/config"
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
				a.proxyCLIRoutes = []proxy.Route{r}
			}
			a.reload.flags = cmd.Flags()
			// In front of users: ready whether Kafka is reachable or not.
			return a.runCollector(cmd.Context(), "proxy", a.cfg.Proxy.QueueRecords, a.cfg.Proxy.QueueBytes, false)
		},
	}
	f := c.Flags()
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	a.cfg.Proxy.BindFlags(f)
	f.StringVar(&prefix, "path-prefix", "", "capture only paths with this prefix")
	f.StringSliceVar(&methods, "method", nil, "capture only these methods (repeatable)")
	f.StringArrayVar(&headerMatch, "header-match", nil, "capture only requests with header NAME matching RE2 REGEX, as NAME=REGEX (repeatable)")
	return c
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
func (a *app) prepareProxy(p *proxy.Proxy) func(*config.File, func(string) bool, hclog.Logger) (func(), error) {
	return func(nc *config.File, flagSet func(string) bool, log hclog.Logger) (func(), error) {
		pc, cur := nc.Proxy, a.cfg.Proxy
		pc.Sample = flagOverFile(flagSet, log, "proxy.sample", "sample", pc.Sample, cur.Sample)
		pc.BodyLimit = flagOverFile(flagSet, log, "proxy.body_limit", "body-limit", pc.BodyLimit, cur.BodyLimit)
		routes := append(slices.Clone(pc.Routes), a.proxyCLIRoutes...)
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

// newProxyCollector builds the proxy publishing through em and opens its
// listener.
func (a *app) newProxyCollector(em *collector.Emitter, _ prometheus.Registerer) (collector.Collector, error) {
	p, err := a.buildProxy(em)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", a.cfg.Proxy.Listen)
	if err != nil {
		return nil, usagef("proxy.listen %s: %v", a.cfg.Proxy.Listen, err)
	}
	a.log.Info("proxy listening", "addr", ln.Addr().String(), "primary", a.cfg.Proxy.Primary, "service", a.cfg.Service)
	return collector.RunFunc(func(ctx context.Context) error { return p.Serve(ctx, ln) }), nil
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
