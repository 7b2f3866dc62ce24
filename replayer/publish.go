package replayer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
	msgsCut := fitMessages(out, b.MaxValue(key, nil))
	val, cut, fits, err := mlv1.MarshalWithin(out, b.MaxValue(key, nil))
	cut = cut || msgsCut
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

// publish produces the shadow record of the replay of src (ShadowRecord, keyed
// and stamped as src, with the request as sent when it was changed) to
// o.shadow, then calls done with "" or the errors_total reason it was counted
// under (encode, too_large, publish).
func (o *options) publish(ctx context.Context, src *kgo.Record, ex *mlv1.Exchange, res Outcome, sent time.Time, lag time.Duration, done func(reason string)) {
	out := ShadowRecord(ex, res.Response, res.Target, o.job, o.instance, sent, lag)
	if res.Sent != nil {
		out.Request = res.Sent
	}
	out.Replay.SourceTopic, out.Replay.SourcePartition, out.Replay.SourceOffset = src.Topic, src.Partition, src.Offset
	val, err := shadowValue(out, src.Key, o.budget, o.metrics)
	if err != nil {
		o.metrics.Errors.WithLabelValues(encodeErrReason(err)).Inc()
		done(encodeErrReason(err))
		return
	}
	o.pub.Produce(ctx, &kgo.Record{Topic: o.shadow, Key: src.Key, Value: val, Timestamp: src.Timestamp}, func(_ *kgo.Record, err error) {
		reason := ""
		if err != nil {
			reason = "publish"
			o.metrics.Errors.WithLabelValues(reason).Inc()
			o.log.Warn("publish shadow response", "topic", o.shadow, "error", err)
		}
		done(reason)
	})
}
