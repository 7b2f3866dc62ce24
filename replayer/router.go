package replayer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer/breaker"
	"github.com/mirrorline/mirrorline/replayer/credential"
	"github.com/mirrorline/mirrorline/replayer/middleware"
	"github.com/mirrorline/mirrorline/replayer/route"
)

// Route actions.
const (
	// ActionSend sends the requests a route matches (the default).
	ActionSend = "send"
	// ActionSkip skips them: counted in dropped_total{reason="filtered"}.
	ActionSkip = "skip"
)

// MaskedCredential replaces the value of a header the replayer set from a
// secret (credentials, a re-signed JWT) in the shadow record.
const MaskedCredential = "[credential]"

// RouteConfig is one entry of replay.routes. The first route whose Match
// matches a request decides: skip it, or send it to Target (default: the
// replay target) rewritten by Transform, with Credentials and JWT (default:
// the replay section's).
type RouteConfig struct {
	// Name labels the route in logs and the middleware's messages
	// (default route-INDEX).
	Name      string          `yaml:"name,omitempty"`
	Match     route.Match     `yaml:"match,omitempty"`
	Action    string          `yaml:"action,omitempty"`
	Target    string          `yaml:"target,omitempty"`
	Transform route.Transform `yaml:"transform,omitempty"`
	// Credentials replace the section's when set (an empty list: none).
	Credentials []credential.Header `yaml:"credentials,omitempty"`
	// JWT replaces the section's when set.
	JWT *credential.JWT `yaml:"jwt,omitempty"`
}

// Routing is what a Router does with each record, from the replay section:
// Select and Safe choose the records replayed, Routes (first match wins)
// where they go and how they are rewritten, Credentials and JWT the
// credentials of the requests no route (or a route without its own) gives,
// and Breaker the circuit breaker of each target.
type Routing struct {
	Select      route.Match
	Safe        bool
	Routes      []RouteConfig
	Credentials []credential.Header
	JWT         *credential.JWT
	Breaker     breaker.Config
}

// Active reports whether r changes anything a plain Sender does.
func (r Routing) Active() bool {
	return !r.Select.Empty() || r.Safe || len(r.Routes) > 0 || len(r.Credentials) > 0 || r.JWT != nil || r.Breaker.Enabled()
}

// Validate checks r without reading a secret or starting anything; the
// error names the key (replay.routes[1].match.paths[0], ...).
func (r Routing) Validate() error {
	if _, err := r.Select.Compile(); err != nil {
		return fmt.Errorf("replay.select.%w", err)
	}
	for i, rc := range r.Routes {
		if err := rc.validate(); err != nil {
			return fmt.Errorf("replay.routes[%d].%w%s", i, err, rc.label())
		}
	}
	if err := r.Breaker.Validate(); err != nil {
		return err
	}
	return nil
}

// label names the route at the end of an error about it.
func (rc RouteConfig) label() string {
	if rc.Name == "" {
		return ""
	}
	return fmt.Sprintf(" (route %q)", rc.Name)
}

// validate checks one route but its credentials, which need their secrets.
func (rc RouteConfig) validate() error {
	if _, err := rc.Match.Compile(); err != nil {
		return fmt.Errorf("match.%w", err)
	}
	switch rc.Action {
	case "", ActionSend:
	case ActionSkip:
		if rc.Target != "" || !rc.Transform.Empty() || rc.Credentials != nil || rc.JWT != nil {
			return errors.New("action: a skip route sends nothing: it takes no target, transform, credentials or jwt")
		}
	default:
		return fmt.Errorf("action: %q is not send or skip", rc.Action)
	}
	if rc.Target != "" {
		u, err := url.Parse(rc.Target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("target: %q is not an absolute http:// or https:// URL", rc.Target)
		}
	}
	if _, err := rc.Transform.Compile(); err != nil {
		return fmt.Errorf("transform.%w", err)
	}
	return nil
}

// Router is the Requester of a replay with routing (see Routing): it
// selects, routes, rewrites, passes the request to the middleware, builds
// it on its target (checked again there, so nothing a route or the
// middleware does can leave the target), sets credentials and asks the
// target's circuit breaker before sending it.
type Router struct {
	options
	def    *routeEntry
	routes []*routeEntry
	sel    *route.Matcher // nil: every request
	safe   bool
}

// routeEntry is a compiled route.
type routeEntry struct {
	name      string
	match     *route.Matcher
	skip      bool
	transform *route.Transformer // nil: none
	to        *destination
	creds     []*credential.Injector
	jwt       *credential.Signer // nil: none
}

// destination is one target, with its breaker (nil when off).
type destination struct {
	sender  *Sender
	breaker *breaker.Breaker
}

// NewRouter returns the Router of r sending to def (the replay target) and,
// for routes with a target of their own, to the senders newSender returns
// (built like def, through the same allowlist). Credentials are read now:
// a missing file or variable is an error. Options: WithLogger,
// WithMetrics, WithMiddleware.
func NewRouter(def *Sender, r Routing, newSender func(target string) (*Sender, error), opts ...Option) (*Router, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	rt := &Router{options: newOptions(opts), safe: r.Safe}
	var err error
	if !r.Select.Empty() {
		if rt.sel, err = r.Select.Compile(); err != nil {
			return nil, fmt.Errorf("replay.select.%w", err)
		}
	}
	dests := map[string]*destination{}
	dest := func(s *Sender) *destination {
		key := s.Target().String()
		if d := dests[key]; d != nil {
			return d
		}
		d := &destination{sender: s}
		if r.Breaker.Enabled() {
			d.breaker = breaker.New(key, r.Breaker, breaker.WithLogger(rt.log.Named("breaker")), breaker.WithMetrics(rt.metrics.Breakers))
		}
		dests[key] = d
		return d
	}
	creds, jwt, err := compileCredentials(r.Credentials, r.JWT)
	if err != nil {
		return nil, fmt.Errorf("replay.%w", err)
	}
	rt.def = &routeEntry{name: "default", to: dest(def), creds: creds, jwt: jwt}
	for i, rc := range r.Routes {
		e, err := rt.compile(i, rc, def, dest, newSender)
		if err != nil {
			return nil, fmt.Errorf("replay.routes[%d].%w%s", i, err, rc.label())
		}
		if e.creds == nil && rc.Credentials == nil {
			e.creds = creds
		}
		if e.jwt == nil && rc.JWT == nil {
			e.jwt = jwt
		}
		rt.routes = append(rt.routes, e)
	}
	return rt, nil
}

// compile builds route i.
func (rt *Router) compile(i int, rc RouteConfig, def *Sender, dest func(*Sender) *destination, newSender func(string) (*Sender, error)) (*routeEntry, error) {
	e := &routeEntry{name: rc.Name, skip: rc.Action == ActionSkip}
	if e.name == "" {
		e.name = fmt.Sprintf("route-%d", i)
	}
	var err error
	if e.match, err = rc.Match.Compile(); err != nil {
		return nil, fmt.Errorf("match.%w", err)
	}
	if e.skip {
		return e, nil
	}
	if !rc.Transform.Empty() {
		if e.transform, err = rc.Transform.Compile(); err != nil {
			return nil, fmt.Errorf("transform.%w", err)
		}
	}
	s := def
	if rc.Target != "" {
		if s, err = newSender(rc.Target); err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
	}
	e.to = dest(s)
	if e.creds, e.jwt, err = compileCredentials(rc.Credentials, rc.JWT); err != nil {
		return nil, err
	}
	return e, nil
}

// compileCredentials compiles a credentials list and a jwt setting.
func compileCredentials(hs []credential.Header, j *credential.JWT) ([]*credential.Injector, *credential.Signer, error) {
	var creds []*credential.Injector
	for i, h := range hs {
		in, err := h.Compile()
		if err != nil {
			return nil, nil, fmt.Errorf("credentials[%d]: %w", i, err)
		}
		creds = append(creds, in)
	}
	if j == nil {
		return creds, nil, nil
	}
	s, err := j.Compile()
	if err != nil {
		return nil, nil, fmt.Errorf("jwt: %w", err)
	}
	return creds, s, nil
}

// Target is the replay target (the default route's).
func (rt *Router) Target() *url.URL { return rt.def.to.sender.Target() }

// Selects returns why ex would not be sent by choice (DropFiltered), "" when
// it would: a window replay does not schedule the records it would skip.
func (rt *Router) Selects(ex *mlv1.Exchange) string {
	_, reason := rt.pick(ex.GetRequest())
	return reason
}

// pick returns the route of req, or the reason it is not sent.
func (rt *Router) pick(req *mlv1.Request) (*routeEntry, string) {
	if rt.safe && !slices.Contains(route.SafeMethods, req.GetMethod()) {
		return nil, DropFiltered
	}
	if rt.sel != nil && !rt.sel.Matches(req) {
		return nil, DropFiltered
	}
	for _, e := range rt.routes {
		if e.match.Matches(req) {
			if e.skip {
				return nil, DropFiltered
			}
			return e, ""
		}
	}
	return rt.def, ""
}

// Replay sends ex as its route says (see Router).
func (rt *Router) Replay(ctx context.Context, ex *mlv1.Exchange) (Outcome, error) {
	in := ex.GetRequest()
	if in == nil || in.Method == "" {
		return Outcome{}, fmt.Errorf("exchange %s: no request", ex.GetId())
	}
	e, reason := rt.pick(in)
	if reason != "" {
		return Outcome{}, &Skipped{Reason: reason}
	}
	target := e.to.sender.Target().String()
	meta := middleware.Meta{ID: ex.GetId(), Service: ex.GetService(), Route: e.name, Target: target}
	req, err := rt.rewrite(ctx, e, meta, ex)
	if err != nil {
		return Outcome{}, err
	}
	send := ex
	if req != in {
		// Only what BuildRequest reads: the id, the request, and the
		// response status that tells an upgrade.
		send = &mlv1.Exchange{Id: ex.GetId(), Request: req, Response: &mlv1.Response{Status: ex.GetResponse().GetStatus()}, Protocol: ex.GetProtocol()}
	}
	hreq, err := BuildRequest(ctx, e.to.sender.target, send, e.to.sender.keepHost)
	if err != nil {
		return Outcome{}, err
	}
	masked, err := rt.credentials(e, hreq)
	if err != nil {
		return Outcome{}, &reasonError{ReasonCredentials, fmt.Errorf("exchange %s: route %s: %w", ex.GetId(), e.name, err)}
	}
	done, err := rt.admit(ctx, e.to)
	if err != nil {
		return Outcome{}, err
	}
	resp, failure := e.to.sender.do(hreq, ex.GetProtocol())
	if done != nil {
		// A request cut short by the end of the replay says nothing of the
		// target.
		done(failure != "" && ctx.Err() == nil, time.Duration(resp.GetLatencyNs()))
	}
	if rt.mw != nil {
		rt.mw.Response(meta, resp, ex.GetResponse())
	}
	out := Outcome{Target: target, Route: e.name, Response: resp, Failure: failure}
	if req != in || len(masked) > 0 {
		out.Sent = sentRequest(in, req, hreq, masked)
		if isGRPC(ex) {
			out.Sent.BodySize = req.GetBodySize() // framed messages, not a body
		}
	}
	return out, nil
}

// rewrite returns the request to send for ex on route e: the captured one
// when neither a transform nor the middleware changes it, else a new one.
func (rt *Router) rewrite(ctx context.Context, e *routeEntry, meta middleware.Meta, ex *mlv1.Exchange) (*mlv1.Request, error) {
	req := ex.GetRequest()
	if e.transform != nil {
		if isGRPC(ex) && e.transform.EditsBody() {
			return nil, &reasonError{ReasonTransform, fmt.Errorf("exchange %s: route %s: %w", ex.GetId(), e.name, ErrBodyTransformGRPC)}
		}
		req = proto.Clone(req).(*mlv1.Request)
		if err := e.transform.Apply(req); err != nil {
			return nil, &reasonError{ReasonTransform, fmt.Errorf("exchange %s: route %s: %w", ex.GetId(), e.name, err)}
		}
	}
	if rt.mw == nil {
		return req, nil
	}
	out, drop, err := rt.mw.Request(ctx, meta, req)
	switch {
	case err != nil:
		return nil, &reasonError{ReasonMiddleware, fmt.Errorf("exchange %s: %w", ex.GetId(), err)}
	case drop:
		return nil, &Skipped{Reason: DropMiddleware}
	case proto.Equal(out, req):
		return req, nil
	}
	return out, nil
}

// credentials sets e's credentials on hreq and returns the names of the
// headers it set.
func (rt *Router) credentials(e *routeEntry, hreq *http.Request) ([]string, error) {
	var set []string
	for _, c := range e.creds {
		if err := c.Apply(hreq.Header); err != nil {
			rt.metrics.Credentials.WithLabelValues(c.HeaderName(), "error").Inc()
			return nil, err
		}
		rt.metrics.Credentials.WithLabelValues(c.HeaderName(), "set").Inc()
		set = append(set, c.HeaderName())
	}
	if e.jwt == nil {
		return set, nil
	}
	ok, err := e.jwt.Apply(hreq.Header, time.Now())
	switch {
	case err != nil:
		rt.metrics.Credentials.WithLabelValues(e.jwt.HeaderName(), "error").Inc()
		return nil, err
	case ok:
		rt.metrics.Credentials.WithLabelValues(e.jwt.HeaderName(), "resigned").Inc()
		set = append(set, e.jwt.HeaderName())
	default:
		rt.metrics.Credentials.WithLabelValues(e.jwt.HeaderName(), "no_token").Inc()
	}
	return set, nil
}

// admit asks d's breaker to let one request go: done reports its outcome
// (nil without a breaker). An open breaker skips the record, or, when it
// pauses, holds it until the breaker lets requests go again (or ctx ends).
func (rt *Router) admit(ctx context.Context, d *destination) (func(bool, time.Duration), error) {
	b := d.breaker
	if b == nil {
		return nil, nil
	}
	if b.Pause() {
		return b.Acquire(ctx)
	}
	done, err := b.Allow()
	if err != nil {
		return nil, &Skipped{Reason: DropBreakerOpen}
	}
	return done, nil
}

// sentRequest is the request of a shadow record when what was sent differs
// from the captured request in: req (after transforms and the middleware)
// as hreq went out, the values of the masked headers replaced by
// MaskedCredential, its body kept only when it was changed.
func sentRequest(in, req *mlv1.Request, hreq *http.Request, masked []string) *mlv1.Request {
	out := &mlv1.Request{Method: hreq.Method, Url: req.GetUrl(), Host: hreq.Host, BodySize: int64(len(req.GetBody()))}
	if out.Host == "" {
		out.Host = hreq.URL.Host
	}
	for _, h := range mlv1.HeadersFromHTTP(hreq.Header) {
		if slices.Contains(masked, h.Name) {
			h.Value = MaskedCredential
		}
		out.Headers = append(out.Headers, h)
	}
	if !bytes.Equal(req.GetBody(), in.GetBody()) {
		out.Body = req.GetBody()
	}
	return out
}

// NewRequester returns what a replay sends with: def itself when routing
// changes nothing and there is no middleware, else a Router over def whose
// route targets newSender builds. The middleware program, when mw is set,
// is started with ctx (log and metrics from opts): the caller closes it
// when the replay ends and watches its Err, which says the replay cannot go
// on.
func NewRequester(ctx context.Context, def *Sender, r Routing, mw *middleware.Config, newSender func(target string) (*Sender, error), opts ...Option) (Requester, *middleware.Middleware, error) {
	if !r.Active() && mw == nil {
		return def, nil, nil
	}
	// The routing first (checked, credentials read): a bad setting starts
	// no program.
	rt, err := NewRouter(def, r, newSender, opts...)
	if err != nil {
		return nil, nil, err
	}
	if mw == nil {
		return rt, nil, nil
	}
	prog, err := middleware.Start(ctx, *mw, rt.log.Named("middleware"), rt.metrics.Middleware)
	if err != nil {
		return nil, nil, fmt.Errorf("replay.middleware: %w", err)
	}
	rt.mw = prog
	return rt, prog, nil
}

// supervise runs fn until it returns; when mw (may be nil) fails for good
// first, fn's context is cancelled and the middleware's error returned,
// also when fn then returns nil (a live replayer stops cleanly when its
// context ends) or had just returned.
func supervise(ctx context.Context, mw *middleware.Middleware, fn func(context.Context) error) error {
	if mw == nil {
		return fn(ctx)
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case err := <-mw.Err():
			if err != nil {
				stop(err)
			}
		case <-ctx.Done():
		}
	}()
	err := fn(ctx)
	stop(nil)
	<-watched
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	select {
	case mwErr := <-mw.Err():
		if mwErr != nil {
			return mwErr
		}
	default:
	}
	return err
}
