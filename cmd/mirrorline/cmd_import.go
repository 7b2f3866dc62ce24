package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/collector"
	"github.com/mirrorline/mirrorline/collector/pcapimport"
)

// ackingProducer produces with back-pressure (an import must not drop records
// when the buffer is full) and counts the broker's acknowledgements.
type ackingProducer struct {
	cl            *kgo.Client
	acked, failed atomic.Uint64
	first         atomic.Pointer[error] // the first failure
}

func (p *ackingProducer) TryProduce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
		if err == nil {
			p.acked.Add(1)
		} else {
			p.first.CompareAndSwap(nil, &err) // before failed counts it: failed > 0 has a first
			p.failed.Add(1)
		}
		promise(r, err)
	})
}

func (a *app) importCmd() *cobra.Command {
	c := &a.cfg.Import
	var ports []int
	var flushTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "import FILE...",
		Short: "Publish the HTTP/1.x exchanges of .pcap/.pcapng captures or GoReplay .gor files, keeping their capture times",
		Long: "Reads each FILE (format recognised by content: pcap, pcapng or GoReplay), pairs requests with\n" +
			"responses and publishes them to mirror.raw.SERVICE with their original capture times as record\n" +
			"timestamps, waits for Kafka to acknowledge them and prints a summary. A file that does not parse\n" +
			"is reported with its byte offset (exit 1); what was read before it is still published.",
		RunE: func(cmd *cobra.Command, files []string) error {
			if len(files) == 0 {
				return usagef("FILE: at least one .pcap, .pcapng or .gor file is required")
			}
			if err := a.requireServiceAndBrokers(); err != nil {
				return err
			}
			if err := setPorts(cmd, ports, &c.Ports); err != nil {
				return err
			}
			cl, err := broker.NewClient(a.cfg.Kafka,
				kgo.MaxBufferedRecords(collector.DefaultQueueRecords),
				kgo.ProducerLinger(10*time.Millisecond),
				// No record delivery timeout: franz-go measures it from the record
				// timestamp, which is the (old) capture time; --flush-timeout bounds
				// the wait instead.
			)
			if err != nil {
				return usageError{err}
			}
			defer cl.Close()
			log := a.log.Named("import")
			prod := &ackingProducer{cl: cl}
			cm := collector.NewMetrics(nil)
			em := collector.NewEmitter(prod, a.cfg.Service, cm, log, collector.WithBudget(a.recordBudget(cmd.Context(), cl, broker.Raw, true)))
			opts := []pcapimport.Option{pcapimport.WithPorts(c.Ports...), pcapimport.WithBodyLimit(c.BodyLimit), pcapimport.WithLogger(log)}
			if c.CollectorID != "" {
				opts = append(opts, pcapimport.WithCollectorID(c.CollectorID))
			}
			im := pcapimport.New(em, opts...)
			var errs []error
			for _, f := range files {
				if err := im.ImportFile(cmd.Context(), f); err != nil {
					errs = append(errs, err)
					if cmd.Context().Err() != nil {
						break
					}
				}
			}
			im.Close()
			// Wait for every record handed over, even after an interrupt.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), flushTimeout)
			defer cancel()
			if err := cl.Flush(fctx); err != nil {
				errs = append(errs, fmt.Errorf("import: waiting for Kafka: %w", err))
			}
			s := im.Summary()
			errCount := s.Errors.Load() + prod.failed.Load()
			fmt.Fprintf(cmd.OutOrStdout(), "imported %d file(s) into %s: %d exchanges published, %d skipped, %d gaps, %d errors (%d packets, %d requests without response)\n",
				s.Files.Load(), broker.Topic(broker.Raw, a.cfg.Service), prod.acked.Load(), s.Skipped.Load(), s.Gaps.Load(), errCount, s.Packets.Load(), s.Unanswered.Load())
			if n := s.H2Dropped.Load(); n > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "import: %d HTTP/2 connections not parsed: captured after their preface, or malformed (see docs/collectors.md#http2-in-packet-capture)\n", n)
			}
			if n := cm.UnsafeTargetDrops(); n > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "import: %d requests not published: unsafe request-target (see docs/collectors.md#request-targets)\n", n)
			}
			if n := prod.failed.Load(); n > 0 {
				errs = append(errs, fmt.Errorf("import: %d exchanges not published: %w", n, *prod.first.Load()))
			}
			return errors.Join(errs...)
		},
	}
	f := cmd.Flags()
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topic mirror.raw.SERVICE)")
	f.IntSliceVar(&ports, "port", nil, "import only TCP connections to this server port from captures (repeatable; default all)")
	c.BindFlags(f)
	f.DurationVar(&flushTimeout, "flush-timeout", 2*time.Minute, "how long to wait for Kafka to acknowledge the records")
	return cmd
}
