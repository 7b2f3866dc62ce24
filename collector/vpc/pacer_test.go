package vpc

import (
	"testing"
	"time"
)

// The wait after a read that emptied the queue: short after an idle spell,
// doubling while traffic lasts up to the poll interval, and bounded by the
// time the rate just seen takes to fill an eighth of the socket buffer.
func TestPacer(t *testing.T) {
	ms := time.Millisecond
	t0 := time.Unix(1000, 0)
	type step struct {
		after time.Duration // since the last wait ended: the reads took this long
		read  int           // bytes read since the last wait began
		want  time.Duration
	}
	for _, tc := range []struct {
		name  string
		queue int
		steps []step
	}{
		{"doubling to the poll interval", 8 << 20, []step{
			{0, 100, 1 * ms}, {0, 100, 2 * ms}, {0, 100, 4 * ms}, {0, 100, 8 * ms}, {0, 100, 16 * ms}, {0, 100, 20 * ms}, {0, 100, 20 * ms},
		}},
		{"idle spell starts again short", 8 << 20, []step{
			{0, 100, 1 * ms}, {0, 100, 2 * ms}, {0, 100, 4 * ms}, {25 * ms, 100, 1 * ms}, {0, 100, 2 * ms},
		}},
		// 64 KiB buffer: an eighth is 8 KiB. 8 KiB read over the last 1 ms
		// wait: 8 MB/s fills it in about 1 ms.
		{"a fast rate bounds the wait", 64 << 10, []step{
			{0, 100, 1 * ms}, {0, 8 << 10, 1 * ms}, {0, 4 << 10, 2 * ms}, {0, 64 << 10, 250 * time.Microsecond},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pacer{poll: 20 * ms, queue: tc.queue, slept: t0, woke: t0}
			now := t0
			for i, s := range tc.steps {
				now = now.Add(s.after)
				p.read = s.read
				got := p.next(now)
				if d := got - s.want; d < -time.Microsecond || d > time.Microsecond {
					t.Fatalf("step %d: wait %v, want %v", i, got, s.want)
				}
				now = now.Add(got) // the wait
				p.woke = now
			}
		})
	}
}
