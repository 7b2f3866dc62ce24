package broker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/stage"
)

// GroupPrefix starts the name of every consumer group mirrorline creates.
const GroupPrefix = "mirrorline-"

// PartitionLag is how far one consumer group is behind on one partition.
type PartitionLag struct {
	Group     string
	Topic     string
	Partition int32
	// Committed is the group's committed offset (-1: none yet).
	Committed int64
	// End is the partition's end offset.
	End int64
	// Records is End - Committed (or End - start when nothing is committed).
	Records int64
	// Seconds is the age of the oldest unconsumed record (0 when caught up).
	Seconds float64
	Err     error
}

// LagReader computes consumer lag in records (kadm) and in seconds (the age of
// the first record after each group's commit).
type LagReader struct {
	opts []kgo.Opt
	adm  *kadm.Client
	now  func() time.Time
}

// NewLagReader returns a reader using cl for admin requests; opts are the broker
// options used for the short-lived clients that read record timestamps.
func NewLagReader(cl *kgo.Client, opts []kgo.Opt) *LagReader {
	return &LagReader{opts: opts, adm: kadm.NewClient(cl), now: time.Now}
}

// Lag returns the lag of groups, sorted by group, topic and partition. With no
// groups it reports every group whose name starts with GroupPrefix.
func (l *LagReader) Lag(ctx context.Context, groups ...string) ([]PartitionLag, error) {
	if len(groups) == 0 {
		listed, err := l.adm.ListGroups(ctx)
		if err != nil {
			return nil, fmt.Errorf("list consumer groups: %w", err)
		}
		for _, g := range listed.Groups() {
			if strings.HasPrefix(g, GroupPrefix) {
				groups = append(groups, g)
			}
		}
		if len(groups) == 0 {
			return nil, nil
		}
	}
	described, err := l.adm.Lag(ctx, groups...)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: %w", err)
	}
	// kadm measures against the high watermark; a read-committed consumer
	// of a transactional topic can read only up to the last stable offset
	// (records of open transactions are not readable yet), so that is the end.
	stable, err := l.stableOffsets(ctx, described)
	if err != nil {
		return nil, err
	}
	var out []PartitionLag
	for _, g := range described.Sorted() {
		if err := g.Error(); err != nil {
			out = append(out, PartitionLag{Group: g.Group, Partition: -1, Err: err})
			continue
		}
		for _, m := range g.Lag.Sorted() {
			pl := PartitionLag{Group: g.Group, Topic: m.Topic, Partition: m.Partition, Committed: m.Commit.At, End: m.End.Offset, Records: m.Lag, Err: m.Err}
			if lso, ok := stable.Lookup(m.Topic, m.Partition); ok && lso.Err == nil && m.Err == nil {
				from := m.Commit.At
				if from < 0 {
					from = m.Start.Offset
				}
				pl.End, pl.Records = lso.Offset, max(0, lso.Offset-from)
			}
			out = append(out, pl)
		}
	}
	l.fillSeconds(ctx, out)
	return out, nil
}

// stableOffsets lists the last stable offset of every topic the groups
// have lag on.
func (l *LagReader) stableOffsets(ctx context.Context, described kadm.DescribedGroupLags) (kadm.ListedOffsets, error) {
	topics := map[string]bool{}
	for _, g := range described {
		for t := range g.Lag {
			topics[t] = true
		}
	}
	if len(topics) == 0 {
		return nil, nil
	}
	lso, err := l.adm.ListCommittedOffsets(ctx, slices.Sorted(maps.Keys(topics))...)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: list last stable offsets: %w", err)
	}
	return lso, nil
}

// fillSeconds reads the first unconsumed record of every lagging partition and
// sets Seconds from its timestamp.
func (l *LagReader) fillSeconds(ctx context.Context, lags []PartitionLag) {
	ts := l.readTimestamps(ctx, lags)
	now := l.now()
	for i := range lags {
		pl := &lags[i]
		if pl.Err != nil || pl.Records <= 0 {
			continue
		}
		t, ok := ts[key(pl.Topic, pl.Partition, pl.Committed)]
		switch {
		case ok && t.IsZero():
			// Only transaction markers and aborted records before the end:
			// nothing a read-committed consumer will ever get. Caught up.
			pl.Records = 0
		case ok:
			pl.Seconds = max(0, now.Sub(t).Seconds())
		case pl.Records <= maxMarkerLag:
			// Nothing to read after the commit: the offsets left are transaction
			// markers (commit/abort control records), not data. Caught up.
			pl.Records = 0
		}
	}
}

// maxMarkerLag is how many offsets past a group's commit may be transaction
// markers rather than records: a transactional producer leaves one per
// transaction, and a caught-up consumer of a transactional topic sits right
// before the last one.
const maxMarkerLag = 2

func key(topic string, p int32, off int64) string {
	return topic + "\x00" + strconv.Itoa(int(p)) + "\x00" + strconv.FormatInt(off, 10)
}

// readTimestamps fetches the first committed record at or after each lagging
// group's committed offset, reading as the group's consumers do (read
// committed), with stage.Read: each span runs from the committed offset to
// the end the lag was measured to. A zero time means there is none before
// that end: only transaction markers and aborted records are left.
func (l *LagReader) readTimestamps(ctx context.Context, lags []PartitionLag) map[string]time.Time {
	type part struct {
		topic string
		p     int32
	}
	// Read takes one span per partition: a partition with several
	// committed offsets (several groups) is read in several rounds.
	var rounds []map[part]PartitionLag
	seen := map[string]bool{}
	depth := map[part]int{}
	for _, pl := range lags {
		k, tp := key(pl.Topic, pl.Partition, pl.Committed), part{pl.Topic, pl.Partition}
		if pl.Err != nil || pl.Records <= 0 || seen[k] {
			continue
		}
		seen[k] = true
		if depth[tp] == len(rounds) {
			rounds = append(rounds, map[part]PartitionLag{})
		}
		rounds[depth[tp]][tp] = pl
		depth[tp]++
	}
	opts := append(append([]kgo.Opt{}, l.opts...), kgo.FetchMaxWait(300*time.Millisecond), kgo.FetchMaxPartitionBytes(64<<10))
	out := map[string]time.Time{}
	for _, round := range rounds {
		var spans []stage.Span
		for _, pl := range round {
			spans = append(spans, stage.Span{Topic: pl.Topic, Partition: pl.Partition, From: max(pl.Committed, 0), To: pl.End})
		}
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		err := stage.Read(rctx, opts, spans, func(r *kgo.Record) stage.Next {
			out[key(r.Topic, r.Partition, round[part{r.Topic, r.Partition}].Committed)] = r.Timestamp
			return stage.EndSpan
		})
		if err == nil && rctx.Err() == nil {
			// Every span was read to its end: one without a record
			// holds none a read-committed consumer will get.
			for _, pl := range round {
				k := key(pl.Topic, pl.Partition, pl.Committed)
				if _, ok := out[k]; !ok {
					out[k] = time.Time{}
				}
			}
		}
		cancel()
	}
	return out
}

// readTimeout bounds each round of readTimestamps (Kafka unreachable or
// slow): the partitions not read then get no age.
const readTimeout = 10 * time.Second

// LagCollector exports consumer lag as Prometheus metrics from a snapshot that
// Run refreshes in the background, so scrapes are cheap.
type LagCollector struct {
	reader   *LagReader
	groups   []string
	interval time.Duration
	log      hclog.Logger

	records *prometheus.Desc
	seconds *prometheus.Desc
	mu      sync.Mutex
	last    []PartitionLag
}

// NewLagCollector returns a collector of the lag of groups (all mirrorline groups
// when empty), refreshed every interval by Run.
func NewLagCollector(r *LagReader, interval time.Duration, log hclog.Logger, groups ...string) *LagCollector {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &LagCollector{
		reader: r, groups: groups, interval: interval, log: log,
		records: prometheus.NewDesc("mirrorline_consumer_lag_records", "Records a consumer group has yet to consume, per partition.", []string{"group", "topic", "partition"}, nil),
		seconds: prometheus.NewDesc("mirrorline_consumer_lag_seconds", "Age of the oldest record a consumer group has yet to consume, per topic.", []string{"group", "topic"}, nil),
	}
}

// Refresh recomputes the snapshot once.
func (c *LagCollector) Refresh(ctx context.Context) error {
	lags, err := c.reader.Lag(ctx, c.groups...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.last = lags
	c.mu.Unlock()
	return nil
}

// Run refreshes the snapshot every interval until ctx ends.
func (c *LagCollector) Run(ctx context.Context) error {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		if err := c.Refresh(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("consumer lag refresh", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Describe implements prometheus.Collector.
func (c *LagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.records
	ch <- c.seconds
}

// Collect implements prometheus.Collector.
func (c *LagCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	lags := c.last
	c.mu.Unlock()
	secs := map[[2]string]float64{}
	for _, pl := range lags {
		if pl.Err != nil || pl.Topic == "" {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(max(pl.Records, 0)), pl.Group, pl.Topic, strconv.Itoa(int(pl.Partition)))
		k := [2]string{pl.Group, pl.Topic}
		secs[k] = max(secs[k], pl.Seconds)
	}
	keys := slices.SortedFunc(maps.Keys(secs), func(a, b [2]string) int { return strings.Compare(a[0]+a[1], b[0]+b[1]) })
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(c.seconds, prometheus.GaugeValue, secs[k], k[0], k[1])
	}
}
