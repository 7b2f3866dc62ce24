package main

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
)

// recordBudget returns the record budget of the service's topic of stage:
// the producers' limit (max_message_bytes) at first, lowered to the topic's
// max.message.bytes once Kafka tells it (see lookupBudget).
func (a *app) recordBudget(ctx context.Context, cl *kgo.Client, stage broker.Stage, wait bool) *broker.Budget {
	b := broker.NewBudget(a.cfg.Kafka.ProducerMaxBytes())
	a.lookupBudget(ctx, b, cl, stage, wait)
	return b
}

// lookupBudget lowers b to the max.message.bytes of the service's topic of
// stage. With wait it asks at once (for up to 10 s); it keeps asking in the
// background until it knows or cl closes.
func (a *app) lookupBudget(ctx context.Context, b *broker.Budget, cl *kgo.Client, stage broker.Stage, wait bool) {
	topic := broker.Topic(stage, a.cfg.Service)
	adm := kadm.NewClient(cl)
	if wait {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := b.Lookup(lctx, adm, topic)
		cancel()
		if err == nil {
			return
		}
	}
	go b.Watch(context.WithoutCancel(ctx), adm, topic, a.log.Named("budget"))
}
