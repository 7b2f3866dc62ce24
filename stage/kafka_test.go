package stage_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/stage"
	"github.com/mirrorline/mirrorline/test/kafkatest"
)

// exchange is the record value of an exchange with id.
func exchange(id string) []byte {
	v, _ := proto.Marshal(&mlv1.Exchange{Id: id, ConnectionId: "c"})
	return v
}

// topic creates a fresh topic with partitions partitions and returns it.
func topic(t *testing.T, partitions int32, configs map[string]*string) string {
	t.Helper()
	name := fmt.Sprintf("stage-%d", time.Now().UnixNano())
	resp, err := kadm.NewClient(kafkatest.Client(t)).CreateTopic(context.Background(), partitions, 1, configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	return name
}

// produce writes values to partition p of topic, outside any transaction.
func produce(t *testing.T, topic string, p int32, values ...[]byte) {
	t.Helper()
	cl := kafkatest.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for _, v := range values {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Partition: p, Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

func seeds(t *testing.T) []kgo.Opt { return []kgo.Opt{kgo.SeedBrokers(kafkatest.Brokers(t)...)} }

// Read returns every committed record of its spans and ends by itself,
// even when a span ends with an aborted transaction and its marker; spans
// are clamped to what the partition holds; EndSpan and EndAll stop early.
func TestReadEndsExactly(t *testing.T) {
	brokers := kafkatest.Brokers(t)
	tp := topic(t, 1, nil)
	produce(t, tp, 0, exchange("a"), exchange("b"))
	kafkatest.WriteTxn(t, brokers, tp, true, "c", "d")
	kafkatest.WriteTxn(t, brokers, tp, false, "aborted-1", "aborted-2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	read := func(span stage.Span, stopAt string, next stage.Next) []string {
		var ids []string
		err := stage.Read(ctx, seeds(t), []stage.Span{span}, func(r *kgo.Record) stage.Next {
			ex := &mlv1.Exchange{}
			if err := proto.Unmarshal(r.Value, ex); err != nil {
				t.Errorf("record at %d is not an exchange (a transaction marker passed on?)", r.Offset)
			}
			ids = append(ids, ex.Id)
			if ex.Id == stopAt {
				return next
			}
			return stage.Continue
		})
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return ids
	}
	for _, tc := range []struct {
		name   string
		span   stage.Span
		stopAt string
		next   stage.Next
		want   string
	}{
		{"everything, past the end clamped", stage.Span{Topic: tp, From: -5, To: 1 << 40}, "", stage.Continue, "a b c d"},
		{"from an offset", stage.Span{Topic: tp, From: 1, To: 1 << 40}, "", stage.Continue, "b c d"},
		{"to an offset", stage.Span{Topic: tp, From: 0, To: 2}, "", stage.Continue, "a b"},
		{"end span", stage.Span{Topic: tp, To: 1 << 40}, "b", stage.EndSpan, "a b"},
		{"end all", stage.Span{Topic: tp, To: 1 << 40}, "c", stage.EndAll, "a b c"},
		{"only the aborted transaction", stage.Span{Topic: tp, From: 5, To: 1 << 40}, "", stage.Continue, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(read(tc.span, tc.stopAt, tc.next), " "); got != tc.want {
				t.Fatalf("read %q, want %q", got, tc.want)
			}
		})
	}
}

// holder is a Handler that finishes every record at once except those it
// is told to hold, which it finishes (or abandons) in Drain.
type holder struct {
	mu      sync.Mutex
	hold    map[string]bool
	held    []*stage.Msg
	seen    []string
	drained bool
	finish  bool // in Drain: Done (true) or Abandon
}

func (h *holder) Handle(_ context.Context, m *stage.Msg, ex *mlv1.Exchange) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, ex.Id)
	if h.hold[ex.Id] {
		h.held = append(h.held, m)
		return nil
	}
	m.Done()
	return nil
}

func (h *holder) Drain() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drained = true
	for _, m := range h.held {
		if h.finish {
			m.Done()
		} else {
			m.Abandon()
		}
	}
}

func (h *holder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

// A group member commits each partition up to its first record not done,
// however many after it are; an undecodable record is counted and never
// halts its partition; a handler finishing its records in Drain gets them
// committed on stop.
func TestGroupCommitsUpToFirstNotDone(t *testing.T) {
	for _, tc := range []struct {
		name   string
		finish bool
		want   int64
	}{
		{"held record abandoned: commit stops before it", false, 2},
		{"held record done in Drain: all committed", true, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tp := topic(t, 1, nil)
			produce(t, tp, 0, exchange("a"), []byte{0xff, 0xff, 0xff}, exchange("held"), exchange("d"), exchange("e"))
			h := &holder{hold: map[string]bool{"held": true}, finish: tc.finish}
			m := stage.NewMetrics(nil, "test")
			g := stage.NewGroup(h, stage.WithMetrics(m), stage.FromStart(true))
			group := "g-" + tp
			cl := kafkatest.Client(t, g.ClientOpts(group, tp)...)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- g.Run(ctx, cl) }()
			deadline := time.After(time.Minute)
			for h.count() < 4 {
				select {
				case <-deadline:
					cancel()
					t.Fatalf("handled %d of 4 decodable records", h.count())
				case <-time.After(10 * time.Millisecond):
				}
			}
			if g.Open() != 1 {
				t.Errorf("%d records in flight, want the held one", g.Open())
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("run: %v", err)
			}
			if !h.drained {
				t.Fatal("Drain was not called on stop")
			}
			if n := testutil.ToFloat64(m.Undecodable); n != 1 {
				t.Errorf("undecodable counted %v, want 1", n)
			}
			offs, err := kadm.NewClient(kafkatest.Client(t)).FetchOffsets(context.Background(), group)
			if err != nil {
				t.Fatal(err)
			}
			o, ok := offs.Lookup(tp, 0)
			if !ok || o.At != tc.want {
				t.Fatalf("committed %+v (found %v), want offset %d", o, ok, tc.want)
			}
		})
	}
}

// upper uppercases ids into the output topic; "fail" cannot be transformed
// and "big" is larger once transformed than the output topic accepts: both
// are set aside in the same transaction and the partition moves on.
type upper struct {
	out, aside string
	mu         sync.Mutex
	ended      []bool
}

func (u *upper) Transform(r *kgo.Record, ex *mlv1.Exchange) ([]*kgo.Record, error) {
	switch ex.Id {
	case "fail":
		return nil, fmt.Errorf("cannot transform")
	case "big":
		big := make([]byte, 8<<10)
		_, _ = rand.Read(big) // incompressible: larger than the topic's limit
		return []*kgo.Record{{Topic: u.out, Value: big}}, nil
	}
	return []*kgo.Record{{Topic: u.out, Value: exchange(strings.ToUpper(ex.Id))}}, nil
}

func (u *upper) SetAside(r *kgo.Record, ex *mlv1.Exchange, kind, reason string) *kgo.Record {
	return &kgo.Record{Topic: u.aside, Value: exchange(kind), Headers: []kgo.RecordHeader{{Key: "reason", Value: []byte(reason)}}}
}

func (u *upper) Ended(committed bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.ended = append(u.ended, committed)
}

func TestTxSetsAsideWhatItCannotPublish(t *testing.T) {
	small := "4096"
	in, out, aside := topic(t, 1, nil), topic(t, 1, map[string]*string{"max.message.bytes": &small}), topic(t, 1, nil)
	produce(t, in, 0, exchange("a"), []byte{0xff, 0xff}, exchange("fail"), exchange("big"), exchange("b"))
	u := &upper{out: out, aside: aside}
	group := "tx-" + in
	opts := append(seeds(t), stage.TxOpts(group, []string{in}, "txn-"+in, stage.Membership{})...)
	open := func() (*kgo.GroupTransactSession, error) { return kgo.NewGroupTransactSession(opts...) }
	sess, err := open()
	if err != nil {
		t.Fatal(err)
	}
	m := stage.NewMetrics(nil, "test")
	x := stage.NewTx(sess, u, stage.WithMetrics(m), stage.Reopen(open))
	defer x.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	got := ids(t, out)
	deadline := time.After(time.Minute)
	for got["A"] == 0 || got["B"] == 0 {
		select {
		case <-deadline:
			cancel()
			t.Fatalf("output %v, want A and B", got)
		case <-time.After(50 * time.Millisecond):
		}
		got = ids(t, out)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(got) != 2 || got["A"] != 1 || got["B"] != 1 {
		t.Errorf("output %v, want A and B once each", got)
	}
	asideIDs := ids(t, aside)
	for _, kind := range []string{stage.SetAsideUndecodable, stage.SetAsideFailed, stage.SetAsideTooLarge} {
		if asideIDs[kind] != 1 {
			t.Errorf("set aside %v, want one record of each kind", asideIDs)
		}
		if n := testutil.ToFloat64(m.SetAside.WithLabelValues(kind)); n < 1 {
			t.Errorf("mirrorline_stage_set_aside_records_total{kind=%q} = %v", kind, n)
		}
	}
	if n := testutil.ToFloat64(m.Transactions.WithLabelValues("aborted")); n < 1 {
		t.Errorf("no aborted transaction counted, though Kafka refused the big record once")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.ended) == 0 || !u.ended[len(u.ended)-1] {
		t.Errorf("transactions ended %v, want the last committed", u.ended)
	}
}

// ids counts the exchange ids committed on partition 0 of topic (an
// undecodable record counts as "?").
func ids(t *testing.T, topic string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out := map[string]int{}
	err := stage.Read(ctx, seeds(t), []stage.Span{{Topic: topic, To: 1 << 40}}, func(r *kgo.Record) stage.Next {
		ex := &mlv1.Exchange{}
		if proto.Unmarshal(r.Value, ex) != nil {
			out["?"]++
		} else {
			out[ex.Id]++
		}
		return stage.Continue
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// chain transforms like upper and tells each transform's time; the test
// produces the next record only after it, so without an interval every
// record would be a transaction of its own, right after the previous one.
type chain struct {
	upper
	at chan time.Time
}

func (c *chain) Transform(r *kgo.Record, ex *mlv1.Exchange) ([]*kgo.Record, error) {
	c.at <- time.Now()
	return c.upper.Transform(r, ex)
}

// With an interval, transactions begin at least that far apart: n records
// produced one after the other span at least n-2 intervals (the first
// record's transaction may begin up to one interval before its transform is
// timed). Load only widens the span.
func TestTxIntervalSpacesTransactions(t *testing.T) {
	const n, interval = 6, 200 * time.Millisecond
	in, out := topic(t, 1, nil), topic(t, 1, nil)
	c := &chain{upper: upper{out: out, aside: out}, at: make(chan time.Time, n)}
	opts := append(seeds(t), stage.TxOpts("tx-"+in, []string{in}, "txn-"+in, stage.Membership{})...)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		t.Fatal(err)
	}
	x := stage.NewTx(sess, c, stage.TxInterval(interval))
	defer x.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	var first, last time.Time
	for i := range n {
		produce(t, in, 0, exchange(fmt.Sprintf("r%d", i)))
		select {
		case at := <-c.at:
			if i == 0 {
				first = at
			}
			last = at
		case <-time.After(time.Minute):
			t.Fatalf("record %d not transformed within a minute", i)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if span := last.Sub(first); span < (n-2)*interval {
		t.Errorf("%d records one after the other transformed within %s, want at least %s (transactions %s apart)", n, span, (n-2)*interval, interval)
	}
}
