package main

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
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

func TestJudgeCountsBurstsLateAsAWhole(t *testing.T) {
	c := makeBursts(3, 5, time.Millisecond, 200*time.Millisecond, 300*time.Millisecond, 1)
	start := time.Unix(1000, 0)
	arr := map[int]time.Time{}
	for i := range c.at {
		late := time.Duration(0)
		switch {
		case i >= 5 && i < 10: // the whole second burst 5 ms late
			late = 5 * time.Millisecond
		case i == 14: // only the third burst's last request late
			late = 10 * time.Millisecond
		}
		arr[i] = start.Add(c.planned(i, 0) + late)
	}
	f := c.judge("mirrorline", 0, start, arr)
	if f.lateBursts != 1 {
		t.Fatalf("lateBursts = %d, want 1 (the second burst only)", f.lateBursts)
	}
	if f.devMax != 10*time.Millisecond || f.devs[7] != 5*time.Millisecond || f.devs[0] != 0 {
		t.Fatalf("devMax %s, devs[7] %s, devs[0] %s: want 10ms, 5ms, 0", f.devMax, f.devs[7], f.devs[0])
	}

	path := filepath.Join(t.TempDir(), "dump.csv")
	if err := c.dump(path, []fidelity{f, f}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(string(b))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+2*len(c.at) {
		t.Fatalf("%d rows, want a header and %d", len(rows), 2*len(c.at))
	}
	want := []string{"mirrorline", "0s", "2", "7", "1", "2", "5000"}
	if got := rows[1+len(c.at)+7]; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("row of the second run's request 7 = %v, want %v", got, want)
	}
}
