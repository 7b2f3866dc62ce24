package collectortest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Recorder is a collector.Producer that keeps the records it is handed and
// acknowledges each at once. Safe for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

// TryProduce keeps rec and acknowledges it.
func (r *Recorder) TryProduce(_ context.Context, rec *kgo.Record, promise func(*kgo.Record, error)) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
	promise(rec, nil)
}

// Records returns a copy of the records kept so far.
func (r *Recorder) Records() []*kgo.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*kgo.Record(nil), r.recs...)
}

// Exchanges returns the records kept so far, decoded; a record that does not
// decode fails the test.
func (r *Recorder) Exchanges(tb testing.TB) []*mlv1.Exchange {
	tb.Helper()
	recs := r.Records()
	out := make([]*mlv1.Exchange, 0, len(recs))
	for _, rec := range recs {
		ex := &mlv1.Exchange{}
		if err := proto.Unmarshal(rec.Value, ex); err != nil {
			tb.Fatalf("decode record: %v", err)
		}
		out = append(out, ex)
	}
	return out
}

// Serve runs serve on a new loopback listener until the test ends, then
// stops it and fails the test if it returned an error. It returns the
// listener's address.
func Serve(tb testing.TB, serve func(context.Context, net.Listener) error) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

// Flush waits (up to 10 s) until the emitter has handed everything it
// accepted to its producer: the HTTP collectors encode and produce on the
// emitter's workers, after the response. Call it before reading a Recorder.
func Flush(tb testing.TB, em interface{ Flush(context.Context) error }) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := em.Flush(ctx); err != nil {
		tb.Fatalf("flush emitter: %v", err)
	}
}

// Gate is a Recorder whose TryProduce waits until Open is called: it stands
// for encoding and producing that take long, to show they are not on a
// client's path. Create it with NewGate.
type Gate struct {
	Recorder
	open chan struct{}
	once sync.Once
}

// NewGate returns a closed Gate.
func NewGate() *Gate { return &Gate{open: make(chan struct{})} }

// TryProduce waits until the gate is open, then keeps rec and acknowledges it.
func (g *Gate) TryProduce(ctx context.Context, rec *kgo.Record, promise func(*kgo.Record, error)) {
	<-g.open
	g.Recorder.TryProduce(ctx, rec, promise)
}

// Open lets every TryProduce, waiting or later, through.
func (g *Gate) Open() { g.once.Do(func() { close(g.open) }) }
