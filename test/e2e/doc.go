// Package e2e holds mirrorline's end-to-end scenarios. They run the real stages
// against a real Apache Kafka broker (KAFKA_BROKERS, or the project's own KRaft
// broker started by test/kafka/start) with real HTTP servers on loopback.
package e2e
