package replayer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/stage"
)

// JobsTopic is where the workers of a window replay job agree on its plan
// (see AgreePlan): one partition, ordinary retention, record key = job name.
const JobsTopic = "mirror.jobs"

// JobsRetention is the retention of JobsTopic.
const JobsRetention = 7 * 24 * time.Hour

// Errors of AgreePlan.
var (
	// ErrJobConflict: the job name is taken by a job with other parameters.
	ErrJobConflict = errors.New("job exists with other parameters")
	// ErrJobOver: the job of that name has already run to its end.
	ErrJobOver = errors.New("job already ran")
)

// Plan is a window replay job as all its workers run it.
type Plan struct {
	Job   string    `json:"job"`
	Topic string    `json:"topic"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	// Start is the job start, the anchor of the shared schedule: a record due
	// At after the job start is sent at Start+At by whichever worker has it.
	Start time.Time `json:"start"`
	// Ends is when the last record is due at the latest (Start + planned span).
	Ends    time.Time `json:"ends"`
	Timing  string    `json:"timing"`
	Workers int       `json:"workers"`
	// Params is what the operator asked for (JobParams); workers of one job
	// must ask for the same.
	Params  string    `json:"params"`
	Ranges  []Range   `json:"ranges"`
	Creator string    `json:"creator"`
	Created time.Time `json:"created"`
}

// JobParams is the canonical text of the parameters that workers of one job
// must agree on, as given (relative times unresolved).
func JobParams(topic, from, to, timing string, workers int, startAt string) string {
	return fmt.Sprintf("topic=%s from=%s to=%s timing=%q workers=%d start-at=%s", topic, from, to, timing, workers, startAt)
}

// Share returns the ranges of worker i (from 0) of n: the partitions p with
// p mod n = i.
func (p Plan) Share(i, n int) []Range {
	var out []Range
	for _, r := range p.Ranges {
		if n <= 1 || int(r.Partition)%n == i {
			out = append(out, r)
		}
	}
	return out
}

// Offsets is the number of offsets in all ranges.
func (p Plan) Offsets() int64 { return offsets(p.Ranges) }

func offsets(rs []Range) int64 {
	var n int64
	for _, r := range rs {
		n += r.Len()
	}
	return n
}

// WindowEndGrace is how long after the window end a record captured in the
// window may still be written (behind records captured after it, e.g. by a
// redactor that far behind): see Range.
const WindowEndGrace = 10 * time.Second

// PlanWindow finds the window [from, to) in every partition of topic (see
// Range). Start is the first offset stamped at or after from, Limit the
// partition's last stable offset now (records written after the job started
// are never part of it), and End the first offset stamped at or after
// to+WindowEndGrace: exact where every offset is a record, early where
// transaction markers (stamped when committed) come first.
func PlanWindow(ctx context.Context, adm *kadm.Client, topic string, from, to time.Time) ([]Range, error) {
	list := func(what string, fn func() (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		lo, err := fn()
		if err == nil {
			err = lo.Error()
		}
		if err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("plan window of %s: topic does not exist: %w", topic, err)
			}
			return nil, fmt.Errorf("plan window of %s: list %s offsets: %w", topic, what, err)
		}
		out := map[int32]int64{}
		lo.Each(func(o kadm.ListedOffset) {
			if o.Topic == topic {
				out[o.Partition] = o.Offset
			}
		})
		if len(out) == 0 {
			return nil, fmt.Errorf("plan window of %s: topic does not exist", topic)
		}
		return out, nil
	}
	starts, err := list("start", func() (kadm.ListedOffsets, error) { return adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), topic) })
	if err != nil {
		return nil, err
	}
	ends, err := list("end", func() (kadm.ListedOffsets, error) {
		return adm.ListOffsetsAfterMilli(ctx, to.Add(WindowEndGrace).UnixMilli(), topic)
	})
	if err != nil {
		return nil, err
	}
	stable, err := list("last stable", func() (kadm.ListedOffsets, error) { return adm.ListCommittedOffsets(ctx, topic) })
	if err != nil {
		return nil, err
	}
	var out []Range
	for p, start := range starts {
		limit, ok := stable[p]
		if !ok {
			return nil, fmt.Errorf("plan window of %s: no last stable offset for partition %d", topic, p)
		}
		start = min(max(start, 0), limit)
		end := min(max(ends[p], start), limit)
		out = append(out, Range{Partition: p, Start: start, End: end, Limit: limit})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

// AgreePlan makes the workers of a job agree on one plan through JobsTopic
// (created when missing): every worker appends its proposal (key = job name)
// and reads the partition up to its own record; the first record of the job
// wins, so all workers adopt the same window, ranges and start. It fails with
// ErrJobConflict when the winning plan has other Params, and with ErrJobOver
// when that plan ended more than a minute before now (job names are for one
// run).
func AgreePlan(ctx context.Context, cfg broker.Config, proposal Plan, now time.Time) (Plan, error) {
	cl, err := broker.NewClient(cfg)
	if err != nil {
		return Plan{}, err
	}
	defer cl.Close()
	cfgs := map[string]*string{"retention.ms": kadm.StringPtr(strconv.FormatInt(JobsRetention.Milliseconds(), 10)), "cleanup.policy": kadm.StringPtr("delete")}
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, cfgs, JobsTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return Plan{}, fmt.Errorf("agree plan of job %s: create topic %s: %w", proposal.Job, JobsTopic, err)
	}
	val, err := json.Marshal(proposal)
	if err != nil {
		return Plan{}, fmt.Errorf("agree plan of job %s: encode: %w", proposal.Job, err)
	}
	ours, err := cl.ProduceSync(ctx, &kgo.Record{Topic: JobsTopic, Key: []byte(proposal.Job), Value: val}).First()
	if err != nil {
		return Plan{}, fmt.Errorf("agree plan of job %s: propose on %s: %w", proposal.Job, JobsTopic, err)
	}
	opts, err := cfg.Opts()
	if err != nil {
		return Plan{}, fmt.Errorf("agree plan of job %s: %w", proposal.Job, err)
	}
	var winner *Plan
	span := stage.Span{Topic: JobsTopic, Partition: ours.Partition, From: 0, To: ours.Offset + 1}
	err = stage.Read(ctx, opts, []stage.Span{span}, func(r *kgo.Record) stage.Next {
		var p Plan
		if string(r.Key) == proposal.Job && json.Unmarshal(r.Value, &p) == nil && p.Job == proposal.Job && !p.Start.IsZero() {
			winner = &p
			return stage.EndAll
		}
		return stage.Continue
	})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return Plan{}, fmt.Errorf("agree plan of job %s: read %s: %w", proposal.Job, JobsTopic, err)
	}
	if winner == nil {
		return Plan{}, fmt.Errorf("agree plan of job %s: own proposal at %s/%d@%d not readable", proposal.Job, JobsTopic, ours.Partition, ours.Offset)
	}
	return checkWinner(*winner, proposal, now)
}

func checkWinner(w, proposal Plan, now time.Time) (Plan, error) {
	if w.Params != proposal.Params {
		return Plan{}, fmt.Errorf("job %s: %w: started by %s at %s with %s, asked %s; choose another --job", w.Job, ErrJobConflict, w.Creator, w.Created.Format(time.RFC3339), w.Params, proposal.Params)
	}
	if now.After(w.Ends.Add(time.Minute)) {
		return Plan{}, fmt.Errorf("job %s: %w: it started at %s and ended about %s; choose another --job", w.Job, ErrJobOver, w.Start.Format(time.RFC3339), w.Ends.Format(time.RFC3339))
	}
	return w, nil
}

// DescribeRanges renders ranges for logs: "0:[10,20)<25 1:[5,5)<5".
func DescribeRanges(rs []Range) string {
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%d:[%d,%d)<%d", r.Partition, r.Start, r.End, r.Limit))
	}
	return strings.Join(parts, " ")
}
