package replayer

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Unit is what a Profile paces.
type Unit int

const (
	// CaptureTime keeps the captured inter-arrival times: a record's progress is
	// the seconds of capture time since the window start, and a step's PerSecond
	// is a speed (2 = twice as fast as captured).
	CaptureTime Unit = iota
	// Records ignores capture times and sends at a fixed rate: a record's
	// progress is its position, and a step's PerSecond is records per second.
	Records
)

// Step is one stage of a Profile.
type Step struct {
	// For is how long the step lasts in wall time; the last step of a profile
	// lasts until the replay ends and its For is ignored.
	For time.Duration
	// PerSecond is the pace during the step: a speed (CaptureTime) or a rate in
	// records per second (Records). Always positive.
	PerSecond float64
}

// Profile is the pace of a window replay: a piecewise constant speed or rate
// over wall time since the job start. See ParseTiming.
type Profile struct {
	Unit  Unit
	Steps []Step
	// Spec is the canonical text of the profile ("speed 10x", "rate 500/s",
	// "ramp 1x..10x/10m:10").
	Spec string
}

// Speed returns the profile of a constant speed (1 = the captured timing).
func Speed(x float64) Profile {
	return Profile{Unit: CaptureTime, Steps: []Step{{PerSecond: x}}, Spec: "speed " + formatSpeed(x)}
}

// Rate returns the profile of a constant rate in records per second.
func Rate(perSecond float64) Profile {
	return Profile{Unit: Records, Steps: []Step{{PerSecond: perSecond}}, Spec: "rate " + FormatRate(perSecond)}
}

// Offset returns when, after the job start, a record of the given progress is
// due: the wall time at which the integral of the pace reaches progress.
// Progress below zero is due at once.
func (p Profile) Offset(progress float64) time.Duration {
	if progress <= 0 || len(p.Steps) == 0 {
		return 0
	}
	wall, left := 0.0, progress
	for i, s := range p.Steps {
		span := s.For.Seconds()
		if i == len(p.Steps)-1 || left <= s.PerSecond*span {
			wall += left / s.PerSecond
			break
		}
		left -= s.PerSecond * span
		wall += span
	}
	return time.Duration(math.Round(wall * 1e9))
}

// MaxPerSecond is the fastest pace of the profile.
func (p Profile) MaxPerSecond() float64 {
	m := 0.0
	for _, s := range p.Steps {
		m = math.Max(m, s.PerSecond)
	}
	return m
}

// String returns the canonical spec.
func (p Profile) String() string { return p.Spec }

// ParseTiming builds the profile of the --speed, --rate and --ramp flags (at
// most one may be set; none means the captured timing, speed 1x). Errors name
// the flag.
func ParseTiming(speed, rate, ramp string) (Profile, error) {
	if (speed != "" && rate != "") || (ramp != "" && (speed != "" || rate != "")) {
		return Profile{}, errors.New("speed, rate, ramp: give at most one of --speed, --rate and --ramp")
	}
	switch {
	case speed != "":
		x, err := ParseSpeed(speed)
		if err != nil {
			return Profile{}, fmt.Errorf("speed: %w", err)
		}
		return Speed(x), nil
	case rate != "":
		r, err := ParseRate(rate)
		if err != nil {
			return Profile{}, fmt.Errorf("rate: %w", err)
		}
		return Rate(r), nil
	case ramp != "":
		p, err := ParseRamp(ramp)
		if err != nil {
			return Profile{}, fmt.Errorf("ramp: %w", err)
		}
		return p, nil
	}
	return Speed(1), nil
}

// ParseSpeed parses a speed factor such as "10x", "0.5x" or "1x" (the "x" may
// be left out). It must be positive and at most 1,000,000.
func ParseSpeed(s string) (float64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(s), "x"), "X")
	x, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, fmt.Errorf("%q is not a speed like 10x or 0.5x", s)
	}
	if x <= 0 || x > 1e6 {
		return 0, fmt.Errorf("%q: speed must be above 0x and at most 1000000x", s)
	}
	return x, nil
}

// ParseRate parses a rate such as "500/s", "30000/m", "2/ms" or "1000/h" (a
// bare number is per second) into records per second. It must be positive.
func ParseRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	per := time.Second
	if i := strings.IndexByte(t, '/'); i >= 0 {
		var ok bool
		if per, ok = rateUnits[t[i+1:]]; !ok {
			return 0, fmt.Errorf("%q: unit %q is not one of /ms, /s, /m, /h", s, t[i+1:])
		}
		t = t[:i]
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, fmt.Errorf("%q is not a rate like 500/s", s)
	}
	r := n / per.Seconds()
	if r <= 0 || r > 1e7 {
		return 0, fmt.Errorf("%q: rate must be above 0/s and at most 10000000/s", s)
	}
	return r, nil
}

var rateUnits = map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "sec": time.Second, "m": time.Minute, "min": time.Minute, "h": time.Hour}

// DefaultRampSteps is how many steps a ramp has when its spec does not say.
const DefaultRampSteps = 10

// ParseRamp parses "FROM..TO/DURATION[:STEPS]", where FROM and TO are both
// speeds ("1x..10x/10m") or both rates ("100/s..1000/s/5m:5"). The ramp has
// STEPS (default 10, 2..1000) equal steps of DURATION/STEPS; step k (from 0)
// runs at FROM + (TO-FROM)*k/(STEPS-1), so the first step is FROM and the last
// is TO; the pace stays at TO after DURATION until the replay ends. For
// 1x..10x/10m that is 1x for the first minute, 2x for the second, ... and 10x
// from minute 9 on.
func ParseRamp(s string) (Profile, error) {
	bad := fmt.Errorf("%q is not a ramp like 1x..10x/10m or 100/s..1000/s/5m:5", s)
	lo, rest, ok := strings.Cut(strings.TrimSpace(s), "..")
	if !ok {
		return Profile{}, bad
	}
	steps := DefaultRampSteps
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		n, err := strconv.Atoi(rest[i+1:])
		if err != nil || n < 2 || n > 1000 {
			return Profile{}, fmt.Errorf("%q: steps must be a whole number from 2 to 1000", s)
		}
		steps, rest = n, rest[:i]
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return Profile{}, bad
	}
	hi, durText := rest[:i], rest[i+1:]
	d, err := time.ParseDuration(durText)
	if err != nil || d <= 0 {
		return Profile{}, fmt.Errorf("%q: duration %q must be positive, like 10m", s, durText)
	}
	var (
		unit   Unit
		parse  func(string) (float64, error)
		format func(float64) string
		a, b   float64
	)
	isSpeed := func(v string) bool { return strings.HasSuffix(v, "x") || strings.HasSuffix(v, "X") }
	switch {
	case isSpeed(lo) && isSpeed(hi):
		unit, parse, format = CaptureTime, ParseSpeed, formatSpeed
	case strings.Contains(lo, "/") && strings.Contains(hi, "/"):
		unit, parse, format = Records, ParseRate, FormatRate
	default:
		return Profile{}, fmt.Errorf("%q: both ends must be speeds (1x..10x) or both rates (100/s..1000/s)", s)
	}
	if a, err = parse(lo); err == nil {
		b, err = parse(hi)
	}
	if err != nil {
		return Profile{}, fmt.Errorf("%q: %w", s, err)
	}
	p := Profile{Unit: unit, Spec: fmt.Sprintf("ramp %s..%s/%s:%d", format(a), format(b), d, steps)}
	each := d / time.Duration(steps)
	for k := 0; k < steps; k++ {
		p.Steps = append(p.Steps, Step{For: each, PerSecond: a + (b-a)*float64(k)/float64(steps-1)})
	}
	return p, nil
}

// ParseWhen parses a window bound: RFC 3339 ("2026-05-01T10:00:00Z", with
// fractional seconds or an offset), "now", or a duration relative to now
// ("-15m", "+1h", "now-90s"). Relative durations need their sign.
func ParseWhen(s string, now time.Time) (time.Time, error) {
	t := strings.TrimSpace(s)
	if t == "now" {
		return now, nil
	}
	rel := strings.TrimPrefix(t, "now")
	if strings.HasPrefix(rel, "-") || strings.HasPrefix(rel, "+") {
		d, err := time.ParseDuration(rel)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q: relative time %q is not a duration like -15m: %w", s, rel, err)
		}
		return now.Add(d), nil
	}
	at, err := time.Parse(time.RFC3339Nano, t)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not RFC 3339 (2006-01-02T15:04:05Z), now, or relative like -15m", s)
	}
	return at, nil
}

// FormatRate renders records per second as the shortest of "N/s", "N/m", "N/h".
func FormatRate(r float64) string {
	switch {
	case r >= 1 || r == 0:
		return strconv.FormatFloat(r, 'f', -1, 64) + "/s"
	case r*60 >= 1:
		return strconv.FormatFloat(r*60, 'f', -1, 64) + "/m"
	}
	return strconv.FormatFloat(r*3600, 'f', -1, 64) + "/h"
}

func formatSpeed(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) + "x" }
