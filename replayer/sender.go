package replayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/mirrorline/mirrorline/h1client"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

const (
	// DefaultTimeout is the timeout of each request to the target.
	DefaultTimeout = 10 * time.Second
	// DefaultResponseBodyLimit is the default of ResponseBodyLimit.
	DefaultResponseBodyLimit = 1 << 20
	// DefaultConcurrency is the default Concurrency of a live replay.
	DefaultConcurrency = 16
)

// Sender sends captured requests to one target and records the responses.
type Sender struct {
	target    *url.URL
	client    *http.Client
	h2        *http.Client // gRPC calls: h2c or h2 (see grpc.go)
	alpn      *http.Client // HTTP/2 exchanges to an https target; nil: client
	timeout   time.Duration
	keepHost  bool
	bodyLimit int64
	conns     *connPool
}

// NewSender returns a Sender to target (an absolute http or https URL) keeping up
// to conns connections open.
func NewSender(target string, conns int, opts ...Option) (*Sender, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", target, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target %q: want an absolute http:// or https:// URL", target)
	}
	conns = max(conns, 1)
	o := newOptions(opts)
	addr := h1client.Addr(u) // what every transport of the Sender dials
	pool := &connPool{dial: dialOnly(addr, &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}), addr: addr}
	s := &Sender{
		target:    u,
		keepHost:  o.keepHost,
		timeout:   o.timeout,
		bodyLimit: o.bodyLimit,
		conns:     pool,
		client: &http.Client{
			// No Client.Timeout: do bounds each exchange by s.timeout.
			// HTTP/1.1 to an http:// target on the sending goroutine;
			// https and what else h1client leaves go to the http.Transport.
			Transport: h1client.New(newTransport(pool, conns, nil, o.tlsConfig), pool.DialContext,
				h1client.MaxIdle(conns*2), h1client.IdleTimeout(90*time.Second)),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		h2: &http.Client{
			// No Client.Timeout: a call's deadline depends on how long its
			// messages take (doGRPC).
			Transport:     newTransport(pool, conns, h2Protocols(u.Scheme), o.tlsConfig),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if u.Scheme == "https" {
		s.alpn = &http.Client{
			Transport:     newTransport(pool, conns, alpnProtocols(), o.tlsConfig),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return s, nil
}

// ErrDialNotTarget is returned (wrapped) when the Sender's client is asked to
// connect to an address other than its target's.
var ErrDialNotTarget = errors.New("replayer connects only to its target")

// dialOnly dials with d, but only addr (the target's host:port as the
// transport spells it): defence in depth behind BuildRequest, which builds
// every URL on the target; redirects are never followed either.
//
// A target named localhost or *.localhost is admitted as loopback because it
// resolved to loopback addresses (see IsLoopback); its connections are made
// only to loopback addresses too, so a later answer cannot move them.
func dialOnly(addr string, d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
			d.Control = func(_, address string, _ syscall.RawConn) error {
				ap, err := netip.ParseAddrPort(address)
				if err != nil || !ap.Addr().Unmap().IsLoopback() {
					return fmt.Errorf("dial %s for %s: %w", address, host, ErrDialNotTarget)
				}
				return nil
			}
		}
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if !strings.EqualFold(address, addr) {
			return nil, fmt.Errorf("dial %s: %w", address, ErrDialNotTarget)
		}
		return d.DialContext(ctx, network, address)
	}
}

// Target returns the target URL.
func (s *Sender) Target() *url.URL { return s.target }

// Send replays ex and returns the target's response (with Error set when the
// request failed). The error is non-nil only when the record cannot be replayed.
func (s *Sender) Send(ctx context.Context, ex *mlv1.Exchange) (*mlv1.Response, error) {
	resp, _, err := s.SendReason(ctx, ex)
	return resp, err
}

// SendReason is Send that also says why the request failed: ErrorReason of
// the client's error and the response status, "" when the target answered
// with a status below 500.
func (s *Sender) SendReason(ctx context.Context, ex *mlv1.Exchange) (*mlv1.Response, string, error) {
	out, err := s.Replay(ctx, ex)
	return out.Response, out.Failure, err
}

// Replay sends ex, unchanged, to the target: a Sender is the Requester of a
// replay without routing.
func (s *Sender) Replay(ctx context.Context, ex *mlv1.Exchange) (Outcome, error) {
	req, err := BuildRequest(ctx, s.target, ex, s.keepHost)
	if err != nil {
		return Outcome{}, err
	}
	resp, failure := s.do(req, ex.GetProtocol())
	return Outcome{Target: s.target.String(), Response: resp, Failure: failure}, nil
}

// do sends req (built on the target by BuildRequest for an exchange of
// protocol p) and records the response, with the failure reason
// (ErrorReason): a gRPC call over HTTP/2 (doGRPC), an HTTP/2 exchange over
// HTTP/2 when an https target offers it, anything else over HTTP/1.1.
func (s *Sender) do(req *http.Request, p mlv1.Protocol) (*mlv1.Response, string) {
	if body, ok := req.Body.(*grpcBody); ok {
		return s.doGRPC(req, body)
	}
	client := s.client
	if p == mlv1.Protocol_PROTOCOL_HTTP2 && s.alpn != nil {
		client = s.alpn
	}
	start := time.Now()
	if s.timeout > 0 {
		// The whole exchange, the answer's body included, within --timeout
		// (what http.Client.Timeout does, without its goroutine and timer
		// per request for a transport other than http.Transport).
		ctx, cancel := context.WithTimeoutCause(req.Context(), s.timeout, errSendTimeout)
		defer cancel()
		req = req.WithContext(ctx)
	}
	resp, err := client.Do(req)
	if err != nil {
		text := sendErrorText(err)
		if context.Cause(req.Context()) == errSendTimeout {
			text += " (Timeout " + s.timeout.String() + " exceeded)"
		}
		return &mlv1.Response{Error: text, LatencyNs: time.Since(start).Nanoseconds()}, ErrorReason(err, 0)
	}
	defer resp.Body.Close()
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, s.bodyLimit))
	extra, _ := io.Copy(io.Discard, resp.Body)
	out := &mlv1.Response{
		Status:        int32(resp.StatusCode),
		Headers:       mlv1.HeadersFromHTTP(resp.Header),
		Body:          body,
		BodyTruncated: extra > 0,
		BodySize:      int64(len(body)) + extra,
		LatencyNs:     time.Since(start).Nanoseconds(),
		Proto:         resp.Proto,
	}
	if rerr != nil {
		out.Error = rerr.Error()
	}
	return out, ErrorReason(rerr, resp.StatusCode)
}

// errSendTimeout is the cause of a request context ended by --timeout.
var errSendTimeout = errors.New("replay request timeout")

// sendErrorText is the error recorded in a shadow response: the client's
// error without the request URL it quotes (the captured path and query).
func sendErrorText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}
