package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/config"
	"github.com/mirrorline/mirrorline/grpcwire"
	"github.com/mirrorline/mirrorline/redactor"
	"github.com/mirrorline/mirrorline/telemetry"
)

func (a *app) redactCmd() *cobra.Command {
	var rulesFile string
	c := &cobra.Command{
		Use:   "redact",
		Short: "Scrub personal data: mirror.raw.SERVICE -> mirror.clean.SERVICE, exactly once",
		Long: `Consume mirror.raw.SERVICE, scrub personal data with the configured rules and
publish to mirror.clean.SERVICE in Kafka transactions (exactly once). A record that
cannot be scrubbed safely goes to mirror.quarantine.SERVICE without bodies, or is
dropped (--on-failure drop). Rules: the redact.rules section of -c FILE, or
--rules FILE; see docs/redaction.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := a.requireServiceAndBrokers(); err != nil {
				return err
			}
			if rulesFile != "" {
				if err := config.CheckFile("rules", rulesFile, redactor.Config{}); err != nil {
					return usageError{err}
				}
				rc, err := redactor.LoadConfig(rulesFile)
				if err != nil {
					return usageError{err}
				}
				a.cfg.Redact.Rules = rc
			}
			if err := a.bindMetrics(); err != nil {
				return err
			}
			tel := telemetry.NewServer()
			p, err := a.newRedactor(tel)
			if err != nil {
				return err
			}
			defer p.Close()
			kc, err := broker.NewClient(a.cfg.Kafka)
			if err != nil {
				return usageError{err}
			}
			defer kc.Close()
			tel.AddCheck("kafka", kafkaCheck(kc))
			a.log.Info("redacting", "service", a.cfg.Service, "group", a.cfg.Redact.Group, "transactional_id", a.cfg.Redact.TransactionalID)
			return a.runAll(cmd.Context(), tel, p.Run)
		},
	}
	f := c.Flags()
	f.StringVar(&a.cfg.Service, "service", a.cfg.Service, "service name (topics mirror.*.SERVICE)")
	f.StringVar(&rulesFile, "rules", "", "YAML file of redaction rules (layered over the safe defaults)")
	a.cfg.Redact.BindFlags(f)
	a.cfg.GRPC.BindFlags(f)
	return c
}

// grpcSchema loads the protobuf schemas of the grpc section, once per
// process: the descriptor set files and the server reflection address,
// merged. The redactor scrubs and the comparator diffs gRPC messages by
// field name with it. None configured: nil (messages are scrubbed by the
// detectors alone and diffed by field number).
func (a *app) grpcSchema() (*grpcwire.Schema, error) {
	if a.schemaLoaded {
		return a.schema, nil
	}
	g := a.cfg.GRPC
	files, err := grpcwire.LoadSchemas(g.DescriptorSets...)
	if err != nil {
		return nil, usagef("grpc.descriptor_sets: %v", err)
	}
	var reflected *grpcwire.Schema
	if g.Reflection != "" {
		if reflected, err = grpcwire.Reflect(context.Background(), g.Reflection, nil); err != nil {
			return nil, fmt.Errorf("grpc.reflection: %w", err)
		}
	}
	s, err := grpcwire.MergeSchemas(files, reflected)
	if err != nil {
		return nil, usagef("grpc: %v", err)
	}
	if s != nil {
		a.log.Info("gRPC messages are read with a schema", "descriptor_sets", len(g.DescriptorSets), "reflection", g.Reflection != "")
	}
	a.schema, a.schemaLoaded = s, true
	return s, nil
}

// newRedactor builds the redactor stage; it opens its transactional session,
// and a new one when a transaction fails to end (close it with Close).
func (a *app) newRedactor(tel *telemetry.Server) (*redactor.Processor, error) {
	rc := &a.cfg.Redact
	host, _ := os.Hostname()
	rc.Group = cmp.Or(rc.Group, redactor.DefaultGroup(a.cfg.Service))
	rc.TransactionalID = cmp.Or(rc.TransactionalID, fmt.Sprintf("mirrorline-redact-%s-%s", a.cfg.Service, host))
	schema, err := a.grpcSchema()
	if err != nil {
		return nil, err
	}
	engine, err := redactor.NewEngine(rc.Rules, redactor.WithSchema(schema))
	if err != nil {
		return nil, usagef("redact.rules: %v", err)
	}
	opts, err := a.cfg.Kafka.Opts()
	if err != nil {
		return nil, usageError{err}
	}
	base := opts
	opts = append(append([]kgo.Opt(nil), opts...), redactor.SessionOpts(a.cfg.Service, rc.Group, rc.TransactionalID)...)
	opts = append(opts, a.cfg.Membership(rc.SessionTimeout).Opts()...)
	open := func() (*kgo.GroupTransactSession, error) {
		a.fenceRedactor(base, rc.TransactionalID)
		return kgo.NewGroupTransactSession(opts...)
	}
	sess, err := open()
	if err != nil {
		return nil, fmt.Errorf("redactor kafka session: %w", err)
	}
	p, err := redactor.NewProcessor(sess, engine, a.cfg.Service,
		redactor.WithOnFailure(redactor.OnFailure(rc.OnFailure)),
		redactor.WithBatch(rc.Batch),
		redactor.WithTxInterval(rc.TxInterval),
		redactor.WithMetrics(redactor.NewMetrics(tel.Registry)),
		redactor.WithLogger(a.log.Named("redact")),
		redactor.WithReopen(open),
		redactor.WithBudget(a.recordBudget(context.Background(), sess.Client(), broker.Clean, true)),
	)
	if err != nil {
		sess.Close()
		return nil, usagef("redact.%v", err)
	}
	return p, nil
}

// fenceRedactor aborts the transaction a predecessor with transactionalID
// left open (redactor.FencePredecessor), so a restarted redactor resumes at
// once instead of after the transaction timeout. Kafka unreachable or slow
// only costs that wait: the session still starts.
func (a *app) fenceRedactor(base []kgo.Opt, transactionalID string) {
	cl, err := kgo.NewClient(base...)
	if err != nil {
		a.log.Warn("fence previous redactor: kafka client", "error", err)
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := redactor.FencePredecessor(ctx, cl, transactionalID, redactor.TransactionTimeout); err != nil {
		a.log.Warn("fence previous redactor; a transaction it left open ends at its timeout", "transactional_id", transactionalID, "error", broker.Explain(err, a.cfg.Kafka.Brokers))
	}
}
