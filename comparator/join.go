package comparator

import (
	"container/list"
	"slices"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Side says which response a record carries.
type Side int

// The sides of an exchange.
const (
	// Primary is the capture-time record (mirror.clean.S): request and the primary's response.
	Primary Side = iota
	// Shadow is the replayer's record of the shadow's response (mirror.shadow.S).
	Shadow
	// Secondary is a second instance of the primary version answering the replayed request.
	Secondary
	numSides
)

// String returns "primary", "shadow" or "secondary" (the metric label values).
func (s Side) String() string {
	if s < 0 || s >= numSides {
		return "unknown"
	}
	return [numSides]string{"primary", "shadow", "secondary"}[s]
}

// Ref identifies the Kafka record an input came from, so that the Runner
// commits an offset only once every exchange before it is decided.
type Ref struct {
	// Topic, Partition and Offset locate the record.
	Topic     string
	Partition int32
	Offset    int64
}

// addOutcome is what the joiner did with a record.
type addOutcome int

const (
	outcomeWaiting   addOutcome = iota // kept, waiting for the other side(s)
	outcomeJoined                      // completed an exchange
	outcomeDuplicate                   // that side of the exchange was already there
	outcomeLate                        // the exchange was already decided
	outcomeInvalid                     // no exchange id
)

// entry is one exchange being joined.
type entry struct {
	id    string
	ex    [numSides]*mlv1.Exchange
	refs  []Ref
	first time.Time
	elem  *list.Element
	// reason, when set, replaces the reason of a missing verdict.
	reason string
	// settled is set once the entry waited downstream_wait for its children.
	settled bool
}

// decidedID remembers a decided exchange so late records are recognised.
type decidedID struct {
	id string
	at time.Time
}

// joiner pairs the records of an exchange by id, whichever arrives first,
// within a window measured from the first record seen.
type joiner struct {
	window    time.Duration
	secondary bool
	max       int
	pending   map[string]*entry
	order     *list.List // of *entry, by first-seen time
	decided   map[string]bool
	decOrder  *list.List // of decidedID
}

func newJoiner(window time.Duration, secondary bool, max int) *joiner {
	return &joiner{
		window: window, secondary: secondary, max: max,
		pending: map[string]*entry{}, order: list.New(),
		decided: map[string]bool{}, decOrder: list.New(),
	}
}

// complete reports whether e has every side it waits for.
func (j *joiner) complete(e *entry) bool {
	return e.ex[Primary] != nil && e.ex[Shadow] != nil && (!j.secondary || e.ex[Secondary] != nil)
}

// add files ex under its id; a completed entry is returned with outcomeJoined.
func (j *joiner) add(side Side, ex *mlv1.Exchange, ref Ref, now time.Time) (*entry, addOutcome) {
	id := ex.GetId()
	if id == "" {
		return nil, outcomeInvalid
	}
	if j.decided[id] {
		return nil, outcomeLate
	}
	e := j.pending[id]
	if e == nil {
		e = &entry{id: id, first: now}
		e.elem = j.order.PushBack(e)
		j.pending[id] = e
	}
	if e.ex[side] != nil {
		return nil, outcomeDuplicate
	}
	e.ex[side] = ex
	e.refs = append(e.refs, ref)
	if !j.complete(e) {
		return nil, outcomeWaiting
	}
	j.remove(e, now)
	return e, outcomeJoined
}

func (j *joiner) remove(e *entry, now time.Time) {
	j.order.Remove(e.elem)
	delete(j.pending, e.id)
	j.decided[e.id] = true
	j.decOrder.PushBack(decidedID{id: e.id, at: now})
}

// expire removes and returns the entries whose window has passed, and the
// oldest ones beyond max.
func (j *joiner) expire(now time.Time) []*entry {
	var out []*entry
	for f := j.order.Front(); f != nil; f = j.order.Front() {
		e := f.Value.(*entry)
		if now.Sub(e.first) < j.window && (j.max <= 0 || len(j.pending) <= j.max) {
			break
		}
		j.remove(e, now)
		out = append(out, e)
	}
	// Decided ids are remembered for two windows (and at most 2*max of them)
	// to recognise late and duplicate records.
	for f := j.decOrder.Front(); f != nil; f = j.decOrder.Front() {
		d := f.Value.(decidedID)
		if now.Sub(d.at) < 2*j.window && (j.max <= 0 || j.decOrder.Len() <= 2*j.max) {
			break
		}
		j.decOrder.Remove(f)
		delete(j.decided, d.id)
	}
	return out
}

// drop removes the entries holding a record match accepts, undecided.
func (j *joiner) drop(match func(Ref) bool) int {
	n := 0
	for f := j.order.Front(); f != nil; {
		next := f.Next()
		if e := f.Value.(*entry); slices.ContainsFunc(e.refs, match) {
			j.order.Remove(f)
			delete(j.pending, e.id)
			n++
		}
		f = next
	}
	return n
}

// len returns the number of exchanges waiting.
func (j *joiner) len() int { return len(j.pending) }
