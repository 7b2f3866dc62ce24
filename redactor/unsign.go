package redactor

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// maxUnsignDepth bounds unsign inside unsign: a JWT whose claims hold a JWT
// that the jwt detector unsigns in turn. Deeper tokens are removed.
const maxUnsignDepth = 2

// jwtHeaderKeys are the members of a JWT header that unsign keeps; every
// other member (jku, x5u, x5c, crit, custom ones) is dropped.
var jwtHeaderKeys = [...]string{"alg", "typ", "kid", "cty"}

// unsign is ActionUnsign: v is "<jwt>" or "Bearer <jwt>" (the scheme in any
// case, kept as written). It returns "HEADER.CLAIMS." where HEADER keeps only
// the alg, typ, kid and cty members of the token's header and CLAIMS is the
// claims object redacted like a JSON body (JSON field rules, secret names,
// detectors); the signature is dropped. ok is false when v is not a JWS of
// that form whose header and claims decode to JSON objects: the caller then
// removes the value (fail closed). Redactions inside the claims are counted
// in st under their own rules.
func (st *state) unsign(v string) (out string, ok bool) {
	if st.unsignDepth >= maxUnsignDepth {
		return "", false
	}
	prefix, tok := "", v
	if sp := strings.IndexByte(v, ' '); sp >= 0 {
		if !asciiEqualFold(v[:sp], "Bearer") {
			return "", false
		}
		tok = strings.TrimLeft(v[sp+1:], " ")
		prefix = v[:len(v)-len(tok)]
	}
	hdrSeg, rest, ok1 := strings.Cut(tok, ".")
	claimSeg, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.IndexByte(sig, '.') >= 0 || !isB64URL(sig) {
		return "", false
	}
	hdrJSON, err1 := decodeSegment(hdrSeg)
	claims, err2 := decodeSegment(claimSeg)
	if err1 != nil || err2 != nil {
		return "", false
	}
	var hdr map[string]any
	if json.Unmarshal(hdrJSON, &hdr) != nil || hdr == nil {
		return "", false
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(claims, &probe) != nil || probe == nil {
		return "", false
	}
	sub := &state{e: st.e, unsignDepth: st.unsignDepth + 1}
	kept := make(map[string]string, len(jwtHeaderKeys))
	for _, k := range jwtHeaderKeys {
		if s, isStr := hdr[k].(string); isStr {
			if ns, changed := sub.scrubString(s); changed {
				s = ns
			}
			kept[k] = s
		}
	}
	newHdr, err := json.Marshal(kept)
	if err != nil {
		return "", false
	}
	newClaims, changed, err := sub.scrubJSON(claims, false)
	if err != nil {
		return "", false
	}
	if !changed {
		newClaims = claims
	}
	st.counts.addAll(sub.counts)
	enc := base64.RawURLEncoding
	var b strings.Builder
	b.Grow(len(prefix) + enc.EncodedLen(len(newHdr)) + enc.EncodedLen(len(newClaims)) + 2)
	b.WriteString(prefix)
	b.WriteString(enc.EncodeToString(newHdr))
	b.WriteByte('.')
	b.WriteString(enc.EncodeToString(newClaims))
	b.WriteByte('.')
	return b.String(), true
}

// decodeSegment decodes a base64url JWT segment, without padding or with
// (tolerated).
func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// isB64URL reports whether s holds base64url characters only (a signature;
// padding tolerated).
func isB64URL(s string) bool {
	s = strings.TrimRight(s, "=")
	for i := 0; i < len(s); i++ {
		if class[s[i]]&cB64URL == 0 {
			return false
		}
	}
	return true
}
