package replayer

import (
	"context"
	"errors"
	"testing"
)

type qPush struct {
	key   string
	keyed bool
	item  int
}

func TestKeyQueue(t *testing.T) {
	type push = qPush
	tests := []struct {
		name   string
		pushes []push
		// take hands out items while the ones taken stay in flight; want is
		// what can be taken before any is done.
		want []int
	}{
		{"one key: one at a time", []push{{"a", true, 1}, {"a", true, 2}, {"a", true, 3}}, []int{1}},
		{"keys side by side, each in order", []push{{"a", true, 1}, {"a", true, 2}, {"b", true, 3}, {"c", true, 4}, {"b", true, 5}}, []int{1, 3, 4}},
		{"unkeyed: all at once", []push{{"a", false, 1}, {"a", false, 2}, {"", false, 3}}, []int{1, 2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newKeyQueue[int](10)
			for _, p := range tc.pushes {
				if err := q.Push(context.Background(), p.key, p.keyed, p.item); err != nil {
					t.Fatal(err)
				}
			}
			q.Close() // Take returns false instead of waiting once nothing is ready
			var got []int
			var dones []func()
			for {
				q.mu.Lock()
				ready := len(q.ready)
				q.mu.Unlock()
				if ready == 0 {
					break
				}
				item, done, ok := q.Take()
				if !ok {
					t.Fatal("Take: closed with items ready")
				}
				got = append(got, item)
				dones = append(dones, done)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("took %v before any was done, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("took %v before any was done, want %v", got, tc.want)
				}
			}
			// Finishing everything hands out the rest, each key in the order
			// pushed.
			order := append([]int(nil), got...)
			for len(dones) > 0 {
				dones[0]()
				dones = dones[1:]
				for {
					q.mu.Lock()
					ready := len(q.ready)
					q.mu.Unlock()
					if ready == 0 {
						break
					}
					item, done, _ := q.Take()
					order = append(order, item)
					dones = append(dones, done)
				}
			}
			if len(order) != len(tc.pushes) {
				t.Fatalf("handed out %v, want all %d items", order, len(tc.pushes))
			}
			last := map[string]int{}
			for _, item := range order {
				for _, p := range tc.pushes {
					if p.item == item && p.keyed {
						if item < last[p.key] {
							t.Fatalf("handed out %v: key %s out of order", order, p.key)
						}
						last[p.key] = item
					}
				}
			}
			if _, _, ok := q.Take(); ok {
				t.Fatal("Take after close and drain returned an item")
			}
		})
	}
}

func TestKeyQueueFullAndClosed(t *testing.T) {
	q := newKeyQueue[int](2)
	ctx := context.Background()
	for i := range 2 {
		if err := q.Push(ctx, "", false, i); err != nil {
			t.Fatal(err)
		}
	}
	// Full: a push waits, and gives up when its context ends.
	cctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- q.Push(cctx, "", false, 2) }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("push to a full queue with its context cancelled: %v", err)
	}
	// Taking one makes room.
	if _, _, ok := q.Take(); !ok {
		t.Fatal("Take")
	}
	if err := q.Push(ctx, "", false, 3); err != nil {
		t.Fatalf("push after a take: %v", err)
	}
	q.Close()
	if err := q.Push(ctx, "", false, 4); !errors.Is(err, errQueueClosed) {
		t.Fatalf("push after close: %v", err)
	}
}
