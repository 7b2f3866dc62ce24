package collector

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// holdProducer keeps every record unacknowledged until the test settles it,
// as Kafka does while a batch lingers or a produce request is in flight.
type holdProducer struct {
	held []func(*kgo.Record, error)
}

func (p *holdProducer) TryProduce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.held = append(p.held, func(_ *kgo.Record, err error) { promise(r, err) })
}

// mirrorline_collector_queue_records shows how many captured exchanges are
// not yet acknowledged by Kafka: what a kill -9 would lose. Every outcome of
// a record (acknowledged, dropped, failed) takes it out of the queue.
func TestEmitterQueueGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	prod := &holdProducer{}
	e := NewEmitter(prod, "svc", m, nil)
	for range 5 {
		if err := e.Emit(&mlv1.Exchange{Request: &mlv1.Request{Method: "GET", Url: "/"}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(m.Queued); got != 5 {
		t.Fatalf("queue gauge %v with 5 exchanges awaiting Kafka, want 5", got)
	}
	outcomes := []error{nil, nil, kgo.ErrMaxBuffered, kgo.ErrClientClosed, errors.New("broker gone")}
	for i, err := range outcomes {
		prod.held[i](nil, err)
		if got, want := testutil.ToFloat64(m.Queued), float64(len(outcomes)-i-1); got != want {
			t.Fatalf("after outcome %d (%v): queue gauge %v, want %v", i, err, got, want)
		}
	}
	captured := testutil.ToFloat64(m.Captured)
	settled := testutil.ToFloat64(m.Published)
	for _, r := range []string{DropQueueFull, DropClosed, DropPublishError} {
		settled += testutil.ToFloat64(m.Dropped.WithLabelValues(r))
	}
	if captured != settled {
		t.Fatalf("captured %v but published + dropped %v with an empty queue", captured, settled)
	}
	if n, err := testutil.GatherAndCount(reg, "mirrorline_collector_queue_records"); err != nil || n != 1 {
		t.Fatalf("mirrorline_collector_queue_records registered %d times (%v)", n, err)
	}
}
