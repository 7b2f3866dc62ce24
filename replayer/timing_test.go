package replayer

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseSpeed(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		err  string
	}{
		{"10x", 10, ""},
		{"1x", 1, ""},
		{"0.5x", 0.5, ""},
		{"2.5X", 2.5, ""},
		{"3", 3, ""},
		{" 4x ", 4, ""},
		{"0x", 0, "above 0x"},
		{"-2x", 0, "above 0x"},
		{"2000000x", 0, "at most"},
		{"fast", 0, "not a speed"},
		{"x", 0, "not a speed"},
		{"NaNx", 0, "not a speed"},
		{"Infx", 0, "not a speed"},
	}
	for _, tc := range tests {
		got, err := ParseSpeed(tc.in)
		if !errMatches(err, tc.err) || got != tc.want {
			t.Errorf("ParseSpeed(%q) = %v, %v; want %v, error containing %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		err  string
	}{
		{"500/s", 500, ""},
		{"500", 500, ""},
		{"500/sec", 500, ""},
		{"30000/m", 500, ""},
		{"60/min", 1, ""},
		{"3600/h", 1, ""},
		{"2/ms", 2000, ""},
		{"0.5/s", 0.5, ""},
		{"0/s", 0, "above 0/s"},
		{"-1/s", 0, "above 0/s"},
		{"500/d", 0, "unit \"d\""},
		{"lots/s", 0, "not a rate"},
		{"1e9/s", 0, "at most"},
	}
	for _, tc := range tests {
		got, err := ParseRate(tc.in)
		if !errMatches(err, tc.err) || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("ParseRate(%q) = %v, %v; want %v, error containing %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseRamp(t *testing.T) {
	tests := []struct {
		in    string
		unit  Unit
		steps []float64 // PerSecond of each step
		each  time.Duration
		spec  string
		err   string
	}{
		{in: "1x..10x/10m", unit: CaptureTime, steps: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, each: time.Minute, spec: "ramp 1x..10x/10m0s:10"},
		{in: "1x..3x/30s:3", unit: CaptureTime, steps: []float64{1, 2, 3}, each: 10 * time.Second, spec: "ramp 1x..3x/30s:3"},
		{in: "4x..1x/4s:4", unit: CaptureTime, steps: []float64{4, 3, 2, 1}, each: time.Second, spec: "ramp 4x..1x/4s:4"},
		{in: "100/s..1000/s/5m:4", unit: Records, steps: []float64{100, 400, 700, 1000}, each: 75 * time.Second, spec: "ramp 100/s..1000/s/5m0s:4"},
		{in: "60/m..120/m/1m:2", unit: Records, steps: []float64{1, 2}, each: 30 * time.Second, spec: "ramp 1/s..2/s/1m0s:2"},
		{in: "1x-10x/10m", err: "not a ramp"},
		{in: "1x..10x", err: "not a ramp"},
		{in: "1x..10x/soon", err: "duration"},
		{in: "1x..10x/0s", err: "must be positive"},
		{in: "1x..10x/10m:1", err: "steps"},
		{in: "1x..10x/10m:x", err: "steps"},
		{in: "1x..100/s/10m", err: "both ends"},
		{in: "0x..10x/10m", err: "above 0x"},
	}
	for _, tc := range tests {
		p, err := ParseRamp(tc.in)
		if !errMatches(err, tc.err) {
			t.Errorf("ParseRamp(%q): error %v, want containing %q", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if p.Unit != tc.unit || len(p.Steps) != len(tc.steps) || p.Spec != tc.spec {
			t.Errorf("ParseRamp(%q) = %+v; want unit %v, %d steps, spec %q", tc.in, p, tc.unit, len(tc.steps), tc.spec)
			continue
		}
		for i, s := range p.Steps {
			if math.Abs(s.PerSecond-tc.steps[i]) > 1e-9 || s.For != tc.each {
				t.Errorf("ParseRamp(%q) step %d = %+v; want %v for %s", tc.in, i, s, tc.steps[i], tc.each)
			}
		}
	}
}

func TestParseTiming(t *testing.T) {
	tests := []struct {
		speed, rate, ramp string
		spec              string
		err               string
	}{
		{spec: "speed 1x"},
		{speed: "5x", spec: "speed 5x"},
		{rate: "500/s", spec: "rate 500/s"},
		{rate: "30/m", spec: "rate 30/m"},
		{ramp: "1x..2x/1m:2", spec: "ramp 1x..2x/1m0s:2"},
		{speed: "5x", rate: "1/s", err: "at most one"},
		{speed: "fast", err: "speed:"},
		{rate: "fast", err: "rate:"},
		{ramp: "fast", err: "ramp:"},
	}
	for _, tc := range tests {
		p, err := ParseTiming(tc.speed, tc.rate, tc.ramp)
		if !errMatches(err, tc.err) || (err == nil && p.Spec != tc.spec) {
			t.Errorf("ParseTiming(%q, %q, %q) = %q, %v; want %q, error containing %q", tc.speed, tc.rate, tc.ramp, p.Spec, err, tc.spec, tc.err)
		}
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		err  string
	}{
		{"now", now, ""},
		{"-15m", now.Add(-15 * time.Minute), ""},
		{"+1h", now.Add(time.Hour), ""},
		{"now-90s", now.Add(-90 * time.Second), ""},
		{"-1h30m", now.Add(-90 * time.Minute), ""},
		{"2026-05-01T10:00:00Z", time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), ""},
		{"2026-05-01T10:00:00.250+02:00", time.Date(2026, 5, 1, 8, 0, 0, 250e6, time.UTC), ""},
		{"15m", time.Time{}, "not RFC 3339"},
		{"yesterday", time.Time{}, "not RFC 3339"},
		{"-15 minutes", time.Time{}, "not a duration"},
		{"2026-05-01 10:00", time.Time{}, "not RFC 3339"},
	}
	for _, tc := range tests {
		got, err := ParseWhen(tc.in, now)
		if !errMatches(err, tc.err) || !got.Equal(tc.want) {
			t.Errorf("ParseWhen(%q) = %v, %v; want %v, error containing %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestProfileOffset(t *testing.T) {
	ramp, err := ParseRamp("1x..3x/30s:3") // 1x for 10s, 2x for 10s, then 3x
	if err != nil {
		t.Fatal(err)
	}
	rateRamp, err := ParseRamp("10/s..30/s/3s:3") // 10/s for 1s, 20/s for 1s, then 30/s
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		p        Profile
		progress float64
		want     time.Duration
	}{
		{"speed 1x", Speed(1), 12.5, 12500 * time.Millisecond},
		{"speed 10x of 20s", Speed(10), 20, 2 * time.Second},
		{"speed 0.5x", Speed(0.5), 3, 6 * time.Second},
		{"negative progress is due at once", Speed(2), -3, 0},
		{"rate 500/s record 0", Rate(500), 0, 0},
		{"rate 500/s record 1000", Rate(500), 1000, 2 * time.Second},
		{"ramp within first step", ramp, 5, 5 * time.Second},
		{"ramp end of first step", ramp, 10, 10 * time.Second},
		{"ramp in second step", ramp, 20, 15 * time.Second},    // 10s at 1x + 5s at 2x
		{"ramp in last step", ramp, 36, 22 * time.Second},      // 10 + 10 (20 capture s) + 6/3
		{"ramp past its duration", ramp, 60, 30 * time.Second}, // 10 + 10 + 30/3
		{"rate ramp", rateRamp, 10, time.Second},
		{"rate ramp second step", rateRamp, 20, 1500 * time.Millisecond},
		{"rate ramp last step", rateRamp, 60, 3 * time.Second}, // 10 + 20 + 30
	}
	for _, tc := range tests {
		if got := tc.p.Offset(tc.progress); got != tc.want {
			t.Errorf("%s: Offset(%v) = %s, want %s", tc.name, tc.progress, got, tc.want)
		}
	}
}

func TestScheduleAt(t *testing.T) {
	from := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	// Worker 1 of 2 holding a quarter of the job's offsets: at a job rate of
	// 400/s it sends 100/s, half an interval after worker 0's slots.
	rate := NewSchedule(Rate(400), from, 0.25, 0.5)
	single := NewSchedule(Rate(400), from, 1, 0)
	speed := NewSchedule(Speed(10), from, 0.25, 0.5)
	ramp, err := ParseRamp("100/s..200/s/2s:2") // job: 100/s for 1s, then 200/s
	if err != nil {
		t.Fatal(err)
	}
	rampHalf := NewSchedule(ramp, from, 0.5, 0)
	tests := []struct {
		name    string
		s       *Schedule
		index   int64
		capture time.Time
		want    time.Duration
	}{
		{"rate: single worker, first", single, 0, from, 0},
		{"rate: single worker, 400th", single, 400, from, time.Second},
		{"rate: worker share, first", rate, 0, from, 5 * time.Millisecond},
		{"rate: worker share, 100th", rate, 100, from, 1005 * time.Millisecond},
		{"rate: capture time does not matter", rate, 100, from.Add(time.Hour), 1005 * time.Millisecond},
		{"ramp: half share, in the first step", rampHalf, 25, from, 500 * time.Millisecond},
		{"ramp: half share, in the last step", rampHalf, 100, from, 1500 * time.Millisecond}, // job progress 200: 100 in 1s, 100 at 200/s
		{"speed: capture 20s in", speed, 7, from.Add(20 * time.Second), 2 * time.Second},
		{"speed: share and index do not matter", speed, 0, from.Add(20 * time.Second), 2 * time.Second},
		{"speed: ns capture", speed, 1, from.Add(1500 * time.Microsecond), 150 * time.Microsecond},
		{"speed: out of order before the window start", speed, 1, from.Add(-time.Second), 0},
	}
	for _, tc := range tests {
		if got := tc.s.At(tc.index, tc.capture); got != tc.want {
			t.Errorf("%s: At = %s, want %s", tc.name, got, tc.want)
		}
	}
	if got := single.Span(400, from.Add(time.Minute)); got != time.Second {
		t.Errorf("rate span = %s, want 1s", got)
	}
	if got := speed.Span(400, from.Add(time.Minute)); got != 6*time.Second {
		t.Errorf("speed span = %s, want 6s", got)
	}
	all := []Range{{Partition: 0, Start: 0, End: 300}, {Partition: 1, Start: 10, End: 110}, {Partition: 2, Start: 5, End: 5}}
	for _, tc := range []struct {
		mine []Range
		want float64
	}{
		{all, 1},
		{all[1:2], 0.25},
		{all[2:], 1}, // nothing to send: any share
		{nil, 1},
	} {
		if got := ShareOf(tc.mine, all); got != tc.want {
			t.Errorf("ShareOf(%v) = %v, want %v", tc.mine, got, tc.want)
		}
	}
}

func TestFormatRate(t *testing.T) {
	for in, want := range map[float64]string{500: "500/s", 1: "1/s", 0.5: "30/m", 1.0 / 3600: "1/h", 10000: "10000/s"} {
		if got := FormatRate(in); got != want {
			t.Errorf("FormatRate(%v) = %q, want %q", in, got, want)
		}
	}
}

func errMatches(err error, want string) bool {
	if want == "" {
		return err == nil
	}
	return err != nil && strings.Contains(err.Error(), want)
}
