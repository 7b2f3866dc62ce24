// Package stage is the runtime every Kafka-consuming stage of the pipeline
// runs on: the redactor, the live replayer, the comparator, the window
// replay's source and the bounded readers of reports, lookups and lag.
//
// It owns what those stages used to write each for itself, and got wrong in
// different ways:
//
//   - polling, and counting fetch errors (Poll);
//   - read-committed consumption and group membership (ConsumeOpts,
//     GroupOpts, Membership);
//   - decoding records and counting the undecodable ones, which never stop a
//     partition;
//   - committing each partition only up to its lowest record still in flight
//     (Tracker), whatever order the handler finishes records in;
//   - handing a revoked partition over only after its in-flight records
//     finished (or were given up) and their offsets were committed;
//   - flushing what a handler produced before committing, when it stops;
//   - exactly-once consume-transform-produce in Kafka transactions (Tx),
//     with records a handler cannot transform, and records Kafka refuses as
//     too large, set aside in the same transaction instead of halting the
//     partition;
//   - reading bounded spans of partitions to their end, deterministically
//     (Read);
//   - one set of metrics, mirrorline_stage_*, labelled by stage.
//
// A stage supplies a Handler (Group) or a Transformer (Tx); see
// docs/architecture.md for the contract.
package stage
