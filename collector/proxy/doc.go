// Package proxy is the L7 reverse-proxy collector: it forwards every request to
// the primary service and answers the client with the primary's response, and on
// the side captures the request (header order kept) and the primary's response
// and hands them to a collector.Emitter. Capture never blocks or breaks the
// primary path: a full queue or a dead Kafka only increments drop counters.
package proxy
