package redactor

import (
	"fmt"
	"regexp"
	"testing"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

func TestDefaultHeaderDrops(t *testing.T) {
	e := newEngine(t, Config{})
	names := []string{"Authorization", "authorization", "PROXY-AUTHORIZATION", "Cookie", "Set-Cookie", "X-Api-Key",
		"x-auth-token", "X-Csrf-Token", "X-XSRF-TOKEN", "X-Amz-Security-Token", "X-Custom-Token", "Stripe-Api-Key", "X-Client-Secret"}
	for _, dir := range []string{"request", "response"} {
		var hs []*mlv1.Header
		for _, n := range names {
			hs = append(hs, &mlv1.Header{Name: n, Value: "v"})
		}
		hs = append(hs, &mlv1.Header{Name: "Accept", Value: "*/*"})
		ex := &mlv1.Exchange{Request: &mlv1.Request{Url: "/"}, Response: &mlv1.Response{}}
		if dir == "request" {
			ex.Request.Headers = hs
		} else {
			ex.Response.Headers = hs
		}
		if _, err := e.Redact(ex); err != nil {
			t.Fatal(err)
		}
		got := ex.Request.Headers
		if dir == "response" {
			got = ex.Response.Headers
		}
		if len(got) != 1 || got[0].Name != "Accept" || got[0].Value != "*/*" {
			t.Errorf("%s headers left: %v", dir, got)
		}
	}
}

func TestHeaderRules(t *testing.T) {
	cfg := Config{Headers: map[string]Rule{
		"X-User-Email":  {Action: ActionHash},
		"X-Session":     {Action: ActionMask},
		"X-Customer-Id": {Action: ActionFake},
		"X-Req-Only":    {Action: ActionDrop, On: OnRequest},
		"X-Resp-Only":   {Action: ActionDrop, On: OnResponse},
		"X-Trusted":     {Action: ActionKeep},
		"X-Secret-*":    {Action: ActionMask, Name: "secret-headers"},
		"Cookie":        {Action: ActionOff},
	}}
	e := newEngine(t, cfg)
	mk := func() []*mlv1.Header {
		return hdr("X-User-Email", "Zoe@Example.org", "x-session", "abc", "X-Customer-Id", "cus_4411",
			"X-Req-Only", "1", "X-Resp-Only", "2", "X-Trusted", "zoe@example.org", "X-Secret-Thing", "s",
			"Cookie", "theme=dark", "X-Other", "mail zoe@example.org")
	}
	ex := &mlv1.Exchange{Request: &mlv1.Request{Url: "/", Headers: mk()}, Response: &mlv1.Response{Headers: mk()}}
	res, err := e.Redact(ex)
	if err != nil {
		t.Fatal(err)
	}
	check := func(hs []*mlv1.Header, name, want string, present bool) {
		t.Helper()
		v, ok := header(hs, name)
		if ok != present || (present && want != "" && v != want) {
			t.Errorf("%s = %q (present %v), want %q (present %v)", name, v, ok, want, present)
		}
	}
	req, resp := ex.Request.Headers, ex.Response.Headers
	tok := testKeyed().hashToken("zoe@example.org") // auto kind: email, normalised
	check(req, "X-User-Email", tok, true)
	check(req, "X-Session", maskText, true)
	check(req, "X-Req-Only", "", false)
	check(resp, "X-Req-Only", "1", true)
	check(req, "X-Resp-Only", "2", true)
	check(resp, "X-Resp-Only", "", false)
	check(req, "X-Trusted", "zoe@example.org", true)
	check(req, "X-Secret-Thing", maskText, true)
	check(req, "Cookie", "theme=dark", true)
	check(req, "X-Other", "mail ****", true)
	if v, _ := header(req, "X-Customer-Id"); !regexp.MustCompile(`^[a-z]{3}_\d{4}$`).MatchString(v) || v == "cus_4411" {
		t.Errorf("fake X-Customer-Id %q", v)
	}
	if res.Redactions["secret-headers"] != 2 || res.Redactions["header:x-user-email"] != 2 {
		t.Errorf("redactions %v", res.Redactions)
	}
}

func TestHeaderScanning(t *testing.T) {
	e := newEngine(t, Config{})
	ex := &mlv1.Exchange{Request: &mlv1.Request{Url: "/", Headers: hdr(
		"Content-Type", "multipart/form-data; boundary=----4111111111111111",
		"Content-Length", "4111111111111111",
		"X-Forwarded-For", "84.17.45.201, 10.0.0.1",
		"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		"Date", "Mon, 15 Jan 2024 10:20:30 GMT",
		"X-Request-Id", "550e8400-e29b-41d4-a716-446655440000",
		"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"Referer", "https://shop.example/p/zoe@example.org?ref=mail&email=zoe%40example.org&password=x#frag",
		"Location", "/next?access_token=abc",
	)}}
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Content-Type":    "multipart/form-data; boundary=----4111111111111111",
		"Content-Length":  "4111111111111111",
		"X-Forwarded-For": "****, ****",
		"User-Agent":      "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		"Date":            "Mon, 15 Jan 2024 10:20:30 GMT",
		"X-Request-Id":    "550e8400-e29b-41d4-a716-446655440000",
		"Traceparent":     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"Referer":         "https://shop.example/p/****?ref=mail&email=****&password=****#frag",
		"Location":        "/next?access_token=****",
	}
	for _, h := range ex.Request.Headers {
		if w := want[h.Name]; h.Value != w {
			t.Errorf("%s = %q, want %q", h.Name, h.Value, w)
		}
	}

	e = newEngine(t, Config{ScanHeaders: boolPtr(false)})
	ex = &mlv1.Exchange{Request: &mlv1.Request{Url: "/", Headers: hdr("X-Email", "zoe@example.org")}}
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	if v, _ := header(ex.Request.Headers, "X-Email"); v != "zoe@example.org" {
		t.Errorf("scan_headers false still scanned: %q", v)
	}
}

func TestNameRulesSpecificity(t *testing.T) {
	n, err := compileNameRules("headers", "header:", map[string]Rule{
		"X-*":        {Action: ActionMask},
		"X-Foo-*":    {Action: ActionHash},
		"X-Foo-Bar":  {Action: ActionKeep},
		"*-Token":    {Action: ActionRemove},
		"X-*-Token":  {Action: ActionFake},
		"Only-Resp*": {Action: ActionMask, On: OnResponse},
	}, true, func(string, string, rule) {})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		dir  uint8
		want string
	}{
		{"x-foo-bar", dirRequest, "header:x-foo-bar"},
		{"X-Foo-Baz", dirRequest, "header:x-foo-*"},
		{"X-Other", dirRequest, "header:x-*"},
		{"X-Auth-Token", dirRequest, "header:x-*-token"},
		{"Auth-Token", dirRequest, "header:*-token"},
		{"Only-Response", dirRequest, ""},
		{"Only-Response", dirResponse, "header:only-resp*"},
		{"Accept", dirRequest, ""},
	} {
		r := n.match(tc.name, tc.dir)
		got := ""
		if r != nil {
			got = r.name
		}
		if got != tc.want {
			t.Errorf("match(%s) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCompileGlob(t *testing.T) {
	for _, tc := range []struct {
		pat   string
		shape uint8
		yes   []string
		no    []string
	}{
		{"X-Api-Key", globExact, []string{"x-api-key", "X-API-KEY"}, []string{"X-Api-Keys", ""}},
		{"X-Secret-*", globPrefix, []string{"x-secret-", "X-SECRET-thing"}, []string{"X-Secre"}},
		{"*_token", globSuffix, []string{"ACCESS_TOKEN", "_token"}, []string{"token", "_tokens"}},
		{"*pass*", globContains, []string{"PASS", "my_Password_hint"}, []string{"pas"}},
		{"**", globAll, []string{"", "anything"}, nil},
		{"a*b*c", globGeneral, []string{"ABC", "aXbYc"}, []string{"acb"}},
	} {
		g := compileGlob(tc.pat)
		if g.shape != tc.shape {
			t.Errorf("%s: shape %d, want %d", tc.pat, g.shape, tc.shape)
		}
		for _, y := range tc.yes {
			if !g.match(y) {
				t.Errorf("%s should match %q", tc.pat, y)
			}
		}
		for _, n := range tc.no {
			if g.match(n) {
				t.Errorf("%s should not match %q", tc.pat, n)
			}
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		pat, name string
		want      bool
	}{
		{"*token", "access_token", true},
		{"*token", "TOKEN", true},
		{"*token", "tokens", false},
		{"pass*", "Password", true},
		{"*pass*", "user_PASSWORD_hint", true},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"a*b", "ab", true},
		{"*", "", true},
		{"x", "", false},
		{"*a*a*a", "aaaa", true},
	} {
		if got := globMatch(tc.pat, tc.name); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pat, tc.name, got)
		}
	}
}

func ExampleEngine_Redact() {
	e, _ := NewEngine(DefaultConfig())
	ex := &mlv1.Exchange{Request: &mlv1.Request{
		Method:  "POST",
		Url:     "/login?email=zoe%40example.org",
		Headers: hdr("Content-Type", "application/json", "Authorization", "Bearer abc.def"),
		Body:    []byte(`{"user": "zoe", "password": "hunter2", "card": "4111 1111 1111 1111"}`),
	}}
	res, err := e.Redact(ex)
	fmt.Println(err)
	fmt.Println(ex.Request.Url)
	fmt.Println(len(ex.Request.Headers))
	fmt.Println(string(ex.Request.Body))
	fmt.Println(res.Rules)
	// Output:
	// <nil>
	// /login?email=****
	// 1
	// {"user": "zoe", "password": "****", "card": "****"}
	// [detector:card detector:email header:authorization json:**.password]
}
