// Package telemetry owns the operations endpoint every long-running mirrorline
// command serves: /metrics (Prometheus, from a per-process registry), /healthz
// (the process is alive) and /readyz (every registered readiness check passes).
package telemetry
