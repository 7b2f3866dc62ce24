package replayer

import (
	"context"
	"io"
	"sort"
	"sync"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Range is one partition's part of a window: it is read from Start, at most
// up to Limit (the partition's last stable offset when the job was planned),
// and ends earlier at its first record stamped WindowEndGrace or more after
// the window end (records stamped in [to, to+WindowEndGrace) are skipped).
// End estimates where that is, for progress and for splitting rates.
type Range struct {
	Partition int32 `json:"partition"`
	Start     int64 `json:"start"`
	End       int64 `json:"end"`
	Limit     int64 `json:"limit"`
}

// Len is the estimated number of offsets in the range: End - Start.
func (r Range) Len() int64 { return max(r.End-r.Start, 0) }

// Empty reports whether there is nothing to read.
func (r Range) Empty() bool { return r.Start >= r.Limit }

// Item is one record of a window replay.
type Item struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	// Capture is the capture time: the record timestamp, refined to the
	// nanosecond by the exchange's capture_time_ns when the two agree.
	Capture time.Time
	// Exchange is the decoded record value; nil when it did not decode.
	Exchange *mlv1.Exchange
}

// Source yields the records of a window replay in capture order (Item.Capture
// ascending across partitions), then io.EOF.
type Source interface {
	Next(ctx context.Context) (Item, error)
	// Progress reports how many offsets of the source's share have been
	// handed out or skipped, and how many there are in all. It may be called
	// while Next runs (progress lines).
	Progress() (done, total int64)
}

// Schedule says when each record of a job is due. All workers of a job build
// their schedule from the job's Plan and share one clock:
//
//   - CaptureTime profiles: due = Profile.Offset(capture time - window start),
//     i.e. job start + (capture - from) / speed for a constant speed, whichever
//     worker has the record;
//   - Records profiles: a worker sends its records in capture order at its
//     share of the job's rate (its partitions' offsets / all offsets); its
//     i-th record (from 0) is due at Profile.Offset((i + w/N) / share) for
//     worker w of N, so that the workers interleave evenly and together send at
//     the asked rate (a ramp included). Only records that are sent take a
//     place: transaction markers and records outside the window leave no gap.
type Schedule struct {
	profile Profile
	from    time.Time
	share   float64
	phase   float64
}

// NewSchedule returns the schedule of profile over the window starting at
// from, for a worker holding share (0..1] of the job's offsets, phase [0, 1)
// of an interval after the job's first slot (worker/workers).
func NewSchedule(profile Profile, from time.Time, share, phase float64) *Schedule {
	if share <= 0 || share > 1 {
		share = 1
	}
	return &Schedule{profile: profile, from: from, share: share, phase: phase}
}

// ShareOf returns the share of the job's offsets that mine hold.
func ShareOf(mine, all []Range) float64 {
	m, a := offsets(mine), offsets(all)
	if a == 0 || m == 0 {
		return 1
	}
	return float64(m) / float64(a)
}

// Profile returns the schedule's profile.
func (s *Schedule) Profile() Profile { return s.profile }

// At returns when the worker's index-th record (from 0, in capture order),
// captured at capture, is due after the job start.
func (s *Schedule) At(index int64, capture time.Time) time.Duration {
	if s.profile.Unit == Records {
		return s.profile.Offset((float64(index) + s.phase) / s.share)
	}
	return s.profile.Offset(capture.Sub(s.from).Seconds())
}

// Span returns when the last of records records (the whole job's, at most)
// over a window ending at to is due at the latest: the planned duration.
func (s *Schedule) Span(records int64, to time.Time) time.Duration {
	if s.profile.Unit == Records {
		return s.profile.Offset(float64(records))
	}
	return s.profile.Offset(to.Sub(s.from).Seconds())
}

// RecordCaptureTime returns the capture time of a record: its timestamp (ms), or the
// exchange's capture_time_ns when that falls in the same millisecond.
func RecordCaptureTime(ts time.Time, ex *mlv1.Exchange) time.Time {
	if ns := ex.GetCaptureTimeNs(); ns > 0 && ns/1e6 == ts.UnixMilli() {
		return time.Unix(0, ns)
	}
	return ts
}

// SliceSource is a Source over records held in memory, sorted by capture time.
type SliceSource struct {
	mu    sync.Mutex
	items []Item
	next  int
}

// NewSliceSource returns a source of items.
func NewSliceSource(items []Item) *SliceSource {
	out := append([]Item(nil), items...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Capture.Before(out[j].Capture) })
	return &SliceSource{items: out}
}

// Next returns the next item or io.EOF.
func (s *SliceSource) Next(ctx context.Context) (Item, error) {
	if err := ctx.Err(); err != nil {
		return Item{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next >= len(s.items) {
		return Item{}, io.EOF
	}
	it := s.items[s.next]
	s.next++
	return it, nil
}

// Progress reports items handed out and all items.
func (s *SliceSource) Progress() (done, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(s.next), int64(len(s.items))
}
