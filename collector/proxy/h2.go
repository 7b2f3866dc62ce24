package proxy

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	//lint:ignore SA1019 net/http serves h2c with prior knowledge only
	"golang.org/x/net/http2/h2c"

	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/grpcwire"
	"github.com/mirrorline/mirrorline/h1client"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Protocols the proxy speaks to the primary (WithPrimaryProtocol).
const (
	// PrimaryAuto: HTTP/2 where TLS ALPN offers it (https:// primary);
	// towards an http:// primary HTTP/1.1, except gRPC calls, which need
	// HTTP/2 and go h2c (prior knowledge).
	PrimaryAuto = "auto"
	// PrimaryHTTP1: HTTP/1.1 only (gRPC calls then fail with 502).
	PrimaryHTTP1 = "http1"
	// PrimaryH2: HTTP/2 over TLS only (https:// primary).
	PrimaryH2 = "h2"
	// PrimaryH2C: HTTP/2 without TLS, prior knowledge (http:// primary).
	PrimaryH2C = "h2c"
)

// WithPrimaryProtocol sets the protocol spoken to the primary: PrimaryAuto
// (default), PrimaryHTTP1, PrimaryH2 or PrimaryH2C. WithTransport overrides it.
func WithPrimaryProtocol(p string) Option { return func(px *Proxy) { px.primaryProto = p } }

// WithTLS serves clients over TLS with cfg (certificates), offering HTTP/2
// and HTTP/1.1 by ALPN. Without it the proxy serves plaintext HTTP/1.1 and
// h2c (HTTP/2 with prior knowledge).
func WithTLS(cfg *tls.Config) Option { return func(p *Proxy) { p.tls = cfg } }

// primaryTransport returns the transport to primary for protocol proto.
func primaryTransport(proto string, primary *url.URL) (http.RoundTripper, error) {
	https := primary.Scheme == "https"
	newT := func(set func(*http.Protocols)) *http.Transport {
		t := &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			Protocols:             new(http.Protocols),
		}
		set(t.Protocols)
		return t
	}
	switch proto {
	case "", PrimaryAuto:
		if https {
			return newT(func(p *http.Protocols) { p.SetHTTP1(true); p.SetHTTP2(true) }), nil
		}
		return &grpcRouter{
			http1: h1client.Over(newT(func(p *http.Protocols) { p.SetHTTP1(true) })),
			h2c:   newT(func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }),
		}, nil
	case PrimaryHTTP1:
		t := newT(func(p *http.Protocols) { p.SetHTTP1(true) })
		if https {
			return t, nil
		}
		return h1client.Over(t), nil
	case PrimaryH2:
		if !https {
			return nil, fmt.Errorf("primary-protocol %s: needs an https:// primary (h2c for http://)", proto)
		}
		return newT(func(p *http.Protocols) { p.SetHTTP2(true) }), nil
	case PrimaryH2C:
		if https {
			return nil, fmt.Errorf("primary-protocol %s: needs an http:// primary (h2 for https://)", proto)
		}
		return newT(func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }), nil
	}
	return nil, fmt.Errorf("primary-protocol %q: want auto, http1, h2 or h2c", proto)
}

// grpcRouter sends gRPC calls over h2c and everything else over HTTP/1.1:
// an http:// primary surely speaks HTTP/1.1, and gRPC needs HTTP/2.
type grpcRouter struct{ http1, h2c http.RoundTripper }

func (g *grpcRouter) RoundTrip(r *http.Request) (*http.Response, error) {
	if grpcwire.IsGRPC(r.Header.Get("Content-Type")) {
		return g.h2c.RoundTrip(r)
	}
	return g.http1.RoundTrip(r)
}

// streamed reports whether r's body is streamed to the primary as it
// arrives instead of read (up to the body limit) first: a gRPC call (its
// client may wait for answers before it sends more: a bidirectional
// stream) and any HTTP/2 body of unknown length.
func streamed(r *http.Request, grpc bool) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return false
	}
	return grpc || (r.ProtoMajor >= 2 && r.ContentLength < 0)
}

// teeBody passes a streamed request body through to the primary and keeps
// a copy on the side: gRPC messages (with their time offsets) or the first
// body-limit bytes. Reads come from the transport's goroutine, which may
// outlive the handler; close stops the capture.
type teeBody struct {
	rc     *collector.BodyReader
	start  time.Time
	mu     sync.Mutex
	framer *collector.MessageCapture // gRPC
	body   *collector.BodyCapture    // otherwise
	eof    bool                      // the body ended cleanly
	closed bool                      // capture over: reads pass through only
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if n > 0 || err == io.EOF {
		off := time.Since(t.start).Nanoseconds()
		t.mu.Lock()
		if !t.closed {
			if t.framer != nil {
				t.framer.Feed(p[:n], off)
			} else {
				_, _ = t.body.Write(p[:n])
			}
			t.eof = t.eof || err == io.EOF //nolint:errorlint // the body's own end, not wrapped
		}
		t.mu.Unlock()
	}
	return n, err
}

func (t *teeBody) Close() error { return t.rc.Close() }

// finish ends the capture and reports whether the body was read to its end.
func (t *teeBody) finish() (eof bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	return t.eof
}

// newFramer returns the capture of one direction of a gRPC call: at most
// limit bytes of a message, the record budget over all.
func (p *Proxy) newFramer(limit int64) *collector.MessageCapture {
	return collector.NewMessageCapture(limit, p.emit.RecordBudget())
}

// setMessages fills a gRPC direction's capture: the body fields stay empty,
// body_size counts the framed bytes.
func setMessages(c *collector.MessageCapture, msgs *[]*mlv1.Message, truncated *bool, size *int64) {
	*msgs, *truncated, *size = c.Result()
}

// protocolOf is the Exchange.protocol of r.
func protocolOf(r *http.Request, grpc bool) mlv1.Protocol {
	switch {
	case grpc:
		return mlv1.Protocol_PROTOCOL_GRPC
	case r.ProtoMajor >= 2:
		return mlv1.Protocol_PROTOCOL_HTTP2
	}
	return mlv1.Protocol_PROTOCOL_UNSPECIFIED
}

// trailersOf lists the trailers that arrived in h (declared names without a
// value are left out), sorted by name.
func trailersOf(h http.Header) []*mlv1.Header {
	if len(h) == 0 {
		return nil
	}
	return mlv1.HeadersFromHTTP(h)
}

// upgradeH2C serves h's plaintext HTTP/1.1 clients that ask to switch to
// HTTP/2 (Upgrade: h2c, RFC 7540 section 3.2) over HTTP/2 from then on.
// net/http serves h2c with prior knowledge itself but not this older path
// (RFC 9113 deprecates it), so it takes golang.org/x/net/http2/h2c, whose
// upgrade reads the first request's body whole: a request with a body is
// answered over HTTP/1.1 instead (as a server that does not support the
// upgrade would). Either way the upgrade is not passed on to the primary.
func upgradeH2C(h http.Handler) http.Handler {
	// The upgrading request becomes stream 1, still dressed as HTTP/1.1.
	stream1 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 {
			r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
			for _, n := range []string{"Connection", "Upgrade", "Http2-Settings"} {
				r.Header.Del(n)
			}
		}
		h.ServeHTTP(w, r)
	})
	//lint:ignore SA1019 the one implementation of the Upgrade path; prior knowledge is net/http's
	up := h2c.NewHandler(stream1, &http2.Server{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 1 || !headerHasToken(r.Header, "Upgrade", "h2c") {
			h.ServeHTTP(w, r)
			return
		}
		if r.ContentLength == 0 && r.TLS == nil && headerHasToken(r.Header, "Connection", "HTTP2-Settings") {
			up.ServeHTTP(w, r)
			return
		}
		// Not upgraded: answered as HTTP/1.1, and the primary must not
		// switch either.
		r.Header.Del("Upgrade")
		r.Header.Del("Http2-Settings")
		h.ServeHTTP(w, r)
	})
}

// headerHasToken reports whether a comma-separated header of h lists token
// (case-insensitive).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
