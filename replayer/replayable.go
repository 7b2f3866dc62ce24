package replayer

import (
	"errors"
	"fmt"
	"net/textproto"
	"strings"

	"github.com/mirrorline/mirrorline/collector/reqtarget"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Errors for records that are never replayed; errors.Is tells them apart.
var (
	// ErrIncomplete: the request body ended before its declared end (the
	// client went away, malformed chunked framing, a capture gap).
	ErrIncomplete = errors.New("request body was incomplete at capture")
	// ErrUpgrade: the request switched protocols (101, e.g. a WebSocket) or
	// opened a tunnel (CONNECT); replaying it as a plain request would send
	// the shadow something the client never sent.
	ErrUpgrade = errors.New("request was a protocol upgrade or tunnel")
)

// Reasons counted in mirrorline_replayer_errors_total{reason} for records not
// replayed.
const (
	ReasonTruncated  = "truncated"
	ReasonIncomplete = "incomplete"
	ReasonUpgrade    = "upgrade"
	ReasonBuild      = "build"
	// ReasonGone: a window's record Kafka no longer had when the replay
	// came to read it (retention, deleted records).
	ReasonGone = "gone"
)

// Reasons a record is not sent by choice, counted in
// mirrorline_replayer_dropped_total{reason} and committed.
const (
	// DropFiltered: not selected (replay.select, --safe) or a skip route.
	DropFiltered = "filtered"
	// DropMiddleware: the middleware program dropped it.
	DropMiddleware = "middleware"
	// DropBreakerOpen: its target's circuit breaker was open.
	DropBreakerOpen = "breaker_open"
	// DropEgress: an egress record (a call the primary made to a
	// dependency, Exchange.kind KIND_EGRESS): the stub answers it, the
	// replayer never sends it.
	DropEgress = "egress"
)

// skipEgress counts ex in dropped_total{reason="egress"} and reports true
// when it is an egress record.
func skipEgress(m *Metrics, ex *mlv1.Exchange) bool {
	if ex.GetKind() != mlv1.Kind_KIND_EGRESS {
		return false
	}
	m.Dropped.WithLabelValues(DropEgress).Inc()
	return true
}

// Reasons of a Router's failures, counted in
// mirrorline_replayer_errors_total{reason}; the record is not sent.
const (
	ReasonTransform   = "transform"
	ReasonMiddleware  = "middleware"
	ReasonCredentials = "credentials"
)

// Skipped is the error of a record not sent by choice; Reason is one of
// DropFiltered, DropMiddleware, DropBreakerOpen.
type Skipped struct{ Reason string }

func (e *Skipped) Error() string { return "record not sent: " + e.Reason }

// reasonError is a failure counted under reason in errors_total.
type reasonError struct {
	reason string
	err    error
}

func (e *reasonError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

// Replayable returns nil when ex can be replayed as a complete request, else an
// error wrapping ErrIncomplete, ErrTruncated, ErrMessagesTruncated (a gRPC
// call) or ErrUpgrade.
func Replayable(ex *mlv1.Exchange) error {
	in := ex.GetRequest()
	switch {
	case in.GetBodyIncomplete():
		return fmt.Errorf("exchange %s: %w", ex.GetId(), ErrIncomplete)
	case in.GetBodyTruncated():
		return fmt.Errorf("exchange %s: %w", ex.GetId(), ErrTruncated)
	case isGRPC(ex) && messagesTruncated(in):
		return fmt.Errorf("exchange %s: %w", ex.GetId(), ErrMessagesTruncated)
	case isUpgrade(ex):
		return fmt.Errorf("exchange %s: %w", ex.GetId(), ErrUpgrade)
	}
	return nil
}

// isUpgrade reports a protocol switch: a 101 response, a CONNECT, or a request
// asking to upgrade to anything but h2c (which servers without HTTP/2 cleartext
// ignore, answering the request as plain HTTP/1.1).
func isUpgrade(ex *mlv1.Exchange) bool {
	if ex.GetResponse().GetStatus() == 101 || strings.EqualFold(ex.GetRequest().GetMethod(), "CONNECT") {
		return true
	}
	for _, h := range ex.GetRequest().GetHeaders() {
		if textproto.CanonicalMIMEHeaderKey(h.Name) != "Upgrade" {
			continue
		}
		for _, tok := range strings.Split(h.Value, ",") {
			if tok = strings.TrimSpace(tok); tok != "" && !strings.EqualFold(tok, "h2c") {
				return true
			}
		}
	}
	return false
}

// SkipReason returns the errors_total reason for err, an error of BuildRequest,
// Replayable or a Router (transform, middleware, credentials).
func SkipReason(err error) string {
	if re, ok := errors.AsType[*reasonError](err); ok {
		return re.reason
	}
	switch {
	case errors.Is(err, ErrIncomplete):
		return ReasonIncomplete
	case errors.Is(err, ErrTruncated):
		return ReasonTruncated
	case errors.Is(err, ErrMessagesTruncated):
		return ReasonMessagesTruncated
	case errors.Is(err, ErrUpgrade):
		return ReasonUpgrade
	}
	return ReasonBuild
}

// checkRecord returns why ex is never replayed, as BuildRequest would without
// a target: an unsafe request-target (wrapping reqtarget.ErrUnsafe), then
// Replayable. nil when BuildRequest would build it.
func checkRecord(ex *mlv1.Exchange) error {
	if req := ex.GetRequest(); req != nil {
		if _, err := reqtarget.Check(req.Method, req.Url); err != nil {
			return fmt.Errorf("exchange %s: request target: %w", ex.GetId(), err)
		}
	}
	return Replayable(ex)
}

// countSkip counts a record not replayed because of err (from BuildRequest,
// Send or checkRecord) and returns the reason: an unsafe request-target in
// dropped_total{reason="unsafe_target"}, anything else in
// errors_total{reason} (SkipReason).
func (m *Metrics) countSkip(err error) string {
	if sk, ok := errors.AsType[*Skipped](err); ok {
		m.Dropped.WithLabelValues(sk.Reason).Inc()
		return sk.Reason
	}
	if errors.Is(err, reqtarget.ErrUnsafe) {
		m.Dropped.WithLabelValues(DropUnsafeTarget).Inc()
		return DropUnsafeTarget
	}
	reason := SkipReason(err)
	m.Errors.WithLabelValues(reason).Inc()
	return reason
}
