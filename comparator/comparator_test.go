package comparator

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

func primaryEx(id, method, url string, r *mlv1.Response) *mlv1.Exchange {
	return &mlv1.Exchange{Id: id, ConnectionId: "c-" + id, CaptureTimeNs: t0.UnixNano(), Request: &mlv1.Request{Method: method, Url: url}, Response: r}
}

func shadowEx(id, method, url, job string, r *mlv1.Response) *mlv1.Exchange {
	return &mlv1.Exchange{Id: id, ConnectionId: "c-" + id, CaptureTimeNs: t0.UnixNano(), Source: mlv1.Source_SOURCE_REPLAYER,
		Request: &mlv1.Request{Method: method, Url: url}, Response: r, Replay: &mlv1.Replay{Job: job, Instance: "r1"}}
}

// noWarmup decides every exchange at once.
func noWarmup() Config { return Config{Noise: NoiseConfig{Warmup: boolPtr(false)}} }

func mustNew(t testing.TB, cfg Config, opts ...Option) *Comparator {
	t.Helper()
	c, err := New("payments", cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerdicts(t *testing.T) {
	const j = "application/json"
	errResp := &mlv1.Response{Error: `Post "http://shadow/payments?email=zoe%40example.com": dial tcp: connection refused`}
	tests := []struct {
		name       string
		p, s       *mlv1.Response
		noShadow   bool
		want       mlv1.Verdict
		wantReason string
	}{
		{name: "same", p: resp(200, j, `{"a":1}`), s: resp(200, j, `{"a":1}`), want: mlv1.Verdict_VERDICT_SAME},
		{name: "different body", p: resp(200, j, `{"a":1}`), s: resp(200, j, `{"a":2}`), want: mlv1.Verdict_VERDICT_DIFFERENT},
		{name: "different status", p: resp(201, j, `{}`), s: resp(422, j, `{}`), want: mlv1.Verdict_VERDICT_DIFFERENT},
		{name: "both 5xx are compared", p: resp(503, j, `{"e":1}`), s: resp(503, j, `{"e":1}`), want: mlv1.Verdict_VERDICT_SAME},
		{name: "shadow transport error", p: resp(200, j, `{}`), s: errResp, want: mlv1.Verdict_VERDICT_SHADOW_ERROR, wantReason: "shadow: connection refused"},
		{name: "shadow 5xx", p: resp(200, j, `{}`), s: resp(500, j, `{}`), want: mlv1.Verdict_VERDICT_SHADOW_ERROR, wantReason: "shadow: status 500"},
		{name: "primary transport error", p: &mlv1.Response{Status: 502, Error: "context deadline exceeded"}, s: resp(200, j, `{}`), want: mlv1.Verdict_VERDICT_PRIMARY_ERROR, wantReason: "primary: timeout"},
		{name: "primary 5xx", p: resp(500, j, `{}`), s: resp(200, j, `{}`), want: mlv1.Verdict_VERDICT_PRIMARY_ERROR, wantReason: "primary: status 500"},
		{name: "no primary response recorded", p: nil, s: resp(200, j, `{}`), want: mlv1.Verdict_VERDICT_PRIMARY_ERROR, wantReason: "no primary response recorded"},
		{name: "missing shadow", p: resp(200, j, `{}`), noShadow: true, want: mlv1.Verdict_VERDICT_MISSING, wantReason: "no shadow response within 1m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := noWarmup()
			cfg.JoinWindow = time.Minute
			c := mustNew(t, cfg)
			ds, kept := c.Add(Primary, primaryEx("x", "POST", "/payments", tc.p), Ref{Offset: 1}, t0)
			if !kept || len(ds) != 0 {
				t.Fatalf("primary: kept %v, %d decisions", kept, len(ds))
			}
			if !tc.noShadow {
				ds, _ = c.Add(Shadow, shadowEx("x", "POST", "/payments", "live", tc.s), Ref{Offset: 2}, t0.Add(time.Second))
			} else {
				if ds = c.Tick(t0.Add(59 * time.Second)); len(ds) != 0 {
					t.Fatalf("decided before the window passed")
				}
				ds = c.Tick(t0.Add(time.Minute))
			}
			if len(ds) != 1 {
				t.Fatalf("%d decisions, want 1", len(ds))
			}
			d := ds[0].Diff
			if d.Verdict != tc.want || d.Reason != tc.wantReason {
				t.Errorf("verdict %s %q, want %s %q", VerdictLabel(d.Verdict), d.Reason, VerdictLabel(tc.want), tc.wantReason)
			}
			if d.Endpoint != "POST /payments" || d.Id != "x" || d.ConnectionId != "c-x" || d.CaptureTimeNs != t0.UnixNano() {
				t.Errorf("record identity: %+v", d)
			}
			if strings.Contains(d.String(), "zoe") || strings.Contains(d.String(), "http://shadow") {
				t.Errorf("diff record carries payload from an error text: %s", d)
			}
			if c.Pending() != 0 {
				t.Errorf("pending %d after decision", c.Pending())
			}
			if want := len(map[bool]int{true: 1, false: 2}); len(ds[0].Refs) != want-boolInt(tc.noShadow) {
				t.Errorf("refs %v", ds[0].Refs)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// testUUID returns a UUID that differs for every (what, i) and is the same
// on every run, so reports built from test exchanges can be golden files.
func testUUID(what string, i int) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%s %d", what, i)).String()
}

// payment returns the demo service's POST /payments answers for one
// exchange: v1's 201, and v2's 201 or (for a non-ASCII address) 422.
func payment(i int, regressed bool) (p, s *mlv1.Response) {
	ts := func(d int) string { return t0.Add(time.Duration(i*1000+d) * time.Millisecond).Format(time.RFC3339Nano) }
	body := func(id, at string) string {
		return fmt.Sprintf(`{"id":%q,"status":"authorized","created_at":%q,"amount":%d,"currency":"EUR","card_last4":"1111"}`, id, at, 100+i)
	}
	p = resp(201, "application/json", body(testUUID("payment primary", i), ts(0)))
	p.LatencyNs = int64(4 * time.Millisecond)
	if regressed {
		s = resp(422, "application/json", `{"error":"invalid address"}`)
	} else {
		s = resp(201, "application/json", body(testUUID("payment shadow", i), ts(3)))
	}
	s.LatencyNs = int64(time.Millisecond)
	return p, s
}

// TestNoiseLearnedWithoutSecondary: ids and timestamps differing in every
// exchange are learned as noise; the 422 regression is not; decisions wait
// for the warm-up and are then judged with what was learned.
func TestNoiseLearnedWithoutSecondary(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	c := mustNew(t, Config{}, WithMetrics(m))
	var decided []*mlv1.Diff
	for i := range 50 {
		p, s := payment(i, i%5 < 2)
		id := fmt.Sprintf("ex-%02d", i)
		now := t0.Add(time.Duration(i) * time.Millisecond)
		c.Add(Primary, primaryEx(id, "POST", "/payments", p), Ref{Offset: int64(i)}, now)
		ds, _ := c.Add(Shadow, shadowEx(id, "POST", "/payments", "live", s), Ref{Offset: int64(i)}, now)
		if i < DefaultNoiseMinSamples-1 && len(ds) != 0 {
			t.Fatalf("exchange %d decided during warm-up", i)
		}
		if i == DefaultNoiseMinSamples-1 && len(ds) != DefaultNoiseMinSamples {
			t.Fatalf("warm-up released %d decisions, want %d", len(ds), DefaultNoiseMinSamples)
		}
		for _, d := range ds {
			decided = append(decided, d.Diff)
		}
	}
	if len(decided) != 50 {
		t.Fatalf("%d decided", len(decided))
	}
	for i, d := range decided {
		regressed := i%5 < 2
		want := mlv1.Verdict_VERDICT_SAME
		if regressed {
			want = mlv1.Verdict_VERDICT_DIFFERENT
		}
		if d.Verdict != want {
			t.Fatalf("exchange %d: %s, want %s: %v", i, VerdictLabel(d.Verdict), VerdictLabel(want), d.Differences)
		}
		for _, df := range d.Differences {
			isNoiseField := df.Key == "body.id" || df.Key == "body.created_at"
			if !regressed && df.Noise != isNoiseField {
				t.Fatalf("exchange %d: %s noise=%v", i, df.Field, df.Noise)
			}
			if regressed && df.Noise {
				t.Fatalf("exchange %d: regression difference %s judged noise", i, df.Field)
			}
		}
	}
	if got := testutil.ToFloat64(m.Exchanges.WithLabelValues("same", "POST /payments")); got != 30 {
		t.Errorf("exchanges_total{same} = %v, want 30", got)
	}
	if got := testutil.ToFloat64(m.Exchanges.WithLabelValues("different", "POST /payments")); got != 20 {
		t.Errorf("exchanges_total{different} = %v, want 20", got)
	}
	if n := testutil.CollectAndCount(m.Latency); n != 3 {
		t.Errorf("latency series %d, want 3 (one per side)", n)
	}
}

// TestRareTimestampChangeIsNotNoise: a timestamp that is usually equal but
// sometimes differs is a real difference, whatever it looks like.
func TestRareTimestampChangeIsNotNoise(t *testing.T) {
	c := mustNew(t, Config{})
	var diff int
	for i := range 40 {
		at := "2026-03-01T12:00:00Z"
		sat := at
		if i%10 == 0 {
			sat = "2026-03-01T12:00:05Z"
		}
		id := fmt.Sprintf("e%d", i)
		c.Add(Primary, primaryEx(id, "GET", "/payments/"+id, resp(200, "application/json", `{"updated_at":"`+at+`"}`)), Ref{}, t0)
		ds, _ := c.Add(Shadow, shadowEx(id, "GET", "/payments/"+id, "live", resp(200, "application/json", `{"updated_at":"`+sat+`"}`)), Ref{}, t0)
		for _, d := range ds {
			if d.Diff.Verdict == mlv1.Verdict_VERDICT_DIFFERENT {
				diff++
			}
		}
	}
	if diff != 4 {
		t.Fatalf("%d different, want 4", diff)
	}
}

// TestSecondaryNoise: a field that differs between primary and shadow and
// equally between primary and secondary (card_last4 of a faked card) is
// noise; one the secondary agrees on is reported.
func TestSecondaryNoise(t *testing.T) {
	c := mustNew(t, Config{Secondary: SecondaryConfig{Enabled: true}, Noise: NoiseConfig{Volatile: boolPtr(false)}})
	counts := map[mlv1.Verdict]int{}
	for i := range 40 {
		id := fmt.Sprintf("e%d", i)
		status := "authorized"
		if i%4 == 0 {
			status = "declined" // the shadow's regression
		}
		p := resp(201, "application/json", `{"card_last4":"1111","status":"authorized"}`)
		s := resp(201, "application/json", fmt.Sprintf(`{"card_last4":"%04d","status":%q}`, i, status))
		sec := resp(201, "application/json", fmt.Sprintf(`{"card_last4":"%04d","status":"authorized"}`, i))
		c.Add(Primary, primaryEx(id, "POST", "/payments", p), Ref{}, t0)
		c.Add(Shadow, shadowEx(id, "POST", "/payments", "live", s), Ref{}, t0)
		ds, _ := c.Add(Secondary, shadowEx(id, "POST", "/payments", "secondary", sec), Ref{}, t0)
		for _, d := range ds {
			counts[d.Diff.Verdict]++
			if !d.Diff.Secondary || len(d.Diff.SecondaryDifferences) != 1 || d.Diff.SecondaryDifferences[0].Primary != "" {
				t.Fatalf("secondary evidence: %v", d.Diff.SecondaryDifferences)
			}
		}
	}
	if counts[mlv1.Verdict_VERDICT_SAME] != 30 || counts[mlv1.Verdict_VERDICT_DIFFERENT] != 10 {
		t.Fatalf("verdicts %v, want 30 same, 10 different", counts)
	}
}

// TestWarmupTimeout: an endpoint that never reaches min_samples is decided
// after the join window with what is known.
func TestWarmupTimeout(t *testing.T) {
	c := mustNew(t, Config{JoinWindow: 10 * time.Second})
	for i := range 3 {
		id := fmt.Sprintf("e%d", i)
		c.Add(Primary, primaryEx(id, "GET", "/health", resp(200, "", "ok")), Ref{}, t0)
		if ds, _ := c.Add(Shadow, shadowEx(id, "GET", "/health", "live", resp(200, "", "ok")), Ref{}, t0); len(ds) != 0 {
			t.Fatal("decided during warm-up")
		}
	}
	if c.Pending() != 3 {
		t.Fatalf("pending %d", c.Pending())
	}
	if ds := c.Tick(t0.Add(9 * time.Second)); len(ds) != 0 {
		t.Fatal("released early")
	}
	if ds := c.Tick(t0.Add(10 * time.Second)); len(ds) != 3 || ds[0].Diff.Verdict != mlv1.Verdict_VERDICT_SAME {
		t.Fatalf("released %d", len(ds))
	}
}

func TestScrubber(t *testing.T) {
	scrubbed := 0
	scrub := func(ex *mlv1.Exchange) error {
		scrubbed++
		ex.Response.Body = []byte(strings.ReplaceAll(string(ex.Response.Body), "zoe@example.com", "****"))
		return nil
	}
	c := mustNew(t, noWarmup(), WithScrubber(scrub))
	c.Add(Primary, primaryEx("a", "GET", "/users/1", resp(200, "application/json", `{"email":"****"}`)), Ref{}, t0)
	ds, _ := c.Add(Shadow, shadowEx("a", "GET", "/users/1", "live", resp(200, "application/json", `{"email":"zoe@example.com"}`)), Ref{}, t0)
	if scrubbed != 1 || ds[0].Diff.Verdict != mlv1.Verdict_VERDICT_SAME {
		t.Fatalf("scrubbed %d, verdict %s", scrubbed, VerdictLabel(ds[0].Diff.Verdict))
	}

	failing := mustNew(t, noWarmup(), WithScrubber(func(*mlv1.Exchange) error { return errors.New("unparseable") }))
	failing.Add(Primary, primaryEx("b", "GET", "/users/1", resp(200, "application/json", `{"email":"****"}`)), Ref{}, t0)
	ds, _ = failing.Add(Shadow, shadowEx("b", "GET", "/users/1", "live", resp(200, "application/json", `{"email":"zoe@example.com"}`)), Ref{}, t0)
	d := ds[0].Diff
	if d.Verdict != mlv1.Verdict_VERDICT_SAME || len(d.Differences) != 0 || !strings.Contains(d.Note, "could not be redacted") || strings.Contains(d.String(), "zoe") {
		t.Fatalf("unredactable shadow: %v", d)
	}
}

func TestAlerts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	cfg := noWarmup()
	cfg.Alert = AlertConfig{Window: 10 * time.Second, Rate: 0.1, MinSamples: 20}
	c := mustNew(t, cfg, WithMetrics(m))
	feed := func(n int, differ func(int) bool, at time.Time) {
		for i := range n {
			id := uuid.NewString()
			c.Add(Primary, primaryEx(id, "GET", "/users/7", resp(200, "application/json", `{"v":1}`)), Ref{}, at)
			v := `{"v":1}`
			if differ(i) {
				v = `{"v":2}`
			}
			c.Add(Shadow, shadowEx(id, "GET", "/users/7", "live", resp(200, "application/json", v)), Ref{}, at)
		}
	}
	gauge := func() float64 { return testutil.ToFloat64(m.Alert.WithLabelValues("GET /users/{id}")) }
	feed(10, func(int) bool { return true }, t0)
	c.Tick(t0)
	if gauge() != 0 {
		t.Fatal("alert below min_samples")
	}
	feed(10, func(i int) bool { return i%2 == 0 }, t0.Add(time.Second))
	c.Tick(t0.Add(time.Second))
	if gauge() != 1 {
		t.Fatal("no alert at 75% differing")
	}
	// The differing exchanges leave the window; new ones are the same.
	feed(40, func(int) bool { return false }, t0.Add(12*time.Second))
	c.Tick(t0.Add(12 * time.Second))
	if gauge() != 0 {
		t.Fatal("alert not resolved")
	}
}

func TestDropAndFlush(t *testing.T) {
	c := mustNew(t, Config{})
	c.Add(Primary, primaryEx("a", "GET", "/x", resp(200, "", "")), Ref{Topic: "clean", Partition: 0}, t0)
	c.Add(Primary, primaryEx("b", "GET", "/x", resp(200, "", "")), Ref{Topic: "clean", Partition: 1}, t0)
	c.Add(Shadow, shadowEx("b", "GET", "/x", "live", resp(200, "", "")), Ref{Topic: "shadow", Partition: 1}, t0) // held for warm-up
	if c.Pending() != 2 {
		t.Fatalf("pending %d", c.Pending())
	}
	if n := c.Drop(func(r Ref) bool { return r.Partition == 1 }); n != 1 || c.Pending() != 1 {
		t.Fatalf("dropped %d, pending %d", n, c.Pending())
	}
	ds := c.Flush(t0)
	if len(ds) != 1 || ds[0].Diff.Verdict != mlv1.Verdict_VERDICT_MISSING || c.Pending() != 0 {
		t.Fatalf("flush: %v", ds)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Noise: NoiseConfig{VolatileRatio: 2}}, "noise.volatile_ratio"},
		{Config{Alert: AlertConfig{Rate: 1.5}}, "alert.rate"},
		{Config{Ignore: IgnoreConfig{JSONPaths: []string{"a..b"}}}, "ignore.json_paths[0]"},
		{Config{Endpoints: []string{"nope"}}, "endpoints[0]"},
		{Config{JoinWindow: -time.Second}, "join_window"},
		{Config{Headers: []string{" "}}, "headers[0]"},
		{Config{ShadowJob: "replay-1", Secondary: SecondaryConfig{Enabled: true}}, "shadow_job"},
		{Config{Secondary: SecondaryConfig{Job: LiveJob}}, "shadow_job"},
	}
	for _, tc := range tests {
		err := tc.cfg.WithDefaults().Validate()
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one starting with %q", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if j := (Config{}).WithDefaults().ShadowJob; j != LiveJob {
		t.Errorf("default shadow_job %q, want %q: the live comparator judges only live records", j, LiveJob)
	}
	if err := (Config{ShadowJob: LiveJob, Secondary: SecondaryConfig{Enabled: true}}).WithDefaults().Validate(); err != nil {
		t.Errorf("live with a secondary: %v", err)
	}
}
