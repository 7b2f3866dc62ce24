package proxy

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Proxy is the reverse-proxy collector. Create it with New and serve it with Serve
// (which also tracks connections and header order) or use it as an http.Handler.
type Proxy struct {
	primary      *url.URL
	emit         *collector.Emitter
	filter       *collector.Filter // initial, until New builds policy
	bodyLimit    int64             // initial, until New builds policy
	policy       *collector.LivePolicy
	preserveHost bool
	collectorID  string
	log          hclog.Logger
	rp           *httputil.ReverseProxy
	conns        *collector.Conns
	limits       collector.Limits
	primaryProto string      // WithPrimaryProtocol
	tls          *tls.Config // WithTLS
	traceContext bool        // WithTraceContext
	egress       bool        // WithEgress
	allow        map[string]bool
	tunnels      tunnelSet
}

// Option configures a Proxy.
type Option func(*Proxy)

// WithFilter sets which requests are captured (default: all).
func WithFilter(f *collector.Filter) Option { return func(p *Proxy) { p.filter = f } }

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

// WithLimits bounds what clients may hold: connections, header size, idle and
// body time (zero fields: collector.DefaultLimits).
func WithLimits(l collector.Limits) Option { return func(p *Proxy) { p.limits = l } }

// WithTransport sets the transport used to reach the primary.
func WithTransport(rt http.RoundTripper) Option { return func(p *Proxy) { p.rp.Transport = rt } }

// New returns a proxy to primary that hands captured exchanges to emit. An
// egress proxy (WithEgress) without a primary ("") is a forward proxy.
func New(primary string, emit *collector.Emitter, opts ...Option) (*Proxy, error) {
	host, _ := os.Hostname()
	p := &Proxy{
		emit:         emit,
		bodyLimit:    collector.DefaultBodyLimit,
		collectorID:  host,
		log:          hclog.NewNullLogger(),
		conns:        collector.NewConns(),
		traceContext: true,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			if p.primary == nil {
				return // a forward proxy's request goes to its absolute-form target
			}
			pr.SetURL(p.primary)
			if !p.egress {
				pr.SetXForwarded()
			}
			if p.preserveHost {
				pr.Out.Host = pr.In.Host
			}
		},
		ModifyResponse: recordResponse,
		ErrorHandler:   p.primaryError,
		BufferPool:     bufferPool{},
	}
	for _, o := range opts {
		o(p)
	}
	if primary != "" || !p.egress {
		u, err := url.Parse(primary)
		if err != nil {
			return nil, fmt.Errorf("primary %q: %w", primary, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("primary %q: want an absolute http:// or https:// URL", primary)
		}
		p.primary = u
	}
	if p.allow != nil && p.primary != nil {
		return nil, fmt.Errorf("egress allowlist: for the forward proxy only (no primary)")
	}
	p.rp.ErrorLog = collector.ServerErrorLog(p.log)
	if p.rp.Transport == nil {
		if p.primary == nil {
			p.rp.Transport = forwardTransport()
		} else {
			var err error
			if p.rp.Transport, err = primaryTransport(p.primaryProto, p.primary); err != nil {
				return nil, err
			}
		}
	}
	pol, err := collector.PolicyOf(p.filter, p.bodyLimit)
	if err != nil {
		return nil, err
	}
	if err := p.limits.Validate(); err != nil {
		return nil, err
	}
	p.policy = collector.NewLivePolicy("proxy", emit.Metrics(), pol)
	p.filter = nil
	p.limits = p.limits.WithDefaults()
	return p, nil
}

// Reload puts pol (sampling, routes, body limit) in force for every request
// that starts from now on, without closing a connection; requests already
// running finish under the policy they started with.
func (p *Proxy) Reload(pol *collector.Policy) { p.policy.Store(pol) }

// Policy returns the policy in force.
func (p *Proxy) Policy() *collector.Policy { return p.policy.Load() }

// Serve serves the proxy on ln until ctx ends, then shuts down gracefully. The
// server enforces the proxy's limits (WithLimits) and names connections.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	// Over TLS an Upgrade: h2c is only stripped (h2c is for plaintext).
	srv, ln := p.limits.TLSServer(upgradeH2C(p), p.conns, p.emit.Metrics(), ln, p.tls)
	srv.ErrorLog = collector.ServerErrorLog(p.log)
	defer p.tunnels.closeAll()
	p.log.Info("client limits", "max_conns", p.limits.MaxConns, "read_header_timeout", p.limits.ReadHeaderTimeout, "idle_timeout", p.limits.IdleTimeout,
		"max_header_bytes", p.limits.MaxHeaderBytes, "body_timeout", p.limits.BodyTimeout, "min_body_rate", p.limits.MinBodyRate)
	return collector.Serve(ctx, "proxy", srv, ln)
}

// reqState is what the proxy learns about one request while forwarding it.
type reqState struct {
	perr    error                 // the transport's error, when the primary failed
	body    *collector.BodyReader // the client's body, nil without one
	upgrade *http.Response        // the primary's 101, when the protocol switched
	res     *http.Response        // the primary's answer (its trailers, once read)
}

type reqStateKey struct{}

// recordResponse keeps the primary's answer for its trailers, and notes a
// 101 answer: ReverseProxy writes it on the hijacked connection itself, so
// the capture writer never sees it.
func recordResponse(res *http.Response) error {
	st, ok := res.Request.Context().Value(reqStateKey{}).(*reqState)
	if !ok {
		return nil
	}
	st.res = res
	if res.StatusCode == http.StatusSwitchingProtocols {
		st.upgrade = &http.Response{StatusCode: res.StatusCode, Header: res.Header.Clone(), Proto: res.Proto}
	}
	return nil
}

// ServeHTTP forwards r to the primary and captures the exchange on the side.
//
// A request body of up to the body limit is read whole before anything is sent
// to the primary, so a body the client does not finish (it goes away, sends it
// too slowly, or breaks the chunked framing) is answered 400 or 408 by the proxy
// and never reaches the primary. A longer body is streamed; if it fails midway
// the request to the primary is aborted. Either way nothing is published for it:
// it is counted in mirrorline_collector_dropped_total{reason}.
//
// A gRPC call, and an HTTP/2 body of unknown length, is streamed instead: its
// client may wait for answers before it sends more (a bidirectional stream),
// so nothing is read ahead; the bytes are copied on the side as they pass
// (gRPC: message by message, with their time offsets), and the answer is
// flushed as it comes. A gRPC call has no body deadline (its own deadline,
// grpc-timeout, travels to the primary).
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Every request takes its place on the connection, captured or not, so the
	// header order of the next one lines up.
	connID, seq, headers := p.conns.RequestMeta(r)
	// One policy for the whole request, whatever a reload swaps in meanwhile.
	pol := p.policy.Load()
	bodyLimit := pol.BodyLimit()
	if code, msg := collector.Unsupported(r); code != 0 {
		p.emit.Metrics().Dropped.WithLabelValues(collector.DropUnsupported).Inc()
		collector.Refuse(w, code, msg)
		return
	}
	if p.egress && p.primary == nil && !p.forwardRequest(w, r) {
		return
	}
	st := &reqState{}
	defer func() {
		if v := recover(); v != nil {
			// ReverseProxy aborts the answer it cannot finish: a client that
			// reset its HTTP/2 stream mid-body (a cancelled gRPC call) lands
			// here. Count it as the body failure it is.
			if v == http.ErrAbortHandler && st.body != nil && st.body.Err() != nil { //nolint:errorlint // the sentinel itself, as net/http panics with it
				p.bodyFailed(w, connID, st.body.Err(), false)
			}
			panic(v)
		}
	}()
	start := time.Now()
	// gRPC is HTTP/2 only: an HTTP/1 request of that content type is an
	// ordinary one (its body is recorded as such).
	grpc := r.ProtoMajor >= 2 && grpcwire.IsGRPC(r.Header.Get("Content-Type"))
	var tee *teeBody  // a streamed body
	var prefix []byte // the body's first bytes, read before forwarding
	if streamed(r, grpc) {
		timeout := p.limits.BodyTimeout
		if grpc {
			timeout = 0
		}
		st.body = collector.RateBody(w, r, timeout, p.limits.MinBodyRate)
		tee = &teeBody{rc: st.body, start: start}
		if grpc {
			tee.framer = p.newFramer(bodyLimit)
		} else {
			tee.body = &collector.BodyCapture{Limit: bodyLimit}
		}
		r.Body = tee
	} else if r.Body != nil && r.Body != http.NoBody {
		st.body = collector.RateBody(w, r, p.limits.BodyTimeout, p.limits.MinBodyRate)
		var complete bool
		var err error
		prefix, complete, err = preRead(st.body, bodyLimit, r.ContentLength)
		if err != nil {
			p.bodyFailed(w, connID, err, true)
			return
		}
		var rest io.Reader = bytes.NewReader(prefix)
		if !complete {
			rest = io.MultiReader(rest, st.body)
		} else if r.ContentLength < 0 && len(r.Trailer) == 0 {
			// A chunked body read whole goes to the primary with its length
			// (as nginx's request buffering does): same bytes, and a small
			// one takes the direct transport.
			r.ContentLength, r.TransferEncoding = int64(len(prefix)), nil
		}
		r.Body = struct {
			io.Reader
			io.Closer
		}{rest, st.body}
	}
	r = r.WithContext(context.WithValue(r.Context(), reqStateKey{}, st))

	if p.emit.Metrics().Skip(pol.Filter().Match(r)) {
		if tee != nil {
			tee.finish() // nothing to keep
		}
		p.rp.ServeHTTP(w, r)
		if st.body != nil && st.body.Err() != nil {
			p.bodyFailed(w, connID, st.body.Err(), false)
		}
		return
	}
	// The id (a UUIDv7) is the emitter's worker's to draw, off this path,
	// unless trace context carries it to the primary (markInbound).
	ex := &mlv1.Exchange{
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
	ex.Protocol = protocolOf(r, grpc)
	if p.egress {
		p.markEgress(ex, r)
	} else if p.traceContext {
		p.markInbound(ex, r)
	}
	rw := &captureWriter{ResponseWriter: w, body: collector.BodyCapture{Limit: bodyLimit}}
	if grpc {
		rw.newFramer = func() *collector.MessageCapture { return p.newFramer(bodyLimit) }
		rw.start = start
	}
	p.rp.ServeHTTP(rw, r)

	if tee != nil {
		eof := tee.finish()
		if err := st.body.Err(); err != nil {
			p.bodyFailed(w, connID, err, false)
			return
		}
		if grpc {
			setMessages(tee.framer, &ex.Request.Messages, &ex.Request.MessagesTruncated, &ex.Request.BodySize)
		} else {
			ex.Request.Body, ex.Request.BodyTruncated, ex.Request.BodySize = tee.body.Result()
		}
		if !eof {
			// The primary answered before the client's body ended: what it
			// sent after is not captured.
			ex.Request.BodyTruncated = ex.Request.BodyTruncated || !grpc
			ex.Request.MessagesTruncated = ex.Request.MessagesTruncated || grpc
		} else {
			ex.Request.Trailers = trailersOf(r.Trailer)
		}
	} else if st.body != nil {
		if st.body.Err() != nil {
			// The primary got (at most) part of the body: not a request to replay.
			p.bodyFailed(w, connID, st.body.Err(), false)
			return
		}
		size := st.body.Received()
		ex.Request.Body = prefix[:min(int64(len(prefix)), bodyLimit)]
		ex.Request.BodySize = size
		ex.Request.BodyTruncated = size > int64(len(ex.Request.Body))
	}
	resp := &mlv1.Response{
		Status:    int32(cmp.Or(rw.code, http.StatusOK)),
		Headers:   rw.sent,
		LatencyNs: time.Since(start).Nanoseconds(),
		Proto:     r.Proto,
	}
	if up := st.upgrade; up != nil {
		// The connection became a tunnel (WebSocket, ...): its bytes are not
		// captured; the record says so with the 101 and its headers.
		resp.Status, resp.Headers = int32(up.StatusCode), mlv1.HeadersFromHTTP(up.Header)
	} else if rw.framer != nil {
		setMessages(rw.framer, &resp.Messages, &resp.MessagesTruncated, &resp.BodySize)
	} else {
		resp.Body, resp.BodyTruncated, resp.BodySize = rw.body.Result()
	}
	if st.res != nil && st.perr == nil {
		// Read to its end by now: the trailers are in.
		resp.Trailers = trailersOf(st.res.Trailer)
	}
	if st.perr != nil {
		resp.Error = primaryErrText(st.perr)
	}
	ex.Response = resp
	// Encoding and producing happen on the emitter's workers: Go's server
	// completes the response (flushes it, ends a chunked body) only once
	// this handler returns, so the client does not wait for them. A full
	// hand-off queue drops the exchange, counted.
	p.emit.Submit(ex)
}

// preRead reads the first limit bytes of body (and one more, to tell whether
// there are more); complete reports that body ended within them.
func preRead(body io.Reader, limit, contentLength int64) (buf []byte, complete bool, err error) {
	lr := io.LimitReader(body, limit+1)
	if contentLength >= 0 {
		// Read into a buffer of the announced size (and one byte more, to see
		// the end): one allocation, not the doubling of a growing buffer.
		buf = make([]byte, min(contentLength, limit)+1)
		n, err := io.ReadFull(lr, buf)
		switch {
		case err == nil:
			// As many bytes as asked: more than the limit, or more than announced
			// (the server's body reader reports that as an error first).
		case err == io.EOF || err == io.ErrUnexpectedEOF: //nolint:errorlint // ReadFull's own, unwrapped: the body ended cleanly before buf was full
			err = nil
		default:
			return nil, false, err
		}
		return buf[:n], int64(n) <= limit, err
	}
	b := bytes.NewBuffer(make([]byte, 0, 512))
	if _, err := b.ReadFrom(lr); err != nil {
		return nil, false, err
	}
	return b.Bytes(), int64(b.Len()) <= limit, nil
}

// bodyFailed counts a request whose body could not be read whole and, when
// answer is set (nothing was sent to the client yet), answers it and closes the
// connection: its framing cannot be trusted any more.
func (p *Proxy) bodyFailed(w http.ResponseWriter, connID string, err error, answer bool) {
	reason := collector.BodyDropReason(err)
	p.emit.Metrics().Dropped.WithLabelValues(reason).Inc()
	p.log.Debug("request body failed: not forwarded whole, not published", "connection", connID, "reason", reason)
	if answer {
		collector.RefuseBody(w, err)
	}
}

func (p *Proxy) primaryError(w http.ResponseWriter, r *http.Request, err error) {
	st, _ := r.Context().Value(reqStateKey{}).(*reqState)
	if st != nil {
		st.perr = err
		if st.body != nil && st.body.Err() != nil {
			// The client's body failed while it was streamed to the primary.
			collector.RefuseBody(w, st.body.Err())
			return
		}
	}
	if errors.Is(err, context.Canceled) {
		// The client went away; nothing to answer.
		w.WriteHeader(499)
		return
	}
	if p.primary == nil {
		// A forward proxy: the host is the service's to choose, not logged.
		p.log.Warn("dependency unreachable")
	} else {
		p.log.Warn("primary unreachable", "primary", p.primary.Host, "error", primaryErrText(err))
	}
	if grpcwire.IsGRPC(r.Header.Get("Content-Type")) {
		// As a gRPC proxy answers: a trailers-only UNAVAILABLE.
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "14")
		w.Header().Set("Grpc-Message", "mirrorline proxy: primary unreachable")
		w.WriteHeader(http.StatusOK)
		return
	}
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
	sent []*mlv1.Header // the headers as they were when the status was written
	body collector.BodyCapture
	// A gRPC answer's messages, with their offsets after start: newFramer
	// (set for a gRPC call) makes framer when the answer is gRPC too.
	newFramer func() *collector.MessageCapture
	framer    *collector.MessageCapture
	start     time.Time
}

func (c *captureWriter) WriteHeader(code int) {
	if c.code == 0 || code < 200 {
		if code >= 200 || code == http.StatusSwitchingProtocols {
			c.code = code
			h := c.ResponseWriter.Header()
			c.sent = collector.SortedHeaders(h)
			if c.newFramer != nil && c.framer == nil && code >= 200 && grpcwire.IsGRPC(h.Get("Content-Type")) {
				c.framer = c.newFramer()
			}
			if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil {
				c.body.Presize(n)
			}
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(p []byte) (int, error) {
	if c.code == 0 {
		c.WriteHeader(http.StatusOK)
	}
	n, err := c.ResponseWriter.Write(p)
	if c.framer != nil {
		c.framer.Feed(p[:n], time.Since(c.start).Nanoseconds())
	} else {
		_, _ = c.body.Write(p[:n])
	}
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and friends.
func (c *captureWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// bufferPool reuses the 32 KiB buffers ReverseProxy copies response bodies with,
// instead of allocating one per request.
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }
