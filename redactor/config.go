package redactor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Action names what a rule does to the value it matches.
type Action string

// Actions a rule can take. ActionDrop is an alias of ActionRemove that reads
// better for headers.
const (
	// ActionRemove deletes the value: a header line, a JSON member or array
	// element, a form or query pair, or the matched text inside a string.
	ActionRemove Action = "remove"
	// ActionDrop is the same as ActionRemove.
	ActionDrop Action = "drop"
	// ActionMask replaces the value with the fixed string "****".
	ActionMask Action = "mask"
	// ActionHash replaces the value with "hmac:" and the first 16 hex digits of
	// HMAC-SHA256(key, value): equal inputs give equal tokens, so joins work.
	ActionHash Action = "hash"
	// ActionFake replaces the value with a format-preserving fake derived from
	// the HMAC of the value (a card stays a Luhn-valid card of the same length,
	// an email a valid email, ...).
	ActionFake Action = "fake"
	// ActionShape is ActionFake with the shape-keeping generator (kind
	// "shape"): every letter replaced by a letter of the same script and case,
	// every digit by a digit, punctuation and white space kept, so a name or
	// address keeps its length and a non-ASCII one stays non-ASCII.
	ActionShape Action = "shape"
	// ActionKeep allow-lists the value: no rule and no detector touches it.
	ActionKeep Action = "keep"
	// ActionOff disables the rule (used to switch off a default rule or detector).
	ActionOff Action = "off"
	// ActionUnsign turns a JSON Web Token ("TOKEN" or "Bearer TOKEN") into
	// "HEADER.CLAIMS.": the header keeps only alg, typ, kid and cty, the
	// claims are redacted as a JSON body (JSON field rules, secret names,
	// detectors) and the signature is dropped, so a replayer can sign the
	// claims again with a test key. A value that is not such a token is
	// removed. Valid on header, JSON field, form field and query parameter
	// rules and on the jwt detector.
	ActionUnsign Action = "unsign"
)

// Binary policies for bodies that are not text (images, octet-stream, ...).
const (
	// BinaryDrop empties binary bodies (the default).
	BinaryDrop = "drop"
	// BinaryPass forwards binary bodies unchanged.
	BinaryPass = "pass"
)

// Truncation policies for structured or compressed bodies cut at capture.
const (
	// TruncatedFail fails the record closed (the default).
	TruncatedFail = "fail"
	// TruncatedDrop empties the body and keeps the record.
	TruncatedDrop = "drop"
)

// Directions a header rule applies to.
const (
	OnBoth     = "both"
	OnRequest  = "request"
	OnResponse = "response"
)

// DefaultHashKeyEnv is the environment variable read for the HMAC key when the
// configuration names none and a hash or fake action is used.
const DefaultHashKeyEnv = "MIRRORLINE_REDACT_HASH_KEY"

// DefaultMaxDecodedBytes bounds the size of a decompressed body.
const DefaultMaxDecodedBytes = 64 << 20

// Config is the YAML redaction configuration. Every key is optional; see
// docs/redaction.md for the reference. NewEngine layers a Config over the
// built-in defaults (DefaultConfig) unless Defaults is set to false, so a zero
// Config is as safe as DefaultConfig.
type Config struct {
	// Defaults, when explicitly false, disables the built-in rules: only the
	// rules written in this Config apply.
	Defaults *bool `yaml:"defaults,omitempty"`
	// HashKeyEnv names the environment variable holding the HMAC key used by
	// hash and fake actions (default MIRRORLINE_REDACT_HASH_KEY).
	HashKeyEnv string `yaml:"hash_key_env,omitempty"`
	// HashKeyFile names a file holding the HMAC key; it wins over HashKeyEnv.
	// Surrounding white space is trimmed.
	HashKeyFile string `yaml:"hash_key_file,omitempty"`
	// Binary is the policy for binary bodies: "drop" (default) or "pass".
	Binary string `yaml:"binary,omitempty"`
	// OnTruncated is the policy for a truncated JSON, form, multipart or
	// compressed body: "fail" (default, fail closed) or "drop" (empty the body).
	OnTruncated string `yaml:"on_truncated,omitempty"`
	// ScanHeaders runs the detectors over header values no header rule matched
	// (default true).
	ScanHeaders *bool `yaml:"scan_headers,omitempty"`
	// MaxDecodedBytes bounds a decompressed body; larger ones fail closed
	// (default 64 MiB).
	MaxDecodedBytes int64 `yaml:"max_decoded_bytes,omitempty"`
	// Headers maps a header name (case-insensitive, '*' wildcards allowed) to a
	// rule. Actions: drop/remove, mask, hash, fake, keep, off, unsign.
	Headers map[string]Rule `yaml:"headers,omitempty"`
	// JSONFields maps a JSON path ("card.number", "items.*.email",
	// "**.password"; segments case-insensitive, '*' wildcards inside a segment
	// allowed) to a rule.
	JSONFields map[string]Rule `yaml:"json_fields,omitempty"`
	// FormFields maps a form field name (application/x-www-form-urlencoded and
	// multipart/form-data; case-insensitive, '*' wildcards) to a rule.
	FormFields map[string]Rule `yaml:"form_fields,omitempty"`
	// QueryParams maps a URL query parameter name (case-insensitive, '*'
	// wildcards) to a rule; it also applies to the query of Referer and
	// Location headers.
	QueryParams map[string]Rule `yaml:"query_params,omitempty"`
	// Detectors maps a detector name (card, email, phone, ssn, iban, jwt,
	// bearer, credential, ipv6, ipv4) to the rule applied to what it finds. A detector not
	// listed keeps its default (on, mask; off when Defaults is false);
	// "off" disables it.
	Detectors map[string]Rule `yaml:"detectors,omitempty"`
	// SecretNames is the rule for JSON keys, form fields, query parameters
	// and XML/HTML/text names that look like they hold a secret (clientSecret,
	// db_password, refresh_token, sessionId, X-Api-Key, ...) and that no
	// explicit rule names; matching headers are dropped. Default mask; "off"
	// disables it. See docs/redaction.md for the words recognised.
	SecretNames *Rule `yaml:"secret_names,omitempty"`
}

// Rule is what to do with a matched value. In YAML it is either a bare action
// ("mask") or a mapping with the keys below.
type Rule struct {
	// Action is one of remove (alias drop), mask, hash, fake, shape, keep, off,
	// unsign.
	Action Action `yaml:"action"`
	// On limits a header rule to "request", "response" or "both" (default).
	On string `yaml:"on,omitempty"`
	// Kind selects the fake generator of a fake action on a header or field:
	// card, email, phone, ssn, iban, jwt, bearer, credential, ipv6, ipv4, text
	// or shape. Empty means auto: the detector matching the whole value, else
	// text.
	Kind string `yaml:"kind,omitempty"`
	// Name is the rule name reported in Result and metrics; the default is
	// derived from the section and key, e.g. "header:authorization".
	Name string `yaml:"name,omitempty"`
}

var ruleKeys = map[string]bool{"action": true, "on": true, "kind": true, "name": true}

// UnmarshalYAML accepts a bare action or a mapping; unknown mapping keys are an
// error (the decoder's KnownFields setting does not reach custom unmarshalers).
func (r *Rule) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*r = Rule{Action: Action(s)}
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if !ruleKeys[k] {
				return fmt.Errorf("line %d: field %s not found in type redactor.Rule", n.Content[i].Line, k)
			}
		}
		type plain Rule
		var p plain
		if err := n.Decode(&p); err != nil {
			return err
		}
		*r = Rule(p)
		return nil
	default:
		return fmt.Errorf("line %d: a rule is an action or a mapping", n.Line)
	}
}

// MarshalYAML writes a rule with only an action as a bare scalar.
func (r Rule) MarshalYAML() (any, error) {
	if r.On == "" && r.Kind == "" && r.Name == "" {
		return string(r.Action), nil
	}
	type plain Rule
	return plain(r), nil
}

func boolPtr(b bool) *bool { return &b }

// DefaultConfig returns the built-in safe defaults:
//   - credential headers (Authorization, Proxy-Authorization, Cookie,
//     Set-Cookie, X-Api-Key, X-Auth-Token, X-Csrf-Token, *-Token, *-Api-Key,
//     *-Secret, ...) dropped on requests and responses;
//   - password, secret, token, api key, private key, CVV and PIN fields masked
//     in JSON (at any depth), form bodies and query strings;
//   - secret_names: any other name that looks like it holds a secret
//     (clientSecret, sessionId, otp_code, ...) masked in JSON, forms, query
//     strings and text, XML and HTML bodies, and such headers dropped;
//   - every detector on, action mask;
//   - binary bodies dropped, truncated structured bodies failed closed, header
//     values scanned, decompressed bodies limited to 64 MiB.
//
// Defaults need no HMAC key.
func DefaultConfig() Config {
	c := Config{
		HashKeyEnv:      DefaultHashKeyEnv,
		Binary:          BinaryDrop,
		OnTruncated:     TruncatedFail,
		ScanHeaders:     boolPtr(true),
		MaxDecodedBytes: DefaultMaxDecodedBytes,
		Headers:         map[string]Rule{},
		JSONFields:      map[string]Rule{},
		FormFields:      map[string]Rule{},
		QueryParams:     map[string]Rule{},
		Detectors:       map[string]Rule{},
	}
	for _, h := range defaultDropHeaders {
		c.Headers[h] = Rule{Action: ActionDrop}
	}
	for _, f := range defaultSecretNames {
		c.JSONFields["**."+f] = Rule{Action: ActionMask}
		c.FormFields[f] = Rule{Action: ActionMask}
		c.QueryParams[f] = Rule{Action: ActionMask}
	}
	for _, q := range defaultSecretQueryOnly {
		c.QueryParams[q] = Rule{Action: ActionMask}
	}
	for k := range numKinds {
		c.Detectors[k.String()] = Rule{Action: ActionMask}
	}
	c.SecretNames = &Rule{Action: ActionMask}
	return c
}

var defaultDropHeaders = []string{
	"Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "Set-Cookie2", "X-Api-Key",
	"Api-Key", "X-Auth-Token", "X-Access-Token", "X-Refresh-Token", "X-Session-Token", "X-Csrf-Token",
	"X-Xsrf-Token", "X-Csrftoken", "X-Amz-Security-Token", "X-Goog-Api-Key", "X-Vault-Token", "*-Token",
	"*-Api-Key", "*-Secret",
}

// defaultSecretNames are field-name patterns masked in JSON (as "**.<name>"),
// form bodies and query strings.
var defaultSecretNames = []string{
	"password", "*password", "passwd", "pwd", "*secret", "*token", "*api_key", "*apikey",
	"*private_key", "*privatekey", "cvv", "cvv2", "cvc", "pin", "authorization",
}

// defaultSecretQueryOnly are extra query parameters masked by default
// (pre-signed URL credentials).
var defaultSecretQueryOnly = []string{
	"x-amz-signature", "x-amz-credential", "x-goog-signature", "x-goog-credential", "sig", "signature",
}

// LoadConfig reads a YAML file strictly (unknown keys are an error naming the
// key and line) and returns it merged over DefaultConfig: scalar keys given
// replace the default, map entries (headers, json_fields, form_fields,
// query_params, detectors) are added to the defaults and replace a default
// with the same key (compared case-insensitively). Set a key to "off" to
// disable one default rule, or "defaults: false" to start from no rules.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load redaction config: %w", err)
	}
	var user Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&user); err != nil && !errors.Is(err, io.EOF) {
		if key := keyAtErrorLine(data, err); key != "" {
			return Config{}, fmt.Errorf("load redaction config %s: %s: %w", path, key, err)
		}
		return Config{}, fmt.Errorf("load redaction config %s: %w", path, err)
	}
	if user.Defaults != nil && !*user.Defaults {
		return user, nil
	}
	return mergeConfig(DefaultConfig(), user), nil
}

var errLineRE = regexp.MustCompile(`line (\d+):`)

// keyAtErrorLine names the key (as a dotted path) on the first line a yaml
// error reports, so that type errors name the key as unknown-key errors do.
func keyAtErrorLine(data []byte, err error) string {
	m := errLineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return ""
	}
	line, _ := strconv.Atoi(m[1])
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return ""
	}
	var find func(n *yaml.Node, path string) string
	find = func(n *yaml.Node, path string) string {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				if p := find(c, path); p != "" {
					return p
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				if v.Line == line && (v.Kind == yaml.ScalarNode || k.Line == line) {
					return p
				}
				if sub := find(v, p); sub != "" {
					return sub
				}
			}
		}
		return ""
	}
	return find(&root, "")
}

// mergeConfig returns over layered on base (see LoadConfig).
func mergeConfig(base, over Config) Config {
	out := base
	setIf(&out.Defaults, over.Defaults)
	setIf(&out.HashKeyEnv, over.HashKeyEnv)
	setIf(&out.HashKeyFile, over.HashKeyFile)
	setIf(&out.Binary, over.Binary)
	setIf(&out.OnTruncated, over.OnTruncated)
	setIf(&out.ScanHeaders, over.ScanHeaders)
	setIf(&out.MaxDecodedBytes, over.MaxDecodedBytes)
	setIf(&out.SecretNames, over.SecretNames)
	out.Headers = mergeRules(base.Headers, over.Headers)
	out.JSONFields = mergeRules(base.JSONFields, over.JSONFields)
	out.FormFields = mergeRules(base.FormFields, over.FormFields)
	out.QueryParams = mergeRules(base.QueryParams, over.QueryParams)
	out.Detectors = mergeRules(base.Detectors, over.Detectors)
	return out
}

// mergeRules copies base and adds over, an over key replacing every base key
// equal to it ignoring case.
func mergeRules(base, over map[string]Rule) map[string]Rule {
	out := make(map[string]Rule, len(base)+len(over))
	lower := make(map[string]string, len(base))
	for k, v := range base {
		out[k] = v
		lower[strings.ToLower(k)] = k
	}
	// Sorted for a deterministic result when over itself has case variants.
	for _, k := range sortedKeys(over) {
		if old, ok := lower[strings.ToLower(k)]; ok {
			delete(out, old)
		}
		out[k] = over[k]
		lower[strings.ToLower(k)] = k
	}
	return out
}

// sortedKeys lists the keys of m in order.
func sortedKeys(m map[string]Rule) []string { return slices.Sorted(maps.Keys(m)) }

// setIf sets *dst to v unless v is the zero value (not set in a config).
func setIf[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}
