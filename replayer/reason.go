package replayer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Reasons a replayed request failed, the label values of
// mirrorline_replayer_request_errors_total{reason} and the keys of
// Summary.RequestErrors. The set is closed: ErrorReason returns one of them.
const (
	ReasonRefused = "refused" // nothing listens: ECONNREFUSED
	ReasonTimeout = "timeout" // --timeout, a dial or I/O deadline
	ReasonDNS     = "dns"     // the target's name did not resolve
	ReasonTLS     = "tls"     // handshake, certificate or record errors
	ReasonReset   = "reset"   // the connection was reset or closed mid-exchange
	Reason5xx     = "5xx"     // the target answered with a 5xx status
	ReasonOther   = "other"   // any other transport error
)

// RequestErrorReasons are all the values ErrorReason returns but "", in the
// order summaries list them.
var RequestErrorReasons = []string{ReasonRefused, ReasonTimeout, ReasonDNS, ReasonTLS, ReasonReset, Reason5xx, ReasonOther}

// ErrorReason classifies the outcome of one replayed request from the HTTP
// client's error (nil when a response arrived) and the response status: ""
// for a response below 500, else one of RequestErrorReasons. It looks only at
// error types and errno values, never at message text.
func ErrorReason(err error, status int) string {
	if err == nil {
		if status >= 500 {
			return Reason5xx
		}
		return ""
	}
	var netErr net.Error
	switch {
	case isA[*net.DNSError](err):
		return ReasonDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return ReasonRefused
	case errors.Is(err, http.ErrSchemeMismatch), isA[tls.RecordHeaderError](err), isA[tls.AlertError](err),
		isA[*tls.CertificateVerificationError](err), isA[x509.UnknownAuthorityError](err), isA[x509.HostnameError](err),
		isA[x509.CertificateInvalidError](err):
		return ReasonTLS
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return ReasonTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return ReasonReset
	}
	return ReasonOther
}

// isA reports whether err's chain has an error of type E.
func isA[E error](err error) bool {
	_, ok := errors.AsType[E](err)
	return ok
}

// ParseErrorRate parses a --max-error-rate: a fraction from 0 to 1 ("0.05")
// or a percentage from 0% to 100% ("5%"). It returns the fraction.
func ParseErrorRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	scale := 1.0
	if p, ok := strings.CutSuffix(t, "%"); ok {
		t, scale = strings.TrimSpace(p), 100
	}
	r, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(r) || math.IsInf(r, 0) {
		return 0, fmt.Errorf("%q is not an error rate like 0.05 or 5%%", s)
	}
	r /= scale
	if r < 0 || r > 1 {
		return 0, fmt.Errorf("%q: an error rate is from 0 to 1 (or 0%% to 100%%)", s)
	}
	return r, nil
}
