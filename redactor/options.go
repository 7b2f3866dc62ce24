package redactor

import (
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mirrorline/mirrorline/broker"
	"github.com/mirrorline/mirrorline/grpcwire"
	"github.com/mirrorline/mirrorline/stage"
)

// Option configures an Engine (NewEngine) or a Processor (NewProcessor): one
// option type for the package. Each option says what it applies to; the
// other constructor ignores it.
type Option func(*options)

// options is the one private configuration of the package's constructors.
type options struct {
	// Engine.
	key    []byte
	schema *grpcwire.Schema
	// Processor.
	onFailure OnFailure
	metrics   *Metrics
	budget    *broker.Budget
	run       []stage.Option
}

// WithHashKey sets an Engine's HMAC key of hash and fake actions, overriding
// hash_key_file and hash_key_env. It must be at least 16 bytes long.
func WithHashKey(key []byte) Option {
	return func(o *options) { o.key = append([]byte(nil), key...) }
}

// WithOnFailure sets a Processor's failure policy (default Quarantine).
func WithOnFailure(f OnFailure) Option { return func(o *options) { o.onFailure = f } }

// WithMetrics sets a Processor's metrics (default: unregistered).
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// WithLogger sets a Processor's logger. Payloads are never logged.
func WithLogger(l hclog.Logger) Option {
	return func(o *options) { o.run = append(o.run, stage.WithLogger(l)) }
}

// WithReopen lets the processor ride out a transaction that fails to begin or
// end (stage.Reopen): it closes its session and opens a new one with open.
// Without it, Run returns the error.
func WithReopen(open func() (*kgo.GroupTransactSession, error)) Option {
	return func(o *options) { o.run = append(o.run, stage.Reopen(open)) }
}

// WithBatch caps a Processor's records per transaction (default 1000).
func WithBatch(n int) Option {
	return func(o *options) { o.run = append(o.run, stage.WithPolling(stage.Polling{Max: n})) }
}

// WithTxInterval makes a Processor begin its transactions at least d apart
// (stage.TxInterval; default 0).
func WithTxInterval(d time.Duration) Option {
	return func(o *options) { o.run = append(o.run, stage.TxInterval(d)) }
}

// WithBudget sets a Processor's clean topic record budget (default: a
// budget of broker.DefaultMaxMessageBytes): a record larger once redacted is
// quarantined instead of failing the transaction.
func WithBudget(b *broker.Budget) Option { return func(o *options) { o.budget = b } }

// WithSchema gives an Engine the protobuf schemas of the gRPC services
// (grpcwire.LoadSchemas, grpcwire.Reflect): a message of a method the schema
// knows is decoded with its type, and the json_fields rules apply to its
// fields by name. Without it (nil) messages are scrubbed with the detectors
// only.
func WithSchema(s *grpcwire.Schema) Option { return func(o *options) { o.schema = s } }
