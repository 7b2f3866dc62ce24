package replayer

import (
	"context"
	"errors"
	"sync"
)

var errQueueClosed = errors.New("replay queue closed")

// keyQueue hands work items to a fixed number of workers. Items with the same
// key are handed out one at a time, in the order they were pushed; items with
// different keys (or unkeyed) go to whichever worker is free, so no key waits
// behind another key's slow item (unlike static lanes chosen by key hash). At
// most limit items are queued (not yet handed out); Push blocks beyond it.
type keyQueue[T any] struct {
	mu     sync.Mutex
	cond   *sync.Cond
	limit  int
	queued int
	keys   map[string]*keyLine[T]
	ready  []*keyLine[T] // lines with a queued item and nothing in flight
	closed bool
}

// keyLine is one key's items; busy while one of them is in flight.
type keyLine[T any] struct {
	key   string
	keyed bool
	items []T
	busy  bool
}

func newKeyQueue[T any](limit int) *keyQueue[T] {
	q := &keyQueue[T]{limit: max(limit, 1), keys: map[string]*keyLine[T]{}}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// Push queues item under key (keyed) or on its own (not keyed). It blocks
// while the queue is full and returns ctx's error if ctx ends first, or
// errQueueClosed after Close.
func (q *keyQueue[T]) Push(ctx context.Context, key string, keyed bool, item T) error {
	stop := context.AfterFunc(ctx, q.wake)
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.queued >= q.limit && !q.closed && ctx.Err() == nil {
		q.cond.Wait()
	}
	if q.closed {
		return errQueueClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	q.queued++
	if !keyed {
		q.ready = append(q.ready, &keyLine[T]{items: []T{item}})
		q.cond.Broadcast()
		return nil
	}
	l := q.keys[key]
	if l == nil {
		l = &keyLine[T]{key: key, keyed: true}
		q.keys[key] = l
	}
	l.items = append(l.items, item)
	if !l.busy && len(l.items) == 1 {
		q.ready = append(q.ready, l)
		q.cond.Broadcast()
	}
	return nil
}

// Take returns the next item and the done func the worker calls when it is
// finished with it; ok is false once the queue is closed and drained.
func (q *keyQueue[T]) Take() (item T, done func(), ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.ready) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.ready) == 0 {
		return item, nil, false
	}
	l := q.ready[0]
	q.ready[0] = nil
	q.ready = q.ready[1:]
	item = l.items[0]
	clear(l.items[:1])
	l.items = l.items[1:]
	l.busy = true
	q.queued--
	q.cond.Broadcast() // room for Push
	return item, func() { q.release(l) }, true
}

func (q *keyQueue[T]) release(l *keyLine[T]) {
	q.mu.Lock()
	defer q.mu.Unlock()
	l.busy = false
	switch {
	case len(l.items) > 0:
		q.ready = append(q.ready, l)
		q.cond.Broadcast()
	case l.keyed:
		delete(q.keys, l.key)
	}
}

// Close makes Push fail and Take return false once the queued items are
// handed out.
func (q *keyQueue[T]) Close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

func (q *keyQueue[T]) wake() {
	q.mu.Lock()
	q.cond.Broadcast()
	q.mu.Unlock()
}
