package collector

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

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

// gateProducer holds every TryProduce until open is closed, as a slow
// encoding or produce would; entered counts the calls that arrived.
type gateProducer struct {
	open    chan struct{}
	entered atomic.Int64
	mu      sync.Mutex
	urls    []string
}

func (p *gateProducer) TryProduce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.entered.Add(1)
	<-p.open
	ex := &mlv1.Exchange{}
	if err := proto.Unmarshal(r.Value, ex); err == nil {
		p.mu.Lock()
		p.urls = append(p.urls, ex.GetRequest().GetUrl())
		p.mu.Unlock()
	}
	promise(r, nil)
}

// Submit never waits: what its bounded hand-off queue (records, bytes)
// cannot take is dropped and counted as queue_full; everything it accepted
// is in the queue gauge and is produced, in order, by Close; after Close an
// exchange is dropped and counted as closed.
func TestEmitterSubmitHandoff(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	prod := &gateProducer{open: make(chan struct{})}
	defer func() {
		select {
		case <-prod.open:
		default:
			close(prod.open)
		}
	}()
	e := NewEmitter(prod, "svc", m, nil, WithHandoff(3, 4096), WithWorkers(1))
	get := func(url string, body int) *mlv1.Exchange {
		return &mlv1.Exchange{ConnectionId: "c1", Request: &mlv1.Request{Method: "GET", Url: url, Body: make([]byte, body)}}
	}
	e.Submit(get("/1", 0))
	// The worker holds /1 in TryProduce: the queue itself is empty again.
	for deadline := time.Now().Add(10 * time.Second); prod.entered.Load() == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the worker never took the first exchange")
		}
		time.Sleep(time.Millisecond)
	}
	e.Submit(get("/too-big", 5000)) // over the 4096 bytes by itself
	e.Submit(get("/2", 0))
	e.Submit(get("/3", 0))
	e.Submit(get("/4", 0))
	e.Submit(get("/5", 0)) // the 3 records are taken
	full := m.Dropped.WithLabelValues(DropQueueFull)
	if got := testutil.ToFloat64(full); got != 2 {
		t.Fatalf("dropped{queue_full} %v, want 2 (one over the bytes, one over the records)", got)
	}
	if got := testutil.ToFloat64(m.Queued); got != 4 {
		t.Fatalf("queue gauge %v with 4 exchanges accepted and not produced, want 4", got)
	}
	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		closed <- e.Close(ctx)
	}()
	close(prod.open)
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	if want := []string{"/1", "/2", "/3", "/4"}; !slices.Equal(prod.urls, want) {
		t.Fatalf("produced %v, want %v", prod.urls, want)
	}
	e.Submit(get("/late", 0))
	if got := testutil.ToFloat64(m.Dropped.WithLabelValues(DropClosed)); got != 1 {
		t.Fatalf("dropped{closed} %v after Close, want 1", got)
	}
	if got := testutil.ToFloat64(m.Queued); got != 0 {
		t.Fatalf("queue gauge %v after Close, want 0", got)
	}
	if c, p, d := testutil.ToFloat64(m.Captured), testutil.ToFloat64(m.Published), testutil.ToFloat64(full)+1; c != p+d {
		t.Fatalf("captured %v != published %v + dropped %v", c, p, d)
	}
}
