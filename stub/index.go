package stub

import (
	"context"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
)

// Default bounds of the index.
const (
	DefaultMaxRecords       = 100000
	DefaultMaxBytes   int64 = 256 << 20
)

// Recorded is one of the primary's egress calls in the index.
type Recorded struct {
	// Ex is the record as read from the clean topic.
	Ex *mlv1.Exchange

	host, path, query string
	body              shape
	size              int64
	used              bool
	gone              bool
}

// Call is one outbound call of the shadow, as matched against the index.
type Call struct {
	// Parent is the primary's exchange id from the call's tracestate, Trace
	// the trace id of its traceparent; either may be empty.
	Parent, Trace string
	// Host is the dependency (host[:port]); Method; Target the request
	// target (path and query, origin-form).
	Host, Method, Target string
	// ContentType is the call's Content-Type (form bodies are compared
	// field by field).
	ContentType string
	Body        []byte
}

// Progress tells whether the index has read the clean topic up to what it
// held at some moment: Target snapshots the topic's ends, Reached says
// whether they are read. A Follower is one.
type Progress interface {
	Target(ctx context.Context) (any, error)
	Reached(target any) bool
}

// Index holds the primary's recorded egress calls by parent exchange id and
// by trace id, within bounds of records and bytes (oldest evicted first).
// It is safe for concurrent use.
type Index struct {
	mu         sync.Mutex
	byParent   map[string][]*Recorded
	byTrace    map[string][]*Recorded
	fifo       []*Recorded
	head       int
	records    int
	bytes      int64
	maxRecords int
	maxBytes   int64
	changed    chan struct{}
	progress   Progress
	metrics    *Metrics
}

// IndexOpt configures an Index.
type IndexOpt func(*Index)

// WithBounds bounds the index to records calls and bytes bytes (estimated);
// non-positive values keep the defaults.
func WithBounds(records int, bytes int64) IndexOpt {
	return func(ix *Index) {
		if records > 0 {
			ix.maxRecords = records
		}
		if bytes > 0 {
			ix.maxBytes = bytes
		}
	}
}

// WithIndexMetrics sets the metrics the index counts in.
func WithIndexMetrics(m *Metrics) IndexOpt { return func(ix *Index) { ix.metrics = m } }

// NewIndex returns an empty index.
func NewIndex(opts ...IndexOpt) *Index {
	ix := &Index{byParent: map[string][]*Recorded{}, byTrace: map[string][]*Recorded{},
		maxRecords: DefaultMaxRecords, maxBytes: DefaultMaxBytes, changed: make(chan struct{})}
	for _, o := range opts {
		o(ix)
	}
	if ix.metrics == nil {
		ix.metrics = NewMetrics(nil)
	}
	return ix
}

// SetProgress sets what tells the index whether it is behind its topic
// (Match waits for a behind index); without one it is never behind.
func (ix *Index) SetProgress(p Progress) {
	ix.mu.Lock()
	ix.progress = p
	ix.mu.Unlock()
}

// Add indexes ex when it is an egress record with a parent id or a trace
// id, and reports whether it did (what it skips is counted).
func (ix *Index) Add(ex *mlv1.Exchange) bool {
	if ex.GetKind() != mlv1.Kind_KIND_EGRESS {
		ix.metrics.Skipped.WithLabelValues(SkipInbound).Inc()
		return false
	}
	if (ex.GetParentId() == "" && ex.GetTraceId() == "") || ex.GetRequest() == nil {
		ix.metrics.Skipped.WithLabelValues(SkipNoKey).Inc()
		return false
	}
	if ex.GetResponse().GetStatus() < 200 || ex.GetResponse().GetStatus() > 999 {
		// The primary got no (final) answer, e.g. a transport error:
		// nothing to give.
		ix.metrics.Skipped.WithLabelValues(SkipNoResponse).Inc()
		return false
	}
	path, query := splitTarget(ex.GetRequest().GetUrl())
	rec := &Recorded{Ex: ex, host: normHost(ex.GetRequest().GetHost()), path: path, query: query,
		body: newShape(ex.GetRequest().GetBody(), contentType(ex.GetRequest().GetHeaders())), size: int64(ex.SizeVT())}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if p := ex.GetParentId(); p != "" {
		ix.byParent[p] = append(ix.byParent[p], rec)
	}
	if t := ex.GetTraceId(); t != "" {
		ix.byTrace[t] = append(ix.byTrace[t], rec)
	}
	ix.fifo = append(ix.fifo, rec)
	ix.records++
	ix.bytes += rec.size
	ix.metrics.Indexed.Inc()
	for ix.records > ix.maxRecords || (ix.bytes > ix.maxBytes && ix.records > 1) {
		ix.evictOldest()
	}
	ix.metrics.IndexRecords.Set(float64(ix.records))
	ix.metrics.IndexBytes.Set(float64(ix.bytes))
	ix.notifyLocked()
	return true
}

// evictOldest drops the oldest record; ix.mu is held.
func (ix *Index) evictOldest() {
	rec := ix.fifo[ix.head]
	ix.fifo[ix.head] = nil
	ix.head++
	if ix.head > len(ix.fifo)/2 && ix.head > 1024 {
		ix.fifo = append([]*Recorded(nil), ix.fifo[ix.head:]...)
		ix.head = 0
	}
	rec.gone = true
	ix.records--
	ix.bytes -= rec.size
	if p := rec.Ex.GetParentId(); p != "" {
		ix.byParent[p] = remove(ix.byParent[p], rec)
		if len(ix.byParent[p]) == 0 {
			delete(ix.byParent, p)
		}
	}
	if t := rec.Ex.GetTraceId(); t != "" {
		ix.byTrace[t] = remove(ix.byTrace[t], rec)
		if len(ix.byTrace[t]) == 0 {
			delete(ix.byTrace, t)
		}
	}
	ix.metrics.Evicted.Inc()
}

func remove(s []*Recorded, r *Recorded) []*Recorded {
	for i, e := range s {
		if e == r {
			return append(s[:i], s[i+1:]...)
		}
	}
	return s
}

// Notify wakes the calls waiting for the index (the Follower calls it when
// it has read further).
func (ix *Index) Notify() {
	ix.mu.Lock()
	ix.notifyLocked()
	ix.mu.Unlock()
}

func (ix *Index) notifyLocked() {
	close(ix.changed)
	ix.changed = make(chan struct{})
}

// Len is the number of calls in the index.
func (ix *Index) Len() int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.records
}

// Match finds the recorded call answering c and marks it used: among the
// calls recorded for c's parent (else its trace) not used yet, those to the
// same host with the same method and path, the one whose body is most like
// c's (then the same query, then the earliest recorded). It returns the
// call and the body similarity in percent, or nil. When none is found and
// the index is behind its topic, it waits for it up to wait.
func (ix *Index) Match(ctx context.Context, c Call, wait time.Duration) (*Recorded, int) {
	start := time.Now()
	var target any
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
			ix.metrics.Wait.Observe(time.Since(start).Seconds())
		}
	}()
	body := newShape(c.Body, c.ContentType) // parsed once, outside the lock
	for {
		ix.mu.Lock()
		rec, score := ix.takeLocked(c, body)
		changed, progress := ix.changed, ix.progress
		ix.mu.Unlock()
		if rec != nil || wait <= 0 || progress == nil {
			return rec, score
		}
		if target == nil {
			var err error
			if target, err = progress.Target(ctx); err != nil || target == nil {
				return nil, 0
			}
			timer = time.NewTimer(wait - time.Since(start))
		}
		if progress.Reached(target) && !ix.awaited(c) {
			return nil, 0
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, 0
		case <-ctx.Done():
			return nil, 0
		}
	}
}

// awaited reports whether c names a parent (or trace) of which the index
// holds no recorded call at all: its records may still be on their way
// (the primary's egress proxy publishes them apart from the inbound
// exchange, which can be replayed first), so the call waits for them up to
// its bound even when the index had read the topic to its end when the call
// came.
func (ix *Index) awaited(c Call) bool {
	if c.Parent == "" && c.Trace == "" {
		return false
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return len(ix.byParent[c.Parent]) == 0 && len(ix.byTrace[c.Trace]) == 0
}

// takeLocked is Match without waiting; ix.mu is held.
func (ix *Index) takeLocked(c Call, body shape) (*Recorded, int) {
	var cands []*Recorded
	if c.Parent != "" {
		cands = ix.byParent[c.Parent]
	}
	if len(cands) == 0 && c.Trace != "" {
		cands = ix.byTrace[c.Trace]
	}
	host := normHost(c.Host)
	path, query := splitTarget(c.Target)
	var best *Recorded
	bestScore, bestQuery := -1, false
	for _, r := range cands {
		if r.used || r.gone || r.host != host || r.path != path || !strings.EqualFold(r.Ex.GetRequest().GetMethod(), c.Method) {
			continue
		}
		s, q := r.body.similarity(body), r.query == query
		if s > bestScore || (s == bestScore && q && !bestQuery) {
			best, bestScore, bestQuery = r, s, q
		}
	}
	if best == nil {
		return nil, 0
	}
	best.used = true
	return best, bestScore
}

// splitTarget splits a request target into its path (unescaped form kept
// as sent) and raw query; an absolute URL is reduced to its path.
func splitTarget(t string) (path, query string) {
	if !strings.HasPrefix(t, "/") {
		if u, err := url.Parse(t); err == nil && u.IsAbs() {
			t = u.RequestURI()
		}
	}
	path, query, _ = strings.Cut(t, "?")
	if path == "" {
		path = "/"
	}
	return path, query
}

// normHost lowercases a host[:port] and drops the default ports 80 and 443.
func normHost(h string) string {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if host, port, err := net.SplitHostPort(h); err == nil && (port == "80" || port == "443") {
		if strings.Contains(host, ":") {
			return "[" + host + "]"
		}
		return host
	}
	return h
}

// contentType is the first Content-Type of hs.
func contentType(hs []*mlv1.Header) string {
	for _, h := range hs {
		if strings.EqualFold(h.GetName(), "Content-Type") {
			return h.GetValue()
		}
	}
	return ""
}
