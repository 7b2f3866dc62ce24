package collector

import (
	"fmt"

	dto "github.com/prometheus/client_model/go"

	"github.com/mirrorline/mirrorline/collector/reqtarget"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// DropUnsafeTarget is the drop reason of captured requests whose
// request-target could make a replayer connect elsewhere than its target (see
// reqtarget.Check); they are never published.
const DropUnsafeTarget = "unsafe_target"

// normalizeTarget rewrites the request-target of ex to origin-form: an
// absolute-form target keeps only its path and query, its authority becoming
// the request's Host (RFC 9112 section 3.2.2). Every collector's records pass
// here (Emitter.Emit). The error, for a request reqtarget.Check rejects, wraps
// reqtarget.ErrUnsafe and does not contain the target.
func normalizeTarget(ex *mlv1.Exchange) error {
	req := ex.GetRequest()
	if req == nil {
		return nil
	}
	t, err := reqtarget.Check(req.Method, req.Url)
	if err != nil {
		return fmt.Errorf("capture %s %s: %w", ex.GetSource(), ex.GetId(), err)
	}
	req.Url = t.String()
	if t.Host != "" {
		req.Host = t.Host
	}
	return nil
}

// UnsafeTargetDrops is how many captures were dropped for their request-target
// (mirrorline_collector_dropped_total{reason="unsafe_target"}), for summaries.
func (m *Metrics) UnsafeTargetDrops() uint64 {
	var pb dto.Metric
	if err := m.Dropped.WithLabelValues(DropUnsafeTarget).Write(&pb); err != nil {
		return 0
	}
	return uint64(pb.GetCounter().GetValue())
}
