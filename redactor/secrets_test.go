package redactor

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

func TestSecretName(t *testing.T) {
	secret := []string{
		"X-Api-Key", "clientSecret", "client_secret", "db_password", "MYSQL_ROOT_PASSWORD", "userpassword",
		"passphrase", "pass_phrase", "passcode", "pwd", "refresh_token", "accessToken", "csrftoken", "x-auth-token",
		"sessionId", "session-key", "session", "JSESSIONID", "PHPSESSID", "credentials", "credential", "creds",
		"otp_code", "otp", "totp", "authKey", "auth", "Authorization", "APIKey", "apiKey", "AWS_SECRET_ACCESS_KEY",
		"private_key", "signingKey", "Ocp-Apim-Subscription-Key", "pin_code", "pin", "pass", "cvv", "cvc2",
		"cookie", "X-Csrf-Token", "webhookSecret", "secrets",
	}
	notSecret := []string{
		"monkey", "keyboard_layout", "author", "authority", "authored_at", "tokenizer_version", "max_tokens",
		"prompt_tokens", "input_tokens", "token_type", "expires_in", "token_expires_at", "password_min_length",
		"passwordPolicy", "secretary", "secretariat_id", "next_page_token", "idempotency_key", "sort_key",
		"primary_key", "cache_key", "key", "keys", "session_count", "user_session", "passport", "bypass",
		"compass", "pinned", "spinner", "Sec-WebSocket-Key", "WWW-Authenticate", "Keep-Alive", "X-Request-Id",
		"Content-Type", "a", "",
	}
	for _, n := range secret {
		if !secretName(n) {
			t.Errorf("secretName(%q) = false, want true", n)
		}
	}
	for _, n := range notSecret {
		if secretName(n) {
			t.Errorf("secretName(%q) = true, want false", n)
		}
	}
}

func TestSecretNamesConfig(t *testing.T) {
	body := `{"secretKey":"a","sessionId":"b","monkey":"c"}`
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"default mask", Config{}, `{"secretKey":"****","sessionId":"****","monkey":"c"}`},
		{"off", Config{SecretNames: &Rule{Action: ActionOff}}, body},
		{"remove", Config{SecretNames: &Rule{Action: ActionRemove}}, `{"monkey":"c"}`},
		{"explicit rule wins", Config{JSONFields: map[string]Rule{"sessionId": {Action: ActionKeep}}}, `{"secretKey":"****","sessionId":"b","monkey":"c"}`},
		{"switched-off name", Config{JSONFields: map[string]Rule{"**.secret*": {Action: ActionOff}}}, `{"secretKey":"a","sessionId":"****","monkey":"c"}`},
		{"defaults false", Config{Defaults: boolPtr(false)}, body},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, tc.cfg)
			got, _ := redactBody(t, e, "application/json", body)
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	// Headers named like secrets are dropped, whatever the field action.
	e := newEngine(t, Config{})
	ex := reqEx("", "", "X-Session-Id", "s-1", "X-Request-Id", "r-1")
	res, err := e.Redact(ex)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := header(ex.Request.Headers, "X-Session-Id"); ok || res.Redactions["header:secret-name"] != 1 {
		t.Errorf("secret-named header kept: %v %v", ex.Request.Headers, res.Redactions)
	}
	if _, err := NewEngine(Config{SecretNames: &Rule{Action: "scramble"}}); err == nil {
		t.Error("unknown secret_names action accepted")
	}
}

func TestIPv6Detector(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"from 2001:db8:85a3::8a2e:370:7334 ok", []string{"ipv6:2001:db8:85a3::8a2e:370:7334"}},
		{"[fe80::1ff:fe23:4567:890a%eth0]:443", []string{"ipv6:fe80::1ff:fe23:4567:890a%eth0"}},
		{"u=http://[fe80::1%25en0]:80/", []string{"ipv6:fe80::1%25en0"}},
		{"::ffff:192.0.2.128", []string{"ipv6:::ffff:192.0.2.128"}},
		{"2001:0db8:0000:0000:0000:ff00:0042:8329.", []string{"ipv6:2001:0db8:0000:0000:0000:ff00:0042:8329"}},
		{"a, 2606:4700:4700::1111, b", []string{"ipv6:2606:4700:4700::1111"}},
		{"12:30:45 and 00:1a:2b:3c:4d:5e", nil},
		{"std::map a::b ::1 1::2", nil},
		{"2001:db8::1g", nil},
		{"x2001:db8::1", nil},
		{"ratio 16:9 at 10:30", nil},
	}
	for _, tc := range cases {
		if got := findAll(tc.in); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("find(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCardSeparators(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{"4111\u00a01111\u00a01111\u00a01111", []string{"card:4111\u00a01111\u00a01111\u00a01111"}},
		{"5555\u20095555\u20095555\u20094444", []string{"card:5555\u20095555\u20095555\u20094444"}},
		{"4012\u202f8888\u202f8888\u202f1881", []string{"card:4012\u202f8888\u202f8888\u202f1881"}},
		{"4111.1111.1111.1111", []string{"card:4111.1111.1111.1111"}},
		{"5105\t1051\t0510\t5100", []string{"card:5105\t1051\t0510\t5100"}},
		{"3782 822463 10005", []string{"card:3782 822463 10005"}},
		{"4111.1111.1111.1112", nil},                 // Luhn fails
		{"4111111111111111.5", nil},                  // a decimal
		{"4111.11111111.1111", nil},                  // not grouped as printed
		{"4111\u00a01111\u00a01111\u00a01111x", nil}, // followed by a letter
		{"amount 1234.56 at 2024.05.01", nil},
	}
	for _, tc := range cases {
		if got := findAll(tc.in); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("find(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// The fake keeps the separators and passes Luhn.
	k := testKeyed()
	in := "4111\u202f1111\u202f1111\u202f1111"
	out := k.fake(fakeKind(kindCard), in)
	if out == in || len(out) != len(in) || !luhn(out) || strings.Count(out, "\u202f") != 3 {
		t.Errorf("card fake %q", out)
	}
}

func TestCredentialDetector(t *testing.T) {
	found := []string{
		"AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A", "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
		"github_pat_11ABCDEFG0123456789abc_0123456789abcdefghij", "glpat-xZ8a9bC0dE1fG2hI3jK4",
		"xoxb-1234567890-1234567890123-AbCdEfGhIjKl", "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
		"rk_test_51H8x2pLk0Qw9Zm4Yt7", "pk_live_51H8x2pLk0Qw9Zm4Yt7", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
		"npm_abcdefghijklmnopqrstuvwxyz0123456789", "whsec_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH",
		"sk-proj-Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78",
		"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",
		"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrY\n-----END EC PRIVATE KEY-----",
		"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC", // cut: to the end
	}
	for _, s := range found {
		in := "x " + s + " y"
		if strings.HasPrefix(s, "-----") && !strings.Contains(s, "END") {
			in = "x " + s
		}
		got := findAll(in)
		if len(got) != 1 || got[0] != "credential:"+s {
			t.Errorf("find(%q) = %q", in, got)
		}
	}
	notFound := []string{
		"AKIAIOSFODNN7EXAMPL", "AKIAIOSFODNN7EXAMPLEX", "xAKIAIOSFODNN7EXAMPLE", "ghp_short", "sk_live_short",
		"sk-12345", "SKU-AB-1234-XL", "npm_install", "glpat-", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
		"-----BEGIN PUBLIC KEY-----", "skip_live_4eC39HqLyjWDarjtT1zdp7dc",
	}
	for _, s := range notFound {
		if got := findAll("x " + s + " y"); len(got) != 0 {
			t.Errorf("find(%q) = %q, want nothing", s, got)
		}
	}
	// The fake keeps the prefix and is no longer found.
	k := testKeyed()
	for _, s := range []string{"ghp_16C7e42F292c6912E7710c838347Ae178B4a", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "AKIAIOSFODNN7EXAMPLE"} {
		f := k.fake(fakeKind(kindCredential), s)
		p := credPrefixLen(s)
		if f == s || len(f) != len(s) || f[:p] != s[:p] {
			t.Errorf("fake(%q) = %q", s, f)
		}
	}
}

func TestScrubNamed(t *testing.T) {
	cases := []struct{ in, want string }{
		{"password=hunter2 user=bob", "password=**** user=bob"},
		{"api_key: ak 123\nnext: 1", "api_key: ****\nnext: 1"},
		{`"client_secret": "x\"y"`, `"client_secret": "****"`},
		{"<password>p</password>", "<password>****</password>"},
		{"<a:Secret>\n  s\n</a:Secret>", "<a:Secret>\n  ****\n</a:Secret>"},
		{`<token><![CDATA[t<1]]></token>`, `<token><![CDATA[****]]></token>`},
		{`<c client_secret="abc" region="eu"/>`, `<c client_secret="****" region="eu"/>`},
		{`<input type="password" value="pw">`, `<input type="password" value="****">`},
		{`<meta name="csrf-token" content="m">`, `<meta name="csrf-token" content="****">`},
		{`login(password: "pw") ($password: String!) f(password: $password)`, `login(password: "****") ($password: String!) f(password: $password)`},
		{"a == b; x::y; password==x; token => 1", "a == b; x::y; password==x; token => 1"},
		{"<label for=\"password\">Password:</label>", "<label for=\"password\">Password:</label>"},
		{"monkey=1 author: me", "monkey=1 author: me"},
		{"<p>a < b and c > d</p>", "<p>a < b and c > d</p>"},
	}
	e := newEngine(t, Config{})
	st := e.pool.Get().(*state)
	defer e.pool.Put(st)
	for _, tc := range cases {
		got, _ := st.scrubNamed(tc.in)
		if got != tc.want {
			t.Errorf("scrubNamed(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestGraphQLVariablesUseFieldRules(t *testing.T) {
	e := newEngine(t, Config{JSONFields: map[string]Rule{"customer.address": {Action: ActionMask}}})
	body := `{"query":"mutation($c: CustomerInput!) { save(customer: $c) { id } }","variables":{"customer":{"address":"1 Main St","id":"c-1"}}}`
	got, _ := redactBody(t, e, "application/json", body)
	want := `{"query":"mutation($c: CustomerInput!) { save(customer: $c) { id } }","variables":{"customer":{"address":"****","id":"c-1"}}}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// A batch, and variables sent as a JSON string.
	body = `[{"query":"q","variables":"{\"customer\":{\"address\":\"1 Main St\"}}"}]`
	got, _ = redactBody(t, e, "application/json", body)
	if strings.Contains(got, "Main") {
		t.Errorf("batched string variables: %s", got)
	}
	// Outside the root, "variables" is an ordinary key.
	body = `{"data":{"variables":{"customer":{"address":"1 Main St"}}}}`
	if got, _ = redactBody(t, e, "application/json", body); got != body {
		t.Errorf("nested variables changed: %s", got)
	}
}

func TestNestedJSONBounded(t *testing.T) {
	// A string nested deeper than maxNestedJSON is scanned as text (the
	// detectors still run) instead of parsed.
	v := `{"password":"hunter2","mail":"zoe@example.org"}`
	for range maxNestedJSON + 2 {
		v = `{"x":` + string(appendJSONString(nil, v)) + `}`
	}
	e := newEngine(t, Config{})
	got, _ := redactBody(t, e, "application/json", v)
	if strings.Contains(got, "zoe@example.org") {
		t.Errorf("deep nested detector miss: %s", got)
	}
	// Not JSON after all: scanned as text.
	got, _ = redactBody(t, e, "application/json", `{"x":"{not json, mail zoe@example.org}"}`)
	if got != `{"x":"{not json, mail ****}"}` {
		t.Errorf("invalid nested JSON: %s", got)
	}
}

// TestShapeFake checks the shape-keeping fake: same byte length and rune
// count, letters of the same script and case, digits for digits,
// punctuation and white space kept, deterministic, never the input.
func TestShapeFake(t *testing.T) {
	k := testKeyed()
	inputs := []string{
		"Straße des 17. Juni 1, 10623 Berlin", "ul. Piotrkowska 12, 90-001 Łódź", "東京都千代田区丸の内1-1",
		"Ørstedsgade 7, 1400 København", "Zoë Müller", "Ελληνικά Σ", "Москва, ул. Тверская 7", "القاهرة ١٢٣",
		"서울특별시 중구 세종대로 110", "ひらがな カタカナ", "שלום", "नई दिल्ली", "ＡＢＣ１２３", "221B Baker Street, London",
	}
	for _, in := range inputs {
		out := k.fake(kindShape, in)
		if out == in || len(out) != len(in) || utf8.RuneCountInString(out) != utf8.RuneCountInString(in) {
			t.Errorf("shape(%q) = %q: length or identity", in, out)
			continue
		}
		if k.fake(kindShape, in) != out {
			t.Errorf("shape(%q) not deterministic", in)
		}
		or := []rune(out)
		for i, c := range []rune(in) {
			d := or[i]
			switch {
			case unicode.IsLetter(c):
				if !unicode.IsLetter(d) || unicode.IsUpper(c) != unicode.IsUpper(d) || unicode.IsLower(c) != unicode.IsLower(d) ||
					(c < utf8.RuneSelf) != (d < utf8.RuneSelf) || sameScript(c) != sameScript(d) {
					t.Errorf("shape(%q): %q -> %q changes script or case", in, c, d)
				}
			case unicode.IsDigit(c):
				if !unicode.IsDigit(d) || utf8.RuneLen(c) != utf8.RuneLen(d) {
					t.Errorf("shape(%q): digit %q -> %q", in, c, d)
				}
			default:
				if c != d {
					t.Errorf("shape(%q): %q -> %q, want kept", in, c, d)
				}
			}
		}
	}
	if k.fake(kindShape, ", .") != maskText {
		t.Error("punctuation-only value not masked")
	}
}

// sameScript names the script of a letter for TestShapeFake.
func sameScript(c rune) string {
	for _, name := range []string{"Latin", "Greek", "Cyrillic", "Han", "Hiragana", "Katakana", "Hangul", "Arabic", "Hebrew", "Devanagari"} {
		if unicode.Is(unicode.Scripts[name], c) {
			return name
		}
	}
	return "other"
}

func TestShapeRuleConfig(t *testing.T) {
	e := newEngine(t, Config{JSONFields: map[string]Rule{
		"customer.address": {Action: ActionShape},
		"card.holder":      {Action: ActionFake, Kind: "shape"},
	}})
	got, _ := redactBody(t, e, "application/json", `{"card":{"holder":"Zoë Müller"},"customer":{"address":"Straße 1"}}`)
	if strings.Contains(got, "Zoë") || strings.Contains(got, "Straße") || !strings.ContainsFunc(got, func(r rune) bool { return r >= utf8.RuneSelf }) {
		t.Errorf("shape rules: %s", got)
	}
	if _, err := NewEngine(Config{JSONFields: map[string]Rule{"a": {Action: ActionShape, Kind: "card"}}}, WithHashKey(testKey)); err == nil {
		t.Error("shape with a kind accepted")
	}
}

// TestFalsePositiveRateGenerated measures the default rules on a large
// generated corpus of values without personal data (the rate is reported in
// docs/redaction.md) and requires it to be zero.
func TestFalsePositiveRateGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 8))
	hex := func(n int) string {
		const d = "0123456789abcdef"
		b := make([]byte, n)
		for i := range b {
			b[i] = d[rng.IntN(16)]
		}
		return string(b)
	}
	uuid := func() string { return hex(8) + "-" + hex(4) + "-4" + hex(3) + "-a" + hex(3) + "-" + hex(12) }
	ts := func() string {
		return fmt.Sprintf("20%02d-%02d-%02dT%02d:%02d:%02d.%03dZ", 10+rng.IntN(20), 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.IntN(1000))
	}
	e := newEngine(t, Config{})
	const n = 5000
	values, changed := 0, 0
	for i := range n {
		body := fmt.Sprintf(`{"order_id":"ORD-%d-%06d","amount":%d.%02d,"currency":"EUR","id":"%s","created_at":"%s","sha256":"%s","version":"v%d.%d.%d","sku":"SKU-%c%c-%04d-%s","qty":%d,"unix":%d,"ratio":"%d:%d","etag":"W/\"%s\""}`,
			2000+rng.IntN(30), rng.IntN(1000000), rng.IntN(100000), rng.IntN(100), uuid(), ts(), hex(64),
			rng.IntN(3), rng.IntN(30), rng.IntN(20), 'A'+rune(rng.IntN(26)), 'A'+rune(rng.IntN(26)), rng.IntN(10000),
			[]string{"S", "M", "L", "XL"}[rng.IntN(4)], 1+rng.IntN(9), 1600000000+rng.IntN(200000000), 1+rng.IntN(21), 1+rng.IntN(9), hex(40))
		values += 13
		got, res := redactBody(t, e, "application/json", body)
		if got != body {
			changed++
			if changed <= 5 {
				t.Errorf("record %d changed (rules %v):\n%s\n%s", i, res.Rules, body, got)
			}
		}
		text := fmt.Sprintf("%s INFO order ORD-%06d paid %d.%02d EUR id=%s took %d:%02d sha %s", ts(), rng.IntN(1000000), rng.IntN(10000), rng.IntN(100), uuid(), rng.IntN(60), rng.IntN(60), hex(12))
		values += 6
		if got, res := redactBody(t, e, "text/plain", text); got != text {
			changed++
			if changed <= 5 {
				t.Errorf("text %d changed (rules %v):\n%s\n%s", i, res.Rules, text, got)
			}
		}
	}
	t.Logf("generated non-PII corpus: %d of %d records changed (%d values)", changed, 2*n, values)
}

// TestScrubNamedHostileInputLinear feeds inputs built to make a naive
// scanner quadratic (unclosed quotes, tags, elements and CDATA sections,
// repeated): each 1 MB body must be scrubbed in well under the generous
// bound (a quadratic scan takes minutes), and nothing after an unclosed
// secret value may leak.
func TestScrubNamedHostileInputLinear(t *testing.T) {
	e := newEngine(t, Config{})
	for _, unit := range []string{`password="`, `password="\"`, "<password>", `<a x="`, "<Secret><![CDATA[", "<a ", `token='`, "<password x='1'>"} {
		body := strings.Repeat(unit, (1<<20)/len(unit)) + " tail zoe@example.org"
		start := time.Now()
		got, _ := redactBody(t, e, "text/xml", body)
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%q x %d: %v", unit, (1<<20)/len(unit), d)
		}
		if strings.Contains(got, "zoe@example.org") {
			t.Errorf("%q: tail leaked", unit)
		}
	}
}

// TestPEMFakeKeepsFormat: the fake of a PEM private key block, whole or cut
// by the capture, is again a private key block found whole (with its BEGIN
// marker and END line), never "****"; a BEGIN line without key material is
// no finding (nothing in it is secret).
func TestPEMFakeKeepsFormat(t *testing.T) {
	d := allDetectors()
	k := testKeyed()
	for _, s := range []string{
		"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrY\n-----END EC PRIVATE KEY-----",
		"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
		"-----BEGIN PRIVATE KEY-----\nM",
		"-----BEGIN PRIVATE KEY-----MIIEvQ",
		"-----BEGIN RSA PRIVATE KEY----- x\n-----END RSA PRIVATE KEY-----",
	} {
		if got := d.find(s, nil); len(got) != 1 || got[0] != (span{0, len(s), kindCredential}) {
			t.Errorf("find(%q) = %v, want the whole block", s, got)
			continue
		}
		f := k.fake(fakeKind(kindCredential), s)
		hs := pemHeaderEnd(s)
		if f == s || !strings.HasPrefix(f, s[:hs]) || len(f) != len(s) {
			t.Errorf("fake(%q) = %q", s, f)
		}
		if got := d.find(f, nil); len(got) != 1 || got[0] != (span{0, len(f), kindCredential}) {
			t.Errorf("fake %q of %q found as %v", f, s, got)
		}
	}
	for _, s := range []string{
		"-----BEGIN PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----\n", "-----BEGIN PRIVATE KEY-----\n \n",
		"-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----",
	} {
		if got := d.find(s, nil); len(got) != 0 {
			t.Errorf("find(%q) = %v, want nothing (no key material)", s, got)
		}
	}
}
