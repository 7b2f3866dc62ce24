package comparator

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"

	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Field names of the non-JSON parts of a response.
const (
	FieldStatus = "status"
	FieldBody   = "body"
	// HeaderPrefix precedes a lower-case header name ("header.content-type").
	HeaderPrefix = "header."
)

// comparison is the outcome of diffing two responses.
type comparison struct {
	diffs        []*mlv1.Difference
	volatileKeys []string
	note         string
}

// differ compares responses under the compiled rules.
type differ struct {
	rules    *rules
	maxBody  int64
	maxDiffs int
	schema   *grpcwire.Schema // reads gRPC messages by field name (nil: by number)
}

// compareExchange diffs the shadow's response s against the primary's p to
// the request of ex, as gRPC when ex is a gRPC exchange.
func (d *differ) compareExchange(endpoint string, ex *mlv1.Exchange, p, s *mlv1.Response) comparison {
	if isGRPC(ex) {
		return d.compareGRPC(endpoint, ex.GetRequest().GetUrl(), p, s)
	}
	return d.compare(endpoint, p, s)
}

// compare diffs the shadow's response s against the primary's p.
func (d *differ) compare(endpoint string, p, s *mlv1.Response) comparison {
	var c comparison
	er := d.rules.forEndpoint(endpoint)
	vol := map[string]bool{}
	statusDiff := p.GetStatus() != s.GetStatus()
	if statusDiff {
		c.diffs = append(c.diffs, &mlv1.Difference{
			Field: FieldStatus, Key: FieldStatus, Kind: mlv1.DiffKind_DIFF_KIND_CHANGED,
			Primary: strconv.Itoa(int(p.GetStatus())), Shadow: strconv.Itoa(int(s.GetStatus())),
		})
	}
	for _, name := range d.rules.headers {
		if er.ignoreHeader(name) {
			continue
		}
		pv, okP := headerValue(p.GetHeaders(), name)
		sv, okS := headerValue(s.GetHeaders(), name)
		if name == "content-type" {
			pv, sv = normContentType(pv), normContentType(sv)
		}
		f := HeaderPrefix + name
		if okP && okS && looksVolatile(pv) {
			vol[f] = true
		}
		switch {
		case okP && okS && pv != sv:
			c.diffs = append(c.diffs, &mlv1.Difference{Field: f, Key: f, Kind: mlv1.DiffKind_DIFF_KIND_CHANGED, Primary: cut(pv, maxValueLen), Shadow: cut(sv, maxValueLen), Volatile: volatilePair(pv, sv)})
		case okP && !okS:
			c.diffs = append(c.diffs, &mlv1.Difference{Field: f, Key: f, Kind: mlv1.DiffKind_DIFF_KIND_REMOVED, Primary: cut(pv, maxValueLen)})
		case !okP && okS:
			c.diffs = append(c.diffs, &mlv1.Difference{Field: f, Key: f, Kind: mlv1.DiffKind_DIFF_KIND_ADDED, Shadow: cut(sv, maxValueLen)})
		}
	}
	bodyDiffs, bodyVol, note := d.compareBodies(er, p, s)
	c.addBody(bodyDiffs, bodyVol, note, vol, statusDiff)
	return c
}

// addBody appends the body's differences (bodyVol: its volatile keys, note:
// why it was not compared whole) to those of the status and headers (vol:
// their volatile keys). With a status difference (the first) every other
// difference is a consequence of it, and no key is learned as volatile.
func (c *comparison) addBody(bodyDiffs []*mlv1.Difference, bodyVol map[string]bool, note string, vol map[string]bool, statusDiff bool) {
	c.diffs = append(c.diffs, bodyDiffs...)
	c.note = note
	maps.Copy(vol, bodyVol)
	if statusDiff {
		for _, df := range c.diffs[1:] {
			df.UnderStatus = true
		}
	} else {
		c.volatileKeys = slices.Sorted(maps.Keys(vol))
	}
}

// bodyClass is how a body is compared.
type bodyClass int

const (
	classJSON bodyClass = iota
	classText
	classBinary
)

func (d *differ) compareBodies(er *epRules, p, s *mlv1.Response) ([]*mlv1.Difference, map[string]bool, string) {
	if p.GetBodyTruncated() || s.GetBodyTruncated() {
		side := "primary"
		if !p.GetBodyTruncated() {
			side = "shadow"
		} else if s.GetBodyTruncated() {
			side = "primary and shadow"
		}
		return nil, nil, side + " body truncated; bodies not compared"
	}
	pb, err := decodeBody(p.GetBody(), p.GetHeaders(), d.maxBody)
	if err != nil {
		return nil, nil, "primary body: " + err.Error() + "; bodies not compared"
	}
	sb, err := decodeBody(s.GetBody(), s.GetHeaders(), d.maxBody)
	if err != nil {
		return nil, nil, "shadow body: " + err.Error() + "; bodies not compared"
	}
	if bytes.Equal(pb, sb) {
		if len(pb) > 0 && classify(p.GetHeaders(), pb) == classJSON {
			// Equal documents still count for volatile-field denominators.
			if v, err := parseJSON(pb); err == nil {
				jd := newJSONDiffer(er, d.maxDiffs)
				jd.walk(nil, v, v)
				return nil, jd.volatile, ""
			}
		}
		return nil, nil, ""
	}
	if len(pb) == 0 || len(sb) == 0 {
		df := &mlv1.Difference{Field: FieldBody, Key: FieldBody}
		if len(pb) == 0 {
			df.Kind, df.Shadow = mlv1.DiffKind_DIFF_KIND_ADDED, summarize(s.GetHeaders(), sb)
		} else {
			df.Kind, df.Primary = mlv1.DiffKind_DIFF_KIND_REMOVED, summarize(p.GetHeaders(), pb)
		}
		return []*mlv1.Difference{df}, nil, ""
	}
	if int64(len(pb)) > d.maxBody || int64(len(sb)) > d.maxBody {
		return []*mlv1.Difference{binaryDiff(pb, sb)}, nil, "body larger than max_body_bytes; compared by hash"
	}
	cp, cs := classify(p.GetHeaders(), pb), classify(s.GetHeaders(), sb)
	if cp == classJSON && cs == classJSON {
		pv, errP := parseJSON(pb)
		sv, errS := parseJSON(sb)
		if errP == nil && errS == nil {
			jd := newJSONDiffer(er, d.maxDiffs)
			jd.walk(nil, pv, sv)
			note := ""
			if jd.truncated {
				note = fmt.Sprintf("more than %d differences; the rest not recorded", d.maxDiffs)
			}
			return jd.out, jd.volatile, note
		}
		cp, cs = classText, classText
	}
	if cp == classBinary || cs == classBinary || !utf8.Valid(pb) || !utf8.Valid(sb) {
		return []*mlv1.Difference{binaryDiff(pb, sb)}, nil, ""
	}
	pt, st := string(pb), string(sb)
	detail, removed, added := unified(diffLines(splitLines(pt), splitLines(st)))
	df := &mlv1.Difference{
		Field: FieldBody, Key: FieldBody, Kind: mlv1.DiffKind_DIFF_KIND_CHANGED,
		Primary: fmt.Sprintf("%d lines, %d removed", len(splitLines(pt)), removed),
		Shadow:  fmt.Sprintf("%d lines, %d added", len(splitLines(st)), added),
		Detail:  detail,
		// A text body whose only differences are volatile tokens.
		Volatile: volatilePair(pt, st),
	}
	var vol map[string]bool
	if looksVolatile(pt) {
		vol = map[string]bool{FieldBody: true}
	}
	return []*mlv1.Difference{df}, vol, ""
}

// binaryDiff records two differing bodies by size and hash.
func binaryDiff(pb, sb []byte) *mlv1.Difference {
	return &mlv1.Difference{Field: FieldBody, Key: FieldBody, Kind: mlv1.DiffKind_DIFF_KIND_CHANGED, Primary: hashOf(pb), Shadow: hashOf(sb)}
}

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return fmt.Sprintf("%d bytes, sha256 %s", len(b), hex.EncodeToString(h[:8]))
}

// summarize describes a body present on one side only.
func summarize(h []*mlv1.Header, b []byte) string {
	if classify(h, b) != classBinary && utf8.Valid(b) {
		return cut(string(b), maxValueLen)
	}
	return hashOf(b)
}

// classify decides how a body is compared from its Content-Type and bytes.
func classify(h []*mlv1.Header, b []byte) bodyClass {
	ct, _ := headerValue(h, "content-type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(ct))
	}
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return classJSON
	case strings.HasPrefix(mt, "text/"), strings.HasSuffix(mt, "+xml"), mt == "application/xml",
		mt == "application/javascript", mt == "application/x-www-form-urlencoded", mt == "application/graphql":
		return classText
	case mt == "" || mt == "application/octet-stream":
		t := bytes.TrimSpace(b)
		if len(t) > 0 && (t[0] == '{' || t[0] == '[') && utf8.Valid(b) {
			return classJSON
		}
		if utf8.Valid(b) && !bytes.ContainsRune(b, 0) && mt == "" {
			return classText
		}
		return classBinary
	}
	return classBinary
}

// headerValue joins the values of header name (case-insensitive) with ", ".
func headerValue(hs []*mlv1.Header, name string) (string, bool) {
	var vals []string
	for _, h := range hs {
		if strings.EqualFold(h.GetName(), name) {
			vals = append(vals, h.GetValue())
		}
	}
	return strings.Join(vals, ", "), len(vals) > 0
}

// normContentType lower-cases a media type and drops white space around
// parameters, so "application/json; charset=UTF-8" equals
// "application/json;charset=utf-8".
func normContentType(v string) string {
	parts := strings.Split(v, ";")
	for i, p := range parts {
		parts[i] = strings.ToLower(strings.TrimSpace(p))
	}
	return strings.Join(parts, ";")
}

var errCoding = errors.New("unsupported content-encoding")

// decodeBody undoes Content-Encoding (gzip, deflate, br, zstd; stacked
// codings last-applied first), reading at most limit+1 bytes.
func decodeBody(b []byte, h []*mlv1.Header, limit int64) ([]byte, error) {
	ce, ok := headerValue(h, "content-encoding")
	if !ok || len(b) == 0 {
		return b, nil
	}
	var codings []string
	for _, tok := range strings.Split(ce, ",") {
		tok = strings.ToLower(strings.TrimSpace(tok))
		if tok != "" && tok != "identity" {
			codings = append(codings, tok)
		}
	}
	if len(codings) > 4 {
		return nil, errCoding
	}
	for i := len(codings) - 1; i >= 0; i-- {
		var r io.Reader
		var err error
		switch codings[i] {
		case "gzip", "x-gzip":
			r, err = gzip.NewReader(bytes.NewReader(b))
		case "deflate":
			if zr, zerr := zlib.NewReader(bytes.NewReader(b)); zerr == nil {
				r = zr
			} else {
				r = flate.NewReader(bytes.NewReader(b))
			}
		case "br":
			r = brotli.NewReader(bytes.NewReader(b))
		case "zstd":
			zr, zerr := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1))
			if zerr != nil {
				return nil, fmt.Errorf("decode zstd: %w", zerr)
			}
			defer zr.Close()
			r = zr
		default:
			return nil, errCoding
		}
		if err == nil {
			b, err = io.ReadAll(io.LimitReader(r, limit+1))
		}
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", codings[i], err)
		}
	}
	return b, nil
}
