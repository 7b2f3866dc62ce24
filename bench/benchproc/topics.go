package benchproc

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mirrorline/mirrorline/broker"
)

// CreateTopics creates the mirror topics of each of services on brokers
// (comma-separated) with partitions partitions. remove deletes them again
// (reporting a failure through logf) and closes the client; it is set
// whenever err is nil.
func CreateTopics(ctx context.Context, brokers, clientID string, partitions int, services []string, logf func(format string, args ...any)) (remove func(), err error) {
	cl, err := broker.NewClient(broker.Config{Brokers: strings.Split(brokers, ","), ClientID: clientID})
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(cl)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var topics []string
	for _, svc := range services {
		st, err := broker.CreateTopics(cctx, adm, svc, broker.TopicSpec{Partitions: int32(partitions), Replication: 1})
		for _, t := range st {
			topics = append(topics, t.Topic)
		}
		if err != nil {
			cl.Close()
			return nil, fmt.Errorf("create topics: %w", err)
		}
	}
	return func() {
		dctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if _, err := adm.DeleteTopics(dctx, topics...); err != nil {
			logf("delete benchmark topics: %v", err)
		}
		cl.Close()
	}, nil
}
