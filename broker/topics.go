package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Stage names one of the per-service topics.
type Stage string

// The per-service topics, in pipeline order (mirror.STAGE.SERVICE).
const (
	Raw        Stage = "raw"
	Clean      Stage = "clean"
	Shadow     Stage = "shadow"
	Diff       Stage = "diff"
	Quarantine Stage = "quarantine"
)

// Stages lists the topics created for every service.
var Stages = []Stage{Raw, Clean, Shadow, Diff, Quarantine}

var serviceName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]{0,199}$`)

// ValidateService reports whether s can be used in topic names.
func ValidateService(s string) error {
	if !serviceName.MatchString(s) {
		return fmt.Errorf("service %q: must be 1-200 characters of letters, digits, '-' or '_', starting with a letter or digit", s)
	}
	return nil
}

// Topic returns the topic name of stage for service, e.g. mirror.raw.payments.
func Topic(stage Stage, service string) string {
	return "mirror." + string(stage) + "." + service
}

// TopicSpec is how a service's topics are created.
type TopicSpec struct {
	Partitions  int32
	Replication int16
	// Retention per stage; stages missing here get DefaultRetention.
	Retention map[Stage]time.Duration
	// MaxMessageBytes is every topic's max.message.bytes, matching the
	// producers' batch limit (Config.ProducerMaxBytes); 0 means
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
}

// DefaultRetention is the retention of each stage when none is given: raw data may
// hold personal data and is kept briefly; clean data is kept for window replays.
var DefaultRetention = map[Stage]time.Duration{
	Raw:        6 * time.Hour,
	Clean:      7 * 24 * time.Hour,
	Shadow:     3 * 24 * time.Hour,
	Diff:       7 * 24 * time.Hour,
	Quarantine: 24 * time.Hour,
}

// TopicStatus is the outcome of creating one topic.
type TopicStatus struct {
	Topic      string
	Partitions int32
	Retention  time.Duration
	// Existed is true when the topic was already there (not an error).
	Existed bool
}

// CreateTopics creates the topics of service with spec. Topics that already exist
// are reported with Existed set; any other failure is returned.
func CreateTopics(ctx context.Context, adm *kadm.Client, service string, spec TopicSpec) ([]TopicStatus, error) {
	if err := ValidateService(service); err != nil {
		return nil, err
	}
	if spec.Partitions <= 0 {
		return nil, fmt.Errorf("create topics for %s: partitions must be positive, got %d", service, spec.Partitions)
	}
	spec.Replication = cmp.Or(spec.Replication, -1) // -1: the broker's default
	maxMsg := strconv.Itoa(cmp.Or(spec.MaxMessageBytes, DefaultMaxMessageBytes))
	var out []TopicStatus
	for _, st := range Stages {
		ret := cmp.Or(spec.Retention[st], DefaultRetention[st])
		ms := strconv.FormatInt(ret.Milliseconds(), 10)
		cfg := map[string]*string{
			"retention.ms":           &ms,
			"message.timestamp.type": ptr("CreateTime"),
			"max.message.bytes":      &maxMsg,
		}
		if spec.Replication > 1 {
			cfg["min.insync.replicas"] = ptr("2")
		}
		name := Topic(st, service)
		resp, err := adm.CreateTopic(ctx, spec.Partitions, spec.Replication, cfg, name)
		if err == nil {
			err = resp.Err
		}
		existed := errors.Is(err, kerr.TopicAlreadyExists)
		if err != nil && !existed {
			return out, fmt.Errorf("create topic %s: %w", name, err)
		}
		out = append(out, TopicStatus{Topic: name, Partitions: spec.Partitions, Retention: ret, Existed: existed})
	}
	return out, nil
}

// TopicInfo describes an existing topic.
type TopicInfo struct {
	Topic       string
	Partitions  int
	Replication int
	Retention   string
	// MaxMessageBytes is the topic's max.message.bytes (its record budget).
	MaxMessageBytes string
	Missing         bool
}

// DescribeTopics describes the topics of service; missing ones are flagged.
func DescribeTopics(ctx context.Context, adm *kadm.Client, service string) ([]TopicInfo, error) {
	if err := ValidateService(service); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(Stages))
	for _, st := range Stages {
		names = append(names, Topic(st, service))
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("describe topics of %s: %w", service, err)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs of %s: %w", service, err)
	}
	conf := map[[2]string]string{} // topic and config key: value
	for _, rc := range cfgs {
		for _, c := range rc.Configs {
			if c.Value != nil {
				conf[[2]string{rc.Name, c.Key}] = *c.Value
			}
		}
	}
	var out []TopicInfo
	for _, n := range names {
		d, ok := details[n]
		if !ok || d.Err != nil {
			out = append(out, TopicInfo{Topic: n, Missing: true})
			continue
		}
		ti := TopicInfo{Topic: n, Partitions: len(d.Partitions), Retention: conf[[2]string{n, "retention.ms"}],
			MaxMessageBytes: conf[[2]string{n, "max.message.bytes"}]}
		parts := d.Partitions.Sorted()
		if len(parts) > 0 {
			ti.Replication = len(parts[0].Replicas)
		}
		out = append(out, ti)
	}
	return out, nil
}

func ptr(s string) *string { return &s }
