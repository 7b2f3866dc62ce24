package comparator

import (
	"bytes"
	"compress/gzip"
	"slices"
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// resp builds a response; hdr alternates names and values.
func resp(status int32, ctype, body string, hdr ...string) *mlv1.Response {
	r := &mlv1.Response{Status: status, Body: []byte(body), BodySize: int64(len(body)), LatencyNs: 1e6}
	if ctype != "" {
		r.Headers = append(r.Headers, &mlv1.Header{Name: "Content-Type", Value: ctype})
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Headers = append(r.Headers, &mlv1.Header{Name: hdr[i], Value: hdr[i+1]})
	}
	return r
}

func gz(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func summarizeDiffs(ds []*mlv1.Difference) []string {
	var out []string
	for _, d := range ds {
		s := d.Field + " " + KindLabel(d.Kind)
		if d.UnderStatus {
			s += " under_status"
		}
		if d.Volatile {
			s += " volatile"
		}
		out = append(out, s)
	}
	return out
}

func TestCompareResponses(t *testing.T) {
	const j = "application/json"
	tests := []struct {
		name     string
		cfg      Config
		p, s     *mlv1.Response
		want     []string
		wantNote string
	}{
		{name: "same", p: resp(200, j, `{"a":1}`), s: resp(200, j, `{"a":1}`)},
		{name: "status and body under it",
			p:    resp(201, j, `{"id":"x","status":"authorized"}`),
			s:    resp(422, j, `{"error":"invalid address"}`),
			want: []string{"status changed", "body.error added under_status", "body.id removed under_status", "body.status removed under_status"}},
		{name: "content-type parameters normalized", p: resp(200, "application/json; charset=UTF-8", `{}`), s: resp(200, "application/json;charset=utf-8", `{}`)},
		{name: "content-type changed", p: resp(200, j, `{}`), s: resp(200, "text/plain", `{}`), want: []string{"header.content-type changed"}},
		{name: "selected header added", cfg: Config{Headers: []string{"Content-Type", "Cache-Control"}}, p: resp(200, j, `{}`), s: resp(200, j, `{}`, "Cache-Control", "no-store"), want: []string{"header.cache-control added"}},
		{name: "unselected header ignored", p: resp(200, j, `{}`, "X-Build", "1"), s: resp(200, j, `{}`, "X-Build", "2")},
		{name: "ignored header", cfg: Config{Headers: []string{"Content-Type", "Date"}, Ignore: IgnoreConfig{Headers: []string{"da*"}}}, p: resp(200, j, `{}`, "Date", "a"), s: resp(200, j, `{}`, "Date", "b")},
		{name: "endpoint-scoped ignore", cfg: Config{Ignore: IgnoreConfig{Endpoints: []EndpointIgnore{{Endpoint: "GET /x", JSONPaths: []string{"v"}}}}}, p: resp(200, j, `{"v":1}`), s: resp(200, j, `{"v":2}`)},
		{name: "endpoint-scoped ignore elsewhere", cfg: Config{Ignore: IgnoreConfig{Endpoints: []EndpointIgnore{{Endpoint: "POST *", JSONPaths: []string{"v"}}}}}, p: resp(200, j, `{"v":1}`), s: resp(200, j, `{"v":2}`), want: []string{"body.v changed"}},
		{name: "text by lines", p: resp(200, "text/html", "<p>\nhello\n</p>"), s: resp(200, "text/html", "<p>\nhallo\n</p>"), want: []string{"body changed"}},
		{name: "text with only volatile tokens", p: resp(200, "text/plain", "generated 2026-03-01T12:00:00Z\nok"), s: resp(200, "text/plain", "generated 2026-03-01T12:00:09Z\nok"), want: []string{"body changed volatile"}},
		{name: "binary by hash", p: resp(200, "image/png", "\x89PNG\x00\x01"), s: resp(200, "image/png", "\x89PNG\x00\x02"), want: []string{"body changed"}},
		{name: "binary equal", p: resp(200, "image/png", "\x89PNG\x00\x01"), s: resp(200, "image/png", "\x89PNG\x00\x01")},
		{name: "invalid JSON falls back to text", p: resp(200, j, `{"a":`), s: resp(200, j, `{"b":`), want: []string{"body changed"}},
		{name: "JSON without content type", p: resp(200, "", `{"a":1}`), s: resp(200, "", `{"a":2}`), want: []string{"body.a changed"}},
		{name: "body only in shadow", p: resp(204, "", ``), s: resp(204, "", `oops`), want: []string{"body added"}},
		{name: "gzip decoded", p: resp(200, j, gz(t, `{"a":1}`), "Content-Encoding", "gzip"), s: resp(200, j, `{"a":2}`), want: []string{"body.a changed"}},
		{name: "gzip equal to identity", p: resp(200, j, gz(t, `{"a":1}`), "Content-Encoding", "gzip"), s: resp(200, j, `{"a":1}`)},
		{name: "truncated body not compared", p: func() *mlv1.Response { r := resp(200, j, `{"a":1`); r.BodyTruncated = true; return r }(), s: resp(200, j, `{"a":2}`), wantNote: "primary body truncated; bodies not compared"},
		{name: "unknown encoding not compared", p: resp(200, j, `x`, "Content-Encoding", "snappy"), s: resp(200, j, `{}`), wantNote: "primary body: unsupported content-encoding; bodies not compared"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg.WithDefaults()
			r, err := compileRules(cfg)
			if err != nil {
				t.Fatal(err)
			}
			d := &differ{rules: r, maxBody: cfg.MaxBodyBytes, maxDiffs: cfg.MaxDifferences}
			c := d.compare("GET /x", tc.p, tc.s)
			if got := summarizeDiffs(c.diffs); !slices.Equal(got, tc.want) {
				t.Errorf("differences = %q, want %q", got, tc.want)
			}
			if c.note != tc.wantNote {
				t.Errorf("note = %q, want %q", c.note, tc.wantNote)
			}
		})
	}
}

func TestCompareTextDetail(t *testing.T) {
	r, _ := compileRules(Config{}.WithDefaults())
	d := &differ{rules: r, maxBody: 1 << 20, maxDiffs: 10}
	c := d.compare("GET /x", resp(200, "text/plain", "a\nb\nc"), resp(200, "text/plain", "a\nX\nc"))
	if len(c.diffs) != 1 || c.diffs[0].Detail != "@@ primary line 1, shadow line 1 @@\n a\n-b\n+X\n c\n" || c.diffs[0].Primary != "3 lines, 1 removed" {
		t.Fatalf("got %+v", c.diffs)
	}
}
