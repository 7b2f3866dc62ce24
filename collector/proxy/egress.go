package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mirrorline/mirrorline/collector"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// WithEgress makes the proxy capture a service's outbound calls (egress)
// instead of its inbound requests: each call is recorded as an exchange of
// kind KIND_EGRESS, with the trace id of its traceparent and, as parent id,
// the inbound exchange id the inbound proxy put in its tracestate (see
// WithTraceContext); the egress proxy adds no trace context of its own.
//
// With a primary (New's first argument) the proxy is a reverse proxy in
// front of that one dependency: the service's URL of the dependency points
// at the proxy, which forwards to it (over TLS for an https:// one).
// Without a primary it is a forward proxy, the service's HTTP_PROXY: a
// request with an absolute-form target (GET http://gateway:8080/charge) is
// forwarded to that host; a CONNECT is tunnelled uncaptured (TLS cannot be
// read), counted in dropped_total{reason="egress_tunnel"}. allow, when not
// empty, lists the hosts ("host" any port, "host:port") the forward proxy
// reaches; others are refused 403, counted in
// dropped_total{reason="egress_denied"}.
func WithEgress(allow []string) Option {
	return func(p *Proxy) {
		p.egress = true
		p.allow = nil
		for _, a := range allow {
			if p.allow == nil {
				p.allow = map[string]bool{}
			}
			p.allow[strings.ToLower(a)] = true
		}
	}
}

// WithTraceContext sets whether the inbound proxy adds W3C trace context to
// the requests it captures (default true): a traceparent when the client
// sent no valid one, and the tracestate member mirrorline=<exchange id>
// that ties the service's outbound calls to the exchange. An egress proxy
// never adds any.
func WithTraceContext(on bool) Option { return func(p *Proxy) { p.traceContext = on } }

// forwardTransport reaches the dependencies of a forward proxy: HTTP/1.1,
// and HTTP/2 where TLS ALPN offers it; never through another proxy.
func forwardTransport() *http.Transport {
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		Protocols:             new(http.Protocols),
	}
	t.Protocols.SetHTTP1(true)
	t.Protocols.SetHTTP2(true)
	return t
}

// allowed reports whether the forward proxy may reach authority (host or
// host:port) for scheme.
func (p *Proxy) allowed(authority, scheme string) bool {
	if p.allow == nil {
		return true
	}
	authority = strings.ToLower(authority)
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		host, port = strings.Trim(authority, "[]"), "80"
		if scheme == "https" {
			port = "443"
		}
	}
	return p.allow[host] || p.allow[net.JoinHostPort(host, port)] || p.allow[host+":"+port]
}

// forwardRequest checks a request to the forward proxy: a CONNECT is
// tunnelled here, a request without an absolute-form http(s) target or to
// a host not allowed is refused. It reports whether the request goes on
// to be forwarded and captured.
func (p *Proxy) forwardRequest(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodConnect {
		p.tunnel(w, r)
		return false
	}
	if (r.URL.Scheme != "http" && r.URL.Scheme != "https") || r.URL.Host == "" {
		p.emit.Metrics().Dropped.WithLabelValues(collector.DropUnsupported).Inc()
		collector.Refuse(w, http.StatusBadRequest, "mirrorline egress proxy: want an absolute-form http:// or https:// request target (use it as HTTP_PROXY)")
		return false
	}
	if !p.allowed(r.URL.Host, r.URL.Scheme) {
		p.emit.Metrics().Dropped.WithLabelValues(collector.DropEgressDenied).Inc()
		http.Error(w, "mirrorline egress proxy: host not in --egress-allow", http.StatusForbidden)
		return false
	}
	return true
}

// tunnel serves a CONNECT: a TCP tunnel to the authority asked for, whose
// bytes (TLS) are not captured.
func (p *Proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	m := p.emit.Metrics()
	if r.ProtoMajor != 1 {
		m.Dropped.WithLabelValues(collector.DropUnsupported).Inc()
		collector.Refuse(w, http.StatusHTTPVersionNotSupported, "mirrorline egress proxy: CONNECT over HTTP/1.1 only")
		return
	}
	if _, _, err := net.SplitHostPort(r.Host); err != nil || !p.allowed(r.Host, "https") {
		m.Dropped.WithLabelValues(collector.DropEgressDenied).Inc()
		http.Error(w, "mirrorline egress proxy: CONNECT needs an allowed host:port", http.StatusForbidden)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	dst, err := (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext(ctx, "tcp", r.Host)
	cancel()
	if err != nil {
		m.Dropped.WithLabelValues(collector.DropEgressTunnel).Inc()
		p.log.Warn("egress tunnel: dial failed", "error", primaryErrText(err))
		http.Error(w, "mirrorline egress proxy: dependency unreachable", http.StatusBadGateway)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		dst.Close()
		m.Dropped.WithLabelValues(collector.DropUnsupported).Inc()
		http.Error(w, "mirrorline egress proxy: cannot tunnel on this connection", http.StatusInternalServerError)
		return
	}
	m.Dropped.WithLabelValues(collector.DropEgressTunnel).Inc()
	_ = conn.SetDeadline(time.Time{})
	if !p.tunnels.add(conn, dst) {
		conn.Close()
		dst.Close()
		return
	}
	defer p.tunnels.remove(conn, dst)
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Bytes the client sent after its CONNECT head may be buffered.
		_, _ = io.Copy(dst, brw.Reader)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	_, _ = io.Copy(conn, dst)
	conn.Close()
	dst.Close()
	<-done
}

// tunnelSet holds the connections of open tunnels, closed when the proxy
// stops (http.Server.Shutdown does not see hijacked connections).
type tunnelSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (s *tunnelSet) add(cs ...net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	for _, c := range cs {
		s.conns[c] = struct{}{}
	}
	return true
}

func (s *tunnelSet) remove(cs ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		delete(s.conns, c)
	}
}

// closeAll closes every tunnel and refuses new ones.
func (s *tunnelSet) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// markEgress makes ex the record of an outbound call: kind, trace id and
// parent exchange as the service sent them, and the dependency as the
// request's host (a forward proxy's absolute-form target is recorded as
// sent; every record's target is reduced to origin-form, its authority
// becoming Host, before it is published).
func (p *Proxy) markEgress(ex *mlv1.Exchange, r *http.Request) {
	ex.Kind = mlv1.Kind_KIND_EGRESS
	ex.TraceId, _ = traceIDOf(r.Header[headerTraceparent])
	ex.ParentId = parentOf(r.Header)
	if p.primary == nil {
		ex.Request.Url = r.RequestURI
		ex.Request.Scheme = r.URL.Scheme
		return
	}
	ex.Request.Host = p.primary.Host
	ex.Request.Scheme = p.primary.Scheme
}
