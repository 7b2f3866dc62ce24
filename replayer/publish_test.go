package replayer

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// A shadow response larger than the shadow topic's record budget is
// published cut to fit, flagged truncated with its size kept, and counted;
// not lost. Only a record that cannot fit even without its response body and
// headers is counted as errors{reason="too_large"}.
func TestShadowResponseFitsBudget(t *testing.T) {
	const budgetBytes = 1_000_000
	cases := []struct {
		name      string
		body      int    // response body bytes the target sends
		path      string // request path
		published bool
		truncated bool
	}{
		{"small response as is", 1000, "/small", true, false},
		{"2 MB response cut to the budget", 2_000_000, "/big", true, true},
		{"record over the budget without any body", 10, "/" + strings.Repeat("p", budgetBytes), false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write(bytes.Repeat([]byte("s"), tc.body))
			}))
			defer target.Close()
			s, err := NewSender(target.URL, 1, ResponseBodyLimit(4<<20))
			if err != nil {
				t.Fatal(err)
			}
			fc := newFakeClient()
			m := NewMetrics(nil)
			l := NewLive(s, "svc", WithMetrics(m), ShadowBudget(broker.NewBudget(budgetBytes)))
			ctx, cancel := context.WithCancel(context.Background())
			done := fc.runLive(ctx, l)
			v, _ := proto.Marshal(&mlv1.Exchange{Id: "x", Request: &mlv1.Request{Method: "GET", Url: tc.path}})
			fc.polls <- []*kgo.Record{{Topic: "mirror.clean.svc", Key: []byte("k"), Value: v}}
			fc.waitFor(t, "the record done", func(f *fakeClient) bool { return f.marked[0] == 1 })
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			fc.mu.Lock()
			produced := fc.produced
			fc.mu.Unlock()
			if !tc.published {
				if len(produced) != 0 {
					t.Fatalf("%d records published, want none", len(produced))
				}
				if n := testutil.ToFloat64(m.Errors.WithLabelValues("too_large")); n != 1 {
					t.Fatalf("errors{too_large} = %v, want 1", n)
				}
				return
			}
			if len(produced) != 1 {
				t.Fatalf("%d records published, want 1", len(produced))
			}
			if len(produced[0].Value) > broker.NewBudget(budgetBytes).MaxValue(produced[0].Key, nil) {
				t.Fatalf("shadow record of %d bytes is over the budget", len(produced[0].Value))
			}
			out := &mlv1.Exchange{}
			if err := proto.Unmarshal(produced[0].Value, out); err != nil {
				t.Fatal(err)
			}
			resp := out.GetResponse()
			if resp.BodyTruncated != tc.truncated || resp.BodySize != int64(tc.body) || (tc.truncated && len(resp.Body) < budgetBytes/2) {
				t.Fatalf("response body %d bytes, truncated %v, size %d", len(resp.Body), resp.BodyTruncated, resp.BodySize)
			}
			want := 0.0
			if tc.truncated {
				want = 1
			}
			if n := testutil.ToFloat64(m.Truncated); n != want {
				t.Fatalf("truncated = %v, want %v", n, want)
			}
		})
	}
}
