package faults

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// checkProducerDefaults fails the test unless the proxy's producer has what
// "nothing accepted is lost" rests on, which mirrorline takes from kgo's
// defaults: acks=all, idempotent writes, unbounded retries and no delivery
// timeout (a record leaves the buffer only acknowledged or on Close).
func checkProducerDefaults(t *testing.T, cl *kgo.Client) {
	t.Helper()
	if v := cl.OptValue(kgo.RequiredAcks); v != kgo.AllISRAcks() {
		t.Errorf("RequiredAcks = %v, want acks=all", v)
	}
	if v := cl.OptValue(kgo.DisableIdempotentWrite); v != false {
		t.Errorf("DisableIdempotentWrite = %v, want false", v)
	}
	if v := cl.OptValue(kgo.RecordRetries); v != int64(math.MaxInt64) {
		t.Errorf("RecordRetries = %v, want unbounded", v)
	}
	if v := cl.OptValue(kgo.RecordDeliveryTimeout); v != time.Duration(0) {
		t.Errorf("RecordDeliveryTimeout = %v, want none", v)
	}
}

// The broker is stopped while the proxy publishes a steady stream, cleanly
// (SIGTERM) or as a crash (SIGKILL), and started again on its data. Nothing
// accepted is lost: every capture accepted into the buffer (captured -
// dropped{queue_full}) is on the raw topic after recovery, exactly once (the
// idempotent producer's retries leave no duplicates).
func TestBrokerRestartMidStream(t *testing.T) {
	b := startBroker(t, 19500)
	for _, tc := range []struct {
		name string
		stop func(*testing.T)
	}{
		{"SIGTERM", b.Stop},
		{"SIGKILL", b.Kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b.Up(t) // in case an earlier case failed with the broker down
			brokers := []string{b.Addr}
			svc := "restart-" + tc.name
			createTopics(t, brokers, svc, 3, 1)
			// 1000 records at 250/s: the buffer fills while the broker is down for
			// ~10 s, so both outcomes, accepted and dropped, happen.
			ps := startProxy(t, brokers, svc, newPrimary(t).URL, 1000)
			checkProducerDefaults(t, ps.Client)

			l := startLoad(ps.Addr, svc, 250, 8, 0)
			t.Cleanup(l.Stop)
			testproc.Eventually(t, 30*time.Second, "300 captures acknowledged", func() bool { return count(ps.M.Published) >= 300 })

			stopAt := time.Now()
			tc.stop(t)
			stopped := time.Now()
			b.Up(t)
			ready := time.Now()
			publishedAtReady := count(ps.M.Published)
			testproc.Eventually(t, 60*time.Second, "500 more captures acknowledged after the restart", func() bool {
				return count(ps.M.Published) >= publishedAtReady+500
			})
			l.Stop()
			l.Check(t)
			testproc.Eventually(t, 60*time.Second, "every capture acknowledged or dropped", ps.Settled)

			for _, r := range []string{collector.DropPublishError, collector.DropEncodeError, collector.DropClosed} {
				if n := count(ps.M.Dropped.WithLabelValues(r)); n != 0 {
					t.Errorf("dropped{%s} = %d, want 0", r, n)
				}
			}
			accepted := ps.Accepted(t)
			raw := readAll(t, brokers, broker.Topic(broker.Raw, svc))
			checkExactlyOnce(t, "raw topic", accepted, raw)

			// Recovery: the first acknowledgement after the stop, and the last
			// one of a capture made while the broker was down, against when
			// start returned.
			var firstAck, drained time.Time
			for _, o := range accepted {
				if o.at.After(stopped) && (firstAck.IsZero() || o.at.Before(firstAck)) {
					firstAck = o.at
				}
				if o.captured.After(stopAt) && o.captured.Before(ready) && o.at.After(drained) {
					drained = o.at
				}
			}
			t.Logf("requests %d (all answered by the primary, p99 %s); captured %d, dropped{queue_full} %d, accepted %d, on the raw topic %d, lost 0, duplicates 0",
				l.sent.Load(), l.Quantile(0.99), count(ps.M.Captured), count(ps.M.Dropped.WithLabelValues(collector.DropQueueFull)), len(accepted), len(raw))
			t.Logf("broker: %s stop took %s, start --keep %s (down %s); first ack %s and backlog published %s after start returned",
				tc.name, stopped.Sub(stopAt).Round(time.Millisecond), ready.Sub(stopped).Round(time.Millisecond), ready.Sub(stopAt).Round(time.Millisecond),
				firstAck.Sub(ready).Round(time.Millisecond), drained.Sub(ready).Round(time.Millisecond))
		})
	}
}

// With Kafka unreachable the primary answers every request with the same
// latency (p99 measured with and without Kafka in the same test), captures
// beyond the buffer are dropped and counted, and once Kafka is back the
// buffered captures and every new one are published.
func TestKafkaUnreachable(t *testing.T) {
	b := startBroker(t, 19510)
	brokers := []string{b.Addr}
	const svc = "unreachable"
	createTopics(t, brokers, svc, 3, 1)
	const queue = 200
	ps := startProxy(t, brokers, svc, newPrimary(t).URL, queue)
	queueFull := ps.M.Dropped.WithLabelValues(collector.DropQueueFull)

	// phase sends n requests at 500/s from 4 clients and checks that each got
	// the primary's answer.
	phase := func(name string, n int) *load {
		t.Helper()
		l := startLoad(ps.Addr, name, 500, 4, n)
		l.Wait()
		l.Check(t)
		return l
	}
	const n = 1000
	up := phase("up", n)
	testproc.Eventually(t, 30*time.Second, "the captures made with Kafka up settled", ps.Settled)
	droppedUp := count(queueFull)

	stopAt := time.Now()
	b.Stop(t)
	t.Logf("broker stopped (SIGTERM) in %s", time.Since(stopAt).Round(time.Millisecond))
	published := count(ps.M.Published)
	captured := count(ps.M.Captured)
	down := phase("down", n)
	// Each request is captured after its answer: wait until the phase's
	// captures are all counted, as dropped or waiting in the buffer. The
	// queued gauge also counts captures still on their way from the hand-off
	// to the producer, which may yet be dropped when they reach the full
	// buffer: wait until no more than the buffer holds are left.
	testproc.Eventually(t, 30*time.Second, fmt.Sprintf("every capture of the phase counted, at most %d waiting", queue), func() bool {
		return count(ps.M.Captured)-captured == n && ps.Accounted() && count(ps.M.Queued) <= queue
	})
	// The buffer was empty at the stop: queue captures wait in it, the rest
	// are dropped at once and counted.
	if got := count(queueFull) - droppedUp; got != n-queue {
		t.Errorf("Kafka down: dropped{queue_full} grew by %d, want %d (%d requests, buffer %d)", got, n-queue, n, queue)
	}
	if got := count(ps.M.Published); got != published {
		t.Errorf("Kafka down: %d captures acknowledged", got-published)
	}

	for _, c := range []struct {
		name string
		l    *load
	}{{"Kafka up", up}, {"Kafka down", down}} {
		p50, p99, worst := c.l.Quantile(0.5), c.l.Quantile(0.99), c.l.Quantile(1)
		t.Logf("%s: %d requests, p50 %s, p99 %s, max %s", c.name, c.l.sent.Load(), p50, p99, worst)
		// A capture path that waited for Kafka would hold requests for the
		// whole outage (the broker stays down for the 2 s of the phase and
		// its restart); the bound is below that and far above what a loaded
		// CI machine adds. Latency ratios are measured by make bench.
		if p99 > time.Second {
			t.Errorf("%s: p99 %s, want < 1s", c.name, p99)
		}
	}

	restartAt := time.Now()
	b.Up(t)
	ready := time.Now()
	testproc.Eventually(t, 60*time.Second, "the buffered captures published after the restart", ps.Settled)
	var drained time.Time
	for _, o := range ps.Outcomes() {
		if o.err == nil && o.captured.After(stopAt) && o.captured.Before(restartAt) && o.at.After(drained) {
			drained = o.at
		}
	}
	t.Logf("broker restarted on its data: start --keep took %s; the %d captures buffered while it was down were all published %s after the restart began",
		ready.Sub(restartAt).Round(time.Millisecond), queue, drained.Sub(restartAt).Round(time.Millisecond))
	droppedDown := count(queueFull)

	publishedBefore := count(ps.M.Published)
	phase("after", 500)
	testproc.Eventually(t, 30*time.Second, "the captures made after recovery settled", ps.Settled)
	// Recovered means publishing again. The buffer is empty when the phase
	// starts, so at least its 200 first captures are accepted and, settled
	// without a publish error (checked below), published; a collector that
	// never recovered publishes none (and never settles). How many more a
	// loaded machine drops for a full buffer varies, as with Kafka up
	// (droppedUp), so it is only logged.
	publishedAfter := count(ps.M.Published) - publishedBefore
	if publishedAfter < queue {
		t.Errorf("after recovery: %d of 500 captures published, want at least the %d the empty buffer takes", publishedAfter, queue)
	}
	t.Logf("after recovery: %d of 500 captures published, %d dropped for a full buffer (with Kafka up %d of %d)",
		publishedAfter, count(queueFull)-droppedDown, droppedUp, n)
	for _, r := range []string{collector.DropPublishError, collector.DropEncodeError, collector.DropClosed} {
		if got := count(ps.M.Dropped.WithLabelValues(r)); got != 0 {
			t.Errorf("dropped{%s} = %d, want 0", r, got)
		}
	}
	accepted := ps.Accepted(t)
	checkExactlyOnce(t, "raw topic", accepted, readAll(t, brokers, broker.Topic(broker.Raw, svc)))
	t.Logf("captured %d, dropped{queue_full} %d (with Kafka up %d), on the raw topic %d: every accepted capture, once",
		count(ps.M.Captured), count(queueFull), droppedUp, len(accepted))
}
