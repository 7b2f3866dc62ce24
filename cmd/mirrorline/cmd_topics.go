package main

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mirrorline/mirrorline/broker"
)

func (a *app) topicsCmd() *cobra.Command {
	c := &cobra.Command{Use: "topics", Short: "Create or describe the topics of a service"}
	var retention map[string]string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create mirror.{raw,clean,shadow,diff,quarantine}.SERVICE",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireServiceAndBrokers(); err != nil {
				return err
			}
			spec, err := a.topicSpec(retention)
			if err != nil {
				return err
			}
			cl, err := broker.NewClient(a.cfg.Kafka)
			if err != nil {
				return usageError{err}
			}
			defer cl.Close()
			st, err := broker.CreateTopics(cmd.Context(), kadm.NewClient(cl), a.cfg.Service, spec)
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tRETENTION\tSTATUS")
			for _, s := range st {
				status := "created"
				if s.Existed {
					status = "exists"
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.Topic, s.Partitions, s.Retention, status)
			}
			_ = tw.Flush()
			return err
		},
	}
	cf := create.Flags()
	cf.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name")
	a.cfg.Topics.BindFlags(cf)
	cf.StringToStringVar(&retention, "retention", nil, "retention per stage, e.g. raw=6h,clean=168h")

	describe := &cobra.Command{
		Use:   "describe",
		Short: "Describe the topics of a service",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireServiceAndBrokers(); err != nil {
				return err
			}
			cl, err := broker.NewClient(a.cfg.Kafka)
			if err != nil {
				return usageError{err}
			}
			defer cl.Close()
			infos, err := broker.DescribeTopics(cmd.Context(), kadm.NewClient(cl), a.cfg.Service)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION\tRETENTION.MS\tMAX.MESSAGE.BYTES")
			for _, t := range infos {
				if t.Missing {
					fmt.Fprintf(tw, "%s\t-\t-\tmissing\t-\n", t.Topic)
					continue
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", t.Topic, t.Partitions, t.Replication, t.Retention, t.MaxMessageBytes)
			}
			return tw.Flush()
		},
	}
	describe.Flags().StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name")
	c.AddCommand(create, describe)
	return c
}

// topicSpec merges the configured retention with --retention overrides.
func (a *app) topicSpec(overrides map[string]string) (broker.TopicSpec, error) {
	spec := broker.TopicSpec{Partitions: a.cfg.Topics.Partitions, Replication: a.cfg.Topics.Replication, Retention: map[broker.Stage]time.Duration{},
		MaxMessageBytes: a.cfg.Kafka.ProducerMaxBytes()}
	set := func(k string, d time.Duration) error {
		for _, s := range broker.Stages {
			if string(s) == k {
				spec.Retention[s] = d
				return nil
			}
		}
		return usagef("retention: unknown stage %q (want raw, clean, shadow, diff or quarantine)", k)
	}
	for k, d := range a.cfg.Topics.Retention {
		_ = set(k, d) // checked by config.Topics.Validate
	}
	for k, v := range overrides {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return spec, usagef("retention: %s=%q is not a positive duration", k, v)
		}
		if err := set(k, d); err != nil {
			return spec, err
		}
	}
	return spec, nil
}
