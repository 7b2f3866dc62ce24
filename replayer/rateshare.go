package replayer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// rateShare makes a live replay's --max-rate a cap of the job, not of each
// process: the replayers of a consumer group share it by the partitions
// they own. A member owning k of the topic's n partitions sends at most
// cap × k / n per second, so the group together sends at most cap (each
// partition carries its share of the traffic: a skewed topic is capped
// below cap, never above).
//
// Until the topic's partition count is known (a Kafka error at start) every
// member takes the whole cap, as a lone replayer does; a member that owns no
// partition keeps one partition's share (it sends nothing, and a cap of 0
// would mean none). A member gives up a revoked partition's share at once,
// before it has sent the records of it already queued: during a rebalance
// the group sends below the cap, never above it.
type rateShare struct {
	mu         sync.Mutex
	topic      string
	jobCap     float64 // the job's cap (0: none)
	partitions int     // the topic's (0: not known)
	owned      map[int32]bool
	apply      func(perSecond float64)
	applied    float64
}

// newRateShare returns the share of jobCap; apply sets the cap in force, at
// once and on every change.
func newRateShare(jobCap float64, apply func(perSecond float64)) *rateShare {
	s := &rateShare{jobCap: max(jobCap, 0), owned: map[int32]bool{}, apply: apply, applied: -1}
	s.update()
	return s
}

// update applies the share; s.mu is held (or s not yet shared).
func (s *rateShare) update() {
	r := s.jobCap
	if s.partitions > 0 && r > 0 {
		r = r * float64(max(len(s.owned), 1)) / float64(s.partitions)
	}
	if r != s.applied {
		s.applied = r
		s.apply(r)
	}
}

// setJob sets the job's cap (0: none).
func (s *rateShare) setJob(perSecond float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobCap = max(perSecond, 0)
	s.applied = -1 // a new cap always replaces the limiter
	s.update()
}

// job is the job's cap.
func (s *rateShare) job() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jobCap
}

// setPartitions sets the topic's partition count.
func (s *rateShare) setPartitions(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partitions = max(n, 0)
	s.update()
}

// assigned is told of the partitions the group gave this member (stage's
// OnAssigned: cooperative, so only the new ones).
func (s *rateShare) assigned(parts map[string][]int32) { s.change(parts, true) }

// revoked is told of the partitions this member lost or gave up.
func (s *rateShare) revoked(parts map[string][]int32) { s.change(parts, false) }

func (s *rateShare) change(parts map[string][]int32, own bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range parts {
		if topic != s.topic {
			continue
		}
		for _, p := range ps {
			if own {
				s.owned[p] = true
				if s.partitions > 0 && int(p) >= s.partitions {
					s.partitions = int(p) + 1 // partitions added since the lookup
				}
			} else {
				delete(s.owned, p)
			}
		}
	}
	s.update()
}

// lookup reads the topic's partition count through cl (within 10 s: a
// broker that does not answer fails the group's start anyway).
func (s *rateShare) lookup(ctx context.Context, cl *kgo.Client) error {
	s.mu.Lock()
	topic := s.topic
	s.mu.Unlock()
	if topic == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err == nil {
		err = td.Error()
	}
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", topic, err)
	}
	s.setPartitions(len(td[topic].Partitions))
	return nil
}

// setCap puts a cap of perSecond in force (0: none), waking the workers
// waiting on the one it replaces.
func (l *Live) setCap(perSecond float64) {
	if old := l.cap.Swap(newRateCap(perSecond)); old != nil {
		close(old.changed)
	}
}

// ShareRate is this replayer's share of the job's cap in force (0: none).
func (l *Live) ShareRate() float64 { return l.cap.Load().perSecond }

// Revoke takes the partitions leaving this member out of its share of the
// job's cap.
func (h liveHandler) Revoke(parts map[string][]int32) { h.share.revoked(parts) }
