package replayer

import (
	"errors"
	"fmt"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// errTooLarge: a shadow record does not fit its topic even with an empty
// response body and no headers.
var errTooLarge = errors.New("shadow record larger than the record budget")

// shadowValue encodes out for the shadow topic within budget b: a response
// too large for it has its body (then its largest headers) cut, flagged
// body_truncated (headers_truncated) with body_size kept, and is counted in
// m.Truncated, rather than being lost to a MESSAGE_TOO_LARGE.
func shadowValue(out *mlv1.Exchange, key []byte, b *broker.Budget, m *Metrics) ([]byte, error) {
	val, cut, fits, err := mlv1.MarshalWithin(out, b.MaxValue(key, nil))
	switch {
	case err != nil:
		return nil, fmt.Errorf("encode shadow record: %w", err)
	case !fits:
		return nil, errTooLarge
	case cut:
		m.Truncated.Inc()
	}
	return val, nil
}

// encodeErrReason is the errors_total reason of a shadowValue error.
func encodeErrReason(err error) string {
	if errors.Is(err, errTooLarge) {
		return "too_large"
	}
	return "encode"
}
