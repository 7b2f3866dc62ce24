package stage

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Tracker follows the records handed to a stage, per partition in offset
// order, and marks a partition's offsets for commit only up to its first
// record still in flight: records finish in any order (other connections,
// other workers, exchanges waiting for their other side), the commit never
// passes one that is not finished. The Group runtime owns one; a stage that
// consumes without it has no offsets to commit.
type Tracker struct {
	mark   func(*kgo.Record)
	onOpen func(delta int)
	mu     sync.Mutex
	cond   *sync.Cond
	parts  map[topicPartition]*partQueue
}

type topicPartition struct {
	topic     string
	partition int32
}

// partQueue is one partition's records from the oldest not yet marked.
type partQueue struct {
	queue []*Msg
	// open counts records neither done nor abandoned.
	open int
	// stuck: a record was abandoned; nothing after it is marked, so the
	// group's next owner processes it again.
	stuck bool
	// gone: the partition was revoked or lost; late finishes mark nothing.
	gone bool
}

type msgState uint8

const (
	inFlight msgState = iota
	finished
	abandoned
)

// NewTracker returns a tracker that marks with mark (kgo's
// MarkCommitRecords, called with the tracker's lock held, so a hand-over
// sees every mark once its partitions have nothing open) and reports the
// change of the number of open records to onOpen (nil: not reported).
func NewTracker(mark func(*kgo.Record), onOpen func(delta int)) *Tracker {
	if onOpen == nil {
		onOpen = func(int) {}
	}
	t := &Tracker{mark: mark, onOpen: onOpen, parts: map[topicPartition]*partQueue{}}
	t.cond = sync.NewCond(&t.mu)
	return t
}

// Track registers r, the next record of its partition, as in flight.
func (t *Tracker) Track(r *kgo.Record) *Msg {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp := topicPartition{r.Topic, r.Partition}
	p := t.parts[tp]
	if p == nil {
		p = &partQueue{}
		t.parts[tp] = p
	}
	m := &Msg{Record: r, tracker: t, part: p}
	p.queue = append(p.queue, m)
	p.open++
	t.onOpen(1)
	return m
}

// finish records m's outcome and marks its partition through the last record
// finished with nothing in flight before it.
func (t *Tracker) finish(m *Msg, done bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m.state != inFlight {
		return
	}
	p := m.part
	m.state = abandoned
	if done {
		m.state = finished
	}
	p.open--
	t.onOpen(-1)
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
		last = head.Record
		p.queue[0] = nil
		p.queue = p.queue[1:]
	}
	if last != nil && !p.gone {
		t.mark(last)
	}
	t.cond.Broadcast()
}

// HandOver waits (until ctx ends) for the in-flight records of the
// partitions this member is losing to finish, so that their offsets are
// marked before the caller commits, then forgets those partitions.
func (t *Tracker) HandOver(ctx context.Context, lost map[string][]int32) {
	stop := context.AfterFunc(ctx, func() {
		t.mu.Lock()
		t.cond.Broadcast()
		t.mu.Unlock()
	})
	defer stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.openIn(lost) && ctx.Err() == nil {
		t.cond.Wait()
	}
	t.forgetLocked(lost)
}

// Forget drops the partitions at once (lost without a chance to commit):
// their records still in flight finish without marking anything.
func (t *Tracker) Forget(lost map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgetLocked(lost)
}

// Open returns how many records are in flight.
func (t *Tracker) Open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, p := range t.parts {
		n += p.open
	}
	return n
}

func (t *Tracker) openIn(lost map[string][]int32) bool {
	for topic, ps := range lost {
		for _, p := range ps {
			if st := t.parts[topicPartition{topic, p}]; st != nil && st.open > 0 {
				return true
			}
		}
	}
	return false
}

func (t *Tracker) forgetLocked(lost map[string][]int32) {
	for topic, ps := range lost {
		for _, p := range ps {
			tp := topicPartition{topic, p}
			if st := t.parts[tp]; st != nil {
				st.gone = true
				delete(t.parts, tp)
			}
		}
	}
}

// Msg is one consumed record handed to a stage. The stage calls Done or
// Abandon exactly once (later calls are ignored), from any goroutine.
type Msg struct {
	// Record is the Kafka record.
	Record *kgo.Record
	// Polled is when the poll that returned the record ended (the Group
	// runtime sets it; a stage measures its own delay from it).
	Polled  time.Time
	tracker *Tracker
	part    *partQueue
	state   msgState
}

// Done says the stage is finished with the record: its output is published
// (or it never will have one, e.g. it is skipped). Its offset is committed
// once every earlier record of its partition is done too.
func (m *Msg) Done() { m.tracker.finish(m, true) }

// Abandon says the stage gives the record up unprocessed (it is stopping,
// or the record's partition is leaving): no offset at or after it is
// committed by this member, so the group's next owner processes it again.
func (m *Msg) Abandon() { m.tracker.finish(m, false) }
