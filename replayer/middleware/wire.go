package middleware

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/http/httpguts"
	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// MaxLineBytes bounds one line the program writes; a longer line is a
// protocol error: the program is stopped (and restarted within the budget).
const MaxLineBytes = 64 << 20

// maxLine is MaxLineBytes; tests lower it.
var maxLine = MaxLineBytes

// Message types of the lines written to the program.
const (
	typeRequest  = "request"
	typeResponse = "response"
)

// wireMsg is one line written to the program.
type wireMsg struct {
	Type    string        `json:"type"`
	ID      string        `json:"id"`
	Service string        `json:"service"`
	Route   string        `json:"route"`
	Target  string        `json:"target"`
	Request *wireRequest  `json:"request,omitempty"`
	Shadow  *wireResponse `json:"shadow,omitempty"`
	// Primary is null when the captured response is unknown.
	Primary *wireResponse `json:"primary"`
}

// wireRequest is a request on the wire: headers as [name, value] pairs in
// order, the body in base64 (standard, padded).
type wireRequest struct {
	Method  string      `json:"method"`
	URL     string      `json:"url"`
	Host    string      `json:"host"`
	Headers [][2]string `json:"headers"`
	Body    string      `json:"body"`
}

type wireResponse struct {
	Status    int32       `json:"status"`
	Headers   [][2]string `json:"headers"`
	Body      string      `json:"body"`
	LatencyMs float64     `json:"latency_ms"`
	Error     string      `json:"error"`
}

func wireHeaders(hs []*mlv1.Header) [][2]string {
	out := make([][2]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, [2]string{h.GetName(), h.GetValue()})
	}
	return out
}

func encodeRequest(id string, meta Meta, req *mlv1.Request) ([]byte, error) {
	msg := wireMsg{
		Type: typeRequest, ID: id, Service: meta.Service, Route: meta.Route, Target: meta.Target,
		Request: &wireRequest{
			Method:  req.GetMethod(),
			URL:     req.GetUrl(),
			Host:    req.GetHost(),
			Headers: wireHeaders(req.GetHeaders()),
			Body:    base64.StdEncoding.EncodeToString(req.GetBody()),
		},
	}
	return encodeLine(&msg)
}

func toWireResponse(r *mlv1.Response) *wireResponse {
	if r == nil {
		return nil
	}
	return &wireResponse{
		Status:    r.GetStatus(),
		Headers:   wireHeaders(r.GetHeaders()),
		Body:      base64.StdEncoding.EncodeToString(r.GetBody()),
		LatencyMs: float64(r.GetLatencyNs()) / 1e6,
		Error:     r.GetError(),
	}
}

func encodeResponse(meta Meta, shadow, primary *mlv1.Response) ([]byte, error) {
	msg := wireMsg{
		Type: typeResponse, ID: meta.ID, Service: meta.Service, Route: meta.Route, Target: meta.Target,
		Shadow: toWireResponse(shadow), Primary: toWireResponse(primary),
	}
	if msg.Shadow == nil {
		msg.Shadow = &wireResponse{Headers: [][2]string{}}
	}
	return encodeLine(&msg)
}

// encodeLine is msg as one line: encoding/json escapes control characters
// (and U+2028, U+2029) in strings, so the line holds no newline but its end.
func encodeLine(msg *wireMsg) ([]byte, error) {
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("encode middleware message: %w", err)
	}
	return append(b, '\n'), nil
}

// rawAnswer is a line from the program, its fields not decoded yet but id.
type rawAnswer struct {
	Type    json.RawMessage `json:"type"`
	ID      json.RawMessage `json:"id"`
	Drop    json.RawMessage `json:"drop"`
	Request json.RawMessage `json:"request"`
}

// errNotAnswer: a line that is not a JSON object with a string id.
var errNotAnswer = errors.New("not a JSON object with a string id")

// parseAnswerID decodes a line far enough to know which request it answers.
func parseAnswerID(line []byte) (string, *rawAnswer, error) {
	var a rawAnswer
	if err := json.Unmarshal(line, &a); err != nil {
		return "", nil, errNotAnswer
	}
	var id string
	if isNull(a.ID) || json.Unmarshal(a.ID, &id) != nil {
		return "", nil, errNotAnswer
	}
	return id, &a, nil
}

// isNull reports whether a field is absent or JSON null.
func isNull(r json.RawMessage) bool { return len(r) == 0 || string(r) == "null" }

// decodeAnswer turns the program's answer to in into the request to send
// (a new value), or drop. An absent or null "request" sends in unchanged; a
// present one replaces method, url, host, headers and body entirely (a field
// it omits is empty). Errors wrap ErrBadAnswer and never quote the answer.
func decodeAnswer(a *rawAnswer, in *mlv1.Request) (out *mlv1.Request, drop, modified bool, err error) {
	if !isNull(a.Type) {
		var typ string
		if json.Unmarshal(a.Type, &typ) != nil || typ != typeRequest {
			return nil, false, false, fmt.Errorf("%w: type is not %q", ErrBadAnswer, typeRequest)
		}
	}
	if !isNull(a.Drop) {
		if err := json.Unmarshal(a.Drop, &drop); err != nil {
			return nil, false, false, fmt.Errorf("%w: drop is not a boolean", ErrBadAnswer)
		}
		if drop {
			return nil, true, false, nil
		}
	}
	out = proto.Clone(in).(*mlv1.Request)
	if isNull(a.Request) {
		return out, false, false, nil
	}
	var w struct {
		Method  string     `json:"method"`
		URL     string     `json:"url"`
		Host    string     `json:"host"`
		Headers [][]string `json:"headers"`
		Body    string     `json:"body"`
	}
	if err := json.Unmarshal(a.Request, &w); err != nil {
		return nil, false, false, fmt.Errorf("%w: request is not an object of the protocol's fields and types", ErrBadAnswer)
	}
	if !httpguts.ValidHeaderFieldName(w.Method) {
		return nil, false, false, fmt.Errorf("%w: method is not a token", ErrBadAnswer)
	}
	if w.URL == "" || hasCTLOrSpace(w.URL) {
		return nil, false, false, fmt.Errorf("%w: url is empty or holds a control character or space", ErrBadAnswer)
	}
	if hasCTLOrSpace(w.Host) {
		return nil, false, false, fmt.Errorf("%w: host holds a control character or space", ErrBadAnswer)
	}
	body, err := base64.StdEncoding.DecodeString(w.Body)
	if err != nil {
		return nil, false, false, fmt.Errorf("%w: body is not base64", ErrBadAnswer)
	}
	headers := make([]*mlv1.Header, 0, len(w.Headers))
	for i, h := range w.Headers {
		if len(h) != 2 {
			return nil, false, false, fmt.Errorf("%w: header %d is not a [name, value] pair", ErrBadAnswer, i)
		}
		// A captured HTTP/2 pseudo-header (":authority") comes back as it
		// went; the replayer never sends it.
		if !httpguts.ValidHeaderFieldName(strings.TrimPrefix(h[0], ":")) {
			return nil, false, false, fmt.Errorf("%w: header %d: name is not a token", ErrBadAnswer, i)
		}
		if !validValue(h[1]) {
			return nil, false, false, fmt.Errorf("%w: header %d: value holds a control character", ErrBadAnswer, i)
		}
		v := h[1]
		if i < len(in.GetHeaders()) && in.Headers[i].GetName() == h[0] {
			v = keepOriginal(in.Headers[i].GetValue(), v)
		}
		headers = append(headers, &mlv1.Header{Name: h[0], Value: v})
	}
	out.Method = w.Method
	out.Url = keepOriginal(in.GetUrl(), w.URL)
	out.Host = keepOriginal(in.GetHost(), w.Host)
	out.Headers = headers
	out.Body = body
	if !out.GetBodyTruncated() {
		out.BodySize = int64(len(body))
	}
	modified = out.Method != in.GetMethod() || out.Url != in.GetUrl() || out.Host != in.GetHost() ||
		string(out.Body) != string(in.GetBody()) || !sameHeaders(out.Headers, in.GetHeaders())
	if !modified {
		out.BodySize = in.GetBodySize()
	}
	return out, false, modified, nil
}

func sameHeaders(a, b []*mlv1.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].GetName() != b[i].GetName() || a[i].GetValue() != b[i].GetValue() {
			return false
		}
	}
	return true
}

// keepOriginal returns orig when got is what JSON made of it: a captured
// string that is not UTF-8 reaches the program with each invalid byte as
// U+FFFD, and an unchanged echo must not alter it.
func keepOriginal(orig, got string) string {
	if got == orig || utf8.ValidString(orig) || got != coerceUTF8(orig) {
		return got
	}
	return orig
}

// coerceUTF8 is s as encoding/json writes it: each byte of an invalid
// sequence becomes U+FFFD.
func coerceUTF8(s string) string {
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return string(b)
}

// validValue reports whether s holds no control character but tab (CR, LF
// and NUL included).
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func hasCTLOrSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}
