package main

import (
	"testing"
	"time"
)

func TestDialsInBurstsCountsOnlyConnectionsOpenedInABurst(t *testing.T) {
	c := makeBursts(3, 5, time.Millisecond, 200*time.Millisecond, 300*time.Millisecond, 1)
	start := time.Unix(1000, 0)
	at := func(i int, d time.Duration) time.Time { return start.Add(c.planned(i, 0) + d) }
	for _, tc := range []struct {
		name    string
		accepts []time.Time
		want    int
	}{
		{"none", nil, 0},
		{"warmed 50 ms ahead of each burst", []time.Time{at(0, -50*time.Millisecond), at(5, -50*time.Millisecond), at(10, -50*time.Millisecond)}, 0},
		{"at a burst's first request", []time.Time{at(5, 0)}, 1},
		{"inside a burst and just after its last request", []time.Time{at(2, 0), at(9, 8*time.Millisecond)}, 2},
		{"in a pause, well after a burst", []time.Time{at(4, 30*time.Millisecond)}, 0},
		{"just before a burst", []time.Time{at(10, -3*time.Millisecond)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.dialsInBursts(start, 0, tc.accepts); got != tc.want {
				t.Fatalf("dialsInBursts = %d, want %d", got, tc.want)
			}
		})
	}
}
