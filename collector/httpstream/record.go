package httpstream

import mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"

// Error texts put in Response.error of records.
const (
	ErrTextGap        = "capture gap: response bytes missing"
	ErrTextIncomplete = "response ended before its declared end"
)

// Record returns the exchange as a mirrorline.v1.Exchange with Sequence, capture
// time (first byte of the request), request and response filled in; the caller
// sets ConnectionId, Source, Collector and RemoteAddr. A body with missing or
// cut-off bytes is marked body_truncated, one that ended before its declared end
// or lost bytes to a gap also body_incomplete (neither is replayed); a response with
// missing bytes also carries an error text. A request whose response was not
// captured has no response.
func (e *Exchange) Record() *mlv1.Exchange {
	r := e.Request
	ex := &mlv1.Exchange{
		Sequence: e.Seq,
		Request: &mlv1.Request{
			Method:         r.Method,
			Url:            r.Target,
			Host:           r.Host,
			Proto:          r.Proto,
			Scheme:         "http",
			Headers:        protoHeaders(r.Headers),
			Body:           r.Data,
			BodyTruncated:  r.Truncated || r.Gap || r.Incomplete,
			BodyIncomplete: r.Gap || r.Incomplete,
			BodySize:       r.Size,
		},
	}
	if !r.Start.IsZero() {
		ex.CaptureTimeNs = r.Start.UnixNano()
	}
	if s := e.Response; s != nil {
		ex.Response = &mlv1.Response{
			Status:        int32(s.Status),
			Headers:       protoHeaders(s.Headers),
			Body:          s.Data,
			BodyTruncated: s.Truncated || s.Gap || s.Incomplete,
			BodySize:      s.Size,
			LatencyNs:     e.Latency().Nanoseconds(),
			Proto:         s.Proto,
		}
		switch {
		case s.Gap:
			ex.Response.Error = ErrTextGap
		case s.Incomplete:
			ex.Response.Error = ErrTextIncomplete
		}
	}
	return ex
}

func protoHeaders(hs []Header) []*mlv1.Header {
	if len(hs) == 0 {
		return nil
	}
	out := make([]*mlv1.Header, len(hs))
	for i, h := range hs {
		out[i] = &mlv1.Header{Name: h.Name, Value: h.Value}
	}
	return out
}
