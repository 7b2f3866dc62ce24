package replayer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// gRPC calls (Exchange.protocol PROTOCOL_GRPC) are replayed over HTTP/2:
// h2c with prior knowledge to an http:// target, h2 (TLS, ALPN h2) to an
// https:// one, on net/http's Transport (Protocols). The request body is
// the captured messages, framed again, each written when it is due (see
// pace) and flushed as its own DATA; the response is cut into messages as
// it arrives (grpcwire.Framer) and its trailers kept. HTTP/2 REST exchanges
// (PROTOCOL_HTTP2) go over HTTP/2 to an https:// target that offers it in
// ALPN, over HTTP/1.1 otherwise.

// ErrMessagesTruncated is returned for a gRPC record whose request messages
// were cut at capture (a truncated message, or messages left out): the call
// cannot be replayed faithfully.
var ErrMessagesTruncated = errors.New("grpc request messages were truncated at capture")

// ErrBodyTransformGRPC is returned for a gRPC call on a route whose
// transform edits JSON bodies (json_delete, json_set): protobuf messages are
// not JSON, and sending the call unchanged would ignore the route.
var ErrBodyTransformGRPC = errors.New("json_delete and json_set do not apply to gRPC calls (protobuf messages)")

// errNotPOST: a gRPC call is always a POST.
var errNotPOST = errors.New("grpc call is not a POST")

// ReasonMessagesTruncated is the errors_total reason of ErrMessagesTruncated.
const ReasonMessagesTruncated = "messages_truncated"

// isGRPC reports whether ex is a gRPC call.
func isGRPC(ex *mlv1.Exchange) bool { return ex.GetProtocol() == mlv1.Protocol_PROTOCOL_GRPC }

// messagesTruncated reports whether the request messages of a gRPC call
// are incomplete: flagged at capture, or shorter than their frames said.
func messagesTruncated(in *mlv1.Request) bool {
	if in.GetMessagesTruncated() {
		return true
	}
	for _, m := range in.GetMessages() {
		if m.GetTruncated() || m.GetSize() > int64(len(m.GetData())) {
			return true
		}
	}
	return false
}

// pace maps a message's offset in the captured call to its offset in the
// replayed call. A window replay sets it from its timing (see
// Schedule.messagePace); without one, messages keep their captured offsets.
type pace func(captured time.Duration) time.Duration

type paceKey struct{}

// withPace returns ctx carrying p for the gRPC calls sent with it.
func withPace(ctx context.Context, p pace) context.Context {
	return context.WithValue(ctx, paceKey{}, p)
}

func paceOf(ctx context.Context) pace {
	if p, ok := ctx.Value(paceKey{}).(pace); ok && p != nil {
		return p
	}
	return func(d time.Duration) time.Duration { return d }
}

// messagePace is the pace of the messages of a call captured at capture:
// with a capture-time profile (--speed, a speed ramp) a message captured d
// after the call's start is due when the profile puts capture+d, so its
// offset is scaled by the speed in force; with a records profile (--rate,
// which ignores capture times) the messages go as fast as possible, in
// order.
func (s *Schedule) messagePace(capture time.Time) pace {
	if s.profile.Unit == Records {
		return func(time.Duration) time.Duration { return 0 }
	}
	base := s.profile.Offset(capture.Sub(s.from).Seconds())
	return func(d time.Duration) time.Duration {
		return max(s.profile.Offset(capture.Add(d).Sub(s.from).Seconds())-base, 0)
	}
}

// grpcBody is the request body of a replayed gRPC call: the captured
// messages, framed again with their compressed flag, each returned by Read
// only when due (the call's start plus its paced offset), never two in one
// Read, so that the transport writes each as its own DATA frame(s).
type grpcBody struct {
	msgs  []*mlv1.Message
	pace  pace
	start time.Time // set when the call is sent
	ctx   context.Context

	i   int
	buf []byte // rest of the current frame

	closeOnce sync.Once
	closed    chan struct{}
}

// errBodyClosed ends a Read the transport gave up on (the call ended).
var errBodyClosed = errors.New("grpc request body closed")

func newGRPCBody(ctx context.Context, msgs []*mlv1.Message) *grpcBody {
	return &grpcBody{msgs: msgs, pace: paceOf(ctx), ctx: ctx, closed: make(chan struct{})}
}

// errBodyNotFramed: a gRPC record without messages whose body is not whole
// gRPC frames.
var errBodyNotFramed = errors.New("grpc request body is not whole grpc frames")

// requestMessages returns the messages of a gRPC call: its messages, or,
// for a record that kept the framed body instead, the body cut into
// messages (all at offset 0).
func requestMessages(in *mlv1.Request) ([]*mlv1.Message, error) {
	if len(in.GetMessages()) > 0 || len(in.GetBody()) == 0 {
		return in.GetMessages(), nil
	}
	fr := grpcwire.NewFramer(0, 0)
	fr.Feed(in.GetBody(), 0)
	msgs, cut, _, err := fr.Finish()
	if err != nil || cut || (len(msgs) > 0 && msgs[len(msgs)-1].GetTruncated()) {
		return nil, errBodyNotFramed
	}
	return msgs, nil
}

// span is when the last message is due after the call's start.
func (b *grpcBody) span() time.Duration {
	if len(b.msgs) == 0 {
		return 0
	}
	return b.pace(time.Duration(b.msgs[len(b.msgs)-1].GetOffsetNs()))
}

func (b *grpcBody) Read(p []byte) (int, error) {
	if len(b.buf) == 0 {
		if b.i >= len(b.msgs) {
			return 0, io.EOF
		}
		m := b.msgs[b.i]
		if wait := time.Until(b.start.Add(b.pace(time.Duration(m.GetOffsetNs())))); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-b.closed:
				t.Stop()
				return 0, errBodyClosed
			case <-b.ctx.Done():
				t.Stop()
				return 0, b.ctx.Err()
			}
		}
		b.buf = grpcwire.AppendFrame(nil, m)
		b.i++
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *grpcBody) Close() error {
	b.closeOnce.Do(func() { close(b.closed) })
	return nil
}

// grpcRequest makes req (built by BuildRequest for a gRPC record) a gRPC
// call: its body the paced messages (see requestMessages), te: trailers,
// and the captured request trailers.
func grpcRequest(ctx context.Context, req *http.Request, in *mlv1.Request) error {
	if req.Method != http.MethodPost {
		return errNotPOST
	}
	msgs, err := requestMessages(in)
	if err != nil {
		return err
	}
	req.Body = newGRPCBody(ctx, msgs)
	req.ContentLength = -1
	req.Header.Set("Te", "trailers")
	for _, h := range in.GetTrailers() {
		if req.Trailer == nil {
			req.Trailer = http.Header{}
		}
		name := textproto.CanonicalMIMEHeaderKey(h.GetName())
		req.Trailer[name] = append(req.Trailer[name], h.GetValue())
	}
	return nil
}

// newTransport returns a transport of the Sender's dialer speaking protos.
func newTransport(pool *connPool, conns int, protos *http.Protocols, tlsConf *tls.Config) *http.Transport {
	t := &http.Transport{
		Proxy:               nil, // never an HTTP_PROXY from the environment: it would be dialled instead
		DialContext:         pool.DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true, // send Accept-Encoding only when the client did
		Protocols:           protos,
	}
	if tlsConf != nil {
		t.TLSClientConfig = tlsConf.Clone()
	}
	return t
}

// h2Protocols is what a gRPC call speaks to a target of scheme: h2c with
// prior knowledge over http, h2 over https.
func h2Protocols(scheme string) *http.Protocols {
	p := new(http.Protocols)
	if scheme == "https" {
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	return p
}

// alpnProtocols offers h2 and http/1.1 in ALPN: what an HTTP/2 REST
// exchange speaks to an https target.
func alpnProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	return p
}

// doGRPC sends a gRPC call built by BuildRequest and records the response:
// its messages with their offsets after the call's start, its trailers (in
// the headers for a trailers-only answer), the framed size, and the latency
// to its end. A response that is not gRPC (a proxy's error page) is recorded
// as a body, as an HTTP response is.
func (s *Sender) doGRPC(req *http.Request, body *grpcBody) (*mlv1.Response, string) {
	// The call lasts as long as its messages take to send, plus the
	// timeout: a streaming call is not cut for being as long as captured.
	ctx, cancel := context.WithTimeout(req.Context(), s.timeout+body.span())
	defer cancel()
	req = req.WithContext(ctx)
	body.ctx = ctx
	start := time.Now()
	body.start = start
	resp, err := s.h2.Do(req)
	if err != nil {
		_ = body.Close()
		return &mlv1.Response{Error: sendErrorText(err), LatencyNs: time.Since(start).Nanoseconds()}, ErrorReason(err, 0)
	}
	defer resp.Body.Close()
	out := &mlv1.Response{Status: int32(resp.StatusCode), Headers: mlv1.HeadersFromHTTP(resp.Header), Proto: resp.Proto}
	var rerr error
	if grpcwire.IsGRPC(resp.Header.Get("Content-Type")) {
		fr := grpcwire.NewFramer(int(s.bodyLimit), int(s.bodyLimit))
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				fr.Feed(buf[:n], time.Since(start).Nanoseconds())
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					rerr = err
				}
				break
			}
		}
		msgs, cut, framed, ferr := fr.Finish()
		out.Messages, out.MessagesTruncated, out.BodySize = msgs, cut, framed
		if ferr != nil && rerr == nil {
			rerr = fmt.Errorf("read grpc response: %w", ferr)
		}
	} else {
		b, err := io.ReadAll(io.LimitReader(resp.Body, s.bodyLimit))
		extra, _ := io.Copy(io.Discard, resp.Body)
		out.Body, out.BodyTruncated, out.BodySize, rerr = b, extra > 0, int64(len(b))+extra, err
	}
	out.Trailers = mlv1.HeadersFromHTTP(resp.Trailer)
	out.LatencyNs = time.Since(start).Nanoseconds()
	if rerr != nil {
		out.Error = rerr.Error()
		if errors.Is(rerr, grpcwire.ErrBadFrame) {
			return out, ReasonOther
		}
		return out, ErrorReason(rerr, resp.StatusCode)
	}
	if reason := ErrorReason(nil, resp.StatusCode); reason != "" {
		return out, reason
	}
	return out, grpcFailure(out)
}

// GRPCStatus returns the grpc-status of a gRPC response (from its
// trailers, or its headers for a trailers-only answer) and whether it had
// one.
func GRPCStatus(resp *mlv1.Response) (int, bool) {
	for _, hs := range [][]*mlv1.Header{resp.GetTrailers(), resp.GetHeaders()} {
		for _, h := range hs {
			if textproto.CanonicalMIMEHeaderKey(h.GetName()) == "Grpc-Status" {
				code, err := strconv.Atoi(h.GetValue())
				return code, err == nil
			}
		}
	}
	return 0, false
}

// gRPC status codes the replayer tells failures by.
const (
	grpcUnknown          = 2
	grpcDeadlineExceeded = 4
	grpcInternal         = 13
	grpcUnavailable      = 14
	grpcDataLoss         = 15
)

// grpcFailure classifies a complete gRPC answer like an HTTP status: the
// statuses that say the server failed (UNKNOWN, INTERNAL, UNAVAILABLE,
// DATA_LOSS, which HTTP gateways answer with a 5xx) are Reason5xx,
// DEADLINE_EXCEEDED is ReasonTimeout, a call that ended without a status
// is ReasonReset; any other status (OK, INVALID_ARGUMENT, NOT_FOUND, ...)
// is an answer, "".
func grpcFailure(resp *mlv1.Response) string {
	code, ok := GRPCStatus(resp)
	switch {
	case !ok:
		return ReasonReset
	case code == grpcUnknown, code == grpcInternal, code == grpcUnavailable, code == grpcDataLoss:
		return Reason5xx
	case code == grpcDeadlineExceeded:
		return ReasonTimeout
	}
	return ""
}

// fitMessages leaves out the last messages of a shadow record's gRPC
// response, flagging messages_truncated, until the record encodes within
// maxBytes or none are left; the rest of the record is cut by Fit. It
// reports whether it left any out.
func fitMessages(out *mlv1.Exchange, maxBytes int) bool {
	resp := out.GetResponse()
	if len(resp.GetMessages()) == 0 || proto.Size(out) <= maxBytes {
		return false
	}
	for len(resp.Messages) > 0 && proto.Size(out) > maxBytes {
		over := proto.Size(out) - maxBytes
		n := len(resp.Messages)
		for n > 0 && over > 0 {
			n--
			over -= len(resp.Messages[n].GetData()) + 16
		}
		resp.Messages = resp.Messages[:n]
	}
	resp.MessagesTruncated = true
	return true
}
