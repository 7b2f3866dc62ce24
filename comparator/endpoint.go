package comparator

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// IDPlaceholder replaces path segments that look like identifiers.
const IDPlaceholder = "{id}"

// OtherEndpoint is the path part of endpoint names past MaxEndpoints.
const OtherEndpoint = "(other)"

var knownMethods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
	"DELETE": true, "OPTIONS": true, "TRACE": true, "CONNECT": true,
}

// Templater names the endpoint of a request: its method and its path with
// identifier segments replaced by {id}, e.g. "GET /users/{id}". Explicit
// templates are tried first. Names never carry payload data as far as it can
// tell (see TemplatePath), and there are at most max distinct names. It is
// safe for concurrent use.
type Templater struct {
	explicit []pathTemplate
	max      int
	mu       sync.Mutex
	seen     map[string]bool
}

// pathTemplate is one compiled explicit template.
type pathTemplate struct {
	method string // "" matches any method
	segs   []string
	rest   bool // last segment is {name...}
	text   string
}

// NewTemplater compiles explicit templates ("/users/{id}", "GET
// /files/{path...}"); max caps the distinct endpoint names (0: no cap).
func NewTemplater(templates []string, max int) (*Templater, error) {
	t := &Templater{max: max, seen: map[string]bool{}}
	for i, s := range templates {
		pt, err := parseTemplate(s)
		if err != nil {
			return nil, fmt.Errorf("endpoints[%d]: %w", i, err)
		}
		t.explicit = append(t.explicit, pt)
	}
	return t, nil
}

func parseTemplate(s string) (pathTemplate, error) {
	s = strings.TrimSpace(s)
	var pt pathTemplate
	if m, p, ok := strings.Cut(s, " "); ok {
		m = strings.ToUpper(strings.TrimSpace(m))
		if !knownMethods[m] {
			return pt, fmt.Errorf("template %q: unknown method %q", s, m)
		}
		pt.method, s = m, strings.TrimSpace(p)
	}
	if !strings.HasPrefix(s, "/") {
		return pt, fmt.Errorf("template %q: path must start with /", s)
	}
	pt.text = s
	pt.segs = strings.Split(s[1:], "/")
	for i, seg := range pt.segs {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "...}") {
			if i != len(pt.segs)-1 {
				return pt, fmt.Errorf("template %q: {name...} must be the last segment", s)
			}
			pt.rest = true
		}
	}
	return pt, nil
}

func (pt pathTemplate) match(method string, segs []string) bool {
	if pt.method != "" && pt.method != method {
		return false
	}
	n := len(pt.segs)
	if pt.rest {
		if len(segs) < n-1 {
			return false
		}
		n--
	} else if len(segs) != n {
		return false
	}
	// A {name} segment takes any non-empty segment, a literal only itself.
	for i, p := range pt.segs[:n] {
		param := strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}")
		if param && segs[i] == "" || !param && p != segs[i] {
			return false
		}
	}
	return true
}

// Endpoint returns the endpoint name of a request with method and target
// (path and query, or an absolute URL).
func (t *Templater) Endpoint(method, target string) string {
	m := strings.ToUpper(strings.TrimSpace(method))
	if !knownMethods[m] {
		m = "OTHER"
	}
	p := requestPath(target)
	name := ""
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for _, pt := range t.explicit {
		if pt.match(m, segs) {
			name = m + " " + pt.text
			break
		}
	}
	if name == "" {
		name = m + " " + TemplatePath(p)
	}
	if t.max <= 0 {
		return name
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[name] {
		return name
	}
	if len(t.seen) >= t.max {
		return m + " " + OtherEndpoint
	}
	t.seen[name] = true
	return name
}

// requestPath extracts the path of a request target, without query or fragment.
func requestPath(target string) string {
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	if !strings.HasPrefix(target, "/") {
		if u, err := url.Parse(target); err == nil && u.Host != "" {
			target = u.EscapedPath()
		}
	}
	if target == "" || target[0] != '/' {
		target = "/" + target
	}
	return target
}

var (
	wordSeg    = regexp.MustCompile(`^[A-Za-z_][A-Za-z_.~-]{0,47}$`)
	versionSeg = regexp.MustCompile(`^v\d{1,2}(\.\d{1,2})?$`)
	wordDigit  = regexp.MustCompile(`^[A-Za-z]{2,16}\d$`)
)

// TemplatePath replaces the segments of an URL path that look like
// identifiers or data with {id}. A segment stays literal only when it looks
// like a route word: letters, '_', '-', '.', '~' without digits ("users",
// "index.html"), a version ("v2", "v1.1"), or a word ending in one digit
// ("oauth2", "ipv6"). Numbers, UUIDs, hex, tokens, "c-123", e-mail addresses
// and anything non-ASCII or percent-encoded become {id}, so endpoint names
// carry no payload and stay few.
func TemplatePath(p string) string {
	if p == "" || p == "/" {
		return "/"
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		if s == "" {
			continue
		}
		if !(wordSeg.MatchString(s) || versionSeg.MatchString(s) || wordDigit.MatchString(s)) {
			segs[i] = IDPlaceholder
		}
	}
	return "/" + strings.Join(segs, "/")
}
