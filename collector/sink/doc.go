// Package sink is the collector for copies of traffic that a proxy already
// mirrors: Istio/Envoy request mirroring and NGINX's mirror directive. It answers
// every copy at once (the mirroring proxy ignores the answer anyway), strips the
// "-shadow" suffix Envoy adds to the Host, and publishes the request through a
// collector.Emitter. Mirrored copies carry no primary response.
package sink
