package redactor

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

func jsonRules(kv ...string) map[string]Rule {
	m := map[string]Rule{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = Rule{Action: Action(kv[i+1])}
	}
	return m
}

func TestJSONPaths(t *testing.T) {
	tests := []struct {
		name  string
		rules map[string]Rule
		in    string
		want  string
	}{
		{"exact path", jsonRules("card.number", "mask"),
			`{"card":{"number":"x","exp":"12/29"},"number":"y"}`,
			`{"card":{"number":"****","exp":"12/29"},"number":"y"}`},
		{"case-insensitive segments", jsonRules("Card.Number", "mask"),
			`{"CARD":{"number":"x"}}`, `{"CARD":{"number":"****"}}`},
		{"wildcard element", jsonRules("items.*.email", "mask"),
			`{"items":[{"email":"a","n":1},{"email":"b"}],"email":"c"}`,
			`{"items":[{"email":"****","n":1},{"email":"****"}],"email":"c"}`},
		{"wildcard key", jsonRules("users.*.name", "mask"),
			`{"users":{"u1":{"name":"a"},"u2":{"name":"b","x":"c"}}}`,
			`{"users":{"u1":{"name":"****"},"u2":{"name":"****","x":"c"}}}`},
		{"double star any depth", jsonRules("**.ssn", "mask"),
			`{"ssn":"1","a":{"b":[{"ssn":"2"},{"c":{"SSN":"3"}}]}}`,
			`{"ssn":"****","a":{"b":[{"ssn":"****"},{"c":{"SSN":"****"}}]}}`},
		{"double star middle", jsonRules("a.**.id", "mask"),
			`{"a":{"id":"1","x":{"y":{"id":"2"}}},"id":"3"}`,
			`{"a":{"id":"****","x":{"y":{"id":"****"}}},"id":"3"}`},
		{"trailing double star", jsonRules("a.**", "mask"),
			`{"a":{"b":"1","c":["2",3]},"d":"4"}`,
			`{"a":{"b":"****","c":["****","****"]},"d":"4"}`},
		{"index", jsonRules("tags.1", "mask"),
			`{"tags":["a","b","c"]}`, `{"tags":["a","****","c"]}`},
		{"glob segment", jsonRules("**.*_secret", "mask"),
			`{"client_secret":"a","secret":"b","x":{"API_SECRET":"c"}}`,
			`{"client_secret":"****","secret":"b","x":{"API_SECRET":"****"}}`},
		{"container rule applies to leaves", jsonRules("address", "mask"),
			`{"address":{"line1":"Main St 1","zip":8001,"geo":[47.3,8.5],"verified":true,"note":null},"id":"x"}`,
			`{"address":{"line1":"****","zip":"****","geo":["****","****"],"verified":true,"note":null},"id":"x"}`},
		{"more specific wins", jsonRules("user.*", "mask", "user.id", "keep"),
			`{"user":{"id":"u1","name":"n"}}`, `{"user":{"id":"u1","name":"****"}}`},
		{"keep exempts detectors", jsonRules("trace.**", "keep"),
			`{"trace":{"peer":"10.0.0.1","who":"a@example.com"},"ip":"10.0.0.1"}`,
			`{"trace":{"peer":"10.0.0.1","who":"a@example.com"},"ip":"****"}`},
		{"stronger action on tie", jsonRules("a.*", "mask", "*.b", "remove"),
			`{"a":{"b":"1","c":"2"}}`, `{"a":{"c":"****"}}`},
		{"escaped key matches", jsonRules("pass\\u0077ord", "mask"),
			`{"pass\u0077ord":"x"}`, `{"pass\u0077ord":"x"}`}, // paths are not unescaped...
		{"escaped key in document", jsonRules("password", "mask"),
			`{"pass\u0077ord":"x"}`, `{"pass\u0077ord":"****"}`}, // ...documents are
		{"root scalar", nil, `"a@example.com"`, `"****"`},
		{"booleans untouched by mask", jsonRules("flag", "mask"), `{"flag":true}`, `{"flag":true}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Config{Defaults: boolPtr(false), JSONFields: tc.rules, Detectors: jsonRules("card", "mask", "email", "mask", "ipv4", "mask")})
			got, _ := redactBody(t, e, "application/json", tc.in)
			if got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestJSONRemove(t *testing.T) {
	tests := []struct {
		name, rule, in, want string
	}{
		{"first", "a", `{"a":1,"b":2,"c":3}`, `{"b":2,"c":3}`},
		{"middle", "b", `{"a":1,"b":2,"c":3}`, `{"a":1,"c":3}`},
		{"last", "c", `{"a":1,"b":2,"c":3}`, `{"a":1,"b":2}`},
		{"only", "a", `{"a":1}`, `{}`},
		{"all", "*", `{"a":1, "b":{"x":[1,2]}, "c":"s"}`, `{}`},
		{"consecutive", "**.x*", `{"a":1,"x1":2,"x2":3,"b":4,"x3":5}`, `{"a":1,"b":4}`},
		{"leading run", "**.x*", `{"x1":2,"x2":3,"b":4}`, `{"b":4}`},
		{"pretty first", "a", "{\n  \"a\": 1,\n  \"b\": 2\n}", "{\n  \"b\": 2\n}"},
		{"pretty last", "b", "{\n  \"a\": 1,\n  \"b\": 2\n}", "{\n  \"a\": 1\n}"},
		{"pretty middle", "b", "{\n  \"a\": 1,\n  \"b\": {\"x\": [1, 2]},\n  \"c\": 3\n}", "{\n  \"a\": 1,\n  \"c\": 3\n}"},
		{"spaces", "b", `{ "a" : 1 , "b" : 2 , "c" : 3 }`, `{ "a" : 1 , "c" : 3 }`},
		{"array element", "l.1", `{"l":[1,2,3]}`, `{"l":[1,3]}`},
		{"array first", "l.0", `{"l":[1,2,3]}`, `{"l":[2,3]}`},
		{"array all", "l.*", `{"l":[1, 2, 3]}`, `{"l":[]}`},
		{"nested removal", "**.pw", `{"u":[{"pw":"a","n":1},{"n":2,"pw":"b"}],"pw":"c"}`, `{"u":[{"n":1},{"n":2}]}`},
		{"null and bool", "**.x", `{"x":null,"y":true,"z":{"x":false}}`, `{"y":true,"z":{}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, Config{Defaults: boolPtr(false), JSONFields: jsonRules(tc.rule, "remove")})
			got, _ := redactBody(t, e, "application/json", tc.in)
			if got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("invalid JSON out: %s", got)
			}
		})
	}
}

func TestJSONByteIdentical(t *testing.T) {
	in := "{\n\t\"id\" : 12345678901234567890,\n  \"f\": 1.50e+10, \"neg\":-0.0,\"s\":\"Zoë \\\"quoted\\\" \\/ \\u00e9\\n\",\n" +
		"  \"email\": \"zoe@example.org\",   \"arr\": [ 1 ,2,  \"x\" ],\n  \"nested\": {\"password\": \"p\",\"keep\":\"東京\"}\n}\n"
	want := "{\n\t\"id\" : 12345678901234567890,\n  \"f\": 1.50e+10, \"neg\":-0.0,\"s\":\"Zoë \\\"quoted\\\" \\/ \\u00e9\\n\",\n" +
		"  \"email\": \"****\",   \"arr\": [ 1 ,2,  \"x\" ],\n  \"nested\": {\"password\": \"****\",\"keep\":\"東京\"}\n}\n"
	e := newEngine(t, Config{})
	got, res := redactBody(t, e, "application/json", in)
	if got != want {
		t.Errorf("\n got %q\nwant %q", got, want)
	}
	if res.Redactions["detector:email"] != 1 || res.Redactions["json:**.password"] != 1 {
		t.Errorf("redactions %v", res.Redactions)
	}
	// No PII: the very same bytes.
	clean := `{"a" : [1, 2.0, "x"],   "b":{"c":null}}`
	if got, _ := redactBody(t, e, "application/json", clean); got != clean {
		t.Errorf("clean document changed: %s", got)
	}
}

func TestJSONStringsAndNumbers(t *testing.T) {
	e := newEngine(t, Config{
		JSONFields: jsonRules("fake_n", "fake", "hash_n", "hash", "fake_card", "fake", "fake_s", "fake"),
		Detectors:  map[string]Rule{"phone": {Action: ActionFake}},
	})
	tests := []struct{ in, want string }{
		// Escaped PII is found (evasion through \u escapes).
		{`{"a":"\u0034111111111111111"}`, `{"a":"****"}`},
		{`{"a":"zoe\u0040example.org"}`, `{"a":"****"}`},
		// Output escaping stays valid.
		{`{"a":"\"quoted\" zoe@example.org\n"}`, `{"a":"\"quoted\" ****\n"}`},
		// Integers that are card numbers; other numbers are left alone.
		{`{"a":4111111111111111}`, `{"a":"****"}`},
		{`{"a":-4111111111111111}`, `{"a":"-****"}`},
		{`{"a":4111111111111112,"b":0.4111111111111111,"c":1700000000123}`, `{"a":4111111111111112,"b":0.4111111111111111,"c":1700000000123}`},
		// Keys are scanned too.
		{`{"zoe@example.org":{"x":1}}`, `{"****":{"x":1}}`},
		// Hash of a number becomes a string token.
		{`{"hash_n":42}`, `{"hash_n":"` + testKeyed().hashToken("42") + `"}`},
	}
	for _, tc := range tests {
		got, _ := redactBody(t, e, "application/json", tc.in)
		if got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	// Fake numbers keep their shape and stay numbers.
	got, _ := redactBody(t, e, "application/json", `{"fake_n":-1234.56e-7,"fake_card":4111111111111111,"fake_s":"Zoë Ångström"}`)
	var v map[string]any
	d := json.NewDecoder(strings.NewReader(got))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("fake output invalid: %s", got)
	}
	n := string(v["fake_n"].(json.Number))
	if len(n) != len("-1234.56e-7") || n[0] != '-' || n[5] != '.' || n == "-1234.56e-7" {
		t.Errorf("fake number %s", n)
	}
	c := string(v["fake_card"].(json.Number))
	if len(c) != 16 || !luhn(c) || c == "4111111111111111" {
		t.Errorf("fake card number %s", c)
	}
	if s := v["fake_s"].(string); len([]rune(s)) != len([]rune("Zoë Ångström")) || s == "Zoë Ångström" {
		t.Errorf("fake string %q", s)
	}
	// Phone fake inside a string keeps the format.
	got, _ = redactBody(t, e, "application/json", `{"p":"tel +44 20 7946 0958!"}`)
	if !strings.HasPrefix(got, `{"p":"tel +44 `) || len(got) != len(`{"p":"tel +44 20 7946 0958!"}`) || strings.Contains(got, "7946") {
		t.Errorf("phone fake in string: %s", got)
	}
}

func TestNDJSON(t *testing.T) {
	e := newEngine(t, Config{})
	in := "{\"a\":\"zoe@example.org\"}\n{\"password\":\"x\"}\n\n[1,2]\n"
	got, _ := redactBody(t, e, "application/x-ndjson", in)
	if got != "{\"a\":\"****\"}\n{\"password\":\"****\"}\n\n[1,2]\n" {
		t.Errorf("ndjson: %q", got)
	}
	// Plain JSON refuses a second document.
	_, err := e.Redact(reqEx("application/json", "{} {}"))
	if !errors.Is(err, ErrUnparseable) {
		t.Errorf("second document accepted: %v", err)
	}
}

func TestJSONInvalid(t *testing.T) {
	e := newEngine(t, Config{})
	for _, in := range []string{
		`{`, `}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[1 2]`, `{"a" 1}`, `{a:1}`, `{"a":tru}`, `{"a":nul}`,
		`{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":-}`, `{"a":+1}`, `{"a":"\x"}`, `{"a":"\u12"}`,
		"{\"a\":\"\x01\"}", `{"a":"unterminated`, `'a'`, `[1]]`, `NaN`, `{"a":1}x`,
	} {
		_, err := e.Redact(reqEx("application/json", in))
		if !errors.Is(err, ErrUnparseable) {
			t.Errorf("%q: err = %v", in, err)
		}
		var se *syntaxError
		if !errors.As(err, &se) {
			t.Errorf("%q: not a syntax error: %v", in, err)
		}
	}
	for _, in := range []string{``, "  \n", "\xef\xbb\xbf{}", `{"a":"\ud800"}`, "{\"a\":\"\xff\"}"} {
		if _, err := e.Redact(reqEx("application/json", in)); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestJSONDepth(t *testing.T) {
	e := newEngine(t, Config{})
	deep := strings.Repeat("[", 5000) + `"a@example.com"` + strings.Repeat("]", 5000)
	got, _ := redactBody(t, e, "application/json", deep)
	if !strings.Contains(got, `"****"`) {
		t.Error("deep value not scrubbed")
	}
	tooDeep := strings.Repeat("[", maxJSONDepth+2) + strings.Repeat("]", maxJSONDepth+2)
	if _, err := e.Redact(reqEx("application/json", tooDeep)); !errors.Is(err, ErrUnparseable) {
		t.Errorf("too deep: %v", err)
	}
}

func TestParsePath(t *testing.T) {
	for _, bad := range []string{"", ".", "a..b", "a.", ".a", "a.***", "a.b**"} {
		if _, err := parsePath(bad); err == nil {
			t.Errorf("parsePath(%q) accepted", bad)
		}
	}
	segs, err := parsePath("a.**.**.*.x*y.7")
	if err != nil || len(segs) != 5 || segs[1].kind != segDoubleStar || segs[2].kind != segAny ||
		segs[3].kind != segGlob || segs[4].idx != 7 {
		t.Errorf("parsePath: %+v %v", segs, err)
	}
}

// ---- form ----

func TestForm(t *testing.T) {
	e := newEngine(t, Config{FormFields: map[string]Rule{"ssn": {Action: ActionRemove}, "nick": {Action: ActionHash}, "note": {Action: ActionKeep}}})
	tests := []struct{ in, want string }{
		{"a=1&password=secret&b=Zo%C3%AB", "a=1&password=****&b=Zo%C3%AB"},
		{"ssn=078-05-1120&a=1", "a=1"},
		{"a=1&ssn=078-05-1120&b=2", "a=1&b=2"},
		{"a=1&ssn=078-05-1120", "a=1"},
		{"ssn=1", ""},
		{"email=zoe%40example.org&x=%E6%9D%B1%E4%BA%AC", "email=****&x=%E6%9D%B1%E4%BA%AC"},
		{"phone=+14155552671", "phone=****"},                        // unescaped '+' still found
		{"x=zoe%40example.org+14155552671", "x=****%2014155552671"}, // no ambiguous '+' written
		{"phone=%2B14155552671", "phone=****"},                      // escaped
		{"c=4111+1111+1111+1111&d=", "c=****&d="},                   // '+' as space
		{"zoe%40example.org=1", "****=1"},                           // PII in a name
		{"note=zoe%40example.org", "note=zoe%40example.org"},
		{"nick=Zo%C3%AB", "nick=" + testKeyed().hashToken("Zoë")},
		{"a=1&&b&c=", "a=1&&b&c="},
		{"PASSWORD=x&Api_Key=y&x_token=z", "PASSWORD=****&Api_Key=****&x_token=****"},
	}
	for _, tc := range tests {
		got, _ := redactBody(t, e, "application/x-www-form-urlencoded; charset=utf-8", tc.in)
		if got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"a=%zz", "a=%", "%g0=1", "a=1&b=%E"} {
		if _, err := e.Redact(reqEx("application/x-www-form-urlencoded", bad)); !errors.Is(err, ErrUnparseable) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// ---- URL ----

func TestURL(t *testing.T) {
	e := newEngine(t, Config{QueryParams: map[string]Rule{"session": {Action: ActionRemove}, "uid": {Action: ActionHash}}})
	tests := []struct{ in, want string }{
		{"/health", "/health"},
		{"/a/b?x=1&y=Zo%C3%AB", "/a/b?x=1&y=Zo%C3%AB"},
		{"/users/zoe@example.org/orders", "/users/****/orders"},
		{"/users/zoe%40example.org/orders?x=1", "/users/****/orders?x=1"},
		{"/ip/84.17.45.201", "/ip/****"},
		{"/pay?card=4111111111111111&amount=10", "/pay?card=****&amount=10"},
		{"/login?token=abc&next=%2Fhome", "/login?token=****&next=%2Fhome"},
		{"/x?session=abc&a=1", "/x?a=1"},
		{"/x?a=1&session=abc", "/x?a=1"},
		{"/x?uid=42", "/x?uid=" + testKeyed().hashToken("42")},
		{"/x?Password=p&X-Amz-Signature=abc", "/x?Password=****&X-Amz-Signature=****"},
		{"/x?q=%zz+zoe@example.org", "/x?q=****"}, // undecodable: scanned raw ('%', '+' are email local-part bytes)
		{"/x?q=%zz&e=zoe@example.org", "/x?q=%zz&e=****"},
		{"/x?email=a@example.com#frag-b@example.com", "/x?email=****#****"},
		{"http://user:pw@example.com:8080/p?q=1", "http://example.com:8080/p?q=1"},
		{"https://example.com/p?q=1", "https://example.com/p?q=1"},
		{"*", "*"},
		{"example.com:443", "example.com:443"},
		{"/?phone=+1%20415%20555%202671", "/?phone=****"},   // unescaped '+' before a digit: a plus sign
		{"/?c=4111+1111+1111+1111&n=a+b", "/?c=****&n=a+b"}, // '+' between digits: a space
	}
	for _, tc := range tests {
		ex := &mlv1.Exchange{Request: &mlv1.Request{Url: tc.in}}
		if _, err := e.Redact(ex); err != nil {
			t.Fatal(err)
		}
		if ex.Request.Url != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.in, ex.Request.Url, tc.want)
		}
		if _, err := url.ParseRequestURI(ex.Request.Url); err != nil && strings.HasPrefix(tc.in, "/") && !strings.Contains(tc.in, "%zz") {
			t.Errorf("%s: output %s does not parse: %v", tc.in, ex.Request.Url, err)
		}
	}
}

// ---- multipart ----

func mpBody(parts ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(parts); i += 2 {
		b.WriteString("--B0undary\r\n" + parts[i] + "\r\n\r\n" + parts[i+1] + "\r\n")
	}
	b.WriteString("--B0undary--\r\n")
	return b.String()
}

func readParts(t *testing.T, body string) map[string]string {
	t.Helper()
	r := multipart.NewReader(strings.NewReader(body), "B0undary")
	out := map[string]string{}
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("output is not valid multipart: %v\n%q", err, body)
		}
		v, _ := io.ReadAll(p)
		out[p.FormName()] = string(v)
	}
}

func TestMultipart(t *testing.T) {
	e := newEngine(t, Config{FormFields: map[string]Rule{"ssn": {Action: ActionRemove}}})
	const ct = "multipart/form-data; boundary=B0undary"
	in := mpBody(
		`Content-Disposition: form-data; name="ssn"`, "078-05-1120",
		`Content-Disposition: form-data; name="name"`, "Zoë Ångström",
		`Content-Disposition: form-data; name="password"`, "hunter2",
		`Content-Disposition: form-data; name="bio"`, "mail zoe@example.org or call +1 415 555 2671",
		"Content-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json", `{"card":"4111 1111 1111 1111","n":1}`,
		"Content-Disposition: form-data; name=\"photo\"; filename=\"a.png\"\r\nContent-Type: image/png", "\x89PNG\x00\x01 078-05-1120",
		"Content-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"", "ip 84.17.45.201",
		"Content-Disposition: form-data; name=\"cv\"; filename=\"zoe@example.org.pdf\"\r\nContent-Type: text/plain", "x",
	)
	got, _ := redactBody(t, e, ct, in)
	parts := readParts(t, got)
	want := map[string]string{
		"name":     "Zoë Ångström",
		"password": "****",
		"bio":      "mail **** or call ****",
		"meta":     `{"card":"****","n":1}`,
		"photo":    "",
		"doc":      "ip ****",
		"cv":       "x",
	}
	if len(parts) != len(want) {
		t.Errorf("parts %v", parts)
	}
	for k, v := range want {
		if parts[k] != v {
			t.Errorf("part %s = %q, want %q", k, parts[k], v)
		}
	}
	if !strings.Contains(got, `name="cv"; filename="****"`) {
		t.Errorf("file name not scrubbed:\n%q", got)
	}
	if !strings.Contains(got, "--B0undary\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nZoë Ångström\r\n--B0undary") {
		t.Errorf("untouched part not byte-identical:\n%q", got)
	}

	// Removing the first, the last and all parts keeps a valid body.
	for _, tc := range []struct{ in, keep string }{
		{mpBody(`Content-Disposition: form-data; name="ssn"`, "1", `Content-Disposition: form-data; name="a"`, "x"), "a"},
		{mpBody(`Content-Disposition: form-data; name="a"`, "x", `Content-Disposition: form-data; name="ssn"`, "1"), "a"},
		{mpBody(`Content-Disposition: form-data; name="ssn"`, "1", `Content-Disposition: form-data; name="ssn"`, "2"), ""},
		{"preamble\r\n" + mpBody(`Content-Disposition: form-data; name="ssn"`, "1", `Content-Disposition: form-data; name="ssn"`, "2", `Content-Disposition: form-data; name="a"`, "x"), "a"},
	} {
		got, _ := redactBody(t, e, ct, tc.in)
		parts := readParts(t, got)
		if _, ok := parts["ssn"]; ok || (tc.keep != "" && parts[tc.keep] != "x") || (tc.keep == "" && len(parts) != 0) {
			t.Errorf("removal: %q -> %q (%v)", tc.in, got, parts)
		}
	}

	// LF-only line endings and nested multipart.
	lf := "--B0undary\nContent-Disposition: form-data; name=\"e\"\n\nzoe@example.org\n--B0undary--\n"
	got, _ = redactBody(t, e, ct, lf)
	if got != "--B0undary\nContent-Disposition: form-data; name=\"e\"\n\n****\n--B0undary--\n" {
		t.Errorf("LF multipart: %q", got)
	}
	inner := "--in\r\nContent-Disposition: attachment; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\nzoe@example.org\r\n--in--"
	outer := mpBody("Content-Disposition: form-data; name=\"files\"\r\nContent-Type: multipart/mixed; boundary=in", inner)
	got, _ = redactBody(t, e, ct, outer)
	if strings.Contains(got, "zoe@example.org") || !strings.Contains(got, "\r\n\r\n****\r\n--in--") {
		t.Errorf("nested multipart: %q", got)
	}
	// base64 parts are not scanned: binary policy.
	b64 := mpBody("Content-Disposition: form-data; name=\"f\"\r\nContent-Transfer-Encoding: base64", "em9lQGV4YW1wbGUub3Jn")
	got, _ = redactBody(t, e, ct, b64)
	if parts := readParts(t, got); parts["f"] != "" {
		t.Errorf("base64 part kept: %q", parts["f"])
	}
}

// ---- fuzzing ----

// fuzzMaskEngine only masks and removes, so redacted output must be a fixed
// point with no finding left.
func fuzzMaskEngine(t testing.TB) *Engine {
	return newEngine(t, Config{
		JSONFields: jsonRules("a.*.b", "remove", "**.x", "mask", "k", "remove"),
		FormFields: map[string]Rule{"r": {Action: ActionRemove}, "h": {Action: ActionMask}},
		Detectors:  jsonRules("email", "remove", "ipv4", "remove"),
	})
}

// fuzzFakeEngine hashes and fakes: outputs are valid but not fixed points.
func fuzzFakeEngine(t testing.TB) *Engine {
	return newEngine(t, Config{
		JSONFields: jsonRules("a.*.b", "remove", "**.x", "hash", "k", "fake"),
		FormFields: map[string]Rule{"r": {Action: ActionRemove}, "h": {Action: ActionHash}, "k": {Action: ActionFake}},
		Detectors: jsonRules("card", "fake", "email", "fake", "phone", "fake", "ssn", "fake", "iban", "fake",
			"jwt", "fake", "bearer", "hash", "ipv4", "fake"),
	})
}

// FuzzRedactJSON checks on arbitrary documents that: Redact agrees with
// encoding/json on validity; the output is valid JSON; unchanged output means
// identical bytes; no detector fires on any string, key or number left in the
// output outside values produced by hash rules; and redacting the output
// again changes nothing.
func FuzzRedactJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":[{"b":1,"c":"zoe@example.org"}],"x":"4111111111111111","k":"Zoë"}`,
		`{"password":"p","n":4111111111111111,"l":[1,2,{"ip":"10.0.0.1"}]}`,
		`[{"a":"\u0034111111111111111"},"+1 415 555 2671",null,true,-1.5e3]`,
		"{\n  \"iban\": \"DE89 3704 0044 0532 0130 00\",\n  \"ssn\": \"078-05-1120\"\n}",
		`{"jwt":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2ln","auth":"Bearer abc123def456"}`,
		`"plain"`, `{}`, `[]`, `{"a":{"b":{"c":{}}}}`,
		`{"p":"{\"password\":\"x\",\"n\":\"[1,\\\"zoe@example.org\\\"]\"}","sessionId":"s"}`,
		`[{"query":"mutation { login(password: \"p\") }","variables":{"otp":"1","card":{"number":"4111111111111111"}}}]`,
	} {
		f.Add([]byte(s))
	}
	e, fe := fuzzMaskEngine(f), fuzzFakeEngine(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		exf := reqEx("application/json", string(body))
		_, ferr := fe.Redact(exf)
		if ferr == nil && len(bytes.TrimLeft(body, " \t\r\n")) > 0 && !json.Valid(bytes.TrimPrefix(exf.Request.Body, []byte("\xef\xbb\xbf"))) {
			t.Fatalf("fake output is not valid JSON:\n%q\n%q", body, exf.Request.Body)
		}
		ex := reqEx("application/json", string(body))
		res, err := e.Redact(ex)
		if (err == nil) != (ferr == nil) {
			t.Fatalf("engines disagree: %v vs %v", err, ferr)
		}
		trimmed := bytes.TrimLeft(body, " \t\r\n")
		valid := json.Valid(body)
		if len(trimmed) == 0 {
			valid = true // empty or white space: nothing to scrub
		}
		if err != nil {
			if !errors.Is(err, ErrUnparseable) {
				t.Fatalf("unexpected error %v", err)
			}
			if valid {
				t.Fatalf("valid JSON rejected: %v", err)
			}
			return
		}
		if !valid && !bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
			t.Fatalf("invalid JSON accepted: %q", body)
		}
		out := ex.Request.Body
		if len(res.Rules) == 0 && !bytes.Equal(out, body) {
			t.Fatalf("nothing fired but body changed:\n%q\n%q", body, out)
		}
		if len(trimmed) > 0 && !json.Valid(bytes.TrimPrefix(out, []byte("\xef\xbb\xbf"))) {
			t.Fatalf("output is not valid JSON:\n%q\n%q", body, out)
		}
		if len(trimmed) > 0 {
			assertNoFindings(t, out)
		}
		ex2 := reqEx("application/json", string(out))
		if _, err := e.Redact(ex2); err != nil {
			t.Fatalf("second pass: %v", err)
		}
		if !bytes.Equal(ex2.Request.Body, out) {
			t.Fatalf("not a fixed point:\n%q\n%q", out, ex2.Request.Body)
		}
	})
}

// assertNoFindings decodes a JSON document and runs the detectors over every
// key, string and number in it; hash tokens are skipped.
func assertNoFindings(t *testing.T, doc []byte) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(doc, []byte("\xef\xbb\xbf"))))
	d.UseNumber()
	var walk func(v any)
	check := func(s string) {
		// Hash tokens are ours; U+FFFD stands for invalid UTF-8 the decoder
		// replaced (the engine scans the bytes as sent, and a replacement
		// character cannot reveal personal data).
		if strings.HasPrefix(s, hashPrefix) || strings.ContainsRune(s, utf8.RuneError) {
			return
		}
		if f := findAll(s); len(f) > 0 {
			t.Fatalf("detector fires on output %q: %v", s, f)
		}
	}
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			check(x)
		case json.Number:
			check(string(x))
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for k, e := range x {
				check(k)
				walk(e)
			}
		}
	}
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode output: %v", err)
	}
	walk(v)
}

// FuzzRedactForm checks that form bodies never panic, fail only on bad
// escapes, decode after redaction with no finding left in any name or value,
// and are a fixed point.
func FuzzRedactForm(f *testing.F) {
	for _, s := range []string{
		"a=1&email=zoe%40example.org&password=p&r=1&h=2",
		"phone=+14155552671&c=4111+1111+1111+1111",
		"zoe%40example.org=1&&x&y=%E6%9D%B1",
		"a=%zz",
	} {
		f.Add([]byte(s))
	}
	e, fe := fuzzMaskEngine(f), fuzzFakeEngine(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		exf := reqEx("application/x-www-form-urlencoded", string(body))
		_, ferr := fe.Redact(exf)
		ex := reqEx("application/x-www-form-urlencoded", string(body))
		res, err := e.Redact(ex)
		if (err == nil) != (ferr == nil) {
			t.Fatalf("engines disagree: %v vs %v", err, ferr)
		}
		if err != nil {
			if !errors.Is(err, ErrUnparseable) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		for _, pair := range strings.Split(string(exf.Request.Body), "&") {
			k, v, _ := strings.Cut(pair, "=")
			if _, err := url.QueryUnescape(k); err != nil {
				t.Fatalf("fake output pair %q does not decode", pair)
			}
			if _, err := url.QueryUnescape(v); err != nil {
				t.Fatalf("fake output pair %q does not decode", pair)
			}
		}
		out := string(ex.Request.Body)
		if len(res.Rules) == 0 && out != string(body) {
			t.Fatalf("nothing fired but body changed")
		}
		for _, pair := range strings.Split(out, "&") {
			k, v, _ := strings.Cut(pair, "=")
			for _, raw := range []string{k, v} {
				dec, err := url.QueryUnescape(raw)
				if err != nil {
					t.Fatalf("output pair %q does not decode", pair)
				}
				if !strings.HasPrefix(dec, hashPrefix) && len(findAll(dec)) > 0 {
					t.Fatalf("detector fires on output %q", dec)
				}
			}
		}
		ex2 := reqEx("application/x-www-form-urlencoded", out)
		if _, err := e.Redact(ex2); err != nil || string(ex2.Request.Body) != out {
			t.Fatalf("not a fixed point: %q -> %q (%v)", out, ex2.Request.Body, err)
		}
	})
}

// FuzzScrubURL checks request targets: no panic, and no finding left in any
// decoded path segment or query value; the result is a fixed point.
func FuzzScrubURL(f *testing.F) {
	for _, s := range []string{
		"/users/zoe@example.org?phone=%2B14155552671&a=1#x",
		"http://u:p@h/p?token=1",
		"/x?q=%zz+a@example.com",
		"/ip/84.17.45.201/4111-1111-1111-1111",
	} {
		f.Add(s)
	}
	e := fuzzMaskEngine(f)
	f.Fuzz(func(t *testing.T, u string) {
		ex := &mlv1.Exchange{Request: &mlv1.Request{Url: u}}
		if _, err := e.Redact(ex); err != nil {
			t.Fatal(err)
		}
		out := ex.Request.Url
		ex2 := &mlv1.Exchange{Request: &mlv1.Request{Url: out}}
		if _, err := e.Redact(ex2); err != nil || ex2.Request.Url != out {
			t.Fatalf("not a fixed point: %q -> %q -> %q", u, out, ex2.Request.Url)
		}
	})
}

// FuzzRedactMultipart checks multipart bodies: no panic; when Go's reader
// parses the input, the output parses too, with the same parts minus those
// removed by rules and no finding left in text parts (mask engine).
func FuzzRedactMultipart(f *testing.F) {
	f.Add([]byte(mpBody(`Content-Disposition: form-data; name="r"`, "1", `Content-Disposition: form-data; name="a"`, "zoe@example.org")))
	f.Add([]byte(mpBody("Content-Disposition: form-data; name=\"j\"\r\nContent-Type: application/json", `{"x":"4111111111111111"}`)))
	f.Add([]byte("preamble\r\n--B0undary\r\n\r\nbody +14155552671\r\n--B0undary--\r\nepilogue"))
	f.Add([]byte("--B0undary\nContent-Disposition: form-data; name=\"h\"\n\nx\n--B0undary--\n"))
	e := fuzzMaskEngine(f)
	const ct = "multipart/form-data; boundary=B0undary"
	f.Fuzz(func(t *testing.T, body []byte) {
		inParts, inErr := parseAllParts(body)
		ex := reqEx(ct, string(body))
		_, err := e.Redact(ex)
		if err != nil {
			if !errors.Is(err, ErrUnparseable) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if inErr != nil {
			return // Go's reader rejects it; ours is more lenient
		}
		outParts, outErr := parseAllParts(ex.Request.Body)
		if outErr != nil {
			t.Fatalf("output no longer parses: %v\nin  %q\nout %q", outErr, body, ex.Request.Body)
		}
		kept := 0
		for _, p := range inParts {
			if p.name != "r" {
				kept++
			}
		}
		if len(outParts) != kept {
			t.Fatalf("parts: in %d (kept %d), out %d\nin  %q\nout %q", len(inParts), kept, len(outParts), body, ex.Request.Body)
		}
		for _, p := range outParts {
			if p.text && !strings.ContainsRune(p.body, utf8.RuneError) && len(findAll(p.body)) > 0 {
				t.Fatalf("finding left in part %q: %q", p.name, p.body)
			}
		}
	})
}

type fuzzPart struct {
	name, body string
	text       bool
}

func parseAllParts(b []byte) ([]fuzzPart, error) {
	r := multipart.NewReader(bytes.NewReader(b), "B0undary")
	var out []fuzzPart
	for {
		p, err := r.NextRawPart()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		v, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		ct := p.Header.Get("Content-Type")
		kind := classify(ct)
		text := p.Header.Get("Content-Transfer-Encoding") == "" && (kind == bodyText || (ct == "" && p.FileName() == ""))
		// The part's name, whatever the disposition type (FormName only
		// reads form-data): the engine applies form_fields rules to it too.
		name := ""
		if _, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition")); err == nil {
			name = params["name"]
		}
		out = append(out, fuzzPart{name: name, body: string(v), text: text})
	}
}
