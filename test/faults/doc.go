// Package faults holds mirrorline's fault tests: the pipeline against real
// Apache Kafka brokers that the tests stop, kill and restart, and against
// shadows that are down or hang. Everything runs on loopback.
//
// The tests start their own brokers with the project's scripts (never the
// shared one of KAFKA_BROKERS, which must not be stopped):
// test/kafka/start and stop for a single KRaft node (start --keep restarts it
// on its data), test/kafka/cluster for a three-node KRaft cluster. Their ports
// start at 19500 (moved up by 100 when taken); each JVM gets a 256 MiB heap.
// The shadow tests and the process kill tests (eos_test.go: they run the
// mirrorline binary and kill it with SIGKILL) use the shared test broker
// (test/kafkatest).
//
// Run them with `go test ./test/faults/` (Java 17+ on PATH; the Kafka jars are
// fetched from Maven Central once and cached, see test/kafka/README.md). They
// are skipped with -short. docs/faults.md describes each test and what it
// measured.
package faults
