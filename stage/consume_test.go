package stage_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/stage"
)

// Every group consumer reads committed, with a short session timeout and
// frequent heartbeats unless told otherwise, and is static only when given
// an instance id.
func TestGroupOpts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		m        stage.Membership
		session  time.Duration
		beat     time.Duration
		instance string
	}{
		{"defaults", stage.Membership{}, stage.DefaultSessionTimeout, stage.DefaultHeartbeatInterval, ""},
		{"static", stage.Membership{InstanceID: "replayer-0"}, 10 * time.Second, time.Second, "replayer-0"},
		{"longer session", stage.Membership{SessionTimeout: 30 * time.Second}, 30 * time.Second, time.Second, ""},
		{"heartbeat at most a third of the session", stage.Membership{SessionTimeout: 6 * time.Second, HeartbeatInterval: 5 * time.Second}, 6 * time.Second, 2 * time.Second, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}, stage.GroupOpts("g", []string{"t"}, tc.m)...)...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			// kgo reports the isolation level as its wire value: 1 is read_committed.
			if got := cl.OptValue(kgo.FetchIsolationLevel); got != int8(1) {
				t.Errorf("isolation level %v, want 1 (read committed)", got)
			}
			if got := cl.OptValue(kgo.SessionTimeout); got != tc.session {
				t.Errorf("session timeout %v, want %v", got, tc.session)
			}
			if got := cl.OptValue(kgo.HeartbeatInterval); got != tc.beat {
				t.Errorf("heartbeat interval %v, want %v", got, tc.beat)
			}
			if id, _ := cl.OptValue(kgo.InstanceID).(string); id != tc.instance {
				t.Errorf("instance id %q, want %q", id, tc.instance)
			}
			if got := cl.OptValue(kgo.ConsumerGroup); got != "g" {
				t.Errorf("group %v, want g", got)
			}
			// A fetch held by the broker is part of the live delay: it
			// must stay well under the end-to-end p99 target (250 ms).
			if got, _ := cl.OptValue(kgo.FetchMaxWait).(time.Duration); got <= 0 || got > 100*time.Millisecond {
				t.Errorf("fetch max wait %v, want at most 100ms", got)
			}
		})
	}
}

// The redactor's transactional session fetches like the other live stages:
// the broker holds its fetches at most 100 ms.
func TestTxOptsFetchMaxWait(t *testing.T) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}, stage.TxOpts("g", []string{"t"}, "tx-1", stage.Membership{})...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got, _ := cl.OptValue(kgo.FetchMaxWait).(time.Duration); got <= 0 || got > 100*time.Millisecond {
		t.Errorf("fetch max wait %v, want at most 100ms", got)
	}
	if got := cl.OptValue(kgo.FetchIsolationLevel); got != int8(1) {
		t.Errorf("isolation level %v, want 1 (read committed)", got)
	}
}
