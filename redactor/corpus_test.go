package redactor

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// A corpus file (testdata/corpus/*/*.txt) is a list of cases, each starting
// with a line "--- WHERE":
//
//	--- remote_addr           the client address
//	--- header NAME           a request header value
//	--- url                   the request URL
//	--- body CONTENT-TYPE     a request body (every line up to the next case)
//
// Lines starting with '#' before the first case are comments. In the PII
// corpora every secret is written between « and »: the markers are removed
// to build the input, and the secret must not appear anywhere in the
// redacted exchange. The clean corpora have no markers and must come out
// byte-identical.

// corpusCase is one case of a corpus file.
type corpusCase struct {
	file, where, arg string
	line             int
	input            string
	secrets          []string
}

func loadCorpus(t *testing.T, path string) []corpusCase {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []corpusCase
	var cur *corpusCase
	var body []string
	flush := func() {
		if cur == nil {
			return
		}
		raw := strings.Join(body, "\n")
		var in strings.Builder
		for {
			a := strings.Index(raw, "«")
			if a < 0 {
				break
			}
			b := strings.Index(raw[a:], "»")
			if b < 0 {
				t.Fatalf("%s:%d: unclosed «", path, cur.line)
			}
			in.WriteString(raw[:a])
			sec := raw[a+len("«") : a+b]
			in.WriteString(sec)
			cur.secrets = append(cur.secrets, sec)
			raw = raw[a+b+len("»"):]
		}
		in.WriteString(raw)
		cur.input = in.String()
		cases = append(cases, *cur)
		cur, body = nil, nil
	}
	for n, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if rest, ok := strings.CutPrefix(line, "--- "); ok {
			flush()
			where, arg, _ := strings.Cut(rest, " ")
			cur = &corpusCase{file: filepath.Base(path), where: where, arg: arg, line: n + 1}
			continue
		}
		if cur == nil {
			continue // comments
		}
		body = append(body, line)
	}
	flush()
	if len(cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return cases
}

// exchange builds the request of a case.
func (c corpusCase) exchange(t *testing.T) *mlv1.Exchange {
	req := &mlv1.Request{Method: "POST", Url: "/"}
	switch c.where {
	case "remote_addr":
		req.RemoteAddr = c.input
	case "header":
		req.Headers = []*mlv1.Header{{Name: c.arg, Value: c.input}}
	case "url":
		req.Method, req.Url = "GET", c.input
	case "body":
		req.Headers = []*mlv1.Header{{Name: "Content-Type", Value: c.arg}}
		req.Body, req.BodySize = []byte(c.input), int64(len(c.input))
	default:
		t.Fatalf("%s:%d: unknown case kind %q", c.file, c.line, c.where)
	}
	return &mlv1.Exchange{Request: req}
}

// dump is every byte of the exchange that can carry data.
func dump(ex *mlv1.Exchange) string {
	req := ex.GetRequest()
	var b strings.Builder
	b.WriteString(req.GetUrl() + "\n" + req.GetRemoteAddr() + "\n")
	for _, h := range req.GetHeaders() {
		b.WriteString(h.Name + ": " + h.Value + "\n")
	}
	b.Write(req.GetBody())
	return b.String()
}

// wellFormed reports whether b parses as the structured type ct names (true
// for types without structure).
func wellFormed(ct string, b []byte) bool {
	switch {
	case strings.Contains(ct, "json"):
		return json.Valid(b)
	case strings.Contains(ct, "xml"):
		d := xml.NewDecoder(bytes.NewReader(b))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				return true
			}
			if err != nil {
				return false
			}
		}
	}
	return true
}

// TestDefaultRulesPIICorpus runs each PII corpus (one category per file)
// through the default rules: no secret may survive, and a JSON or XML body
// that was well-formed stays well-formed.
func TestDefaultRulesPIICorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/pii/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	e := newEngine(t, Config{})
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			for _, c := range loadCorpus(t, f) {
				if len(c.secrets) == 0 {
					t.Fatalf("%s:%d: case without «secret»", c.file, c.line)
				}
				ex := c.exchange(t)
				if _, err := e.Redact(ex); err != nil {
					t.Errorf("%s:%d: %v", c.file, c.line, err)
					continue
				}
				out := dump(ex)
				for _, s := range c.secrets {
					if strings.Contains(out, s) {
						t.Errorf("%s:%d: %q survived redaction", c.file, c.line, s)
					}
				}
				if c.where == "body" && wellFormed(c.arg, []byte(c.input)) && !wellFormed(c.arg, ex.Request.Body) {
					t.Errorf("%s:%d: redaction broke the %s body: %s", c.file, c.line, c.arg, ex.Request.Body)
				}
			}
		})
	}
}

// TestDefaultRulesCleanCorpus runs the non-PII corpus (order ids, amounts,
// UUIDs, timestamps, hashes, versions, SKUs, base64 data, names that only
// resemble secret names) through the default rules: every case must come
// out byte-identical.
func TestDefaultRulesCleanCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/corpus/clean/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	e := newEngine(t, Config{})
	total, changed := 0, 0
	for _, f := range files {
		for _, c := range loadCorpus(t, f) {
			ex := c.exchange(t)
			before := dump(ex)
			res, err := e.Redact(ex)
			if err != nil {
				t.Errorf("%s:%d: %v", c.file, c.line, err)
				continue
			}
			total++
			if after := dump(ex); after != before {
				changed++
				t.Errorf("%s:%d: changed (rules %v):\n%s", c.file, c.line, res.Rules, after)
			}
		}
	}
	t.Logf("clean corpus: %d of %d cases changed", changed, total)
}
