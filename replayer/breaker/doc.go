// Package breaker owns the circuit breaker a replayer keeps per target: over
// a sliding window it watches the error rate (transport errors and 5xx) and
// the p99 latency; past a threshold it opens, and records meant for that
// target are skipped (counted, committed) or held back until, after a cool
// down, a few probe requests show the target has recovered and it closes
// again. Its state is a metric and every change a log line.
package breaker
