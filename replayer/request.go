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

	"github.com/mirrorline/mirrorline/collector/reqtarget"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Headers added to every replayed request (docs/replay.md).
const (
	HeaderShadow = "X-Shadow-Request"
	HeaderID     = "X-Mirrorline-Id"
)

// DropUnsafeTarget is the drop reason of records whose request-target must not
// be replayed (see BuildRequest); they are committed and never sent.
const DropUnsafeTarget = "unsafe_target"

// ErrTruncated is returned for a record whose request body was cut at capture.
var ErrTruncated = errors.New("request body was truncated at capture")

// BuildRequest turns the captured request of ex into a request to target at
// ShadowURL (an error wrapping reqtarget.ErrUnsafe: the record must not be
// sent). Hop-by-hop headers (and those named in Connection) are removed,
// X-Shadow-Request and X-Mirrorline-Id are set, and Host becomes the target's
// unless keepHost.
func BuildRequest(ctx context.Context, target *url.URL, ex *mlv1.Exchange, keepHost bool) (*http.Request, error) {
	in := ex.GetRequest()
	if in == nil || in.Method == "" {
		return nil, fmt.Errorf("exchange %s: no request", ex.GetId())
	}
	// The request-target first: a record that could leave the target is
	// counted as unsafe_target whatever else is wrong with it.
	u, err := ShadowURL(target, in.Method, in.Url)
	if err != nil {
		return nil, fmt.Errorf("exchange %s: %w", ex.GetId(), err)
	}
	if err := Replayable(ex); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, in.Method, u.String(), bytes.NewReader(in.Body))
	if err != nil {
		return nil, fmt.Errorf("exchange %s: build request: %w", ex.GetId(), err)
	}
	if req.URL.Scheme != target.Scheme || req.URL.Host != target.Host {
		// Cannot happen with a URL built from parts; checked all the same.
		return nil, fmt.Errorf("exchange %s: build request: %w: URL leaves the target", ex.GetId(), reqtarget.ErrUnsafe)
	}
	req.ContentLength = int64(len(in.Body))
	if len(in.Body) == 0 {
		req.Body = http.NoBody
	}
	if isGRPC(ex) {
		if err := grpcRequest(ctx, req, in); err != nil {
			return nil, fmt.Errorf("exchange %s: build request: %w", ex.GetId(), err)
		}
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
		if mlv1.HopByHop(name) || connTokens[name] || name == "Host" || name == "Content-Length" || strings.HasPrefix(name, ":") {
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

// ShadowURL is the URL a captured request (method and request-target) is
// replayed to, built from parts, never by concatenation: target's scheme and
// host, target's path followed by the captured path, and the captured query.
// The error wraps reqtarget.ErrUnsafe for a request-target reqtarget.Check
// rejects (CONNECT, authority-form, userinfo, "//", dot segments, ...); it
// never contains the request-target.
func ShadowURL(target *url.URL, method, requestTarget string) (*url.URL, error) {
	rt, err := reqtarget.Check(method, requestTarget)
	if err != nil {
		return nil, fmt.Errorf("request target: %w", err)
	}
	u := &url.URL{
		Scheme:     target.Scheme,
		Host:       target.Host,
		Path:       strings.TrimSuffix(target.Path, "/") + rt.DecodedPath(),
		RawPath:    strings.TrimSuffix(target.EscapedPath(), "/") + rt.Path,
		RawQuery:   rt.Query,
		ForceQuery: rt.ForceQuery && rt.Query == "",
	}
	return u, nil
}
