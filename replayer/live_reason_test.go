package replayer

import (
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Live replays count failed requests by reason too (the shadow down: refused),
// next to sent_total{status_class="error"} as before.
func TestLiveCountsRequestErrorsByReason(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	fc := newFakeClient()
	m := NewMetrics(nil)
	startLive(t, fc, dead, Concurrency(2), WithMetrics(m))
	fc.polls <- []*kgo.Record{rec(0, 0, "a", "x"), rec(0, 1, "b", "y"), rec(0, 2, "c", "z")}
	fc.waitFor(t, "every offset marked", func(f *fakeClient) bool { return f.marked[0] == 3 })
	if n := testutil.ToFloat64(m.RequestErrors.WithLabelValues(ReasonRefused)); n != 3 {
		t.Errorf("request_errors_total{reason=refused} = %v, want 3", n)
	}
	if n := testutil.ToFloat64(m.Sent.WithLabelValues("error")); n != 3 {
		t.Errorf("sent_total{status_class=error} = %v, want 3", n)
	}
}
