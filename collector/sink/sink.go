package sink

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Sink receives mirrored copies and publishes them.
type Sink struct {
	emit        *collector.Emitter
	conns       *collector.Conns
	bodyLimit   int64             // initial, until New builds policy
	filter      *collector.Filter // initial, until New builds policy
	policy      *collector.LivePolicy
	keyHeader   string
	strip       map[string]bool
	collectorID string
	log         hclog.Logger
	limits      collector.Limits
}

// Option configures a Sink.
type Option func(*Sink)

// WithBodyLimit sets how many body bytes are captured (default 1 MiB).
func WithBodyLimit(n int64) Option { return func(s *Sink) { s.bodyLimit = n } }

// WithFilter sets which copies are published (routes and sample fractions;
// default: all). A copy filtered or sampled out is still answered 200.
func WithFilter(f *collector.Filter) Option { return func(s *Sink) { s.filter = f } }

// WithKeyHeader keys records by this request header (e.g. X-Forwarded-For or a
// session header) instead of the client address the mirroring proxy reports, so
// one client's requests stay ordered in one partition.
func WithKeyHeader(h string) Option { return func(s *Sink) { s.keyHeader = h } }

// WithStripHeaders removes headers the mirroring proxy added (e.g. X-Original-URI).
func WithStripHeaders(names ...string) Option {
	return func(s *Sink) {
		for _, n := range names {
			s.strip[http.CanonicalHeaderKey(n)] = true
		}
	}
}

// WithLimits bounds what clients may hold: connections, header size, idle and
// body time (zero fields: collector.DefaultLimits).
func WithLimits(l collector.Limits) Option { return func(s *Sink) { s.limits = l } }

// WithLogger sets the logger.
func WithLogger(l hclog.Logger) Option { return func(s *Sink) { s.log = l } }

// WithCollectorID names this collector instance in every record (default: host name).
func WithCollectorID(id string) Option { return func(s *Sink) { s.collectorID = id } }

// New returns a Sink publishing through emit.
func New(emit *collector.Emitter, opts ...Option) (*Sink, error) {
	host, _ := os.Hostname()
	s := &Sink{emit: emit, conns: collector.NewConns(), bodyLimit: collector.DefaultBodyLimit, strip: map[string]bool{}, collectorID: host, log: hclog.NewNullLogger()}
	for _, o := range opts {
		o(s)
	}
	pol, err := collector.PolicyOf(s.filter, s.bodyLimit)
	if err != nil {
		return nil, err
	}
	if err := s.limits.Validate(); err != nil {
		return nil, err
	}
	s.policy = collector.NewLivePolicy("sink", emit.Metrics(), pol)
	s.filter = nil
	s.limits = s.limits.WithDefaults()
	return s, nil
}

// Reload puts pol (sampling, routes, body limit) in force for every copy that
// arrives from now on, without closing a connection.
func (s *Sink) Reload(pol *collector.Policy) { s.policy.Store(pol) }

// Policy returns the policy in force.
func (s *Sink) Policy() *collector.Policy { return s.policy.Load() }

// ServeHTTP captures the mirrored request and answers 200 with no body. A copy
// whose body does not arrive whole (cut short, malformed chunked framing, too
// slow) is answered 400 or 408 and not published; it is counted in
// mirrorline_collector_dropped_total{reason}.
//
// A gRPC copy (HTTP/2, content-type application/grpc) is read message by
// message and answered as a gRPC server ends a call: 200, content-type
// application/grpc, no message, trailer grpc-status 0. It has no body
// deadline: a mirrored stream lasts as long as the call it copies.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	connID, seq, headers := s.conns.RequestMeta(r)
	m := s.emit.Metrics()
	if code, msg := collector.Unsupported(r); code != 0 {
		m.Dropped.WithLabelValues(collector.DropUnsupported).Inc()
		collector.Refuse(w, code, msg)
		return
	}
	// One policy for the whole copy, whatever a reload swaps in meanwhile.
	pol := s.policy.Load()
	decision := pol.Filter().Match(r)
	limit := pol.BodyLimit()
	if decision != collector.Capture {
		limit = 0 // read (to keep the connection), keep nothing
	}
	grpc := r.ProtoMajor >= 2 && grpcwire.IsGRPC(r.Header.Get("Content-Type"))
	body := collector.BodyCapture{Limit: limit}
	body.Presize(r.ContentLength)
	var sink io.Writer = &body
	var framer *framerWriter
	timeout := s.limits.BodyTimeout
	if grpc {
		timeout = 0
		if limit > 0 {
			framer = &framerWriter{f: collector.NewMessageCapture(limit, s.emit.RecordBudget()), start: start}
			sink = framer
		}
	}
	// Read all of the body (keeping at most the limit) so the connection can be reused.
	rb := collector.RateBody(w, r, timeout, s.limits.MinBodyRate)
	if _, err := io.Copy(sink, rb); err != nil {
		reason := collector.BodyDropReason(err)
		m.Dropped.WithLabelValues(reason).Inc()
		s.log.Debug("mirrored body not received whole: not published", "connection", connID, "reason", reason)
		collector.RefuseBody(w, err)
		return
	}
	if grpc {
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(http.StatusOK)
		w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
	} else {
		w.WriteHeader(http.StatusOK)
	}
	if m.Skip(decision) {
		return
	}

	kept := slices.DeleteFunc(headers, func(h *mlv1.Header) bool { return s.strip[h.Name] })
	if s.keyHeader != "" {
		if v := r.Header.Get(s.keyHeader); v != "" {
			connID = "key-" + strings.TrimSpace(strings.Split(v, ",")[0])
		}
	}
	req := &mlv1.Request{
		Method:     r.Method,
		Url:        r.URL.RequestURI(),
		Host:       StripShadowSuffix(r.Host),
		Proto:      r.Proto,
		Scheme:     "http",
		Headers:    kept,
		RemoteAddr: r.RemoteAddr,
	}
	if r.Header.Get("X-Forwarded-Proto") == "https" {
		req.Scheme = "https"
	}
	protocol := mlv1.Protocol_PROTOCOL_UNSPECIFIED
	if r.ProtoMajor >= 2 {
		protocol = mlv1.Protocol_PROTOCOL_HTTP2
	}
	if framer != nil {
		req.Messages, req.MessagesTruncated, req.BodySize = framer.f.Result()
		protocol = mlv1.Protocol_PROTOCOL_GRPC
	} else {
		req.Body, req.BodyTruncated, req.BodySize = body.Result()
	}
	if len(r.Trailer) > 0 {
		req.Trailers = mlv1.HeadersFromHTTP(r.Trailer) // the body was read to its end
	}
	// Encoded and produced on the emitter's workers, after this answer.
	s.emit.Submit(&mlv1.Exchange{
		ConnectionId:  connID,
		Sequence:      seq,
		Source:        mlv1.Source_SOURCE_SINK,
		Collector:     s.collectorID,
		CaptureTimeNs: start.UnixNano(),
		Protocol:      protocol,
		Request:       req,
	})
}

// framerWriter feeds a gRPC body to a MessageCapture with each part's
// offset after start.
type framerWriter struct {
	f     *collector.MessageCapture
	start time.Time
}

func (fw *framerWriter) Write(p []byte) (int, error) {
	fw.f.Feed(p, time.Since(fw.start).Nanoseconds())
	return len(p), nil
}

// StripShadowSuffix undoes Envoy's mirror Host rewrite: "payments-shadow" and
// "payments-shadow:8080" (and the older "payments:8080-shadow") become the
// original host.
func StripShadowSuffix(host string) string {
	if h, ok := strings.CutSuffix(host, "-shadow"); ok {
		return h
	}
	if h, port, err := net.SplitHostPort(host); err == nil {
		if base, ok := strings.CutSuffix(h, "-shadow"); ok {
			return net.JoinHostPort(base, port)
		}
	}
	return host
}

// Serve serves the sink on ln until ctx ends, then shuts down gracefully. The
// server enforces the sink's limits (WithLimits) and names connections.
func (s *Sink) Serve(ctx context.Context, ln net.Listener) error {
	srv, ln := s.limits.Server(s, s.conns, s.emit.Metrics(), ln)
	srv.ErrorLog = collector.ServerErrorLog(s.log)
	s.log.Info("client limits", "max_conns", s.limits.MaxConns, "read_header_timeout", s.limits.ReadHeaderTimeout, "idle_timeout", s.limits.IdleTimeout,
		"max_header_bytes", s.limits.MaxHeaderBytes, "body_timeout", s.limits.BodyTimeout, "min_body_rate", s.limits.MinBodyRate)
	return collector.Serve(ctx, "sink", srv, ln)
}
