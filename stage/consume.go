package stage

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Consumer group defaults of every mirrorline stage. Kafka's own default
// session timeout (45 s) kept the partitions of a killed member assigned to it,
// and unread, for that long; 10 s bounds the stall after a crash when the
// member does not come back, and a static member (InstanceID) that restarts
// gets its partitions back at once.
const (
	// DefaultSessionTimeout is how long a group member may go without a
	// heartbeat before Kafka gives its partitions to the others.
	DefaultSessionTimeout = 10 * time.Second
	// DefaultHeartbeatInterval is how often members heartbeat.
	DefaultHeartbeatInterval = time.Second
)

// Membership is how a process takes part in its stage's consumer group.
type Membership struct {
	// InstanceID makes the member static (Kafka static membership): a member
	// restarted with the same id within the session timeout takes back its
	// partitions without a rebalance. It must be unique within the group and
	// stable across restarts of the same replica (e.g. the pod name of a
	// StatefulSet, or of a Deployment for container restarts). Empty: a
	// dynamic member.
	InstanceID string
	// SessionTimeout overrides DefaultSessionTimeout (0: the default).
	SessionTimeout time.Duration
	// HeartbeatInterval overrides DefaultHeartbeatInterval (0: the default).
	HeartbeatInterval time.Duration
}

// Opts are the group membership options of m.
func (m Membership) Opts() []kgo.Opt {
	session, beat := m.SessionTimeout, m.HeartbeatInterval
	if session <= 0 {
		session = DefaultSessionTimeout
	}
	if beat <= 0 {
		beat = DefaultHeartbeatInterval
	}
	beat = min(beat, session/3)
	opts := []kgo.Opt{kgo.SessionTimeout(session), kgo.HeartbeatInterval(beat)}
	if m.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(m.InstanceID))
	}
	return opts
}

// ConsumeOpts are the options every consumer of mirrorline topics starts
// from: it reads committed records only. The clean, shadow and diff topics
// are written in transactions; reading uncommitted would deliver the records
// of aborted transactions (a redactor killed mid-transaction), which are
// written again by whoever takes over: duplicates downstream.
func ConsumeOpts() []kgo.Opt {
	return []kgo.Opt{kgo.FetchIsolationLevel(kgo.ReadCommitted())}
}

// GroupOpts are the options of a member of group consuming topics:
// ConsumeOpts, the group and the membership m (session timeout, heartbeats,
// static instance id), and fetches that wait at most FetchMaxWait.
func GroupOpts(group string, topics []string, m Membership) []kgo.Opt {
	opts := append(ConsumeOpts(), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topics...), kgo.FetchMaxWait(FetchMaxWait))
	return append(opts, m.Opts()...)
}

// FetchMaxWait is how long the broker may hold a fetch of the live stages
// (redactor, live replayer, comparator) that has no records yet. It bounds
// the delay a fetch adds when the broker does not answer it as soon as
// records arrive: on a loaded single broker, an exactly-once loop whose
// fetches could be held for franz-go's default 5 s had a p99 delay to
// read-committed visibility of 2.1–2.4 s, and 0.2–0.8 s with 100 ms; on a
// quiet broker both are the same (docs/operations.md, bench/load -only
// fetchwait). An idle member pays ten small fetch requests a second per
// broker for it.
const FetchMaxWait = 100 * time.Millisecond
