package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/config"
	"github.com/mirrorline/mirrorline/telemetry"
)

// `replay --live` takes --max-rate (or replay.max_rate) to cap its catch-up;
// a rate that is not positive is a usage error naming the key.
func TestReplayLiveMaxRate(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("replay:\n  max_rate: 0/s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	live := []string{"replay", "--live", "--service", "s", "--brokers", "127.0.0.1:1", "--target", "http://127.0.0.1:1", "--metrics-addr", ""}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"zero", []string{"--max-rate", "0/s"}, "must be above 0/s"},
		{"negative", []string{"--max-rate", "-5/s"}, "must be above 0/s"},
		{"not a rate", []string{"--max-rate", "fast"}, "is not a rate"},
		{"zero in the file", []string{"-c", bad}, "must be above 0/s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{}, live...), tc.args...)
			_, root, err := newApp(args)
			if err == nil {
				// Stopped before it starts: a replayer that was built
				// returns at once instead of running.
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				root.SetArgs(args)
				err = root.ExecuteContext(ctx)
			}
			var ue usageError
			if !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), "max-rate: ") || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want a one-line usage error naming max-rate: %q", err, tc.want)
			}
		})
	}

	// A positive cap builds the replayer (it used to be refused: "only for
	// window replays").
	a := &app{cfg: config.Default(), log: hclog.NewNullLogger()}
	a.cfg.Service, a.cfg.Kafka.Brokers = "s", []string{"127.0.0.1:1"}
	a.cfg.Replay.Target, a.cfg.Replay.MaxRate, a.replayMaxRateSet = "http://127.0.0.1:1", "300/s", true
	a.cfg.InstanceID = "replayer-0"
	l, cl, err := a.newLiveReplayer(telemetry.NewServer())
	if err != nil {
		t.Fatalf("live replayer with --max-rate 300/s: %v", err)
	}
	defer cl.Close()
	if l == nil {
		t.Fatal("no replayer")
	}
	if id, _ := cl.OptValue(kgo.InstanceID).(string); id != "replayer-0" {
		t.Errorf("instance id %q, want replayer-0 (static member)", id)
	}
	if lvl := cl.OptValue(kgo.FetchIsolationLevel); lvl != int8(1) {
		t.Errorf("isolation level %v, want 1 (read committed)", lvl)
	}
}
