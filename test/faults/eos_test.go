package faults

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/mirrorline/mirrorline/broker"
	mlv1 "github.com/mirrorline/mirrorline/proto/mirrorline/v1"
	"github.com/mirrorline/mirrorline/replayer"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

var (
	mlOnce sync.Once
	mlDir  string
	mlBin  string
	mlErr  error
)

// TestMain removes the mirrorline binary the process tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if mlDir != "" {
		os.RemoveAll(mlDir)
	}
	os.Exit(code)
}

// mirrorline builds the binary once for the tests that run it as a process
// they can kill -9.
func mirrorline(t *testing.T) string {
	t.Helper()
	mlOnce.Do(func() {
		mlBin, mlDir, mlErr = testproc.BuildMirrorline("mirrorline-faults")
	})
	if mlErr != nil {
		t.Fatal(mlErr)
	}
	return mlBin
}

// proc is a mirrorline process the test can kill -9 and start again with the
// same arguments.
type proc struct {
	t    *testing.T
	name string
	args []string
	env  []string
	cmd  *exec.Cmd
	out  *testproc.Output
	logs []string
}

// startProc runs mirrorline args; the process is stopped (SIGTERM, then
// SIGKILL) when the test ends.
func startProc(t *testing.T, name string, brokers []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, args: args, env: append(os.Environ(), "MIRRORLINE_BROKERS="+strings.Join(brokers, ","))}
	p.start()
	t.Cleanup(func() {
		if t.Failed() {
			p.dump()
		}
		p.stop()
		if t.Failed() {
			for i, l := range append(p.logs, p.out.String()) {
				t.Logf("%s run %d output:\n%s", name, i+1, l)
			}
		}
	})
	return p
}

func (p *proc) start() {
	p.t.Helper()
	p.cmd = exec.Command(mirrorline(p.t), p.args...)
	p.cmd.Env = p.env
	p.out = &testproc.Output{}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatalf("start %s: %v", p.name, err)
	}
}

// kill9 kills the process with SIGKILL and waits for it to be gone.
func (p *proc) kill9() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill -9 %s: %v", p.name, err)
	}
	_ = p.cmd.Wait()
	p.logs = append(p.logs, p.out.String())
}

// dump makes a running process print its goroutines (SIGQUIT) and exit, so
// a failed test shows where it was.
func (p *proc) dump() {
	if p.cmd == nil || p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// restart starts the process again with the same arguments.
func (p *proc) restart() { p.start() }

// running fails the test if the process exited.
func (p *proc) running() {
	p.t.Helper()
	if p.cmd.ProcessState != nil {
		p.t.Fatalf("%s exited: %v\n%s", p.name, p.cmd.ProcessState, p.out)
	}
}

func (p *proc) stop() {
	if p.cmd == nil || p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// countingShadow is a shadow that answers 200 at once and records every
// request it receives by X-Mirrorline-Id, with its arrival time and path.
type countingShadow struct {
	URL string
	mu  sync.Mutex
	ids map[string][]arrival
	// firsts are the arrival times of ids seen for the first time, in order.
	firsts []time.Time
	all    []time.Time
}

type arrival struct {
	at   time.Time
	path string
}

func newCountingShadow(t *testing.T) *countingShadow {
	t.Helper()
	s := &countingShadow{ids: map[string][]arrival{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		now := time.Now()
		id := r.Header.Get("X-Mirrorline-Id")
		s.mu.Lock()
		if len(s.ids[id]) == 0 {
			s.firsts = append(s.firsts, now)
		}
		s.ids[id] = append(s.ids[id], arrival{at: now, path: r.URL.Path})
		s.all = append(s.all, now)
		s.mu.Unlock()
		_, _ = io.WriteString(w, "shadow")
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// distinct is how many different ids arrived.
func (s *countingShadow) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

// counts returns how often each id arrived.
func (s *countingShadow) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.ids))
	for id, as := range s.ids {
		out[id] = len(as)
	}
	return out
}

// maxGap is the longest time between two consecutive first arrivals of ids
// at or after since: how long shadowing stopped.
func (s *countingShadow) maxGap(since time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gap time.Duration
	prev := since
	for _, at := range s.firsts {
		if at.Before(since) {
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return gap
}

// firstAfter is the first arrival (of any request) after t, and whether there
// is one.
func (s *countingShadow) firstAfter(t time.Time) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, at := range s.all {
		if at.After(t) {
			return at, true
		}
	}
	return time.Time{}, false
}

// peakRate is the most requests that arrived in any window w long from
// since on, divided by w in seconds.
func (s *countingShadow) peakRate(since time.Time, w time.Duration) float64 {
	s.mu.Lock()
	var ts []time.Time
	for _, at := range s.all {
		if !at.Before(since) {
			ts = append(ts, at)
		}
	}
	s.mu.Unlock()
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	most, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		most = max(most, i-j+1)
	}
	return float64(most) / w.Seconds()
}

// stream produces exchanges to a topic at a steady rate, 10 per tick, until
// stopped, and remembers the ids Kafka acknowledged.
type stream struct {
	stop    context.CancelFunc
	done    chan error
	mu      sync.Mutex
	ids     map[string]string // id -> path
	count   atomic.Int64
	started time.Time
}

// startStream writes exchanges for service to topic at rate per second.
func startStream(t *testing.T, brokers []string, service, topic string, rate int) *stream {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithCancel(context.Background())
	s := &stream{stop: cancel, done: make(chan error, 1), ids: map[string]string{}, started: time.Now()}
	const perTick = 10
	go func() {
		tick := time.NewTicker(time.Second * perTick / time.Duration(rate))
		defer tick.Stop()
		for seq := 0; ; seq += perTick {
			select {
			case <-ctx.Done():
				s.done <- nil
				return
			case <-tick.C:
			}
			var recs []*kgo.Record
			batch := map[string]string{}
			for j := seq; j < seq+perTick; j++ {
				ex := &mlv1.Exchange{
					Id: fmt.Sprintf("%s-%06d", service, j), Service: service, ConnectionId: fmt.Sprintf("conn-%d", j%29),
					Source: mlv1.Source_SOURCE_PROXY, CaptureTimeNs: time.Now().UnixNano(),
					Request:  &mlv1.Request{Method: "POST", Url: fmt.Sprintf("/orders/%d", j), Body: []byte(`{"n":1}`)},
					Response: &mlv1.Response{Status: 201, Body: []byte("ok")},
				}
				v, _ := proto.Marshal(ex)
				batch[ex.Id] = fmt.Sprintf("/orders/%d", j)
				recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(ex.ConnectionId), Value: v})
			}
			pctx, pcancel := context.WithTimeout(context.Background(), time.Minute)
			err := cl.ProduceSync(pctx, recs...).FirstErr()
			pcancel()
			if err != nil {
				s.done <- fmt.Errorf("produce to %s: %w", topic, err)
				return
			}
			s.mu.Lock()
			for id, p := range batch {
				s.ids[id] = p
			}
			s.mu.Unlock()
			s.count.Add(perTick)
		}
	}()
	return s
}

// Stop ends the stream and returns the ids written.
func (s *stream) Stop(t *testing.T) map[string]string {
	t.Helper()
	s.stop()
	if err := <-s.done; err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids
}

// caughtUp reports whether group has no lag (to the last stable offset).
func caughtUp(t *testing.T, brokers []string, group string) bool {
	t.Helper()
	cfg := broker.Config{Brokers: brokers}
	opts, err := cfg.Opts()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lags, err := broker.NewLagReader(kafkatest.Client(t), opts).Lag(ctx, group)
	if err != nil || len(lags) == 0 {
		return false
	}
	for _, l := range lags {
		if l.Err != nil || l.Records > 0 {
			return false
		}
	}
	return true
}

const eosRate = 200 // records per second written during the kill tests

// The redactor is killed with SIGKILL three times while raw records arrive at
// 200/s and restarted at once (same transactional and instance id). A live
// replayer shadows the clean topic all along: the shadow receives every
// exchange exactly once, counted by X-Mirrorline-Id (no record of an aborted
// transaction is replayed), and shadowing never stops for long.
func TestRedactorKillShadowExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes on the shared broker")
	}
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 3)
	shadow := newCountingShadow(t)
	red := startProc(t, "redactor", brokers, "redact", "--service", svc, "--transactional-id", "eos-"+svc,
		"--instance-id", "redactor-0", "--batch", "50", "--metrics-addr", "")
	rep := startProc(t, "replayer", brokers, "replay", "--live", "--service", svc, "--target", shadow.URL,
		"--start", "earliest", "--instance-id", "replayer-0", "--metrics-addr", "")
	raw := startStream(t, brokers, svc, broker.Topic(broker.Raw, svc), eosRate)
	began := time.Now()
	testproc.Eventually(t, 60*time.Second, "the first exchanges at the shadow", func() bool { return shadow.distinct() >= 200 })
	for i := range 3 {
		red.kill9()
		killed := time.Now()
		red.restart()
		seen := shadow.distinct()
		// Shadowing resumes: exchanges produced after the kill arrive.
		testproc.Eventually(t, 60*time.Second, fmt.Sprintf("the shadow to receive new exchanges after kill %d", i+1), func() bool {
			red.running()
			rep.running()
			return shadow.distinct() >= seen+400
		})
		t.Logf("kill %d: %d new exchanges at the shadow %s after the kill", i+1, shadow.distinct()-seen, time.Since(killed).Round(time.Millisecond))
	}
	written := raw.Stop(t)
	testproc.Eventually(t, 90*time.Second, "every exchange at the shadow", func() bool {
		red.running()
		rep.running()
		return shadow.distinct() >= len(written)
	})
	// The replayer has consumed everything committed: anything still to come
	// (a duplicate) would already be in the group's lag.
	testproc.Eventually(t, 60*time.Second, "the replayer group caught up", func() bool {
		return caughtUp(t, brokers, replayer.DefaultGroup(svc))
	})
	gap := shadow.maxGap(began.Add(2 * time.Second))
	t.Logf("%d exchanges written at %d/s, 3 redactor kills; longest pause at the shadow %s", len(written), eosRate, gap.Round(time.Millisecond))
	checkExactlyOnce(t, "shadow (by X-Mirrorline-Id)", written, shadow.counts())
	if gap > 20*time.Second {
		t.Fatalf("shadowing stopped for %s after a redactor restart (want well under 20s)", gap.Round(time.Millisecond))
	}
}

// The live replayer is killed with SIGKILL while clean records arrive at
// 200/s and restarted (same instance id) once a backlog built up. What it can
// repeat is bounded: every exchange reaches the shadow at least once, a
// repeat is always of a request the killed replayer had already sent (in
// flight or not yet committed at the kill), it carries the same
// X-Mirrorline-Id and path, so a shadow can drop it. The restarted replayer
// resumes within seconds and catches up no faster than --max-rate.
func TestReplayerKillAtLeastOnceAndCatchUpCap(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes on the shared broker")
	}
	const maxRate = 300 // catch-up cap, per second; the stream is 200/s
	brokers := kafkatest.Brokers(t)
	svc := kafkatest.Service(t, 3)
	shadow := newCountingShadow(t)
	rep := startProc(t, "replayer", brokers, "replay", "--live", "--service", svc, "--target", shadow.URL,
		"--start", "earliest", "--instance-id", "replayer-0", "--max-rate", fmt.Sprintf("%d/s", maxRate), "--metrics-addr", "")
	clean := startStream(t, brokers, svc, broker.Topic(broker.Clean, svc), eosRate)
	testproc.Eventually(t, 60*time.Second, "the first exchanges at the shadow", func() bool { return shadow.distinct() >= 400 })

	rep.kill9()
	killed := time.Now()
	atKill := clean.count.Load()
	// Let a backlog of 4 s of traffic build up while the replayer is down.
	testproc.Eventually(t, 30*time.Second, "a backlog while the replayer is down", func() bool {
		return clean.count.Load() >= atKill+4*eosRate
	})
	rep.restart()
	restarted := time.Now()
	testproc.Eventually(t, 60*time.Second, "the restarted replayer to send", func() bool {
		rep.running()
		_, ok := shadow.firstAfter(restarted)
		return ok
	})
	first, _ := shadow.firstAfter(restarted)
	resume := first.Sub(restarted)
	seen := shadow.distinct()
	testproc.Eventually(t, 60*time.Second, "the restarted replayer to go on", func() bool {
		rep.running()
		return shadow.distinct() >= seen+4*eosRate
	})
	written := clean.Stop(t)
	testproc.Eventually(t, 90*time.Second, "every exchange at the shadow", func() bool {
		rep.running()
		return shadow.distinct() >= len(written)
	})
	peak := shadow.peakRate(restarted, 2*time.Second)
	again := checkAtLeastOnce(t, "shadow (by X-Mirrorline-Id)", written, shadow.counts())
	t.Logf("replayer down %s; resumed %s after the restart; catch-up peak %.0f/s over 2s (cap %d/s); %d requests repeated",
		restarted.Sub(killed).Round(time.Millisecond), resume.Round(time.Millisecond), peak, maxRate, again)

	shadow.mu.Lock()
	for id, as := range shadow.ids {
		if len(as) == 1 {
			continue
		}
		if len(as) > 2 {
			t.Errorf("%s arrived %d times after one kill", id, len(as))
		}
		if !as[0].at.Before(killed) {
			t.Errorf("%s repeated, but its first send was after the kill", id)
		}
		for _, a := range as[1:] {
			if a.path != as[0].path || a.path != written[id] {
				t.Errorf("%s repeated with path %q, first %q, written %q", id, a.path, as[0].path, written[id])
			}
		}
	}
	shadow.mu.Unlock()
	// Bounded: at most what was in flight or uncommitted at the kill, about
	// a second of traffic plus the replayer's queue.
	if again > 1000 {
		t.Errorf("%d requests repeated after one kill; want at most about a second of traffic plus the queue", again)
	}
	if resume > 20*time.Second {
		t.Errorf("shadowing resumed %s after the restart; want well under 20s", resume.Round(time.Millisecond))
	}
	if peak > maxRate*1.5 {
		t.Errorf("catch-up peaked at %.0f/s over 2s; --max-rate is %d/s", peak, maxRate)
	}
}
