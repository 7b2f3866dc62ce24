package comparator

import (
	"cmp"
	"container/list"
	"maps"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// DownstreamPrefix starts the field of a downstream difference: the calls an
// exchange made to a dependency endpoint, "downstream[POST gateway:8080/charge]",
// alone (the number of calls differs) or followed by "." and the field of the
// request's body ("downstream[POST gateway:8080/charge].body.amount").
const DownstreamPrefix = "downstream["

// Egress record outcomes counted in mirrorline_comparator_egress_records_total{side,outcome}.
const (
	EgressAttached = "attached"  // kept for its parent exchange
	EgressNoParent = "no_parent" // no parent id: cannot be told which exchange made the call
	EgressLate     = "late"      // its parent was already decided
	EgressOrphan   = "orphan"    // its parent never came within two join windows
	EgressIgnored  = "ignored"   // a secondary's egress record, or a window job's
)

// Downstream difference kinds counted in
// mirrorline_comparator_downstream_differences_total{endpoint,kind}.
const (
	DownstreamExtra   = "extra"   // the shadow made more calls to a dependency endpoint
	DownstreamMissing = "missing" // the shadow made fewer calls
	DownstreamBody    = "body"    // a request body field to a dependency differs
)

// children are the egress records of one inbound exchange, by side.
type children struct {
	ex    [numSides][]*mlv1.Exchange
	refs  []Ref
	first time.Time
	elem  *list.Element
	id    string
}

// settling is a joined exchange waiting downstream_wait for its late children.
type settling struct {
	e     *entry
	until time.Time
}

// isEgress reports whether ex is an outbound call of a service, never joined
// as an inbound exchange.
func isEgress(ex *mlv1.Exchange) bool { return ex.GetKind() == mlv1.Kind_KIND_EGRESS }

// addEgress files an egress record under its parent exchange.
func (c *Comparator) addEgress(side Side, ex *mlv1.Exchange, ref Ref, now time.Time) bool {
	parent := ex.GetParentId()
	if parent == "" && validTraceID(ex.GetTraceId()) {
		// Without the mirrorline tracestate entry: filed under the trace,
		// which the inbound exchange carries too (Exchange.trace_id).
		parent = traceKey(ex.GetTraceId())
	}
	outcome := EgressAttached
	switch {
	case side == Secondary:
		outcome = EgressIgnored
	case parent == "":
		outcome = EgressNoParent
	case c.join.decided[parent] && c.settlingIDs[parent] == nil:
		outcome = EgressLate
	}
	c.metrics.Egress.WithLabelValues(side.String(), outcome).Inc()
	if outcome != EgressAttached {
		return false
	}
	c.egressSeen = true
	k := c.kids[parent]
	if k == nil {
		k = &children{id: parent, first: now}
		k.elem = c.kidOrder.PushBack(k)
		c.kids[parent] = k
	}
	k.ex[side] = append(k.ex[side], ex)
	k.refs = append(k.refs, ref)
	return true
}

// traceKey is the key children without a parent id are filed under: their
// trace id, never an exchange id (which has no ':').
func traceKey(traceID string) string { return "trace:" + traceID }

// validTraceID reports whether s is a W3C trace id: 32 lowercase hex
// digits, not all zero.
func validTraceID(s string) bool {
	if len(s) != 32 || s == strings.Repeat("0", 32) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// childrenOf removes and returns the children of the exchange e: those
// naming its id, and those naming no parent but its primary's trace id.
func (c *Comparator) childrenOf(e *entry) *children {
	k := c.takeChildren(e.id)
	tid := e.ex[Primary].GetTraceId()
	if !validTraceID(tid) {
		return k
	}
	t := c.takeChildren(traceKey(tid))
	switch {
	case t == nil:
		return k
	case k == nil:
		return t
	}
	for s := range k.ex {
		k.ex[s] = append(k.ex[s], t.ex[s]...)
	}
	k.refs = append(k.refs, t.refs...)
	return k
}

// takeChildren removes and returns the children of exchange id (nil when none).
func (c *Comparator) takeChildren(id string) *children {
	k := c.kids[id]
	if k != nil {
		delete(c.kids, id)
		c.kidOrder.Remove(k.elem)
	}
	return k
}

// settle holds a joined exchange for downstream_wait (see
// Config.DownstreamWait), so children arriving after their parent are still
// compared. It reports whether e was held.
func (c *Comparator) settle(e *entry, now time.Time) bool {
	wait := c.cfg.DownstreamWait
	if wait == 0 && c.egressSeen {
		wait = DefaultDownstreamWait
	}
	if e.settled || wait <= 0 || e.ex[Primary] == nil || e.ex[Shadow] == nil {
		return false
	}
	e.settled = true
	c.settling = append(c.settling, settling{e: e, until: now.Add(wait)})
	c.settlingIDs[e.id] = e
	return true
}

// tickDownstream decides the settled exchanges whose wait is over and
// releases, as decisions without a diff, the egress records whose parent
// never came within two join windows (the oldest beyond max_pending parents
// at once: calls made for requests that were not captured never find one).
func (c *Comparator) tickDownstream(now time.Time, all bool) []Decision {
	var out []Decision
	n := 0
	for _, s := range c.settling {
		if !all && now.Before(s.until) {
			break
		}
		n++
	}
	done := c.settling[:n]
	c.settling = slices.Clone(c.settling[n:])
	for _, s := range done {
		delete(c.settlingIDs, s.e.id)
		out = append(out, c.process(s.e, now)...)
	}
	for f := c.kidOrder.Front(); f != nil; f = c.kidOrder.Front() {
		k := f.Value.(*children)
		if !all && now.Sub(k.first) < 2*c.cfg.JoinWindow && (c.cfg.MaxPending <= 0 || len(c.kids) <= c.cfg.MaxPending) {
			break
		}
		c.takeChildren(k.id)
		for s := range k.ex {
			if n := len(k.ex[s]); n > 0 {
				c.metrics.Egress.WithLabelValues(Side(s).String(), EgressOrphan).Add(float64(n))
			}
		}
		out = append(out, Decision{Refs: k.refs})
	}
	return out
}

// dropDownstream forgets, undecided, the settling exchanges and children
// holding a record match accepts.
func (c *Comparator) dropDownstream(match func(Ref) bool) int {
	n := 0
	c.settling = slices.DeleteFunc(c.settling, func(s settling) bool {
		if slices.ContainsFunc(s.e.refs, match) {
			delete(c.settlingIDs, s.e.id)
			n++
			return true
		}
		return false
	})
	for f := c.kidOrder.Front(); f != nil; {
		next := f.Next()
		if k := f.Value.(*children); slices.ContainsFunc(k.refs, match) {
			c.takeChildren(k.id)
		}
		f = next
	}
	return n
}

// depHost keeps a dependency host name only when it looks like one (letters,
// digits, '.', '-', ':' and brackets), so endpoint names carry no payload.
var depHost = regexp.MustCompile(`^[A-Za-z0-9.\-:\[\]]{1,100}$`)

// dependency is the dependency endpoint of an egress call: method, host and
// templated path ("POST gateway:8080/charge").
func (c *Comparator) dependency(ex *mlv1.Exchange) string {
	req := ex.GetRequest()
	host := req.GetHost()
	if host == "" {
		if u, err := url.Parse(req.GetUrl()); err == nil {
			host = u.Host
		}
	}
	host = strings.ToLower(host)
	if h, port, err := net.SplitHostPort(host); err == nil && (port == "80" || port == "443") {
		host = h
	}
	if !depHost.MatchString(host) {
		host = "(other)"
	}
	ep := c.depTmpl.Endpoint(req.GetMethod(), req.GetUrl())
	m, p, _ := strings.Cut(ep, " ")
	return m + " " + host + p
}

// call is one egress call of a side, with its dependency endpoint.
type call struct {
	ex  *mlv1.Exchange
	dep string
}

// downstream compares the calls the primary and the shadow made for one
// exchange, per dependency endpoint: the number of calls, and the request
// bodies of the calls paired (by the stub's matched id, else in capture
// order). It returns the differences and the volatile keys.
func (c *Comparator) downstream(endpoint string, k *children) ([]*mlv1.Difference, []string) {
	if k == nil {
		return nil, nil
	}
	group := func(xs []*mlv1.Exchange) map[string][]call {
		m := map[string][]call{}
		for _, x := range xs {
			d := c.dependency(x)
			m[d] = append(m[d], call{ex: x, dep: d})
		}
		for _, cs := range m {
			slices.SortStableFunc(cs, func(a, b call) int { return cmp.Compare(a.ex.GetCaptureTimeNs(), b.ex.GetCaptureTimeNs()) })
		}
		return m
	}
	// The shadow's calls are redacted with the redactor's rules, as its
	// responses are (the primary's went through the redactor); a call that
	// cannot be is compared by count only.
	unscrubbed := map[*mlv1.Exchange]bool{}
	for _, x := range k.ex[Shadow] {
		if c.scrubExchange(x) != nil {
			unscrubbed[x] = true
		}
	}
	pg, sg := group(k.ex[Primary]), group(k.ex[Shadow])
	deps := map[string]bool{}
	for d := range pg {
		deps[d] = true
	}
	for d := range sg {
		deps[d] = true
	}
	var diffs []*mlv1.Difference
	var vol []string
	for _, dep := range slices.Sorted(maps.Keys(deps)) {
		ps, ss := pg[dep], sg[dep]
		f := DownstreamPrefix + dep + "]"
		if len(ps) != len(ss) {
			kind := mlv1.DiffKind_DIFF_KIND_ADDED
			if len(ss) < len(ps) {
				kind = mlv1.DiffKind_DIFF_KIND_REMOVED
			}
			diffs = append(diffs, &mlv1.Difference{Field: f, Key: f, Kind: kind,
				Primary: calls(len(ps)), Shadow: calls(len(ss))})
		}
		for _, pr := range pairCalls(ps, ss) {
			if unscrubbed[pr[1]] {
				continue
			}
			p, s := pr[0].GetRequest(), pr[1].GetRequest()
			er := c.rules.forEndpoint(endpoint)
			bd, bv, _ := c.differ.compareBodies(er,
				&mlv1.Response{Headers: p.GetHeaders(), Body: p.GetBody(), BodyTruncated: p.GetBodyTruncated()},
				&mlv1.Response{Headers: s.GetHeaders(), Body: s.GetBody(), BodyTruncated: s.GetBodyTruncated()})
			for _, df := range bd {
				df.Field, df.Key = f+"."+df.Field, f+"."+df.Key
				diffs = append(diffs, df)
			}
			for key := range bv {
				vol = append(vol, f+"."+key)
			}
		}
	}
	slices.Sort(vol)
	return diffs, slices.Compact(vol)
}

// pairCalls pairs the primary's calls ps with the shadow's ss to the same
// dependency endpoint: first those the stub answered with a recorded call
// (StubAnswer.matched_id), then the rest in capture order.
func pairCalls(ps, ss []call) [][2]*mlv1.Exchange {
	var out [][2]*mlv1.Exchange
	usedP := make([]bool, len(ps))
	usedS := make([]bool, len(ss))
	for j, s := range ss {
		m := s.ex.GetStub().GetMatchedId()
		if m == "" {
			continue
		}
		for i, p := range ps {
			if !usedP[i] && p.ex.GetId() == m {
				usedP[i], usedS[j] = true, true
				out = append(out, [2]*mlv1.Exchange{p.ex, s.ex})
				break
			}
		}
	}
	i := 0
	for j, s := range ss {
		if usedS[j] {
			continue
		}
		for i < len(ps) && usedP[i] {
			i++
		}
		if i == len(ps) {
			break
		}
		usedP[i] = true
		out = append(out, [2]*mlv1.Exchange{ps[i].ex, s.ex})
	}
	return out
}

// countDownstream counts the downstream differences of a judged diff that
// are not noise.
func (c *Comparator) countDownstream(d *mlv1.Diff) {
	for _, df := range d.GetDifferences() {
		if df.GetNoise() || !strings.HasPrefix(df.GetField(), DownstreamPrefix) {
			continue
		}
		kind := DownstreamBody
		if !strings.Contains(df.GetField(), "].") {
			kind = DownstreamExtra
			if df.GetKind() == mlv1.DiffKind_DIFF_KIND_REMOVED {
				kind = DownstreamMissing
			}
		}
		c.metrics.Downstream.WithLabelValues(d.GetEndpoint(), kind).Inc()
	}
}

// calls is "1 call", "2 calls".
func calls(n int) string {
	if n == 1 {
		return "1 call"
	}
	return strconv.Itoa(n) + " calls"
}
