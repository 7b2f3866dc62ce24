package comparator

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// diffSummary renders differences as "field kind[ volatile]" lines.
func jsonDiffSummary(t *testing.T, cfg Config, p, s string) ([]string, []string) {
	t.Helper()
	r, err := compileRules(cfg.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	pv, err := parseJSON([]byte(p))
	if err != nil {
		t.Fatalf("primary: %v", err)
	}
	sv, err := parseJSON([]byte(s))
	if err != nil {
		t.Fatalf("shadow: %v", err)
	}
	jd := newJSONDiffer(r.forEndpoint("GET /x"), 100)
	jd.walk(nil, pv, sv)
	var out []string
	for _, d := range jd.out {
		line := d.Field + " " + KindLabel(d.Kind)
		if d.Volatile {
			line += " volatile"
		}
		out = append(out, line)
	}
	var vol []string
	for k := range jd.volatile {
		vol = append(vol, k)
	}
	slices.Sort(vol)
	return out, vol
}

func TestJSONDiff(t *testing.T) {
	unordered := Config{JSON: JSONConfig{UnorderedArrays: true}}
	tests := []struct {
		name    string
		cfg     Config
		p, s    string
		want    []string
		wantVol []string
	}{
		{name: "equal", p: `{"a":1,"b":[1,2]}`, s: `{"b":[1,2],"a":1}`},
		{name: "number forms are equal", p: `{"a":1,"b":1.50}`, s: `{"a":1.0,"b":15e-1}`},
		{name: "field changed", p: `{"a":1,"b":"x"}`, s: `{"a":2,"b":"x"}`, want: []string{"body.a changed"}},
		{name: "field added", p: `{"a":1}`, s: `{"a":1,"error":"invalid address"}`, want: []string{"body.error added"}},
		{name: "field removed", p: `{"a":1,"id":"x"}`, s: `{"a":1}`, want: []string{"body.id removed"}},
		{name: "type changed", p: `{"amount":12}`, s: `{"amount":"12"}`, want: []string{"body.amount type_changed"}},
		{name: "null is a type", p: `{"x":null}`, s: `{"x":{}}`, want: []string{"body.x type_changed"}},
		{name: "root type changed", p: `[]`, s: `{}`, want: []string{"body type_changed"}},
		{name: "nested", p: `{"card":{"last4":"1111","exp":"12/29"}}`, s: `{"card":{"last4":"4444","exp":"12/29"}}`, want: []string{"body.card.last4 changed"}},
		{name: "array element changed", p: `{"items":[{"id":1},{"id":2}]}`, s: `{"items":[{"id":1},{"id":3}]}`, want: []string{"body.items.1.id changed"}},
		{name: "array longer", p: `[1,2]`, s: `[1,2,3]`, want: []string{"body.2 added"}},
		{name: "array shorter", p: `[1,2,3]`, s: `[1]`, want: []string{"body.1 removed", "body.2 removed"}},
		{name: "array order matters by default", p: `[1,2]`, s: `[2,1]`, want: []string{"body.0 changed", "body.1 changed"}},
		{name: "array order ignored", cfg: unordered, p: `{"tags":["a","b","c"]}`, s: `{"tags":["c","a","b"]}`},
		{name: "unordered with a change", cfg: unordered, p: `[{"k":1},{"k":2}]`, s: `[{"k":2},{"k":5}]`, want: []string{"body.0.k changed"}},
		{name: "unordered extra", cfg: unordered, p: `["a"]`, s: `["b","a"]`, want: []string{"body.0 added"}},
		{name: "unordered only at path", cfg: Config{JSON: JSONConfig{UnorderedPaths: []string{"tags"}}}, p: `{"tags":[1,2],"list":[1,2]}`, s: `{"tags":[2,1],"list":[2,1]}`, want: []string{"body.list.0 changed", "body.list.1 changed"}},
		{name: "ignore exact path", cfg: Config{Ignore: IgnoreConfig{JSONPaths: []string{"created_at"}}}, p: `{"created_at":"a","x":1}`, s: `{"created_at":"b","x":1}`},
		{name: "ignore added field", cfg: Config{Ignore: IgnoreConfig{JSONPaths: []string{"debug"}}}, p: `{}`, s: `{"debug":{"t":1}}`},
		{name: "ignore wildcard segment", cfg: Config{Ignore: IgnoreConfig{JSONPaths: []string{"items.*.etag"}}}, p: `{"items":[{"etag":"1","v":1}]}`, s: `{"items":[{"etag":"2","v":2}]}`, want: []string{"body.items.0.v changed"}},
		{name: "ignore deep wildcard", cfg: Config{Ignore: IgnoreConfig{JSONPaths: []string{"**.trace_id"}}}, p: `{"trace_id":"a","m":{"trace_id":"b","n":[{"trace_id":"c"}]}}`, s: `{"trace_id":"x","m":{"trace_id":"y","n":[{"trace_id":"z"}]}}`},
		{name: "ignore glob in segment, case-insensitive", cfg: Config{Ignore: IgnoreConfig{JSONPaths: []string{"*_AT"}}}, p: `{"created_at":"1","updated_at":"2","v":1}`, s: `{"created_at":"3","updated_at":"4","v":1}`},
		{name: "ignore subtree", cfg: Config{Ignore: IgnoreConfig{JSONPaths: []string{"meta"}}}, p: `{"meta":{"a":1}}`, s: `{"meta":{"a":2,"b":3}}`},
		{name: "escaped key", p: `{"a.b":1}`, s: `{"a.b":2}`, want: []string{`body.a\.b changed`}},
		{name: "uuid differs: volatile", p: `{"id":"3f2b8c4e-1a2b-4c3d-9e8f-0123456789ab"}`, s: `{"id":"00000000-1111-4222-8333-444444444444"}`, want: []string{"body.id changed volatile"}, wantVol: []string{"body.id"}},
		{name: "timestamp differs: volatile", p: `{"created_at":"2026-03-01T12:00:00.123456789Z"}`, s: `{"created_at":"2026-03-01T12:00:01.5Z"}`, want: []string{"body.created_at changed volatile"}, wantVol: []string{"body.created_at"}},
		{name: "timestamp format change: not volatile", p: `{"t":"2026-03-01T12:00:00Z"}`, s: `{"t":"1772366400"}`, want: []string{"body.t changed"}, wantVol: []string{"body.t"}},
		{name: "epoch numbers: volatile", p: `{"ts":1772366400123}`, s: `{"ts":1772366401456}`, want: []string{"body.ts changed volatile"}, wantVol: []string{"body.ts"}},
		{name: "plain values: not volatile", p: `{"status":"authorized","amount":1250}`, s: `{"status":"captured","amount":990}`, want: []string{"body.amount changed", "body.status changed"}},
		{name: "equal volatile value counts as present", p: `{"id":"3f2b8c4e-1a2b-4c3d-9e8f-0123456789ab"}`, s: `{"id":"3f2b8c4e-1a2b-4c3d-9e8f-0123456789ab"}`, wantVol: []string{"body.id"}},
		{name: "volatile key of array elements", p: `{"items":[{"id":"01HZY3K6N3V9Q8W7X5Y4Z2A1B0"}]}`, s: `{"items":[{"id":"01HZY3K6N3V9Q8W7X5Y4Z2A1B1"}]}`, want: []string{"body.items.0.id changed volatile"}, wantVol: []string{"body.items.*.id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, vol := jsonDiffSummary(t, tc.cfg, tc.p, tc.s)
			if !slices.Equal(got, tc.want) {
				t.Errorf("differences = %q, want %q", got, tc.want)
			}
			if !slices.Equal(vol, tc.wantVol) {
				t.Errorf("volatile keys = %q, want %q", vol, tc.wantVol)
			}
		})
	}
}

func TestJSONDiffKeysAndValues(t *testing.T) {
	r, _ := compileRules(Config{}.WithDefaults())
	pv, _ := parseJSON([]byte(`{"items":[{"n":"a"},{"n":"b"}],"gone":{"deep":[1,2,3]}}`))
	sv, _ := parseJSON([]byte(`{"items":[{"n":"a"},{"n":"c"}]}`))
	jd := newJSONDiffer(r.forEndpoint("x"), 100)
	jd.walk(nil, pv, sv)
	got := map[string]string{}
	for _, d := range jd.out {
		got[d.Field] = fmt.Sprintf("%s|%s|%s|%s", d.Key, KindLabel(d.Kind), d.Primary, d.Shadow)
	}
	want := map[string]string{
		"body.gone":      `body.gone|removed|{"deep":[1,2,3]}|`,
		"body.items.1.n": `body.items.*.n|changed|"b"|"c"`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestJSONDiffCap(t *testing.T) {
	r, _ := compileRules(Config{}.WithDefaults())
	var p, s strings.Builder
	p.WriteString("[")
	s.WriteString("[")
	for i := range 50 {
		if i > 0 {
			p.WriteString(",")
			s.WriteString(",")
		}
		fmt.Fprintf(&p, "%d", i)
		fmt.Fprintf(&s, "%d", i+1)
	}
	p.WriteString("]")
	s.WriteString("]")
	pv, _ := parseJSON([]byte(p.String()))
	sv, _ := parseJSON([]byte(s.String()))
	jd := newJSONDiffer(r.forEndpoint("x"), 10)
	jd.walk(nil, pv, sv)
	if len(jd.out) != 10 || !jd.truncated {
		t.Errorf("got %d differences (truncated %v), want 10 and truncated", len(jd.out), jd.truncated)
	}
}

func TestPathPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		path    []seg
		want    bool
	}{
		{"a.b", []seg{{s: "a"}, {s: "b"}}, true},
		{"a.b", []seg{{s: "a"}}, false},
		{"a.*", []seg{{s: "a"}, {s: "3", idx: true}}, true},
		{"**.id", []seg{{s: "id"}}, true},
		{"**.id", []seg{{s: "x"}, {s: "0", idx: true}, {s: "id"}}, true},
		{"**", []seg{{s: "x"}, {s: "y"}}, true},
		{"a.**.z", []seg{{s: "a"}, {s: "z"}}, true},
		{"a.**.z", []seg{{s: "a"}, {s: "b"}, {s: "c"}, {s: "z"}}, true},
		{"a.**.z", []seg{{s: "a"}, {s: "b"}}, false},
		{"*_at", []seg{{s: "Created_AT"}}, true},
		{"body.x", []seg{{s: "x"}}, true},
		{`a\.b`, []seg{{s: "a.b"}}, true},
	}
	for _, tc := range tests {
		pp, err := compilePath(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := pp.match(tc.path); got != tc.want {
			t.Errorf("%q match %v = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
	for _, bad := range []string{"", "a..b", "a."} {
		if _, err := compilePath(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestVolatile(t *testing.T) {
	tests := []struct {
		p, s     string
		volatile bool
	}{
		{"3f2b8c4e-1a2b-4c3d-9e8f-0123456789ab", "00000000-1111-4222-8333-444444444444", true},
		{"2026-03-01T12:00:00.123456789Z", "2026-03-01T12:00:00.2Z", true},
		{"2026-03-01T12:00:00+01:00", "2026-03-02T08:30:00+01:00", true},
		{"Sun, 01 Mar 2026 12:00:00 GMT", "Sun, 01 Mar 2026 12:00:07 GMT", true},
		{"order 3f2b8c4e-1a2b-4c3d-9e8f-0123456789ab created", "order 00000000-1111-4222-8333-444444444444 created", true},
		{"req_9f86d081884c7d65", "req_0a1b2c3d4e5f6a7b", true},
		{"tok_a8Kd92LmQpZ7xY3nB1cV", "tok_Zq81mNc7Lp02xVb4KdRt", true},
		{"1772366400", "1772366401", true},
		{"authorized", "captured", false},
		{"1111", "4444", false},
		{"2026-03-01T12:00:00Z", "1772366400", false},
		{"same", "same", false},
		{"Straße 1, Berlin", "Straße 2, Berlin", false},
		{"3f2b8c4e-1a2b-4c3d-9e8f-0123456789ab", "3f2b8c4e-1a2b-4c3d-9e8f-0123456789ab", false},
	}
	for _, tc := range tests {
		if got := volatilePair(tc.p, tc.s); got != tc.volatile {
			t.Errorf("volatilePair(%q, %q) = %v, want %v (masks %q, %q)", tc.p, tc.s, got, tc.volatile, maskVolatile(tc.p), maskVolatile(tc.s))
		}
	}
}

func TestTextDiff(t *testing.T) {
	tests := []struct {
		name, a, b     string
		removed, added int
		detail         string
	}{
		{"one line changed", "a\nb\nc\n", "a\nB\nc\n", 1, 1, "@@ primary line 1, shadow line 1 @@\n a\n-b\n+B\n c\n"},
		{"line added", "a\nc", "a\nb\nc", 0, 1, "@@ primary line 1, shadow line 1 @@\n a\n+b\n c\n"},
		{"line removed at end", "a\nb\n", "a\n", 1, 0, "@@ primary line 1, shadow line 1 @@\n a\n-b\n"},
		{"crlf equals lf", "a\r\nb\r\n", "a\nb\n", 0, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			detail, removed, added := unified(diffLines(splitLines(tc.a), splitLines(tc.b)))
			if removed != tc.removed || added != tc.added || detail != tc.detail {
				t.Errorf("got -%d +%d %q, want -%d +%d %q", removed, added, detail, tc.removed, tc.added, tc.detail)
			}
		})
	}
}

func TestTextDiffBounded(t *testing.T) {
	var a, b []string
	for i := range 5000 {
		a = append(a, fmt.Sprintf("line %d", i))
		b = append(b, fmt.Sprintf("other %d", i))
	}
	detail, removed, added := unified(diffLines(a, b))
	if removed != 5000 || added != 5000 || strings.Count(detail, "\n") > maxDetailLines+2 {
		t.Errorf("removed %d added %d, detail of %d lines", removed, added, strings.Count(detail, "\n"))
	}
}
