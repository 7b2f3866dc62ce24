package redactor

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/mirrorline/mirrorline/grpcwire"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// ErrUnparseable is wrapped by Redact's error when a body cannot be parsed as
// its declared content type, a compressed body cannot be decoded, or a
// structured body was truncated at capture (with on_truncated: fail).
var ErrUnparseable = errors.New("body cannot be parsed; record fails closed")

// ErrInternal is returned (fail closed) if the engine hit an internal error;
// the exchange has then been stripped of URL, headers, bodies, client address
// and error text.
var ErrInternal = errors.New("internal redaction error; record fails closed")

// minKeyLen is the shortest accepted HMAC key.
const minKeyLen = 16

// maxJSONDepth bounds the nesting of JSON bodies.
const maxJSONDepth = 10000

// Result tells what Redact did.
type Result struct {
	// Rules lists the names of the rules that fired, sorted and without
	// duplicates. Names come from configuration only ("header:authorization",
	// "json:**.password", "detector:email", "body:binary", ...), never from
	// payload data, so they are safe as metric labels.
	Rules []string
	// Redactions counts the values each rule redacted; nil when none fired.
	Redactions map[string]int
	// GRPCModes counts the gRPC messages scrubbed, by mode (ModeSchema,
	// ModeWire, ModeJSON, ModeTruncated); nil when there were none.
	GRPCModes map[string]int
}

// Directions, as bits.
const (
	dirRequest  uint8 = 1
	dirResponse uint8 = 2
)

// rule is a compiled Rule.
type rule struct {
	act   act
	fake  fakeKind
	name  string
	on    uint8 // directions (headers only)
	score int   // specificity: the most specific matching rule wins
}

// better reports whether r should win over o (o may be nil).
func (r *rule) better(o *rule) bool {
	if o == nil {
		return true
	}
	if r.score != o.score {
		return r.score > o.score
	}
	return r.act.strength() > o.act.strength()
}

// Engine applies a redaction configuration to exchanges. It is immutable
// after NewEngine and safe for concurrent use.
type Engine struct {
	keyed       *keyed
	det         detectors
	detAll      detectors // every detector, to pick a fake generator
	detRule     [numKinds]rule
	detOn       bool // det.any(), computed once
	headers     nameRules
	form        nameRules
	query       nameRules
	json        pathRules
	binaryDrop  bool
	truncDrop   bool
	scanHeaders bool
	maxDecoded  int64
	// secret_names: rules for names that look like they hold a secret
	// (secretName), used when no explicit rule matches the name.
	secretOn     bool
	secretJSON   rule
	secretForm   rule
	secretQuery  rule
	secretHeader rule
	secretText   rule
	// Names whose rule is "off": secret_names does not apply to them either.
	offHeader, offForm, offQuery, offJSON []glob
	secrets                               *secretCache
	// Classifications of JSON keys and header names (namecache.go), and
	// the functions computing them on a miss.
	keys        *nameCache[keyClass]
	hdrs        *nameCache[headerClass]
	classKey    func(string) keyClass
	classHeader func(string) headerClass
	// The rules of form field and query parameter names (formRule).
	formNames, queryNames *nameCache[formClass]
	classForm, classQuery func(string) formClass
	pool                  sync.Pool
	// schema reads gRPC messages by field name (WithSchema); nil: without.
	schema *grpcwire.Schema
}

// NewEngine compiles cfg, layered over DefaultConfig unless cfg.Defaults is
// false. It fails, naming the key, on an unknown action, detector or policy, an
// invalid path or header pattern, or when a hash or fake action is used and no
// HMAC key of at least 16 bytes is available (WithHashKey, then hash_key_file,
// then the variable named by hash_key_env).
func NewEngine(cfg Config, opts ...Option) (*Engine, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	useDefaults := cfg.Defaults == nil || *cfg.Defaults
	if useDefaults {
		cfg = mergeConfig(DefaultConfig(), cfg)
	}
	e := &Engine{scanHeaders: true, maxDecoded: DefaultMaxDecodedBytes,
		secrets: newSecretCache(), schema: o.schema}
	if err := e.compilePolicies(cfg); err != nil {
		return nil, err
	}

	var keyUser string // first key of the config that needs the HMAC key
	need := func(section, key string, r rule) {
		if keyUser == "" && (r.act == actHash || r.act == actFake) {
			keyUser = fmt.Sprintf("%s[%q]", section, key)
		}
	}
	var err error
	if e.headers, err = compileNameRules("headers", "header:", cfg.Headers, true, need); err != nil {
		return nil, err
	}
	if e.form, err = compileNameRules("form_fields", "form:", cfg.FormFields, false, need); err != nil {
		return nil, err
	}
	if e.query, err = compileNameRules("query_params", "query:", cfg.QueryParams, false, need); err != nil {
		return nil, err
	}
	if e.json, err = compilePathRules(cfg.JSONFields, need); err != nil {
		return nil, err
	}
	if err := e.compileDetectors(cfg.Detectors, useDefaults, need); err != nil {
		return nil, err
	}
	e.detOn = e.det.any()

	e.offHeader, e.offForm, e.offQuery = offGlobs(cfg.Headers, false), offGlobs(cfg.FormFields, false), offGlobs(cfg.QueryParams, false)
	e.offJSON = offGlobs(cfg.JSONFields, true)
	if err := e.compileSecretNames(cfg.SecretNames, need); err != nil {
		return nil, err
	}
	if err := e.loadKey(cfg, o.key, keyUser); err != nil {
		return nil, err
	}
	e.keys, e.hdrs = newNameCache[keyClass]().withPeek(), newNameCache[headerClass]()
	e.classKey, e.classHeader = e.classifyKey, e.classifyHeader
	e.formNames, e.queryNames = newNameCache[formClass](), newNameCache[formClass]()
	e.classForm = func(name string) formClass { return e.classifyFormName(name, false) }
	e.classQuery = func(name string) formClass { return e.classifyFormName(name, true) }
	e.pool.New = func() any { return &state{e: e} }
	return e, nil
}

// compilePolicies sets the binary and truncation policies and the header
// scan and decoded size limits from cfg.
func (e *Engine) compilePolicies(cfg Config) error {
	switch cfg.Binary {
	case "", BinaryDrop:
		e.binaryDrop = true
	case BinaryPass:
	default:
		return fmt.Errorf("binary: %q is not one of drop, pass", cfg.Binary)
	}
	switch cfg.OnTruncated {
	case "", TruncatedFail:
	case TruncatedDrop:
		e.truncDrop = true
	default:
		return fmt.Errorf("on_truncated: %q is not one of fail, drop", cfg.OnTruncated)
	}
	if cfg.ScanHeaders != nil {
		e.scanHeaders = *cfg.ScanHeaders
	}
	if cfg.MaxDecodedBytes < 0 {
		return fmt.Errorf("max_decoded_bytes: %d is negative", cfg.MaxDecodedBytes)
	}
	if cfg.MaxDecodedBytes > 0 {
		e.maxDecoded = cfg.MaxDecodedBytes
	}
	return nil
}

// compileDetectors enables the detectors and sets their rules. With
// defaults every detector runs unless listed as none or keep; without, only
// the listed ones run.
func (e *Engine) compileDetectors(dets map[string]Rule, useDefaults bool, need func(section, key string, r rule)) error {
	for k := range numKinds {
		e.detAll.on[k] = true
		e.det.on[k] = useDefaults // with defaults: false, only listed detectors run
		e.detRule[k] = rule{act: actMask, name: "detector:" + k.String()}
	}
	for _, name := range sortedKeys(dets) {
		k, ok := kindByName(name)
		if !ok {
			return fmt.Errorf("detectors[%q]: unknown detector (known: %s)", name, strings.Join(kindNames[:], ", "))
		}
		r := dets[name]
		a, ok := parseAction(r.Action)
		if !ok {
			return fmt.Errorf("detectors[%q].action: unknown action %q", name, r.Action)
		}
		if r.On != "" || r.Kind != "" {
			return fmt.Errorf("detectors[%q]: on and kind are not valid for a detector", name)
		}
		if a == actNone || a == actKeep {
			e.det.on[k] = false
			continue
		}
		if a == actUnsign && k != kindJWT {
			return fmt.Errorf("detectors[%q].action: unsign applies only to the jwt detector", name)
		}
		e.det.on[k] = true
		cr := rule{act: a, fake: fakeKind(k), name: "detector:" + name}
		if r.Action == ActionShape {
			cr.fake = kindShape
		}
		if r.Name != "" {
			cr.name = r.Name
		}
		e.detRule[k] = cr
		need("detectors", name, cr)
	}
	return nil
}

// loadKey sets the HMAC key: key (WithHashKey) if set, else the content of
// hash_key_file, else the variable named by hash_key_env. keyUser names the
// first rule that needs a key ("" if none does); it fails if that rule has
// none or any key is too short.
func (e *Engine) loadKey(cfg Config, key []byte, keyUser string) error {
	var keySrc string
	switch {
	case key != nil:
		keySrc = "WithHashKey"
	case cfg.HashKeyFile != "":
		keySrc = "hash_key_file"
		b, err := os.ReadFile(cfg.HashKeyFile)
		if err != nil {
			return fmt.Errorf("hash_key_file: %w", err)
		}
		key = []byte(strings.TrimSpace(string(b)))
	default:
		env := cfg.HashKeyEnv
		if env == "" {
			env = DefaultHashKeyEnv
		}
		keySrc = "hash_key_env"
		if v := os.Getenv(env); v != "" {
			key = []byte(v)
		} else if keyUser != "" {
			return fmt.Errorf("hash_key_env: environment variable %s is empty but %s uses a hash or fake action", env, keyUser)
		}
	}
	if len(key) > 0 || keyUser != "" {
		if len(key) < minKeyLen {
			return fmt.Errorf("%s: HMAC key is %d bytes, need at least %d", keySrc, len(key), minKeyLen)
		}
		e.keyed = newKeyed(key)
	}
	return nil
}

// state is the scratch of one Redact call.
type state struct {
	e *Engine
	// counts is what each rule redacted in this call.
	counts  tally
	spans   []span
	prot    []span // scrubString: replacements of the current pass
	prot2   []span
	scratch []byte
	tbuf    [2][]byte // scrubStringTmp's results
	jstates []pstate
	// unsignDepth counts the unsign calls this state runs inside (claims
	// holding a token are redacted by a state one deeper).
	unsignDepth int
	// modes counts the gRPC messages scrubbed by mode (Result.GRPCModes).
	modes map[string]int
}

func (st *state) hit(name string, n int) {
	if n > 0 {
		st.counts.add(name, n)
	}
}

// tally counts redactions by rule name, in the order the rules first
// fired. A record fires a few rules, a transaction a few dozen at most, so
// a slice searched from the start beats a map built for each record.
type tally []ruleCount

// ruleCount is what one rule redacted.
type ruleCount struct {
	name string
	n    int
}

// add counts n redactions by the rule name.
func (t *tally) add(name string, n int) {
	for i := range *t {
		if (*t)[i].name == name {
			(*t)[i].n += n
			return
		}
	}
	*t = append(*t, ruleCount{name, n})
}

// addAll adds o's counts.
func (t *tally) addAll(o tally) {
	for _, c := range o {
		t.add(c.name, c.n)
	}
}

// Redact scrubs ex in place: the request URL (path, query, userinfo), the
// request and response headers, the request and response bodies (decoded and
// re-encoded when compressed; Content-Length updated), the client address
// and the response error text; and the trailers, gRPC metadata and gRPC
// messages of both directions (see scrubGRPC). It also sets ex.Redactions to
// Result.Rules.
//
// A non-nil error means fail closed: ex has still had its URL, headers and
// addresses scrubbed, and both bodies and all messages have been removed.
// The error wraps ErrUnparseable when a body could not be parsed, and its
// text never contains payload bytes. Should the engine ever panic, Redact recovers, strips the
// URL, headers, bodies, client address and error text, and returns
// ErrInternal.
func (e *Engine) Redact(ex *mlv1.Exchange) (Result, error) {
	var counts tally
	rules, modes, err := e.redact(ex, &counts)
	res := Result{Rules: rules, GRPCModes: modes}
	if len(counts) > 0 {
		res.Redactions = make(map[string]int, len(counts))
		for _, c := range counts {
			res.Redactions[c.name] = c.n
		}
	}
	return res, err
}

// redact is Redact without building Result.Redactions: what each rule
// redacted is added to counts (the redactor's loop adds a transaction's
// records up in one tally). rules and modes are Result.Rules and
// Result.GRPCModes.
func (e *Engine) redact(ex *mlv1.Exchange, counts *tally) (rules []string, modes map[string]int, err error) {
	if ex == nil {
		return nil, nil, nil
	}
	st := e.pool.Get().(*state)
	st.counts, st.modes = st.counts[:0], nil
	defer func() {
		if recover() != nil {
			// Do not reuse st: its scratch may be inconsistent. The panic
			// value is dropped, it could quote payload bytes.
			stripAll(ex)
			rules, modes, err = nil, nil, ErrInternal
			return
		}
		e.pool.Put(st)
	}()

	req, resp := ex.GetRequest(), ex.GetResponse()
	call := readGRPCCall(ex)
	var reqCT, reqCE, respCT, respCE string
	if req != nil {
		reqCT, reqCE = contentHeaders(req.Headers)
		req.Url = st.scrubURL(req.Url)
		req.Headers = st.scrubHeaders(req.Headers, dirRequest)
		req.RemoteAddr, _ = st.scrubString(req.RemoteAddr) // "host:port"
	}
	if resp != nil {
		respCT, respCE = contentHeaders(resp.Headers)
		resp.Headers = st.scrubHeaders(resp.Headers, dirResponse)
		resp.Error, _ = st.scrubString(resp.Error)
	}
	if req != nil {
		err = st.scrubMessageBody("request", &req.Body, &req.Headers, &req.BodySize, req.BodyTruncated, reqCT, reqCE)
	}
	if err == nil && resp != nil {
		err = st.scrubMessageBody("response", &resp.Body, &resp.Headers, &resp.BodySize, resp.BodyTruncated, respCT, respCE)
	}
	if gerr := st.scrubGRPC(ex, call); err == nil {
		err = gerr
	}
	if err != nil {
		if req != nil {
			req.Body, req.Messages = nil, nil
		}
		if resp != nil {
			resp.Body, resp.Messages = nil, nil
		}
	}
	modes = st.modes
	if n := len(st.counts); n > 0 {
		// One allocation for rules and its copy in ex.Redactions (unless
		// ex.Redactions has room).
		var buf []string
		if cap(ex.Redactions) >= n {
			buf = make([]string, 0, n)
		} else {
			buf = make([]string, 0, 2*n)
		}
		for _, c := range st.counts {
			buf = append(buf, c.name)
			counts.add(c.name, c.n)
		}
		slices.Sort(buf)
		rules = buf[:n:n]
		if cap(ex.Redactions) >= n {
			ex.Redactions = append(ex.Redactions[:0], rules...)
		} else {
			ex.Redactions = append(buf[n:n], rules...)
		}
	}
	st.counts, st.modes = st.counts[:0], nil
	return rules, modes, err
}

// scrubMessageBody scrubs the body of a request or response (what) in place
// and keeps its headers and size consistent (setBody).
func (st *state) scrubMessageBody(what string, body *[]byte, headers *[]*mlv1.Header, size *int64, truncated bool, ct, ce string) error {
	if len(*body) == 0 {
		return nil
	}
	out, changed, err := st.scrubBody(*body, truncated, ct, ce)
	if err != nil {
		return fmt.Errorf("redact %s body: %w", what, err)
	}
	if changed {
		setBody(body, headers, size, truncated, out)
	}
	return nil
}

// stripAll removes every part of ex that can hold personal data.
func stripAll(ex *mlv1.Exchange) {
	if req := ex.GetRequest(); req != nil {
		req.Url, req.Headers, req.Body, req.RemoteAddr = "", nil, nil, ""
		req.Trailers, req.Messages = nil, nil
	}
	if resp := ex.GetResponse(); resp != nil {
		resp.Headers, resp.Body, resp.Error = nil, nil, ""
		resp.Trailers, resp.Messages = nil, nil
	}
}

// setBody stores a scrubbed body and keeps Content-Length and body_size
// consistent with it when the body is complete. An emptied body also loses its
// Content-Encoding (an empty body is not valid gzip, br, ...).
func setBody(dst *[]byte, headers *[]*mlv1.Header, size *int64, truncated bool, body []byte) {
	old := len(*dst)
	*dst = body
	if len(body) == 0 {
		hs := (*headers)[:0]
		for _, h := range *headers {
			if !asciiEqualFold(h.Name, "Content-Encoding") {
				hs = append(hs, h)
			}
		}
		for i := len(hs); i < len(*headers); i++ {
			(*headers)[i] = nil
		}
		*headers = hs
	}
	if truncated {
		return
	}
	if *size == int64(old) {
		*size = int64(len(body))
	}
	for _, h := range *headers {
		if asciiEqualFold(h.Name, "Content-Length") {
			h.Value = strconv.Itoa(len(body))
		}
	}
}

// contentHeaders returns the first Content-Type and Content-Encoding values.
func contentHeaders(hs []*mlv1.Header) (ct, ce string) {
	var ctSeen, ceSeen bool
	for _, h := range hs {
		switch {
		case !ctSeen && asciiEqualFold(h.Name, "Content-Type"):
			ct, ctSeen = h.Value, true
		case asciiEqualFold(h.Name, "Content-Encoding"):
			if ceSeen {
				ce += "," + h.Value
			} else {
				ce, ceSeen = h.Value, true
			}
		}
	}
	return ct, ce
}

// scrubString runs the detectors over s and applies their actions. It reports
// whether s changed (s itself is returned when not). A replacement can create a new finding (removing text
// joins its neighbours; any replacement changes the word boundary next to
// it), so the result is scanned again until nothing new is found; findings
// lying entirely inside an earlier replacement (a fake or hash token) are
// left alone. From the fourth pass on, new findings are masked, which
// shrinks the text (every finding is at least 6 bytes) and so terminates.
func (st *state) scrubString(s string) (string, bool) { return st.scrubStringIn(s, false) }

// scrubStringTmp is scrubString for a caller that copies the result at once
// (the JSON editor): a changed result lives in the state's scratch, valid
// until the next scrubStringTmp, instead of a new allocation.
func (st *state) scrubStringTmp(s string) (string, bool) { return st.scrubStringIn(s, true) }

// maxKeptScratch bounds the scratch of scrubStringTmp a state keeps between
// records.
const maxKeptScratch = 64 << 10

func (st *state) scrubStringIn(s string, tmp bool) (string, bool) {
	e := st.e
	if len(s) < 6 || !e.detOn {
		return s, false
	}
	spans := e.det.find(s, st.spans[:0])
	st.spans = spans[:0]
	if len(spans) == 0 {
		return s, false
	}
	prot := st.prot[:0] // replacements made so far, in s coordinates
	for pass := 0; ; pass++ {
		// Each pass writes a new text: with tmp, into the scratch buffer
		// the previous pass did not write (its text is this pass's input).
		var b []byte
		if tmp {
			b = st.tbuf[pass&1][:0]
		} else {
			b = make([]byte, 0, len(s))
		}
		next := st.prot2[:0]
		last, pi := 0, 0
		// carry copies protected ranges lying before offset lim.
		carry := func(lim int) {
			for pi < len(prot) && prot[pi].end <= lim {
				p := prot[pi]
				if p.start >= last {
					d := len(b) - last
					next = append(next, span{p.start + d, p.end + d, p.kind})
				}
				pi++
			}
		}
		for _, sp := range spans {
			carry(sp.start)
			b = append(b, s[last:sp.start]...)
			for pi < len(prot) && prot[pi].start < sp.end {
				pi++ // overlapped by this finding: no longer protected
			}
			r := &e.detRule[sp.kind]
			a := r.act
			if pass >= 3 {
				a = actMask
			}
			fk := fakeKind(sp.kind)
			if r.fake == kindShape {
				fk = kindShape
			}
			repl := st.apply(a, fk, s[sp.start:sp.end])
			if repl != "" {
				next = append(next, span{len(b), len(b) + len(repl), sp.kind})
			}
			b = append(b, repl...)
			st.hit(r.name, 1)
			last = sp.end
		}
		carry(len(s) + 1)
		b = append(b, s[last:]...)
		if tmp && cap(b) <= maxKeptScratch {
			st.tbuf[pass&1] = b
		}
		s = unsafe.String(unsafe.SliceData(b), len(b)) // b is not written again
		prot, st.prot2 = next, prot
		spans = e.det.find(s, st.spans[:0])
		st.spans = spans[:0]
		spans = unprotected(spans, prot)
		if len(spans) == 0 {
			st.prot = prot[:0]
			return s, true
		}
	}
}

// unprotected drops the findings lying entirely inside a protected range;
// both lists are sorted and non-overlapping.
func unprotected(spans, prot []span) []span {
	if len(prot) == 0 {
		return spans
	}
	out, pi := spans[:0], 0
	for _, sp := range spans {
		for pi < len(prot) && prot[pi].end <= sp.start {
			pi++
		}
		if pi < len(prot) && prot[pi].start <= sp.start && sp.end <= prot[pi].end {
			continue
		}
		out = append(out, sp)
	}
	return out
}

// apply performs a replacing action on v (remove gives "", and so does
// unsign on a value that is not a JWT).
func (st *state) apply(a act, kind fakeKind, v string) string {
	switch a {
	case actRemove:
		return ""
	case actUnsign:
		out, _ := st.unsign(v)
		return out
	case actHash:
		if kind == kindAuto {
			kind = st.wholeKind(v)
		}
		return st.e.keyed.hashToken(normalize(kind, v))
	case actFake:
		if kind == kindAuto {
			kind = st.wholeKind(v)
		}
		return st.e.keyed.fake(kind, v)
	}
	return maskText
}

// wholeKind returns the detector kind matching all of v, else kindText.
func (st *state) wholeKind(v string) fakeKind {
	spans := st.e.detAll.find(v, st.spans[:0])
	st.spans = spans[:0]
	if len(spans) == 1 && spans[0].start == 0 && spans[0].end == len(v) {
		return fakeKind(spans[0].kind)
	}
	return kindText
}

// applyRule applies a field or header rule to a whole value and counts it.
func (st *state) applyRule(r *rule, v string) string {
	st.hit(r.name, 1)
	return st.apply(r.act, r.fake, v)
}

// bodyKind is how a body is parsed.
type bodyKind uint8

const (
	bodyUnknown bodyKind = iota
	bodyJSON
	bodyNDJSON
	bodyForm
	bodyMultipart
	bodyText
	bodyBinary
)

// mediaKinds maps lower-case media types, and "type/*" for a whole
// top-level type, to their body kind.
var mediaKinds = map[string]bodyKind{
	"application/json": bodyJSON, "application/x-www-form-urlencoded": bodyForm,
	"application/x-ndjson": bodyNDJSON, "application/ndjson": bodyNDJSON, "application/jsonl": bodyNDJSON,
	"application/x-jsonlines": bodyNDJSON, "application/jsonlines": bodyNDJSON,
	"application/xml": bodyText, "application/javascript": bodyText, "application/ecmascript": bodyText,
	"application/x-javascript": bodyText, "application/graphql": bodyText, "application/yaml": bodyText,
	"application/x-yaml": bodyText, "application/csv": bodyText, "application/sql": bodyText,
	"application/x-sh": bodyText, "application/toml": bodyText,
	"application/octet-stream": bodyBinary, "application/pdf": bodyBinary, "application/zip": bodyBinary,
	"application/gzip": bodyBinary, "application/x-gzip": bodyBinary, "application/x-tar": bodyBinary,
	"application/x-protobuf": bodyBinary, "application/protobuf": bodyBinary,
	"application/x-google-protobuf": bodyBinary, "application/msgpack": bodyBinary,
	"application/x-msgpack": bodyBinary, "application/cbor": bodyBinary, "application/wasm": bodyBinary,
	"application/avro": bodyBinary, "application/vnd.apache.avro+binary": bodyBinary,
	"text/*": bodyText, "multipart/*": bodyMultipart,
	"image/*": bodyBinary, "audio/*": bodyBinary, "video/*": bodyBinary, "font/*": bodyBinary,
}

// classify maps a Content-Type to a body kind (bodyUnknown: sniff the bytes).
func classify(ct string) bodyKind {
	mt, _, _ := strings.Cut(ct, ";")
	mt = asciiLower(strings.TrimSpace(mt))
	typ, sub, ok := strings.Cut(mt, "/")
	if !ok || typ == "" {
		return bodyUnknown
	}
	if p := strings.LastIndexByte(sub, '+'); p >= 0 {
		switch sub[p+1:] {
		case "json":
			return bodyJSON
		case "xml":
			return bodyText
		}
	}
	if k, ok := mediaKinds[mt]; ok {
		return k
	}
	if k, ok := mediaKinds[typ+"/*"]; ok {
		return k
	}
	if typ == "application" && strings.HasPrefix(sub, "grpc") {
		return bodyBinary
	}
	return bodyUnknown
}

// sniff classifies a body without a usable Content-Type: JSON if it parses as
// JSON, text if it is valid UTF-8 without control characters other than
// white space, binary otherwise.
func sniff(b []byte) bodyKind {
	if !utf8.Valid(b) {
		return bodyBinary
	}
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' || c == 0x7f {
			return bodyBinary
		}
	}
	t := strings.TrimLeft(string(b), " \t\r\n\uFEFF")
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return bodyJSON
	}
	return bodyText
}

// errTruncated is wrapped with ErrUnparseable for truncated structured bodies.
var errTruncated = errors.New("body truncated at capture")

// scrubBody scrubs one body. It returns the new body and whether it changed.
func (st *state) scrubBody(body []byte, truncated bool, ct, ce string) ([]byte, bool, error) {
	e := st.e
	kind := classify(ct)
	if kind == bodyBinary {
		return st.binary(body)
	}
	encs, err := parseEncodings(ce)
	if err != nil {
		return nil, false, err
	}
	plain := body
	if encs.n > 0 {
		if truncated {
			return st.truncatedBody()
		}
		plain, err = decodeBody(body, &encs, e.maxDecoded)
		if err != nil {
			return nil, false, err
		}
	}
	sniffed := false
	if kind == bodyUnknown {
		kind = sniff(plain)
		sniffed = true
	}
	var out []byte
	var changed bool
	if truncated && kind != bodyText && kind != bodyBinary && !sniffed {
		return st.truncatedBody() // a structured body
	}
	switch kind {
	case bodyBinary:
		return st.binary(body)
	case bodyJSON, bodyNDJSON:
		if truncated { // sniffed: read as text
			out, changed = st.scrubTextBody(plain, true)
			break
		}
		out, changed, err = st.scrubJSON(plain, kind == bodyNDJSON)
		if err != nil && sniffed {
			// Only looked like JSON: treat as text.
			out, changed = st.scrubTextBody(plain, false)
			err = nil
		}
	case bodyForm:
		out, changed, err = st.scrubForm(plain)
	case bodyMultipart:
		out, changed, err = st.scrubMultipart(plain, ct, 0)
	default:
		out, changed = st.scrubTextBody(plain, truncated)
	}
	if err != nil {
		return nil, false, err
	}
	if !changed {
		return body, false, nil
	}
	if out == nil {
		// Whole body removed: nothing to encode.
		return nil, true, nil
	}
	if encs.n > 0 {
		out, err = encodeBody(out, encs)
		if err != nil {
			return nil, false, err
		}
	}
	return out, true, nil
}

// binary applies the binary policy.
func (st *state) binary(body []byte) ([]byte, bool, error) {
	if !st.e.binaryDrop {
		return body, false, nil
	}
	st.hit("body:binary", 1)
	return nil, true, nil
}

// truncatedBody applies the truncation policy to a structured body.
func (st *state) truncatedBody() ([]byte, bool, error) {
	if !st.e.truncDrop {
		return nil, false, fmt.Errorf("%w: %w", errTruncated, ErrUnparseable)
	}
	st.hit("body:truncated", 1)
	return nil, true, nil
}

// scrubTextBody runs the detectors over a text body. A truncated body also
// loses its trailing incomplete token (the run of non-white-space bytes at its
// end, then any trailing digits and number separators), which could be the
// start of a value the detectors cannot recognise once cut.
func (st *state) scrubTextBody(b []byte, truncated bool) ([]byte, bool) {
	s := unsafe.String(unsafe.SliceData(b), len(b))
	named, namedChanged := st.scrubNamed(s)
	out, changed := st.scrubString(named)
	changed = changed || namedChanged
	if truncated {
		n := len(out)
		for n > 0 && !isSpace(out[n-1]) {
			n--
		}
		for n > 0 && (isDigit(out[n-1]) || strings.IndexByte(" \t-+().", out[n-1]) >= 0) {
			n--
		}
		if n < len(out) {
			st.hit("body:truncated_tail", 1)
			out = out[:n]
			changed = true
		}
	}
	if !changed {
		return nil, false
	}
	return []byte(out), true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }
