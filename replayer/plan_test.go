package replayer

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestPlanShare(t *testing.T) {
	p := Plan{Ranges: []Range{{Partition: 0}, {Partition: 1}, {Partition: 2}, {Partition: 3}, {Partition: 4}}}
	tests := []struct {
		worker, workers int
		want            []int32
	}{
		{0, 1, []int32{0, 1, 2, 3, 4}},
		{0, 2, []int32{0, 2, 4}},
		{1, 2, []int32{1, 3}},
		{2, 3, []int32{2}},
		{5, 6, nil},
	}
	for _, tc := range tests {
		var got []int32
		for _, r := range p.Share(tc.worker, tc.workers) {
			got = append(got, r.Partition)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Share(%d, %d) = %v, want %v", tc.worker, tc.workers, got, tc.want)
		}
	}
}

func TestCheckWinner(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	params := JobParams("mirror.clean.s", "-15m", "now", "rate 100/s", 2, "")
	ours := Plan{Job: "j", Params: params, Start: now.Add(5 * time.Second), Ends: now.Add(time.Minute)}
	tests := []struct {
		name   string
		winner Plan
		err    error
	}{
		{"our own proposal", ours, nil},
		{"another worker's, same parameters", Plan{Job: "j", Params: params, Start: now.Add(-time.Second), Ends: now.Add(time.Minute)}, nil},
		{"other parameters", Plan{Job: "j", Params: JobParams("mirror.clean.s", "-15m", "now", "rate 200/s", 2, ""), Start: now, Ends: now.Add(time.Minute)}, ErrJobConflict},
		{"ended long ago", Plan{Job: "j", Params: params, Start: now.Add(-time.Hour), Ends: now.Add(-10 * time.Minute)}, ErrJobOver},
		{"ended within the last minute", Plan{Job: "j", Params: params, Start: now.Add(-time.Hour), Ends: now.Add(-30 * time.Second)}, nil},
	}
	for _, tc := range tests {
		got, err := checkWinner(tc.winner, ours, now)
		if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("%s: error %v, want %v", tc.name, err, tc.err)
		}
		if err == nil && !got.Start.Equal(tc.winner.Start) {
			t.Errorf("%s: adopted start %s, want the winner's %s", tc.name, got.Start, tc.winner.Start)
		}
	}
}

// The JSON report reads back as the summary it was written from; its text
// and JSON, byte for byte, are TestSummaryGolden's.
func TestSummaryOutput(t *testing.T) {
	sum := &Summary{Job: "nightly", Instance: "h-1", Worker: 1, Workers: 2, Topic: "mirror.clean.s", Timing: "speed 5x",
		Target: "http://127.0.0.1:8082", Offsets: 12, Scheduled: 10, Sent: 9, Dropped: 1, Late: 2,
		Status: map[string]int64{"2xx": 8, "5xx": 1}, Errors: map[string]int64{"decode": 2},
		AskedRate: 100, AchievedRate: 99.5, PlannedSpan: 0.09, SendSpan: 0.0804,
		Latency: Quantiles{Count: 9, P50: 0.001, P90: 0.002, P99: 0.003, P999: 0.003, Max: 0.004}, ScheduleLag: Quantiles{Count: 9, Max: 0.012}}
	var js bytes.Buffer
	if err := sum.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Summary
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Sent != 9 || back.Latency.P99 != 0.003 || back.Status["5xx"] != 1 {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}
