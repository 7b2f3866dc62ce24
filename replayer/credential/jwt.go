package credential

import (
	"bytes"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/net/http/httpguts"
)

// JWT re-signs the JSON Web Token of a request header with a test key.
type JWT struct {
	// Header holds the token (default Authorization, as "Bearer TOKEN").
	Header string `yaml:"header,omitempty"`
	// Alg is HS256, RS256 or ES256.
	Alg string `yaml:"alg"`
	// KeyFile is the PEM private key of RS256 (PKCS#1 or PKCS#8) or ES256
	// (SEC 1 or PKCS#8, P-256).
	KeyFile string `yaml:"key_file,omitempty"`
	// SecretFile or SecretEnv holds the HS256 secret (at least 32 bytes).
	SecretFile string `yaml:"secret_file,omitempty"`
	SecretEnv  string `yaml:"secret_env,omitempty"`
	// KeyID, when set, is the kid of the new token's header.
	KeyID string `yaml:"kid,omitempty"`
	// TTL is how long the new token is valid: exp = now + TTL (default 5m);
	// iat (and nbf when the token had one) become now.
	TTL time.Duration `yaml:"ttl,omitempty"`
	// Claims are set over the captured claims, e.g. iss and aud of the
	// shadow's environment.
	Claims map[string]any `yaml:"claims,omitempty"`
}

// DefaultTTL is the lifetime of a re-signed token when JWT.TTL is zero.
const DefaultTTL = 5 * time.Minute

// MinHS256Secret is the shortest HS256 secret accepted, in bytes.
const MinHS256Secret = 32

// MinRSABits is the smallest RS256 modulus accepted.
const MinRSABits = 2048

// ErrMalformed is wrapped by Signer.Apply when the header holds a token that
// does not decode (the request must not be sent).
var ErrMalformed = errors.New("malformed JWT")

// Signer is a compiled JWT. It is safe for concurrent use; a key or secret
// file is checked for a change at most once per CheckInterval and read again
// when it changed (a rotated key takes effect without a restart).
type Signer struct {
	header string // canonical header name
	bare   bool   // the header holds the bare token (not Authorization)
	method jwt.SigningMethod
	key    any          // env secret
	file   *watchedFile // key_file or secret_file
	kid    string
	ttl    time.Duration
	claims map[string]any
}

// Compile checks j (a known alg, a key of that alg that parses, a secret
// long enough) and returns its Signer; the error names the field but never
// the key.
func (j JWT) Compile() (*Signer, error) {
	name := j.Header
	if name == "" {
		name = "Authorization"
	}
	if !httpguts.ValidHeaderFieldName(name) {
		return nil, fmt.Errorf("jwt header %q: not a valid header name", name)
	}
	s := &Signer{header: http.CanonicalHeaderKey(name), kid: j.KeyID, ttl: j.TTL, claims: maps.Clone(j.Claims)}
	s.bare = s.header != "Authorization"
	if s.ttl < 0 {
		return nil, fmt.Errorf("jwt ttl: %v is negative", j.TTL)
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if !validFieldValue(j.KeyID) {
		return nil, fmt.Errorf("jwt kid: %w", ErrInvalidValue)
	}
	for _, k := range []string{"exp", "iat", "nbf"} {
		if _, ok := j.Claims[k]; ok {
			return nil, fmt.Errorf("jwt claims: %s is set from ttl and the time of the request", k)
		}
	}
	if _, err := json.Marshal(j.Claims); err != nil {
		return nil, fmt.Errorf("jwt claims: %w", err)
	}
	var parse func([]byte) (any, error)
	switch j.Alg {
	case "HS256":
		s.method = jwt.SigningMethodHS256
		if j.KeyFile != "" {
			return nil, errors.New("jwt key_file: HS256 takes secret_file or secret_env")
		}
		switch {
		case j.SecretFile != "" && j.SecretEnv != "":
			return nil, errors.New("jwt secret_file and secret_env are exclusive")
		case j.SecretEnv != "":
			v, err := parseSecret([]byte(os.Getenv(j.SecretEnv)))
			if err != nil {
				return nil, fmt.Errorf("jwt secret_env %s: %w", j.SecretEnv, err)
			}
			s.key = v
			return s, nil
		case j.SecretFile == "":
			return nil, errors.New("jwt: HS256 needs secret_file or secret_env")
		}
		w, err := newWatchedFile("jwt secret_file", j.SecretFile, parseSecret)
		if err != nil {
			return nil, err
		}
		s.file = w
		return s, nil
	case "RS256":
		s.method, parse = jwt.SigningMethodRS256, parseRSAKey
	case "ES256":
		s.method, parse = jwt.SigningMethodES256, parseECKey
	default:
		return nil, fmt.Errorf("jwt alg: %q is not one of HS256, RS256, ES256", j.Alg)
	}
	if j.SecretFile != "" || j.SecretEnv != "" {
		return nil, fmt.Errorf("jwt: %s takes key_file, not secret_file or secret_env", j.Alg)
	}
	if j.KeyFile == "" {
		return nil, fmt.Errorf("jwt key_file: required for %s", j.Alg)
	}
	w, err := newWatchedFile("jwt key_file", j.KeyFile, parse)
	if err != nil {
		return nil, err
	}
	s.file = w
	return s, nil
}

// parseSecret trims an HS256 secret and checks its length.
func parseSecret(b []byte) (any, error) {
	v := bytes.TrimSpace(b)
	if len(v) < MinHS256Secret {
		return nil, fmt.Errorf("HS256 secret is %d bytes, need at least %d", len(v), MinHS256Secret)
	}
	return bytes.Clone(v), nil
}

func parseRSAKey(b []byte) (any, error) {
	k, err := jwt.ParseRSAPrivateKeyFromPEM(b)
	if err != nil {
		return nil, errors.New("not a PEM RSA private key (PKCS#1 or PKCS#8)")
	}
	if n := k.N.BitLen(); n < MinRSABits {
		return nil, fmt.Errorf("RSA key is %d bits, need at least %d", n, MinRSABits)
	}
	return k, nil
}

func parseECKey(b []byte) (any, error) {
	k, err := jwt.ParseECPrivateKeyFromPEM(b)
	if err != nil {
		return nil, errors.New("not a PEM EC private key (SEC 1 or PKCS#8)")
	}
	if k.Curve != elliptic.P256() {
		return nil, errors.New("ES256 needs a P-256 key")
	}
	return k, nil
}

// HeaderName is the canonical name of the header the Signer rewrites.
func (s *Signer) HeaderName() string { return s.header }

// Check stats a key or secret file now, whatever CheckInterval, and reads it
// again if it changed; it returns the error Apply would return for the key.
func (s *Signer) Check() error {
	if s.file == nil {
		return nil
	}
	return s.file.Check()
}

// Apply re-signs the token in hdr (signed or with its signature dropped by
// the redactor) at now: its claims are kept, Claims set over them, exp, iat
// (and nbf) renewed; the header becomes {alg, typ: JWT, kid}. It returns
// false, and changes nothing, when the header holds no token; an error when
// it holds one that does not decode.
func (s *Signer) Apply(hdr http.Header, now time.Time) (bool, error) {
	vals := hdr[s.header]
	if len(vals) == 0 {
		return false, nil
	}
	v := strings.TrimSpace(vals[0])
	prefix, tok := "", v
	if !s.bare {
		sp := strings.IndexByte(v, ' ')
		if sp < 0 || !strings.EqualFold(v[:sp], "Bearer") {
			return false, nil // no scheme or another one (Basic, ...): no token
		}
		tok = strings.TrimLeft(v[sp+1:], " ")
		prefix = v[:sp+1]
	}
	if tok == "" {
		return false, nil
	}
	claims, err := decodeClaims(tok)
	if err != nil {
		return false, fmt.Errorf("jwt %s: %w", s.header, err)
	}
	key := s.key
	if s.file != nil {
		if key, err = s.file.get(); err != nil {
			return false, err
		}
	}
	maps.Copy(claims, s.claims)
	_, hadNbf := claims["nbf"]
	claims["iat"] = now.Unix()
	claims["exp"] = now.Add(s.ttl).Unix()
	if hadNbf {
		claims["nbf"] = now.Unix()
	}
	t := jwt.NewWithClaims(s.method, claims)
	if s.kid != "" {
		t.Header["kid"] = s.kid
	}
	signed, err := t.SignedString(key)
	if err != nil {
		return false, fmt.Errorf("jwt %s: sign %s: %w", s.header, s.method.Alg(), err)
	}
	hdr[s.header] = []string{prefix + signed}
	return true, nil
}

// decodeClaims decodes the header and claims segments of tok (base64url,
// padding tolerated; the signature, possibly empty, is ignored) and returns
// the claims. Errors never hold the token or a byte of it.
func decodeClaims(tok string) (jwt.MapClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: %d segments, want 3", ErrMalformed, len(parts))
	}
	var hdr map[string]json.RawMessage
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return nil, fmt.Errorf("%w: header segment %v", ErrMalformed, err)
	}
	var claims map[string]any
	if err := decodeSegment(parts[1], &claims); err != nil {
		return nil, fmt.Errorf("%w: claims segment %v", ErrMalformed, err)
	}
	return jwt.MapClaims(claims), nil
}

var (
	errNotBase64 = errors.New("is not base64url")
	errNotObject = errors.New("is not a JSON object")
)

// decodeSegment decodes a base64url JSON object into dst (a map); numbers
// stay json.Number so large integer claims keep every digit.
func decodeSegment(seg string, dst any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return errNotBase64
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if d.Decode(dst) != nil || d.More() || !bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
		return errNotObject
	}
	return nil
}
