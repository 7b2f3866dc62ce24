package collector

import (
	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// MessageCapture keeps one direction of a gRPC call as messages (see
// grpcwire.Framer) in bounded memory: at most the body limit of one
// message's data, and at most budget framed bytes (prefixes included) kept,
// so a stream of many tiny messages cannot hold more messages than a record
// could carry. What comes after is counted, not kept.
type MessageCapture struct {
	f *grpcwire.Framer
}

// NewMessageCapture returns a capture keeping at most bodyLimit bytes of a
// message and budget bytes (a record budget) of the call's framed bytes.
func NewMessageCapture(bodyLimit int64, budget int) *MessageCapture {
	b := int64(max(budget, 1))
	return &MessageCapture{f: grpcwire.NewFramer(int(max(min(bodyLimit, b), 1)), int(b))}
}

// Feed reads p, whose first byte was seen offsetNs after the request
// started.
func (c *MessageCapture) Feed(p []byte, offsetNs int64) { c.f.Feed(p, offsetNs) }

// Result returns the messages kept, whether any were left out or cut at the
// end (or the framing was bad: the call cannot be replayed faithfully), and
// the framed bytes read (body_size).
func (c *MessageCapture) Result() (msgs []*mlv1.Message, truncated bool, framed int64) {
	msgs, cut, framed, err := c.f.Finish()
	return msgs, cut || err != nil, framed
}
