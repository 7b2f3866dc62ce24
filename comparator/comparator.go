package comparator

import (
	"container/list"
	"fmt"
	"slices"
	"strings"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Scrubber redacts an exchange in place with the redactor's rules, so the
// shadow's response is as scrubbed as the primary's on the clean topic. A
// redactor.Engine fits: func(ex) error { _, err := e.Redact(ex); return err }.
type Scrubber func(ex *mlv1.Exchange) error

// Decision is a decided exchange: its diff record and the records it used.
type Decision struct {
	// Diff is the record to publish to mirror.diff.S.
	Diff *mlv1.Diff
	// Refs are the records the exchange was joined from.
	Refs []Ref
}

// held is a compared exchange waiting for its endpoint's noise warm-up.
type held struct {
	d     *mlv1.Diff
	refs  []Ref
	since time.Time
}

// Comparator joins each exchange's primary, shadow and (optional) secondary
// records, diffs the responses, learns noise, and decides a verdict per
// exchange. It is not safe for concurrent use: the Runner serializes calls.
type Comparator struct {
	cfg     Config
	service string
	rules   *rules
	differ  *differ
	tmpl    *Templater
	join    *joiner
	stats   *Stats
	held    map[string][]held
	heldN   int
	alerts  *alerter
	touched map[string]bool // endpoints whose latency gauge needs an update
	gauged  time.Time       // when the latency gauges were last updated
	options                 // logger, metrics, scrubber
	// Downstream: egress records by parent exchange id (oldest first in
	// kidOrder), joined exchanges waiting for late children, and whether
	// any egress record was seen.
	kids        map[string]*children
	kidOrder    *list.List
	settling    []settling
	settlingIDs map[string]*entry
	egressSeen  bool
	depTmpl     *Templater
}

// New returns a comparator of service under cfg (defaults applied, then validated).
func New(service string, cfg Config, opts ...Option) (*Comparator, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := compileRules(cfg)
	if err != nil {
		return nil, err
	}
	t, err := NewTemplater(cfg.Endpoints, cfg.MaxEndpoints)
	if err != nil {
		return nil, err
	}
	c := &Comparator{
		cfg: cfg, service: service, rules: r, tmpl: t,
		differ:  &differ{rules: r, maxBody: cfg.MaxBodyBytes, maxDiffs: cfg.MaxDifferences},
		join:    newJoiner(cfg.JoinWindow, cfg.Secondary.On(), cfg.MaxPending),
		stats:   NewStats(cfg),
		held:    map[string][]held{},
		alerts:  newAlerter(cfg.Alert),
		touched: map[string]bool{},
		options: options{}.apply(opts),
	}
	c.differ.schema = c.schema
	c.kids, c.kidOrder, c.settlingIDs = map[string]*children{}, list.New(), map[string]*entry{}
	if c.depTmpl, err = NewTemplater(nil, cfg.MaxEndpoints); err != nil {
		return nil, err
	}
	return c, nil
}

// Config returns the configuration in effect (defaults applied).
func (c *Comparator) Config() Config { return c.cfg }

// Stats returns the live statistics.
func (c *Comparator) Stats() *Stats { return c.stats }

// Pending returns how many exchanges wait for a side or for warm-up.
func (c *Comparator) Pending() int { return c.join.len() + c.heldN + len(c.settling) }

// Learn feeds a past diff record (from mirror.diff.S) into noise learning,
// so a restarted comparator does not start from nothing.
func (c *Comparator) Learn(d *mlv1.Diff) { c.stats.Learn(d) }

var outcomeLabels = [...]string{
	outcomeWaiting: RecordWaiting, outcomeJoined: RecordJoined, outcomeDuplicate: RecordDuplicate,
	outcomeLate: RecordLate, outcomeInvalid: RecordInvalid,
}

// Add feeds one record of side. It returns the decisions that became final
// and whether the record was kept (so its offset must not be committed
// before a returned decision lists its Ref). An egress record (KIND_EGRESS)
// is never joined as an exchange: it is kept for its parent's downstream
// comparison. A Decision without a Diff only releases records (egress
// records whose parent never came).
func (c *Comparator) Add(side Side, ex *mlv1.Exchange, ref Ref, now time.Time) ([]Decision, bool) {
	if isEgress(ex) {
		return nil, c.addEgress(side, ex, ref, now)
	}
	e, outcome := c.join.add(side, ex, ref, now)
	c.metrics.Records.WithLabelValues(side.String(), outcomeLabels[outcome]).Inc()
	if outcome != outcomeWaiting && outcome != outcomeJoined {
		return nil, false
	}
	var out []Decision
	if outcome == outcomeJoined {
		out = c.process(e, now)
	}
	c.metrics.Pending.Set(float64(c.Pending()))
	return out, true
}

// Tick decides the exchanges whose join window passed (missing, or without
// their late secondary) and the warm-up holds older than the join window,
// updates the latency-regression gauges and evaluates the alerts.
func (c *Comparator) Tick(now time.Time) []Decision {
	var out []Decision
	for _, e := range c.join.expire(now) {
		out = append(out, c.process(e, now)...)
	}
	out = append(out, c.tickDownstream(now, false)...)
	for ep, hs := range c.held {
		if len(hs) > 0 && now.Sub(hs[0].since) >= c.cfg.JoinWindow {
			out = append(out, c.release(ep, now)...)
		}
	}
	if now.Sub(c.gauged) >= time.Second {
		// Percentiles cost a histogram scan: at most once a second.
		c.gauged = now
		for ep := range c.touched {
			v := 0.0
			if c.stats.Latency(ep).TailRegression {
				v = 1
			}
			c.metrics.LatencyRegression.WithLabelValues(ep).Set(v)
			delete(c.touched, ep)
		}
	}
	for _, ch := range c.alerts.evaluate(now) {
		if ch.Firing {
			c.metrics.Alert.WithLabelValues(ch.Endpoint).Set(1)
			c.log.Warn("comparator alert: endpoint differs", "service", c.service, "endpoint", ch.Endpoint,
				"difference_rate", fmt.Sprintf("%.3f", ch.Rate), "differing", ch.Differing, "exchanges", ch.Total,
				"threshold", c.cfg.Alert.Rate, "window", c.cfg.Alert.Window.String())
		} else {
			c.metrics.Alert.WithLabelValues(ch.Endpoint).Set(0)
			c.log.Info("comparator alert resolved", "service", c.service, "endpoint", ch.Endpoint,
				"difference_rate", fmt.Sprintf("%.3f", ch.Rate), "exchanges", ch.Total)
		}
	}
	c.metrics.Pending.Set(float64(c.Pending()))
	return out
}

// Unmatched decides a record whose other side cannot be had (a window job's
// shadow record whose primary is not found) as missing, for reason.
func (c *Comparator) Unmatched(side Side, ex *mlv1.Exchange, ref Ref, reason string, now time.Time) Decision {
	c.metrics.Records.WithLabelValues(side.String(), RecordUnmatched).Inc()
	e := &entry{id: ex.GetId(), refs: []Ref{ref}, reason: reason}
	e.ex[side] = ex
	return c.process(e, now)[0] // missing: decided at once, never held
}

// Drop forgets, undecided, every waiting exchange holding a record that match
// accepts (its partition was revoked: the new owner reads it again).
func (c *Comparator) Drop(match func(Ref) bool) int {
	n := c.join.drop(match) + c.dropDownstream(match)
	for ep, hs := range c.held {
		kept := slices.DeleteFunc(hs, func(h held) bool { return slices.ContainsFunc(h.refs, match) })
		n += len(hs) - len(kept)
		c.heldN -= len(hs) - len(kept)
		if len(kept) == 0 {
			delete(c.held, ep)
		} else {
			c.held[ep] = kept
		}
	}
	c.metrics.Pending.Set(float64(c.Pending()))
	return n
}

// Flush decides every waiting exchange now (at shutdown of a bounded run):
// joins as missing, holds with what is learned.
func (c *Comparator) Flush(now time.Time) []Decision {
	var out []Decision
	for f := c.join.order.Front(); f != nil; f = c.join.order.Front() {
		e := f.Value.(*entry)
		c.join.remove(e, now)
		out = append(out, c.process(e, now)...)
	}
	out = append(out, c.tickDownstream(now, true)...)
	for ep := range c.held {
		out = append(out, c.release(ep, now)...)
	}
	return out
}

// process turns a joined (or expired) entry into a diff record; compared
// exchanges may be held for warm-up.
func (c *Comparator) process(e *entry, now time.Time) []Decision {
	if c.settle(e, now) {
		return nil
	}
	prim, shad, sec := e.ex[Primary], e.ex[Shadow], e.ex[Secondary]
	kids := c.childrenOf(e)
	if kids != nil {
		e.refs = append(e.refs, kids.refs...)
	}
	base := prim
	for _, x := range e.ex {
		if base == nil {
			base = x
		}
	}
	req := base.GetRequest()
	grpc := isGRPC(base)
	endpoint := ""
	if grpc {
		endpoint = c.tmpl.GRPCEndpoint(req.GetUrl())
	} else {
		endpoint = c.tmpl.Endpoint(req.GetMethod(), req.GetUrl())
	}
	d := &mlv1.Diff{
		Id:            e.id,
		Service:       c.service,
		Endpoint:      endpoint,
		ConnectionId:  base.GetConnectionId(),
		CaptureTimeNs: base.GetCaptureTimeNs(),
		// Every verdict belongs to the one job this comparator judges.
		ShadowJob: c.cfg.ShadowJob,
	}
	if prim != nil {
		d.PrimaryStatus, d.PrimaryLatencyNs = prim.GetResponse().GetStatus(), prim.GetResponse().GetLatencyNs()
	}
	if shad != nil {
		d.ShadowStatus, d.ShadowLatencyNs = shad.GetResponse().GetStatus(), shad.GetResponse().GetLatencyNs()
		d.ShadowInstance = shad.GetReplay().GetInstance()
	}
	if grpc {
		d.PrimaryGrpcStatus, d.ShadowGrpcStatus = grpcStatusName(prim.GetResponse()), grpcStatusName(shad.GetResponse())
	}
	win := c.cfg.JoinWindow.String()
	switch {
	case prim == nil && shad == nil:
		d.Verdict, d.Reason = mlv1.Verdict_VERDICT_MISSING, "no primary record and no shadow response within "+win
	case prim == nil:
		d.Verdict, d.Reason = mlv1.Verdict_VERDICT_MISSING, "no primary record within "+win
	case shad == nil:
		d.Verdict, d.Reason = mlv1.Verdict_VERDICT_MISSING, "no shadow response within "+win
	}
	if d.Verdict != mlv1.Verdict_VERDICT_UNSPECIFIED {
		if e.reason != "" {
			d.Reason = e.reason
		}
		return []Decision{c.finalize(d, e.refs, now)}
	}
	p, s := prim.GetResponse(), shad.GetResponse()
	verdictOf := errorVerdict
	if grpc {
		verdictOf = grpcErrorVerdict
	}
	if v, reason := verdictOf(p, s); v != mlv1.Verdict_VERDICT_UNSPECIFIED {
		d.Verdict, d.Reason = v, reason
		return []Decision{c.finalize(d, e.refs, now)}
	}
	statusOnly := c.scrubExchange(shad) != nil
	var cmp comparison
	if statusOnly {
		d.Note = "shadow response could not be redacted; only the status compared"
		cmp = c.differ.compareExchange(d.Endpoint, base, statusOf(p), statusOf(s))
	} else {
		cmp = c.differ.compareExchange(d.Endpoint, base, p, s)
		d.Note = cmp.note
	}
	d.Differences, d.VolatileKeys = cmp.diffs, cmp.volatileKeys
	if !statusOnly {
		dd, dv := c.downstream(d.Endpoint, kids)
		if len(cmp.diffs) > 0 && cmp.diffs[0].Field == FieldStatus {
			// Calls made or not because the status differs (a request the
			// shadow rejects never charges): consequences, as the body's.
			for _, df := range dd {
				df.UnderStatus = true
			}
		}
		d.Differences = append(d.Differences, dd...)
		d.VolatileKeys = append(d.VolatileKeys, dv...)
	}
	if sr := sec.GetResponse(); sec != nil && sr.GetError() == "" && sr.GetStatus() > 0 && !statusOnly {
		if err := c.scrubExchange(sec); err == nil {
			d.Secondary = true
			d.SecondaryStatus, d.SecondaryLatencyNs = sr.GetStatus(), sr.GetLatencyNs()
			for _, df := range c.differ.compareExchange(d.Endpoint, base, p, sr).diffs {
				d.SecondaryDifferences = append(d.SecondaryDifferences, &mlv1.Difference{Field: df.Field, Key: df.Key, Kind: df.Kind, UnderStatus: df.UnderStatus, Volatile: df.Volatile})
			}
		}
	}
	c.stats.Learn(d)
	if !*c.cfg.Noise.Warmup {
		return []Decision{c.finalize(d, e.refs, now)}
	}
	c.held[d.Endpoint] = append(c.held[d.Endpoint], held{d: d, refs: e.refs, since: now})
	c.heldN++
	if c.stats.Warm(d.Endpoint) {
		return c.release(d.Endpoint, now)
	}
	return nil
}

// release decides every held exchange of endpoint.
func (c *Comparator) release(ep string, now time.Time) []Decision {
	hs := c.held[ep]
	delete(c.held, ep)
	c.heldN -= len(hs)
	out := make([]Decision, 0, len(hs))
	for _, h := range hs {
		out = append(out, c.finalize(h.d, h.refs, now))
	}
	return out
}

func (c *Comparator) scrubExchange(ex *mlv1.Exchange) error {
	if c.scrub == nil {
		return nil
	}
	if err := c.scrub(ex); err != nil {
		c.metrics.Errors.WithLabelValues("redact").Inc()
		c.log.Debug("response could not be redacted; body not compared", "id", ex.GetId())
		return fmt.Errorf("redact %s: %w", ex.GetId(), err)
	}
	return nil
}

// finalize judges a compared exchange, counts it and makes its Decision.
func (c *Comparator) finalize(d *mlv1.Diff, refs []Ref, now time.Time) Decision {
	c.stats.Judge(d)
	c.countDownstream(d)
	c.stats.Record(d)
	d.DecidedTimeNs = now.UnixNano()
	c.metrics.Exchanges.WithLabelValues(VerdictLabel(d.Verdict), d.Endpoint).Inc()
	if bothAnswered(d) {
		c.metrics.Latency.WithLabelValues(Primary.String()).Observe(float64(d.PrimaryLatencyNs) / 1e9)
		c.metrics.Latency.WithLabelValues(Shadow.String()).Observe(float64(d.ShadowLatencyNs) / 1e9)
		if d.Secondary && d.SecondaryLatencyNs > 0 {
			c.metrics.Latency.WithLabelValues(Secondary.String()).Observe(float64(d.SecondaryLatencyNs) / 1e9)
		}
	}
	switch d.Verdict {
	case mlv1.Verdict_VERDICT_SAME:
		c.alerts.add(d.Endpoint, false, now)
	case mlv1.Verdict_VERDICT_DIFFERENT, mlv1.Verdict_VERDICT_SHADOW_ERROR:
		c.alerts.add(d.Endpoint, true, now)
	}
	c.touched[d.Endpoint] = true
	c.log.Trace("decided", "id", d.Id, "endpoint", d.Endpoint, "verdict", VerdictLabel(d.Verdict), "differences", len(d.Differences))
	return Decision{Diff: d, Refs: refs}
}

// statusOf is r reduced to its status: the HTTP status and, for gRPC, the
// grpc-status (as a trailers-only answer carries it).
func statusOf(r *mlv1.Response) *mlv1.Response {
	out := &mlv1.Response{Status: r.GetStatus()}
	if _, _, ok := grpcStatus(r); ok {
		v, found := headerValue(r.GetTrailers(), "grpc-status")
		if !found {
			v, _ = headerValue(r.GetHeaders(), "grpc-status")
		}
		out.Headers = []*mlv1.Header{{Name: "grpc-status", Value: v}}
	}
	return out
}

// errorVerdict decides exchanges where a side failed.
func errorVerdict(p, s *mlv1.Response) (mlv1.Verdict, string) {
	switch {
	case p == nil:
		return mlv1.Verdict_VERDICT_PRIMARY_ERROR, "no primary response recorded"
	case p.GetError() != "" || p.GetStatus() == 0:
		return mlv1.Verdict_VERDICT_PRIMARY_ERROR, "primary: " + errorClass(p.GetError())
	case s == nil || s.GetError() != "" || s.GetStatus() == 0:
		return mlv1.Verdict_VERDICT_SHADOW_ERROR, "shadow: " + errorClass(s.GetError())
	case p.GetStatus() >= 500 && s.GetStatus() < 500:
		return mlv1.Verdict_VERDICT_PRIMARY_ERROR, "primary: status " + statusText(p.GetStatus())
	case s.GetStatus() >= 500 && p.GetStatus() < 500:
		return mlv1.Verdict_VERDICT_SHADOW_ERROR, "shadow: status " + statusText(s.GetStatus())
	}
	return mlv1.Verdict_VERDICT_UNSPECIFIED, ""
}

// errorClass maps a transport error text to a fixed class: error texts may
// hold URLs with queries, so they are never copied.
func errorClass(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case m == "":
		return "no response"
	case strings.Contains(m, "timeout") || strings.Contains(m, "deadline"):
		return "timeout"
	case strings.Contains(m, "refused"):
		return "connection refused"
	case strings.Contains(m, "reset"):
		return "connection reset"
	case strings.Contains(m, "no such host"):
		return "no such host"
	case strings.Contains(m, "eof"):
		return "connection closed"
	case strings.Contains(m, "tls") || strings.Contains(m, "certificate"):
		return "tls error"
	}
	return "transport error"
}
