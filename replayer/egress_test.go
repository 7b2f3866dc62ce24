package replayer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// egressRec is rec for an egress record: a call the primary made to a
// dependency while it handled the inbound exchange parent.
func egressRec(p int32, off int64, key, path, parent string) *kgo.Record {
	v, _ := proto.Marshal(&mlv1.Exchange{Id: path, Kind: mlv1.Kind_KIND_EGRESS, ParentId: parent,
		Request: &mlv1.Request{Method: "POST", Url: "/" + path, Host: "gateway.test"}})
	return &kgo.Record{Topic: "mirror.clean.svc", Partition: p, Offset: off, Key: []byte(key), Value: v}
}

// A live replay never sends an egress record to the shadow: it is counted
// in dropped_total{reason="egress"} and committed with the others.
func TestLiveSkipsEgressRecords(t *testing.T) {
	var paths atomic.Int64
	var egress atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Add(1)
		if r.URL.Path == "/charge" {
			egress.Add(1)
		}
	}))
	defer srv.Close()
	fc := newFakeClient()
	m := NewMetrics(nil)
	startLive(t, fc, srv.URL, Concurrency(2), WithMetrics(m))
	fc.polls <- []*kgo.Record{rec(0, 0, "a", "pay"), egressRec(0, 1, "a", "charge", "pay"), rec(0, 2, "b", "pay2")}
	fc.waitFor(t, "every offset marked", func(f *fakeClient) bool { return f.marked[0] == 3 })
	if n := egress.Load(); n != 0 {
		t.Fatalf("the shadow got %d egress records, want 0", n)
	}
	if n := paths.Load(); n != 2 {
		t.Errorf("the shadow got %d requests, want the 2 inbound ones", n)
	}
	if n := testutil.ToFloat64(m.Dropped.WithLabelValues(DropEgress)); n != 1 {
		t.Errorf("dropped_total{reason=egress} = %v, want 1", n)
	}
}

// A window replay neither schedules nor sends an egress record; its summary
// counts it as skipped (egress).
func TestWindowSkipsEgressRecords(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	its := items(t0, 3, 0)
	its[1].Exchange.Kind = mlv1.Kind_KIND_EGRESS
	clk := NewVirtualClock(t0)
	target := newFakeTarget(clk)
	m := NewMetrics(nil)
	w := NewWindow(NewSliceSource(its), NewSchedule(Speed(1), t0, 1, 0), target, WithClock(clk), WithMetrics(m))
	sum, err := w.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 2 || sum.Skipped[DropEgress] != 1 {
		t.Fatalf("summary: sent %d skipped %v; want 2 sent, 1 egress", sum.Sent, sum.Skipped)
	}
	close(target.sends)
	for s := range target.sends {
		if s.id == its[1].Exchange.GetId() {
			t.Fatalf("egress record %s was sent", s.id)
		}
	}
	if n := testutil.ToFloat64(m.Dropped.WithLabelValues(DropEgress)); n != 1 {
		t.Errorf("dropped_total{reason=egress} = %v, want 1", n)
	}
}
