package stub

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/net/http/httpguts"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Defaults of the Server.
const (
	// DefaultSince is how far back the index reads the clean topic.
	DefaultSince = time.Hour
	// LatencyNone and LatencyRecorded are the values of --latency: answer
	// at once, or no sooner than the primary's recorded latency.
	LatencyNone     = "none"
	LatencyRecorded = "recorded"
	// DefaultWait is how long a call waits for an index behind its topic.
	DefaultWait = 2 * time.Second
	// DefaultMissStatus is the status of the answer to an unmatched call.
	DefaultMissStatus = http.StatusBadGateway
	// DefaultMissBody is its body.
	DefaultMissBody = "mirrorline stub: no recorded call of the primary matches this call\n"
	// DefaultBodyLimit bounds the request body bytes read and matched.
	DefaultBodyLimit int64 = 1 << 20
	// DefaultPassthroughTimeout bounds a call passed through.
	DefaultPassthroughTimeout = 30 * time.Second
	// HeaderStub is set on every answer that is not a recorded one:
	// "miss" or "passthrough".
	HeaderStub = "X-Mirrorline-Stub"
)

// Server answers the shadow's outbound calls (see the package doc).
type Server struct {
	ix          *Index
	service     string
	instance    string
	dependency  string
	wait        time.Duration
	latency     bool
	missStatus  int
	missBody    []byte
	bodyLimit   int64
	passthrough map[string]string // normalized host -> host[:port] as configured
	client      *http.Client
	pub         *Publisher
	metrics     *Metrics
	log         hclog.Logger
}

// Option configures a Server.
type Option func(*Server) error

// WithDependency fixes the dependency (host[:port]) every origin-form call
// is for, instead of its Host header.
func WithDependency(host string) Option {
	return func(s *Server) error {
		h, err := checkHost(host)
		s.dependency = h
		return err
	}
}

// WithWait sets how long a call waits for an index behind its topic
// (default DefaultWait; 0: not at all).
func WithWait(d time.Duration) Option {
	return func(s *Server) error {
		if d < 0 {
			return fmt.Errorf("wait: must not be negative, got %s", d)
		}
		s.wait = d
		return nil
	}
}

// WithRecordedLatency makes a hit wait until the primary's recorded
// latency has passed since the call arrived.
func WithRecordedLatency(yes bool) Option {
	return func(s *Server) error { s.latency = yes; return nil }
}

// WithMissAnswer sets the answer to an unmatched call (default
// DefaultMissStatus, DefaultMissBody); it always carries X-Mirrorline-Stub:
// miss.
func WithMissAnswer(status int, body string) Option {
	return func(s *Server) error {
		if status < 200 || status > 599 {
			return fmt.Errorf("on-miss status: must be 200..599, got %d", status)
		}
		s.missStatus, s.missBody = status, []byte(body)
		return nil
	}
}

// WithPassthrough lets unmatched calls to exactly these hosts (host[:port];
// port 80 or none is plain HTTP, 443 is HTTPS) go to the real dependency;
// never by default. Redirects are not followed.
func WithPassthrough(hosts ...string) Option {
	return func(s *Server) error {
		for _, h := range hosts {
			hp, err := checkHost(h)
			if err != nil {
				return fmt.Errorf("allow-passthrough: %w", err)
			}
			s.passthrough[normHost(hp)] = hp
		}
		return nil
	}
}

// WithBodyLimit bounds the request body bytes read, matched and published
// (default DefaultBodyLimit).
func WithBodyLimit(n int64) Option {
	return func(s *Server) error {
		if n > 0 {
			s.bodyLimit = n
		}
		return nil
	}
}

// WithPublisher publishes every answered call (default: none).
func WithPublisher(p *Publisher) Option { return func(s *Server) error { s.pub = p; return nil } }

// WithMetrics sets the metrics (default: unregistered).
func WithMetrics(m *Metrics) Option { return func(s *Server) error { s.metrics = m; return nil } }

// WithLogger sets the logger (default: none). Payloads are never logged.
func WithLogger(l hclog.Logger) Option { return func(s *Server) error { s.log = l; return nil } }

// WithInstance names this stub in the records it publishes
// (Exchange.collector).
func WithInstance(name string) Option { return func(s *Server) error { s.instance = name; return nil } }

// NewServer returns a Server for service answering from ix.
func NewServer(ix *Index, service string, opts ...Option) (*Server, error) {
	s := &Server{ix: ix, service: service, wait: DefaultWait, missStatus: DefaultMissStatus, missBody: []byte(DefaultMissBody),
		bodyLimit: DefaultBodyLimit, passthrough: map[string]string{}, log: hclog.NewNullLogger()}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	if s.metrics == nil {
		s.metrics = ix.metrics
	}
	s.client = &http.Client{
		Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 5 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       DefaultPassthroughTimeout,
	}
	return s, nil
}

// checkHost accepts host or host:port, nothing else (no scheme, path or
// user info).
func checkHost(h string) (string, error) {
	u, err := url.Parse("http://" + h)
	if err != nil || h == "" || u.Host != h || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Hostname() == "" {
		return "", fmt.Errorf("%q is not host[:port]", h)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: bad port", h)
		}
	}
	return h, nil
}

// answer is what the stub answers, kept for the published record.
type answer struct {
	outcome, metric string
	status          int
	header          http.Header
	body            []byte
	errText         string
	matched         *Recorded
	score           int
}

// ServeHTTP answers one outbound call of the shadow.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := Call{Method: r.Method, Target: r.URL.RequestURI(), ContentType: r.Header.Get("Content-Type")}
	c.Trace, _ = mlv1.TraceID(r.Header.Values("Traceparent"))
	c.Parent, _ = mlv1.ParentID(r.Header.Values("Tracestate"))
	switch {
	case r.URL.IsAbs(): // forward proxy: absolute-form
		c.Host = r.URL.Host
	case s.dependency != "":
		c.Host = s.dependency
	default:
		c.Host = r.Host
	}
	var a answer
	body, truncated, err := s.readBody(r)
	switch {
	case r.Method == http.MethodConnect:
		c.Host, c.Target = r.Host, ""
		a = s.miss("mirrorline stub: CONNECT cannot be answered (a recorded answer cannot be given inside TLS); call the dependency over plain HTTP through the stub\n")
	case err != nil:
		a = answer{outcome: Miss, metric: Error, status: http.StatusBadRequest, header: http.Header{HeaderStub: {Miss}},
			body: []byte("mirrorline stub: the request body could not be read\n"), errText: "read request body: " + err.Error()}
	default:
		c.Body = body
		a = s.decide(r, c, truncated)
	}
	s.metrics.Calls.WithLabelValues(a.metric).Inc()
	if a.outcome == Hit && s.latency {
		s.waitLatency(r.Context(), start, a.matched.Ex.GetResponse().GetLatencyNs())
	}
	s.write(w, a)
	s.log.Debug("call answered", "outcome", a.metric, "score", a.score, "status", a.status)
	if s.pub != nil {
		s.pub.Submit(s.record(r, c, truncated, a, start))
	}
}

// decide matches c and passes it through or misses.
func (s *Server) decide(r *http.Request, c Call, truncated bool) answer {
	if rec, score := s.ix.Match(r.Context(), c, s.wait); rec != nil {
		resp := rec.Ex.GetResponse()
		h := http.Header{}
		for _, e := range resp.GetHeaders() {
			// Recorded bytes are hostile: a header that is not one is left
			// out rather than written.
			if !httpguts.ValidHeaderFieldName(e.GetName()) || !httpguts.ValidHeaderFieldValue(e.GetValue()) {
				continue
			}
			k := textproto.CanonicalMIMEHeaderKey(e.GetName())
			h[k] = append(h[k], e.GetValue())
		}
		dropHopByHop(h)
		return answer{outcome: Hit, metric: Hit, status: int(resp.GetStatus()), header: h, body: resp.GetBody(), matched: rec, score: score}
	}
	if to, ok := s.passthrough[normHost(c.Host)]; ok && !truncated {
		return s.pass(r, c, to)
	}
	return s.miss(string(s.missBody))
}

func (s *Server) miss(body string) answer {
	return answer{outcome: Miss, metric: Miss, status: s.missStatus, header: http.Header{HeaderStub: {Miss}, "Content-Type": {"text/plain; charset=utf-8"}}, body: []byte(body)}
}

// pass sends c to the allowlisted host to (as configured, never as the
// call named it) and relays the answer.
func (s *Server) pass(r *http.Request, c Call, to string) answer {
	scheme := "http"
	if _, port, err := net.SplitHostPort(to); err == nil && port == "443" {
		scheme = "https"
	}
	u := &url.URL{Scheme: scheme, Host: to, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	if u.Path == "" {
		u.Path = "/"
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(c.Body))
	if err != nil {
		return s.passError(fmt.Errorf("build pass-through request: %w", err))
	}
	out.Header = r.Header.Clone()
	dropHopByHop(out.Header)
	out.ContentLength = int64(len(c.Body))
	resp, err := s.client.Do(out)
	if err != nil {
		return s.passError(fmt.Errorf("pass-through: %w", errors.Unwrap(err)))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return s.passError(fmt.Errorf("pass-through: read response: %w", err))
	}
	h := resp.Header.Clone()
	dropHopByHop(h)
	h.Set(HeaderStub, Passthrough)
	return answer{outcome: Passthrough, metric: Passthrough, status: resp.StatusCode, header: h, body: body}
}

func (s *Server) passError(err error) answer {
	s.log.Warn("pass-through failed", "error", err)
	return answer{outcome: Passthrough, metric: Error, status: http.StatusBadGateway,
		header: http.Header{HeaderStub: {Passthrough}, "Content-Type": {"text/plain; charset=utf-8"}},
		body:   []byte("mirrorline stub: the pass-through call failed\n"), errText: err.Error()}
}

// dropHopByHop removes what is never copied from a recorded response or
// to a pass-through call: the hop-by-hop headers of h, those its
// Connection header names, and Content-Length (recomputed).
func dropHopByHop(h http.Header) {
	mlv1.DropHopByHop(h)
	h.Del("Content-Length")
}

func (s *Server) write(w http.ResponseWriter, a answer) {
	dst := w.Header()
	for k, vs := range a.header {
		dst[k] = vs
	}
	if bodyAllowed(a.status) {
		dst.Set("Content-Length", strconv.Itoa(len(a.body)))
	}
	if a.outcome == Hit {
		// A recorded answer is given as recorded: net/http must not add
		// a Date or sniff a Content-Type the primary's answer did not have.
		for _, k := range []string{"Date", "Content-Type"} {
			if _, ok := dst[k]; !ok {
				dst[k] = nil
			}
		}
	}
	w.WriteHeader(cmp.Or(a.status, http.StatusBadGateway))
	_, _ = w.Write(a.body)
}

func (s *Server) waitLatency(ctx context.Context, start time.Time, ns int64) {
	d := time.Duration(ns) - time.Since(start)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// readBody reads at most the body limit of r's body.
func (s *Server) readBody(r *http.Request) ([]byte, bool, error) {
	if r.Body == nil {
		return nil, false, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, s.bodyLimit+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(b)) > s.bodyLimit {
		return b[:s.bodyLimit], true, nil
	}
	return b, false, nil
}

// record is the shadow egress record of a call and its answer.
func (s *Server) record(r *http.Request, c Call, truncated bool, a answer, start time.Time) *mlv1.Exchange {
	id, err := uuid.NewV7()
	if err != nil {
		id = uuid.New()
	}
	size := r.ContentLength
	if !truncated {
		size = int64(len(c.Body))
	}
	ex := &mlv1.Exchange{
		Id: id.String(), Service: s.service, Collector: s.instance, CaptureTimeNs: start.UnixNano(),
		Kind: mlv1.Kind_KIND_EGRESS, ParentId: c.Parent, TraceId: c.Trace,
		Request: &mlv1.Request{Method: c.Method, Url: c.Target, Host: c.Host, Proto: r.Proto, Scheme: "http",
			Headers: mlv1.HeadersFromHTTP(r.Header), Body: c.Body, BodyTruncated: truncated, BodySize: size, RemoteAddr: r.RemoteAddr},
		Response: &mlv1.Response{Status: int32(a.status), Headers: mlv1.HeadersFromHTTP(a.header), Body: a.body,
			BodySize: int64(len(a.body)), LatencyNs: time.Since(start).Nanoseconds(), Error: a.errText},
		Stub: &mlv1.StubAnswer{Outcome: a.outcome, Score: int32(a.score)},
	}
	if a.matched != nil {
		ex.Stub.MatchedId = a.matched.Ex.GetId()
		ex.ParentId = cmp.Or(ex.ParentId, a.matched.Ex.GetParentId())
		if ex.TraceId == "" {
			ex.TraceId = a.matched.Ex.GetTraceId()
		}
	}
	return ex
}

// bodyAllowed reports whether a response of status may have a body (RFC
// 9110 6.4.1).
func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified && status >= 200
}
