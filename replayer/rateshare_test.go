package replayer

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// A member's share of the job's cap follows its partitions: cap × owned /
// partitions, one partition's share while it owns none, the whole cap while
// the partition count is unknown, none when the job has no cap.
func TestRateShare(t *testing.T) {
	parts := func(ps ...int32) map[string][]int32 { return map[string][]int32{"clean": ps} }
	type step struct {
		name string
		do   func(s *rateShare)
		want float64
	}
	var applied []float64
	s := newRateShare(200, func(r float64) { applied = append(applied, r) })
	s.topic = "clean"
	for _, st := range []step{
		{"partitions unknown: the whole cap", func(*rateShare) {}, 200},
		{"4 partitions, none owned: one share", func(s *rateShare) { s.setPartitions(4) }, 50},
		{"partition 0 assigned", func(s *rateShare) { s.assigned(parts(0)) }, 50},
		{"partitions 1 and 2 assigned", func(s *rateShare) { s.assigned(parts(1, 2)) }, 150},
		{"another topic's partitions ignored", func(s *rateShare) { s.assigned(map[string][]int32{"other": {3}}) }, 150},
		{"partition 0 revoked", func(s *rateShare) { s.revoked(parts(0)) }, 100},
		{"the job's cap doubled", func(s *rateShare) { s.setJob(400) }, 200},
		{"a partition beyond the count known: 6 now", func(s *rateShare) { s.assigned(parts(5)) }, 200},
		{"every partition", func(s *rateShare) { s.assigned(parts(0, 3, 4)) }, 400},
		{"cap lifted", func(s *rateShare) { s.setJob(0) }, 0},
		{"still none after a rebalance", func(s *rateShare) { s.revoked(parts(1)) }, 0},
	} {
		st.do(s)
		if got := applied[len(applied)-1]; got != st.want {
			t.Fatalf("%s: share %v, want %v (applied %v)", st.name, got, st.want, applied)
		}
	}
	// A rebalance that leaves the share as it was keeps the limiter (and
	// its token bucket): applied once per change only.
	applied = nil
	s.setJob(300) // 5 of 6 partitions owned: 250
	s.assigned(parts(2))
	s.revoked(parts(1))
	if len(applied) != 1 || applied[0] != 250 {
		t.Fatalf("applied %v, want [250] alone", applied)
	}
}

// Two live replayers of one job in one consumer group (the embedded broker,
// 4 partitions) share --max-rate 200/s by their partitions: each takes 200 ×
// its partitions / 4, together 200; alone again, one takes the whole cap.
func TestLiveMaxRateSharedByGroup(t *testing.T) {
	brokers := kafkatest.Embedded(t, "svc", 4)
	const topic = "mirror.clean.svc"
	start := func() (*Live, func()) {
		s, err := NewSender("http://127.0.0.1:1", 1)
		if err != nil {
			t.Fatal(err)
		}
		l := NewLive(s, "svc", MaxRate(200))
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, l.ClientOpts("mirrorline-replay-svc", topic, true)...)...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx, cl) }()
		var stopped bool
		stop := func() {
			if !stopped {
				stopped = true
				cancel()
				<-done
				cl.Close()
			}
		}
		t.Cleanup(stop)
		return l, stop
	}
	owned := func(l *Live) int {
		l.share.mu.Lock()
		defer l.share.mu.Unlock()
		return len(l.share.owned)
	}
	a, stopA := start()
	b, _ := start()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		if !testproc.Wait(30*time.Second, cond) {
			t.Fatalf("%s: shares %v and %v/s, partitions %d and %d", what, a.ShareRate(), b.ShareRate(), owned(a), owned(b))
		}
	}
	waitFor("the 4 partitions shared by both", func() bool {
		return owned(a) > 0 && owned(b) > 0 && owned(a)+owned(b) == 4
	})
	waitFor("each member's share of 200/s by its partitions", func() bool {
		return a.ShareRate() == 200*float64(owned(a))/4 && b.ShareRate() == 200*float64(owned(b))/4
	})
	if a.MaxRate() != 200 || b.MaxRate() != 200 {
		t.Fatalf("MaxRate %v and %v, want the job's 200", a.MaxRate(), b.MaxRate())
	}
	stopA()
	waitFor("the member left alone with the whole cap", func() bool { return owned(b) == 4 && b.ShareRate() == 200 })
}
