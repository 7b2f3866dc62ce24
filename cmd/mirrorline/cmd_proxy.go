package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strings"

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
		Short: "Reverse proxy in front of the primary (with --egress: the primary's proxy to its dependencies); publishes each request and its response",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireProxySettings(); err != nil {
				return err
			}
			if prefix != "" || len(methods) > 0 || len(headerMatch) > 0 {
				r := collector.Route{PathPrefix: prefix, Methods: methods}
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
				a.proxyCLIRoutes = []collector.Route{r}
			}
			a.reload.flags = cmd.Flags()
			pct, from := proxyGC(os.LookupEnv)
			a.gc = []any{"gc_percent", pct, "gc_from", from}
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
	if pc.Primary == "" && !pc.Egress {
		return nil, usagef("proxy.primary: required")
	}
	filter, err := collector.NewFilter(pc.Sample, pc.Routes)
	if err != nil {
		return nil, usageError{err}
	}
	opts := []proxy.Option{
		proxy.WithFilter(filter),
		proxy.WithBodyLimit(pc.BodyLimit),
		proxy.WithPreserveHost(pc.PreserveHost),
		proxy.WithLogger(a.log.Named("proxy")),
		proxy.WithLimits(pc.Limits),
		proxy.WithTraceContext(pc.TraceContext),
	}
	if pc.Egress {
		opts = append(opts, proxy.WithEgress(pc.EgressAllow))
	}
	if pc.CollectorID != "" {
		opts = append(opts, proxy.WithCollectorID(pc.CollectorID))
	}
	if pc.PrimaryProtocol != "" {
		opts = append(opts, proxy.WithPrimaryProtocol(pc.PrimaryProtocol))
	}
	if pc.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(pc.TLSCert, pc.TLSKey)
		if err != nil {
			return nil, usagef("proxy.tls_cert, proxy.tls_key: %v", err)
		}
		opts = append(opts, proxy.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}
	p, err := proxy.New(pc.Primary, em, opts...)
	if err != nil {
		return nil, usageError{err}
	}
	a.reload.add(a.policyReload("proxy", p.Reload, func(c *config.File) (float64, []collector.Route, int64) {
		return c.Proxy.Sample, append(slices.Clone(c.Proxy.Routes), a.proxyCLIRoutes...), c.Proxy.BodyLimit
	}))
	return p, nil
}

// requireProxySettings checks what the proxy command needs: a primary,
// unless it is an egress forward proxy.
func (a *app) requireProxySettings() error {
	if a.cfg.Proxy.Egress {
		return a.requireServiceAndBrokers()
	}
	return a.requireServiceAndBrokers("primary")
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
	a.log.Info("proxy listening", append([]any{"addr", ln.Addr().String(), "primary", a.cfg.Proxy.Primary, "service", a.cfg.Service, "egress", a.cfg.Proxy.Egress,
		"tls", a.cfg.Proxy.TLSCert != "", "primary_protocol", cmp.Or(a.cfg.Proxy.PrimaryProtocol, proxy.PrimaryAuto)}, a.gc...)...)
	return collector.RunFunc(func(ctx context.Context) error { return p.Serve(ctx, ln) }), nil
}

// newEmitter builds the emitter every collector publishes through: a Kafka client
// with a bounded buffer, so a slow or dead Kafka drops captures instead of
// blocking the capture path. The queue sizes are positive: config.Validate
// checked them before the command ran.
func (a *app) newEmitter(tel *telemetry.Server, queueRecords, queueBytes int, name string) (*collector.Emitter, *kgo.Client, error) {
	cl, err := broker.NewClient(a.cfg.Kafka,
		kgo.MaxBufferedRecords(queueRecords),
		kgo.MaxBufferedBytes(queueBytes),
		kgo.ProducerLinger(a.cfg.Kafka.CollectorLinger()),
	)
	if err != nil {
		return nil, nil, usageError{err}
	}
	budget := a.recordBudget(context.Background(), cl, broker.Raw, false)
	// The hand-off to the emitter's workers is bounded like the producer's buffer.
	return collector.NewEmitter(cl, a.cfg.Service, collector.NewMetrics(tel.Registry), a.log.Named(name), collector.WithBudget(budget),
		collector.WithHandoff(queueRecords, int64(queueBytes))), cl, nil
}

// proxyGCPercent is the garbage collector's target (GOGC) of `mirrorline
// proxy` when its environment does not set GOGC: a collection when the heap
// has grown by 4x what the last one left, not 1x. The proxy is on the
// primary's path, and each collection takes a quarter of the cores for its
// marking and slows the requests that allocate meanwhile; a quarter as many
// collections cut the proxy's p99 at 2000/s to 0.77x (median of 7 runs of
// bench/load, docs/benchmarks.md) for about 27 MiB more resident memory.
// GOGC in the environment (and GOMEMLIMIT, which the runtime honours
// whatever the target) still decides.
const proxyGCPercent = 400

// proxyGC sets the garbage collector's target to proxyGCPercent unless
// lookup finds GOGC set, and returns the target in effect and where it came
// from ("GOGC" or "default").
func proxyGC(lookup func(string) (string, bool)) (int, string) {
	if _, ok := lookup("GOGC"); ok {
		pct := debug.SetGCPercent(100)
		debug.SetGCPercent(pct)
		return pct, "GOGC"
	}
	debug.SetGCPercent(proxyGCPercent)
	return proxyGCPercent, "default"
}
