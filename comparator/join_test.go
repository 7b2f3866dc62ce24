package comparator

import (
	"testing"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func exOf(id string) *mlv1.Exchange { return &mlv1.Exchange{Id: id} }

// step is one input of a join scenario: a record of side for id at offset
// seconds, or a tick (id "") at offset seconds.
type step struct {
	at   int // seconds after t0
	side Side
	id   string
}

func TestJoinWindow(t *testing.T) {
	tests := []struct {
		name      string
		secondary bool
		max       int
		steps     []step
		// want lists, per step, the ids completed or expired at it ("" none),
		// and outcomes the add outcome of record steps.
		want     []string
		outcomes []addOutcome
	}{
		{name: "primary first", steps: []step{{0, Primary, "a"}, {1, Shadow, "a"}},
			want: []string{"", "a"}, outcomes: []addOutcome{outcomeWaiting, outcomeJoined}},
		{name: "shadow first", steps: []step{{0, Shadow, "a"}, {5, Primary, "a"}},
			want: []string{"", "a"}, outcomes: []addOutcome{outcomeWaiting, outcomeJoined}},
		{name: "shadow never comes", steps: []step{{0, Primary, "a"}, {59, Primary, ""}, {60, Primary, ""}},
			want: []string{"", "", "a"}, outcomes: []addOutcome{outcomeWaiting, 0, 0}},
		{name: "late shadow after missing", steps: []step{{0, Primary, "a"}, {61, Primary, ""}, {62, Shadow, "a"}},
			want: []string{"", "a", ""}, outcomes: []addOutcome{outcomeWaiting, 0, outcomeLate}},
		{name: "duplicate shadow", steps: []step{{0, Shadow, "a"}, {1, Shadow, "a"}, {2, Primary, "a"}},
			want: []string{"", "", "a"}, outcomes: []addOutcome{outcomeWaiting, outcomeDuplicate, outcomeJoined}},
		{name: "duplicate after decision is late", steps: []step{{0, Primary, "a"}, {1, Shadow, "a"}, {2, Shadow, "a"}},
			want: []string{"", "a", ""}, outcomes: []addOutcome{outcomeWaiting, outcomeJoined, outcomeLate}},
		{name: "no id", steps: []step{{0, Primary, ""}},
			want: []string{""}, outcomes: []addOutcome{outcomeInvalid}},
		{name: "waits for the secondary", secondary: true, steps: []step{{0, Primary, "a"}, {1, Shadow, "a"}, {2, Secondary, "a"}},
			want: []string{"", "", "a"}, outcomes: []addOutcome{outcomeWaiting, outcomeWaiting, outcomeJoined}},
		{name: "secondary first", secondary: true, steps: []step{{0, Secondary, "a"}, {1, Shadow, "a"}, {2, Primary, "a"}},
			want: []string{"", "", "a"}, outcomes: []addOutcome{outcomeWaiting, outcomeWaiting, outcomeJoined}},
		{name: "secondary late: decided at the window", secondary: true, steps: []step{{0, Primary, "a"}, {1, Shadow, "a"}, {60, Primary, ""}},
			want: []string{"", "", "a"}, outcomes: []addOutcome{outcomeWaiting, outcomeWaiting, 0}},
		{name: "window counts from the first record", steps: []step{{0, Primary, "a"}, {30, Primary, "b"}, {60, Primary, ""}, {90, Primary, ""}},
			want: []string{"", "", "a", "b"}, outcomes: []addOutcome{outcomeWaiting, outcomeWaiting, 0, 0}},
		{name: "max pending evicts the oldest", max: 2, steps: []step{{0, Primary, "a"}, {1, Primary, "b"}, {2, Primary, "c"}, {3, Primary, ""}},
			want: []string{"", "", "", "a"}, outcomes: []addOutcome{outcomeWaiting, outcomeWaiting, outcomeWaiting, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := newJoiner(time.Minute, tc.secondary, tc.max)
			for i, st := range tc.steps {
				now := t0.Add(time.Duration(st.at) * time.Second)
				got := ""
				if st.id == "" && tc.outcomes[i] == 0 {
					for _, e := range j.expire(now) {
						got += e.id
					}
				} else {
					e, out := j.add(st.side, exOf(st.id), Ref{Offset: int64(i)}, now)
					if out != tc.outcomes[i] {
						t.Errorf("step %d: outcome %d, want %d", i, out, tc.outcomes[i])
					}
					if e != nil {
						got = e.id
					}
				}
				if got != tc.want[i] {
					t.Errorf("step %d: decided %q, want %q", i, got, tc.want[i])
				}
			}
		})
	}
}

func TestJoinDrop(t *testing.T) {
	j := newJoiner(time.Minute, false, 0)
	j.add(Primary, exOf("a"), Ref{Topic: "clean", Partition: 0}, t0)
	j.add(Primary, exOf("b"), Ref{Topic: "clean", Partition: 1}, t0)
	if n := j.drop(func(r Ref) bool { return r.Partition == 1 }); n != 1 || j.len() != 1 {
		t.Fatalf("dropped %d, %d left", n, j.len())
	}
	// A dropped exchange is not "decided": its records are welcome again.
	if _, out := j.add(Primary, exOf("b"), Ref{}, t0); out != outcomeWaiting {
		t.Fatalf("re-added dropped exchange: outcome %d", out)
	}
}
