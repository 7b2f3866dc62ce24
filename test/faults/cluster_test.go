package faults

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/redactor"
	"github.com/mirrorline/mirrorline/test/kafkatest"
	"github.com/mirrorline/mirrorline/test/testproc"
)

// A three-node KRaft cluster (combined broker+controller nodes) loses one
// node to kill -9 mid-stream: the node that coordinates the redactor's
// transactions, and leads partitions of the raw and clean topics
// (replication 3, min.insync.replicas=2). Nothing acknowledged is lost, the
// pipeline keeps going on the two nodes left (captures are acknowledged,
// transactions commit), and after the node is back every raw record is on the
// clean topic exactly once (read_committed).
func TestClusterLosesABroker(t *testing.T) {
	c := startCluster(t, 19520, 3, 0)
	const svc = "cluster"
	const partitions = 3
	createTopics(t, c.Brokers, svc, partitions, 3)
	adm := admin(t, c.Brokers)
	raw, clean := broker.Topic(broker.Raw, svc), broker.Topic(broker.Clean, svc)
	checkTopicReplication(t, adm, raw, clean)

	ps := startProxy(t, c.Brokers, svc, newPrimary(t).URL, 10000)
	checkProducerDefaults(t, ps.Client)
	txnID := "faults-" + svc
	rm, rs := startRedactor(t, c.Brokers, svc, txnID)
	cleanRecords := rm.Records.WithLabelValues(redactor.OutcomeClean)

	l := startLoad(ps.Addr, "cluster", 300, 8, 0)
	t.Cleanup(l.Stop)
	testproc.Eventually(t, 60*time.Second, "1000 captures acknowledged and 500 redacted", func() bool {
		return count(ps.M.Published) >= 1000 && count(cleanRecords) >= 500
	})

	victim := txnCoordinator(t, adm, txnID)
	t.Logf("killing node %d: coordinator of the redactor's transactions, leader of %s", victim, leaderships(t, adm, victim, raw, clean))
	killAt := time.Now()
	c.Kill(t, victim)
	published, redacted := count(ps.M.Published), count(cleanRecords)
	testproc.Eventually(t, 90*time.Second, "1000 captures acknowledged and redacted after the kill", func() bool {
		rs.Running(t)
		return count(ps.M.Published) >= published+1000 && count(cleanRecords) >= redacted+1000
	})
	degraded := time.Since(killAt)
	var firstAck time.Time
	for _, o := range ps.Outcomes() {
		if o.err == nil && o.at.After(killAt) && o.captured.After(killAt) && (firstAck.IsZero() || o.at.Before(firstAck)) {
			firstAck = o.at
		}
	}
	t.Logf("with node %d down: 1000 captures published and redacted in %s; the first capture made after the kill was acknowledged %s after it",
		victim, degraded.Round(time.Millisecond), firstAck.Sub(killAt).Round(time.Millisecond))

	restartAt := time.Now()
	c.Restart(t, victim)
	t.Logf("node %d restarted on its data in %s", victim, time.Since(restartAt).Round(time.Millisecond))
	published = count(ps.M.Published)
	testproc.Eventually(t, 60*time.Second, "300 more captures acknowledged after the restart", func() bool { return count(ps.M.Published) >= published+300 })
	l.Stop()
	l.Check(t)
	testproc.Eventually(t, 60*time.Second, "every capture acknowledged or dropped", ps.Settled)

	for _, r := range []string{collector.DropQueueFull, collector.DropPublishError, collector.DropEncodeError, collector.DropClosed} {
		if n := count(ps.M.Dropped.WithLabelValues(r)); n != 0 {
			t.Errorf("dropped{%s} = %d, want 0", r, n)
		}
	}
	accepted := ps.Accepted(t)
	rawIDs := readAll(t, c.Brokers, raw)
	checkExactlyOnce(t, "raw topic", accepted, rawIDs)

	testproc.Eventually(t, 90*time.Second, "the redactor caught up with the raw topic", func() bool {
		rs.Running(t)
		return groupCaughtUp(t, adm, redactor.DefaultGroup(svc), raw)
	})
	cleanIDs := kafkatest.ReadCommittedAll(t, c.Brokers, clean, partitions)
	checkExactlyOnce(t, "clean topic (read_committed)", rawIDs, cleanIDs)
	t.Logf("requests %d (all answered by the primary, p99 %s); acknowledged %d, on the raw topic %d, on the clean topic %d: lost 0, duplicates 0; redactor transactions committed %d, aborted %d",
		l.sent.Load(), l.Quantile(0.99), len(accepted), len(rawIDs), len(cleanIDs),
		count(rm.Transactions.WithLabelValues("committed")), count(rm.Transactions.WithLabelValues("aborted")))
}

// checkTopicReplication fails the test unless every topic has three replicas
// per partition and min.insync.replicas=2. A node answers from its own copy of
// the cluster metadata, which may not yet hold a topic created a moment ago (a
// loaded machine): it asks again until every topic's settings are there, for
// up to a minute, and fails on the first answer that is complete but wrong.
func checkTopicReplication(t *testing.T, adm *kadm.Client, topics ...string) {
	t.Helper()
	var last string
	if !testproc.WaitEvery(time.Minute, 100*time.Millisecond, func() bool {
		done, msg := topicReplication(adm, topics...)
		if done && msg != "" {
			t.Fatal(msg)
		}
		last = msg
		return done
	}) {
		t.Fatalf("the replication settings of %v did not settle within a minute: %s", topics, last)
	}
}

// topicReplication reads the replicas and min.insync.replicas of topics once.
// done is false while the answer is incomplete (a topic, a partition or the
// setting not yet known to the node that answered; msg says what); once done,
// msg is empty if every partition has three replicas and every topic
// min.insync.replicas=2, else it says which does not.
func topicReplication(adm *kadm.Client, topics ...string) (done bool, msg string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return false, fmt.Sprintf("list topics: %v", err)
	}
	for _, topic := range topics {
		d, ok := td[topic]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			return false, fmt.Sprintf("%s: not in the metadata yet (%v)", topic, d.Err)
		}
		for _, p := range d.Partitions.Sorted() {
			if p.Err != nil || p.Leader < 0 {
				return false, fmt.Sprintf("%s/%d: no leader yet (%v)", topic, p.Partition, p.Err)
			}
			if len(p.Replicas) != 3 {
				return true, fmt.Sprintf("%s/%d has replicas %v, want 3", topic, p.Partition, p.Replicas)
			}
		}
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return false, fmt.Sprintf("describe topic configs: %v", err)
	}
	if len(rcs) != len(topics) {
		return false, fmt.Sprintf("configs of %d of %d topics", len(rcs), len(topics))
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			return false, fmt.Sprintf("%s: describe configs: %v", rc.Name, rc.Err)
		}
		var v *string
		for _, c := range rc.Configs {
			if c.Key == "min.insync.replicas" {
				v = c.Value
			}
		}
		if v == nil || *v == "" {
			return false, fmt.Sprintf("%s: min.insync.replicas not known yet", rc.Name)
		}
		if *v != "2" {
			return true, fmt.Sprintf("%s: min.insync.replicas = %q, want 2", rc.Name, *v)
		}
	}
	return true, ""
}

// txnCoordinator returns the node coordinating transactional id txnID.
func txnCoordinator(t *testing.T, adm *kadm.Client, txnID string) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp := adm.FindTxnCoordinators(ctx, txnID)
	r, ok := resp[txnID]
	if !ok || r.Err != nil {
		t.Fatalf("find the coordinator of %s: %v", txnID, r.Err)
	}
	return r.NodeID
}

// leaderships describes which partitions of topics node leads.
func leaderships(t *testing.T, adm *kadm.Client, node int32, topics ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	td, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	var led []string
	for _, d := range td.Sorted() {
		for _, p := range d.Partitions.Sorted() {
			if p.Leader == node {
				led = append(led, fmt.Sprintf("%s/%d", d.Topic, p.Partition))
			}
		}
	}
	slices.Sort(led)
	if len(led) == 0 {
		return "no partition of " + fmt.Sprint(topics)
	}
	return fmt.Sprint(led)
}
