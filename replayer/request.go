package replayer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Headers added to every replayed request (SPEC "Headers on replayed requests").
const (
	HeaderShadow = "X-Shadow-Request"
	HeaderID     = "X-Mirrorline-Id"
)

// hopByHop are never forwarded (RFC 9110 7.6.1 and the usual proxy extras).
var hopByHop = map[string]bool{
	"Connection":          true,
	"Proxy-Connection":    true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}

// IsHopByHop reports whether name (any case) is a hop-by-hop header.
func IsHopByHop(name string) bool { return hopByHop[textproto.CanonicalMIMEHeaderKey(name)] }

// ErrTruncated is returned for a record whose request body was cut at capture.
var ErrTruncated = errors.New("request body was truncated at capture")

// BuildRequest turns the captured request of ex into a request to target. The
// request path and query are kept, hop-by-hop headers (and those named in
// Connection) are removed, X-Shadow-Request and X-Mirrorline-Id are set, and Host
// becomes the target's unless keepHost.
func BuildRequest(ctx context.Context, target *url.URL, ex *mlv1.Exchange, keepHost bool) (*http.Request, error) {
	in := ex.GetRequest()
	if in == nil || in.Method == "" {
		return nil, fmt.Errorf("exchange %s: no request", ex.GetId())
	}
	if err := Replayable(ex); err != nil {
		return nil, err
	}
	uri := in.Url
	if !strings.HasPrefix(uri, "/") {
		// Absolute form (or "*"): keep only path and query, exactly as encoded.
		ref, err := url.Parse(uri)
		if err != nil {
			return nil, fmt.Errorf("exchange %s: request URL: %w", ex.GetId(), err)
		}
		uri = ref.RequestURI()
	}
	full := target.Scheme + "://" + target.Host + strings.TrimSuffix(target.EscapedPath(), "/") + uri

	req, err := http.NewRequestWithContext(ctx, in.Method, full, bytes.NewReader(in.Body))
	if err != nil {
		return nil, fmt.Errorf("exchange %s: build request: %w", ex.GetId(), err)
	}
	req.ContentLength = int64(len(in.Body))
	if len(in.Body) == 0 {
		req.Body = http.NoBody
	}
	connTokens := map[string]bool{}
	for _, h := range in.Headers {
		if textproto.CanonicalMIMEHeaderKey(h.Name) == "Connection" {
			for _, tok := range strings.Split(h.Value, ",") {
				connTokens[textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(tok))] = true
			}
		}
	}
	for _, h := range in.Headers {
		name := textproto.CanonicalMIMEHeaderKey(h.Name)
		if hopByHop[name] || connTokens[name] || name == "Host" || name == "Content-Length" {
			continue
		}
		req.Header[name] = append(req.Header[name], h.Value)
	}
	if _, ok := req.Header["User-Agent"]; !ok {
		// Do not let Go add its own User-Agent the client never sent.
		req.Header["User-Agent"] = []string{""}
	}
	req.Header.Set(HeaderShadow, "true")
	req.Header.Set(HeaderID, ex.GetId())
	if keepHost && in.Host != "" {
		req.Host = in.Host
	}
	return req, nil
}
