package credential

import (
	"net/http"
	"time"
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

// Signer is a compiled JWT.
type Signer struct{}

// Compile checks j (a known alg, a key of that alg that parses, a secret
// long enough) and returns its Signer; the error names the field but never
// the key.
func (j JWT) Compile() (*Signer, error) { panic("credential: JWT.Compile not written yet") }

// HeaderName is the canonical name of the header the Signer rewrites.
func (s *Signer) HeaderName() string { panic("credential: Signer.HeaderName not written yet") }

// Apply re-signs the token in hdr (signed or with its signature dropped by
// the redactor) at now: its claims are kept, Claims set over them, exp, iat
// (and nbf) renewed; the header becomes {alg, typ: JWT, kid}. It returns
// false, and changes nothing, when the header holds no token; an error when
// it holds one that does not decode.
func (s *Signer) Apply(hdr http.Header, now time.Time) (bool, error) {
	panic("credential: Signer.Apply not written yet")
}
