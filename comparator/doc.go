// Package comparator decides, per mirrored exchange, whether the shadow
// answered like the primary. It joins the primary's response recorded at
// capture (mirror.clean.S) with the shadow's recorded by the replayer
// (mirror.shadow.S, same exchange id), whichever arrives first, within a
// join window; diffs status, selected headers and bodies (JSON structurally,
// text by lines, binary by hash); learns noise like Twitter's Diffy (fields
// that also differ between the primary and a secondary copy of the primary
// version) and from volatile values (timestamps, UUIDs, random ids that
// differ in nearly every exchange of an endpoint); compares latency
// percentiles per endpoint; raises alerts on significant difference rates;
// and publishes one mirrorline.v1.Diff per exchange to mirror.diff.S, from
// which the text, JSON and HTML reports are built.
//
// Comparator is the pure core (no I/O; tested table-driven), Runner drives
// it from Kafka as a handler of the stage runtime (package stage), Stats aggregates diff records for both the live verdicts
// and the reports. See docs/comparator.md.
package comparator
