package replayer

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// fakeClient is a Client whose Produce succeeds at once.
type fakeClient struct {
	mu       sync.Mutex
	produced []*kgo.Record
}

func (f *fakeClient) PollRecords(context.Context, int) kgo.Fetches { return nil }
func (f *fakeClient) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	f.mu.Lock()
	f.produced = append(f.produced, r)
	f.mu.Unlock()
	promise(r, nil)
}
func (f *fakeClient) Flush(context.Context) error               { return nil }
func (f *fakeClient) MarkCommitRecords(...*kgo.Record)          {}
func (f *fakeClient) CommitMarkedOffsets(context.Context) error { return nil }
func (f *fakeClient) AllowRebalance()                           {}

func TestLiveBatchOrder(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ordered     bool
		wantMaxBusy int64
	}{
		{"by connection: one at a time", true, 1},
		{"unordered: all slots", false, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var busy, maxBusy atomic.Int64
			var mu sync.Mutex
			var order []string
			release := make(chan struct{})
			var once sync.Once
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := busy.Add(1)
				defer busy.Add(-1)
				for m := maxBusy.Load(); n > m && !maxBusy.CompareAndSwap(m, n); m = maxBusy.Load() {
				}
				mu.Lock()
				order = append(order, r.URL.Path)
				mu.Unlock()
				if !tc.ordered && n == 4 {
					once.Do(func() { close(release) })
				}
				if !tc.ordered {
					<-release // all four must be in flight together
				}
			}))
			defer srv.Close()
			s, err := NewSender(srv.URL, 4)
			if err != nil {
				t.Fatal(err)
			}
			fc := &fakeClient{}
			l := NewLive(fc, s, "svc", Concurrency(4), Order(tc.ordered))
			var recs []*kgo.Record
			for i := 0; i < 4; i++ {
				v, _ := proto.Marshal(&mlv1.Exchange{Id: fmt.Sprint(i), Request: &mlv1.Request{Method: "GET", Url: fmt.Sprintf("/%d", i)}})
				recs = append(recs, &kgo.Record{Key: []byte("one-connection"), Value: v, Offset: int64(i)})
			}
			l.batch(context.Background(), recs)
			if got := maxBusy.Load(); got != tc.wantMaxBusy {
				t.Fatalf("max requests in flight = %d, want %d", got, tc.wantMaxBusy)
			}
			if tc.ordered && fmt.Sprint(order) != "[/0 /1 /2 /3]" {
				t.Fatalf("order %v, want the connection's order", order)
			}
			if len(fc.produced) != 4 {
				t.Fatalf("%d shadow records, want 4", len(fc.produced))
			}
		})
	}
}
