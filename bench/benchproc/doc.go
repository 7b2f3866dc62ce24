// Package benchproc owns what the benchmark programs bench/load and bench/cost
// share: the child processes a harness starts (each in its own process group,
// killed with the harness through Pdeathsig, stopped with SIGTERM then
// SIGKILL), the roles a harness runs from its own binary (the payments-like
// primary and shadow, a plain Go reverse proxy), the payments request mix
// they are driven with, the mirrorline and nginx children, a local Kafka
// broker started with test/kafka/start, a run's temporary directory and its
// report's end, the CPU time and peak memory read from /proc, and the
// Prometheus counters read from a child's /metrics page.
//
// It is not part of mirrorline: only the benchmark harnesses import it.
package benchproc
