package redactor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "redaction.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExampleConfig(t *testing.T) {
	cfg, err := LoadConfig("testdata/redaction.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewEngine(cfg); err == nil || !strings.Contains(err.Error(), "hash_key_env") {
		t.Errorf("no key: err = %v", err)
	}
	t.Setenv(DefaultHashKeyEnv, "an-hmac-key-of-enough-length")
	e, err := NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Headers["Authorization"].Action != ActionDrop || cfg.Headers["Cookie"].Action != ActionHash {
		t.Errorf("merge: %v %v", cfg.Headers["Authorization"], cfg.Headers["Cookie"])
	}
	if _, ok := cfg.JSONFields["**.password"]; !ok {
		t.Error("default json rule lost")
	}
	ex := reqEx("application/json", `{"card":{"number":"4111111111111111","cvv":"123"},"access_token":"t","metadata":{"trace":"10.0.0.1"}}`,
		"Cookie", "a=b", "X-Forwarded-For", "84.17.45.201")
	res, err := e.Redact(ex)
	if err != nil {
		t.Fatal(err)
	}
	body := string(ex.Request.Body)
	if strings.Contains(body, "4111111111111111") || strings.Contains(body, "cvv") || !strings.Contains(body, `"access_token":"t"`) ||
		!strings.Contains(body, `"trace":"10.0.0.1"`) {
		t.Errorf("body %s", body)
	}
	if v, _ := header(ex.Request.Headers, "Cookie"); !strings.HasPrefix(v, hashPrefix) {
		t.Errorf("cookie %q", v)
	}
	if res.Redactions["client-ip"] != 1 {
		t.Errorf("named rule: %v", res.Redactions)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"binaryy: drop\n", "binaryy"},
		{"headers:\n  X-A: {action: mask, onn: request}\n", "onn"},
		{"headers: [a, b]\n", "cannot unmarshal"},
		{"headers:\n  X-A: [mask]\n", "a rule is an action or a mapping"},
		{"scan_headers: maybe\n", "scan_headers"},
		{"binary: drop\nmax_decoded_bytes: lots\n", "max_decoded_bytes"},
		{"headers:\n  X-A:\n    action: [mask]\n", "headers.X-A.action"},
	} {
		_, err := LoadConfig(writeFile(t, tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want mention of %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
	// An empty file is the defaults.
	cfg, err := LoadConfig(writeFile(t, ""))
	if err != nil || cfg.Headers["Authorization"].Action != ActionDrop {
		t.Errorf("empty file: %v %v", err, cfg.Headers["Authorization"])
	}
}

// TestKnownFieldsDecoder checks the lead's decoding path: a yaml.v3 decoder
// with KnownFields(true) into a Config, also embedded in a larger struct.
func TestKnownFieldsDecoder(t *testing.T) {
	type top struct {
		Redactor Config `yaml:"redactor"`
	}
	for _, tc := range []struct {
		doc     string
		wantErr string
	}{
		{"redactor:\n  headers:\n    X-A: mask\n  detectors:\n    phone: \"off\"\n", ""},
		{"redactor:\n  headerz: {}\n", "headerz"},
		{"redactor:\n  json_fields:\n    a.b: {action: mask, kindd: card}\n", "kindd"},
	} {
		dec := yaml.NewDecoder(strings.NewReader(tc.doc))
		dec.KnownFields(true)
		var v top
		err := dec.Decode(&v)
		if tc.wantErr == "" {
			if err != nil {
				t.Fatalf("%q: %v", tc.doc, err)
			}
			if _, err := NewEngine(v.Redactor); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: err = %v", tc.doc, err)
		}
	}
}

func TestConfigMerge(t *testing.T) {
	p := writeFile(t, "headers:\n  authorization: mask\n  X-New: hash\njson_fields:\n  \"**.PASSWORD\": \"off\"\n  \"**.*password\": \"off\"\ndetectors:\n  phone: \"off\"\nbinary: pass\n")
	cfg, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Headers["Authorization"]; ok || cfg.Headers["authorization"].Action != ActionMask {
		t.Errorf("case-insensitive override: %v", cfg.Headers)
	}
	if cfg.Headers["Cookie"].Action != ActionDrop || cfg.Headers["X-New"].Action != ActionHash {
		t.Error("defaults or additions lost")
	}
	if cfg.Binary != BinaryPass || cfg.OnTruncated != TruncatedFail || cfg.ScanHeaders == nil || !*cfg.ScanHeaders {
		t.Errorf("scalars: %+v", cfg)
	}
	e := newEngine(t, cfg)
	got, _ := redactBody(t, e, "application/json", `{"password":"p","phone":"+14155552671"}`)
	if got != `{"password":"p","phone":"+14155552671"}` {
		t.Errorf("disabled rules still fire: %s", got)
	}

	// defaults: false starts from nothing.
	cfg, err = LoadConfig(writeFile(t, "defaults: false\nheaders:\n  X-A: drop\n"))
	if err != nil {
		t.Fatal(err)
	}
	e = newEngine(t, cfg)
	ex := reqEx("text/plain", "zoe@example.org", "Authorization", "x", "X-A", "y")
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	if _, ok := header(ex.Request.Headers, "Authorization"); !ok {
		t.Error("defaults: false still drops Authorization")
	}
	if _, ok := header(ex.Request.Headers, "X-A"); ok {
		t.Error("own rule ignored")
	}
	if string(ex.Request.Body) != "zoe@example.org" {
		t.Error("defaults: false still runs detectors not listed")
	}
}

func TestZeroConfigIsDefaults(t *testing.T) {
	// NewEngine layers a zero Config over the defaults: an embedding caller
	// that forgets DefaultConfig is still safe.
	e := newEngine(t, Config{})
	ex := reqEx("application/json", `{"password":"p"}`, "Authorization", "x")
	if _, err := e.Redact(ex); err != nil {
		t.Fatal(err)
	}
	if _, ok := header(ex.Request.Headers, "Authorization"); ok || string(ex.Request.Body) != `{"password":"****"}` {
		t.Errorf("zero config not safe: %v %s", ex.Request.Headers, ex.Request.Body)
	}
	// DefaultConfig needs no key.
	if _, err := NewEngine(DefaultConfig()); err != nil {
		t.Fatal(err)
	}
}

func TestNewEngineErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown action", Config{Headers: map[string]Rule{"X-A": {Action: "dorp"}}}, `headers["X-A"].action: unknown action "dorp"`},
		{"missing action", Config{FormFields: map[string]Rule{"a": {}}}, `form_fields["a"].action: missing`},
		{"bad path", Config{JSONFields: map[string]Rule{"a..b": {Action: ActionMask}}}, `json_fields["a..b"]: empty path segment`},
		{"bad glob path", Config{JSONFields: map[string]Rule{"a.b**": {Action: ActionMask}}}, `json_fields["a.b**"]`},
		{"unknown detector", Config{Detectors: map[string]Rule{"passport": {Action: ActionMask}}}, `detectors["passport"]: unknown detector`},
		{"detector action", Config{Detectors: map[string]Rule{"card": {Action: "x"}}}, `detectors["card"].action`},
		{"detector kind", Config{Detectors: map[string]Rule{"card": {Action: ActionFake, Kind: "email"}}}, `detectors["card"]`},
		{"bad on", Config{Headers: map[string]Rule{"X-A": {Action: ActionMask, On: "both-ways"}}}, `headers["X-A"].on`},
		{"on outside headers", Config{QueryParams: map[string]Rule{"a": {Action: ActionMask, On: OnRequest}}}, `query_params["a"].on`},
		{"bad kind", Config{JSONFields: map[string]Rule{"a": {Action: ActionFake, Kind: "passport"}}}, `json_fields["a"].kind`},
		{"bad binary", Config{Binary: "keep"}, "binary:"},
		{"bad on_truncated", Config{OnTruncated: "ignore"}, "on_truncated:"},
		{"negative max", Config{MaxDecodedBytes: -1}, "max_decoded_bytes"},
		{"wildcard-only name", Config{Headers: map[string]Rule{"**": {Action: ActionDrop}}}, `headers["**"]`},
		{"space in name", Config{Headers: map[string]Rule{"X A": {Action: ActionDrop}}}, `headers["X A"]`},
		{"duplicate names", Config{Defaults: boolPtr(false), Headers: map[string]Rule{"X-A": {Action: ActionDrop}, "x-a": {Action: ActionMask}}}, "duplicate"},
		{"duplicate paths", Config{Defaults: boolPtr(false), JSONFields: map[string]Rule{"a.B": {Action: ActionMask}, "a.b": {Action: ActionMask}}}, "duplicate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewEngine(tc.cfg, WithHashKey(testKey))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHashKeySources(t *testing.T) {
	hashCfg := Config{Detectors: map[string]Rule{"email": {Action: ActionHash}}}
	t.Setenv(DefaultHashKeyEnv, "")

	if _, err := NewEngine(hashCfg); err == nil || !strings.Contains(err.Error(), `detectors["email"]`) {
		t.Errorf("missing key: %v", err)
	}
	if _, err := NewEngine(hashCfg, WithHashKey([]byte("short"))); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short key: %v", err)
	}

	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte(string(testKey)+"\n"), 0o600)
	c := hashCfg
	c.HashKeyFile = keyFile
	eFile, err := NewEngine(c)
	if err != nil {
		t.Fatal(err)
	}
	c.HashKeyFile = filepath.Join(t.TempDir(), "nope")
	if _, err := NewEngine(c); err == nil || !strings.Contains(err.Error(), "hash_key_file") {
		t.Errorf("missing file: %v", err)
	}

	t.Setenv("MY_KEY", string(testKey))
	c = hashCfg
	c.HashKeyEnv = "MY_KEY"
	eEnv, err := NewEngine(c)
	if err != nil {
		t.Fatal(err)
	}
	eOpt := newEngine(t, hashCfg)

	var toks []string
	for _, e := range []*Engine{eFile, eEnv, eOpt} {
		got, _ := redactBody(t, e, "text/plain", "zoe@example.org")
		toks = append(toks, got)
	}
	if toks[0] != toks[1] || toks[1] != toks[2] || !strings.HasPrefix(toks[0], hashPrefix) {
		t.Errorf("same key, different tokens: %v", toks)
	}
}

func TestRuleYAML(t *testing.T) {
	var m map[string]Rule
	if err := yaml.Unmarshal([]byte("a: mask\nb: {action: fake, kind: card, name: x}\n"), &m); err != nil {
		t.Fatal(err)
	}
	if m["a"] != (Rule{Action: ActionMask}) || m["b"] != (Rule{Action: ActionFake, Kind: "card", Name: "x"}) {
		t.Errorf("rules %+v", m)
	}
	out, err := yaml.Marshal(m)
	if err != nil || !strings.Contains(string(out), "a: mask") || !strings.Contains(string(out), "kind: card") {
		t.Errorf("marshal: %s %v", out, err)
	}
	// DefaultConfig round-trips through YAML.
	b, err := yaml.Marshal(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(writeFile(t, string(b)))
	if err != nil {
		t.Fatalf("default config does not load: %v\n%s", err, b)
	}
	if len(cfg.Headers) != len(DefaultConfig().Headers) {
		t.Error("round trip changed headers")
	}
}

func TestRuleNamesOverride(t *testing.T) {
	e := newEngine(t, Config{Detectors: map[string]Rule{"email": {Action: ActionMask, Name: "pii_email"}}})
	ex := &mlv1.Exchange{Request: &mlv1.Request{Url: "/?e=zoe%40example.org"}}
	res, _ := e.Redact(ex)
	if res.Redactions["pii_email"] != 1 {
		t.Errorf("%v", res.Redactions)
	}
}
