package replayer

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// MaxRate caps a live backlog's catch-up: 40 records polled at once over 8
// connections and 8 slots go out at no more than 20/s, so the last is sent
// no sooner than (40-1)/20 s after the first, and the wait is counted. A slow
// machine only makes it take longer.
func TestLiveMaxRate(t *testing.T) {
	g := newGateServer(t)
	fc := newFakeClient()
	m := NewMetrics(nil)
	startLive(t, fc, g.URL, Concurrency(8), Order(false), WithMetrics(m), MaxRate(20))
	var recs []*kgo.Record
	for i := range 40 {
		recs = append(recs, rec(0, int64(i), fmt.Sprintf("c%d", i%8), fmt.Sprintf("r%d", i)))
	}
	fc.polls <- recs
	g.await(t, 1)
	first := time.Now()
	deadline := time.After(60 * time.Second)
	for n := 1; n < 40; n++ {
		select {
		case <-g.arrived:
		case <-deadline:
			t.Fatalf("%d of 40 requests sent within a minute", n)
		}
	}
	if took, floor := time.Since(first), 39*time.Second/20-100*time.Millisecond; took < floor {
		t.Fatalf("40 records sent in %s at --max-rate 20/s; want at least %s", took, floor)
	}
	if s := testutil.ToFloat64(m.Throttled); s <= 0 {
		t.Fatalf("mirrorline_replayer_throttled_seconds_total = %v, want > 0", s)
	}
}

// SetMaxRate takes effect while the replayer runs: workers waiting for a cap
// of one request per 100 s are released at once when the cap is lifted, and
// a cap set again holds back what comes next.
func TestLiveSetMaxRate(t *testing.T) {
	g := newGateServer(t)
	fc := newFakeClient()
	l, _ := startLive(t, fc, g.URL, Concurrency(8), Order(false), MaxRate(0.01))
	var recs []*kgo.Record
	for i := range 10 {
		recs = append(recs, rec(0, int64(i), fmt.Sprintf("c%d", i), fmt.Sprintf("r%d", i)))
	}
	fc.polls <- recs
	g.await(t, 1) // the burst token; the other 9 wait 100 s each under the cap
	if got := l.MaxRate(); got != 0.01 {
		t.Fatalf("MaxRate() = %v, want 0.01", got)
	}
	l.SetMaxRate(0)
	g.await(t, 9) // within await's 10 s, not 900 s
	l.SetMaxRate(0.01)
	recs = nil
	for i := range 3 {
		recs = append(recs, rec(0, int64(10+i), fmt.Sprintf("d%d", i), fmt.Sprintf("s%d", i)))
	}
	fc.polls <- recs
	g.await(t, 1)
	select {
	case p := <-g.arrived:
		t.Fatalf("%s sent right after the first under a cap of 0.01/s", p)
	case <-time.After(300 * time.Millisecond):
	}
	if got := l.MaxRate(); got != 0.01 {
		t.Fatalf("MaxRate() = %v, want 0.01", got)
	}
}
