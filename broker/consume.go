package broker

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/stage"
)

// Membership is how a process takes part in its stage's consumer group; the
// stage runtime owns it (stage.Membership).
type Membership = stage.Membership

// ConsumeOpts are stage.ConsumeOpts: read committed.
func ConsumeOpts() []kgo.Opt { return stage.ConsumeOpts() }

// GroupConsumeOpts are stage.GroupOpts.
func GroupConsumeOpts(group string, topics []string, m Membership) []kgo.Opt {
	return stage.GroupOpts(group, topics, m)
}

// Consumer group defaults (stage.DefaultSessionTimeout and
// stage.DefaultHeartbeatInterval).
const (
	DefaultSessionTimeout    = stage.DefaultSessionTimeout
	DefaultHeartbeatInterval = stage.DefaultHeartbeatInterval
)
