package broker

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kadm"
)

// UnreachableError is a failure to connect to Kafka at all, as opposed to an
// error Kafka answered with.
type UnreachableError struct {
	// Addr is the broker address that could not be reached.
	Addr string
	// Reason is why, in a few words ("connection refused", "no such host").
	Reason string
	// Err is the client's error.
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach Kafka at %s: %s", e.Addr, e.Reason)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Explain turns an error whose cause is a failed dial to a broker into an
// *UnreachableError ("cannot reach Kafka at 127.0.0.1:1: connection
// refused"), instead of the client's "request ListGroups has 1 separate shard
// errors, first: unable to dial: dial tcp ...". seeds name the address when
// the dial error does not. Any other error is returned as it is.
func Explain(err error, seeds []string) error {
	if err == nil {
		return nil
	}
	var ue *UnreachableError
	if errors.As(err, &ue) {
		return err
	}
	op := dialError(err)
	if op == nil {
		return err
	}
	addr := strings.Join(seeds, ",")
	if op.Addr != nil {
		addr = op.Addr.String()
	}
	var dns *net.DNSError
	if errors.As(op, &dns) {
		addr = dns.Name
		if len(seeds) == 1 {
			addr = seeds[0]
		}
	}
	return &UnreachableError{Addr: addr, Reason: dialReason(op), Err: err}
}

// dialError finds the dial error in err's chain, also inside the shard
// errors of an admin request (which do not unwrap).
func dialError(err error) *net.OpError {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return op
	}
	var se *kadm.ShardErrors
	if errors.As(err, &se) {
		for _, s := range se.Errs {
			if op := dialError(s.Err); op != nil {
				return op
			}
		}
	}
	return nil
}

// dialReason says why a dial failed: the errno's text, "timed out", or
// the resolver's answer.
func dialReason(op *net.OpError) string {
	var errno syscall.Errno
	var dns *net.DNSError
	switch {
	case errors.As(op, &dns):
		if dns.IsNotFound {
			return "no such host"
		}
		return dns.Err
	case op.Timeout():
		return "timed out"
	case errors.As(op, &errno):
		return errno.Error()
	case op.Err != nil:
		return op.Err.Error()
	}
	return "dial failed"
}
