package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/comparator"
	"github.com/mirrorline/mirrorline/config"
	"github.com/mirrorline/mirrorline/telemetry"
)

func (a *app) lagCmd() *cobra.Command {
	var groups []string
	var serve bool
	var interval time.Duration
	c := &cobra.Command{
		Use:   "lag",
		Short: "Print consumer lag per group/topic/partition, in records and seconds",
		Long: `Print how far each consumer group is behind, per topic and partition: in records
(end offset - committed offset) and in seconds (age of the oldest record not yet
consumed). Without --group, every group whose name starts with "mirrorline-".
With --serve, keep running and export mirrorline_consumer_lag_records and
mirrorline_consumer_lag_seconds on --metrics-addr, refreshed every --interval.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireSettings("brokers"); err != nil {
				return err
			}
			if interval <= 0 {
				return usagef("interval: must be positive")
			}
			opts, err := a.cfg.Kafka.Opts()
			if err != nil {
				return usageError{err}
			}
			cl, err := broker.NewClient(a.cfg.Kafka)
			if err != nil {
				return usageError{err}
			}
			defer cl.Close()
			reader := broker.NewLagReader(cl, opts)
			if serve {
				tel := telemetry.NewServer()
				lc := broker.NewLagCollector(reader, interval, a.log.Named("lag"), groups...)
				tel.Registry.MustRegister(lc)
				tel.AddCheck("kafka", kafkaCheck(cl))
				return a.runAll(cmd.Context(), tel, lc.Run)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			lags, err := reader.Lag(ctx, groups...)
			if err != nil {
				return err
			}
			return printLag(lags)
		},
	}
	f := c.Flags()
	f.StringSliceVar(&groups, "group", nil, "consumer groups (default: all mirrorline-* groups)")
	f.BoolVar(&serve, "serve", false, "keep running and export the lag as Prometheus metrics")
	f.DurationVar(&interval, "interval", config.DefaultLagInterval, "refresh interval with --serve")
	return c
}

func printLag(lags []broker.PartitionLag) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tLAG_SECONDS")
	for _, l := range lags {
		// Group ids are any string a Kafka client chose: shown escaped.
		l.Group = comparator.TerminalSafe(l.Group)
		if l.Err != nil {
			fmt.Fprintf(tw, "%s\t%s\t%d\t-\t-\t-\terror: %s\n", l.Group, l.Topic, l.Partition, comparator.TerminalSafe(strings.ReplaceAll(l.Err.Error(), "\n", " ")))
			continue
		}
		committed := "-"
		if l.Committed >= 0 {
			committed = fmt.Sprint(l.Committed)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%.1f\n", l.Group, l.Topic, l.Partition, committed, l.End, l.Records, l.Seconds)
	}
	return tw.Flush()
}
