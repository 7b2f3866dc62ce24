package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/collector"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// DefaultBodyLimit is how many body bytes are captured per request and response.
const DefaultBodyLimit = 1 << 20

// Proxy is the reverse-proxy collector. Create it with New and serve it with Serve
// (which also tracks connections and header order) or use it as an http.Handler.
type Proxy struct {
	primary      *url.URL
	emit         *collector.Emitter
	filter       *Filter
	bodyLimit    int64
	preserveHost bool
	collectorID  string
	log          hclog.Logger
	rp           *httputil.ReverseProxy
	conns        *collector.Conns
}

// Option configures a Proxy.
type Option func(*Proxy)

// WithFilter sets which requests are captured (default: all).
func WithFilter(f *Filter) Option { return func(p *Proxy) { p.filter = f } }

// WithBodyLimit sets how many body bytes are captured (default 1 MiB); longer
// bodies are still proxied whole but recorded truncated.
func WithBodyLimit(n int64) Option { return func(p *Proxy) { p.bodyLimit = n } }

// WithPreserveHost forwards the client's Host header to the primary instead of the
// primary's own host name.
func WithPreserveHost(b bool) Option { return func(p *Proxy) { p.preserveHost = b } }

// WithLogger sets the logger.
func WithLogger(l hclog.Logger) Option { return func(p *Proxy) { p.log = l } }

// WithCollectorID names this collector instance in every record (default: host name).
func WithCollectorID(id string) Option { return func(p *Proxy) { p.collectorID = id } }

// WithTransport sets the transport used to reach the primary.
func WithTransport(rt http.RoundTripper) Option { return func(p *Proxy) { p.rp.Transport = rt } }

// New returns a proxy to primary that hands captured exchanges to emit.
func New(primary string, emit *collector.Emitter, opts ...Option) (*Proxy, error) {
	u, err := url.Parse(primary)
	if err != nil {
		return nil, fmt.Errorf("primary %q: %w", primary, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("primary %q: want an absolute http:// or https:// URL", primary)
	}
	host, _ := os.Hostname()
	p := &Proxy{
		primary:     u,
		emit:        emit,
		bodyLimit:   DefaultBodyLimit,
		collectorID: host,
		log:         hclog.NewNullLogger(),
		conns:       collector.NewConns(),
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.primary)
			pr.SetXForwarded()
			if p.preserveHost {
				pr.Out.Host = pr.In.Host
			}
		},
		ErrorHandler: p.primaryError,
		BufferPool:   bufferPool{},
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		},
	}
	for _, o := range opts {
		o(p)
	}
	if p.filter == nil {
		p.filter, _ = NewFilter(1, nil)
	}
	if p.bodyLimit < 0 {
		return nil, fmt.Errorf("body limit: %d is negative", p.bodyLimit)
	}
	return p, nil
}

// Server returns an http.Server serving the proxy that tracks connections; serve
// it on Listener(ln).
func (p *Proxy) Server() *http.Server {
	return &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          p.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		ConnContext:       p.conns.ConnContext,
	}
}

// Listener wraps ln so the proxy can record the header order of each request.
func (p *Proxy) Listener(ln net.Listener) net.Listener { return p.conns.Listener(ln) }

// Serve serves the proxy on ln until ctx ends, then shuts down gracefully.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	srv := p.Server()
	return collector.Serve(ctx, "proxy", srv, p.Listener(ln))
}

type primaryErrKey struct{}

// ServeHTTP forwards r to the primary and captures the exchange on the side.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every request takes its place on the connection, captured or not, so the
	// header order of the next one lines up.
	connID, seq, headers := p.conns.RequestMeta(r)
	switch p.filter.Match(r) {
	case SkipFiltered:
		p.emit.Metrics().Skipped.WithLabelValues("filtered").Inc()
		p.rp.ServeHTTP(w, r)
		return
	case SkipSampled:
		p.emit.Metrics().Skipped.WithLabelValues("sampled_out").Inc()
		p.rp.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	ex := &mlv1.Exchange{
		Id:            collector.NewID(),
		ConnectionId:  connID,
		Sequence:      seq,
		Source:        mlv1.Source_SOURCE_PROXY,
		Collector:     p.collectorID,
		CaptureTimeNs: start.UnixNano(),
		Request: &mlv1.Request{
			Method:     r.Method,
			Url:        r.URL.RequestURI(),
			Host:       r.Host,
			Proto:      r.Proto,
			Scheme:     scheme(r),
			Headers:    headers,
			RemoteAddr: r.RemoteAddr,
		},
	}
	var reqBody *collector.BodyCapture
	if r.Body != nil && r.Body != http.NoBody {
		reqBody = &collector.BodyCapture{Limit: p.bodyLimit}
		r.Body = collector.TeeBody(r.Body, reqBody)
	}
	var perr error
	r = r.WithContext(context.WithValue(r.Context(), primaryErrKey{}, &perr))
	rw := &captureWriter{ResponseWriter: w, body: collector.BodyCapture{Limit: p.bodyLimit}}
	p.rp.ServeHTTP(rw, r)

	if reqBody != nil {
		ex.Request.Body, ex.Request.BodyTruncated, ex.Request.BodySize = reqBody.Result()
	}
	resp := &mlv1.Response{
		Status:    int32(rw.status()),
		Headers:   mlv1.HeadersFromHTTP(rw.sent),
		LatencyNs: time.Since(start).Nanoseconds(),
		Proto:     r.Proto,
	}
	resp.Body, resp.BodyTruncated, resp.BodySize = rw.body.Result()
	if perr != nil {
		resp.Error = primaryErrText(perr)
	}
	ex.Response = resp
	_ = p.emit.Emit(ex) // encoding cannot fail for a well-formed message; drops are counted
}

func (p *Proxy) primaryError(w http.ResponseWriter, r *http.Request, err error) {
	if pe, ok := r.Context().Value(primaryErrKey{}).(*error); ok {
		*pe = err
	}
	if errors.Is(err, context.Canceled) {
		// The client went away; nothing to answer.
		w.WriteHeader(499)
		return
	}
	p.log.Warn("primary unreachable", "primary", p.primary.Host, "error", primaryErrText(err))
	w.WriteHeader(http.StatusBadGateway)
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// captureWriter records status, headers and body of the response while writing
// it through to the client.
type captureWriter struct {
	http.ResponseWriter
	code int
	sent http.Header
	body collector.BodyCapture
}

func (c *captureWriter) WriteHeader(code int) {
	if c.code == 0 || code < 200 {
		if code >= 200 || code == http.StatusSwitchingProtocols {
			c.code = code
			c.sent = c.ResponseWriter.Header().Clone()
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if c.code == 0 {
		c.WriteHeader(http.StatusOK)
	}
	n, err := c.ResponseWriter.Write(p)
	_, _ = c.body.Write(p[:n])
	return n, err
}

func (c *captureWriter) status() int {
	if c.code == 0 {
		return http.StatusOK
	}
	return c.code
}

// Unwrap lets http.ResponseController reach Flush and friends.
func (c *captureWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// bufferPool reuses the 32 KiB buffers ReverseProxy copies response bodies with,
// instead of allocating one per request.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }
