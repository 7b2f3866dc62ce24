// Package broker owns everything mirrorline says to Kafka: client options
// (brokers, TLS, SASL), the per-service topic names and their creation, and
// the embedded Kafka-protocol broker (franz-go kfake) that `mirrorline up`
// runs when no brokers are configured.
package broker
