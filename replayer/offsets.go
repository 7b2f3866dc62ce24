package replayer

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// offsets tracks the records handed out for replay, per partition in offset
// order, and marks a partition's offsets for commit only up to the first
// record still in flight: records finish out of order (other connections,
// other workers), the commit never passes one not yet replayed.
type offsets struct {
	mark  func(*kgo.Record)
	mu    sync.Mutex
	cond  *sync.Cond
	parts map[topicPartition]*partitionOffsets
}

type topicPartition struct {
	topic     string
	partition int32
}

// partitionOffsets is one partition's records from the oldest not yet marked.
type partitionOffsets struct {
	queue []*tracked
	// open counts records neither done nor abandoned.
	open int
	// stuck: a record was abandoned (cut short at shutdown); nothing after it
	// is marked, so the group's next owner replays it.
	stuck bool
	// gone: the partition was revoked or lost; late finishes mark nothing.
	gone bool
}

type trackState uint8

const (
	inFlight trackState = iota
	finished
	abandoned
)

// tracked is one record handed out for replay.
type tracked struct {
	rec   *kgo.Record
	part  *partitionOffsets
	state trackState
}

func newOffsets(mark func(*kgo.Record)) *offsets {
	o := &offsets{mark: mark, parts: map[topicPartition]*partitionOffsets{}}
	o.cond = sync.NewCond(&o.mu)
	return o
}

// Track registers r, the next record of its partition, as in flight.
func (o *offsets) Track(r *kgo.Record) *tracked {
	o.mu.Lock()
	defer o.mu.Unlock()
	tp := topicPartition{r.Topic, r.Partition}
	p := o.parts[tp]
	if p == nil {
		p = &partitionOffsets{}
		o.parts[tp] = p
	}
	t := &tracked{rec: r, part: p}
	p.queue = append(p.queue, t)
	p.open++
	return t
}

// Finish records the outcome of t: done (replayed, or never replayable, such
// as an undecodable record) or not (abandoned at shutdown, to be replayed by
// the next owner). It marks the partition's offsets through the last record
// done with nothing in flight before it.
func (o *offsets) Finish(t *tracked, done bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if t.state != inFlight {
		return
	}
	p := t.part
	t.state = abandoned
	if done {
		t.state = finished
	}
	p.open--
	var last *kgo.Record
	for len(p.queue) > 0 && !p.stuck {
		head := p.queue[0]
		if head.state == inFlight {
			break
		}
		if head.state == abandoned {
			p.stuck = true
			break
		}
		last = head.rec
		p.queue[0] = nil
		p.queue = p.queue[1:]
	}
	if last != nil && !p.gone {
		// Under o.mu, so that HandOver sees the mark once open is 0. kgo
		// marks only forward and only for partitions it consumes.
		o.mark(last)
	}
	o.cond.Broadcast()
}

// HandOver waits (until ctx ends) for the in-flight records of the partitions
// this consumer is losing to finish, so their offsets are marked before the
// caller commits, then forgets those partitions.
func (o *offsets) HandOver(ctx context.Context, lost map[string][]int32) {
	stop := context.AfterFunc(ctx, func() {
		o.mu.Lock()
		o.cond.Broadcast()
		o.mu.Unlock()
	})
	defer stop()
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.openIn(lost) && ctx.Err() == nil {
		o.cond.Wait()
	}
	o.forgetLocked(lost)
}

// Forget drops the partitions at once (lost without a chance to commit):
// records of them still in flight finish without marking anything.
func (o *offsets) Forget(lost map[string][]int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.forgetLocked(lost)
}

// Open returns how many records are in flight.
func (o *offsets) Open() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, p := range o.parts {
		n += p.open
	}
	return n
}

func (o *offsets) openIn(lost map[string][]int32) bool {
	for topic, ps := range lost {
		for _, p := range ps {
			if st := o.parts[topicPartition{topic, p}]; st != nil && st.open > 0 {
				return true
			}
		}
	}
	return false
}

func (o *offsets) forgetLocked(lost map[string][]int32) {
	for topic, ps := range lost {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			if st := o.parts[tp]; st != nil {
				st.gone = true
				delete(o.parts, tp)
			}
		}
	}
}
