package middleware

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mirrorline/mirrorline/telemetry"
)

// Outcomes of Request: the label values of
// mirrorline_replayer_middleware_requests_total; each Request counts one.
const (
	OutcomeSent      = "sent"       // answered: send it unchanged
	OutcomeModified  = "modified"   // answered: send it changed
	OutcomeDropped   = "dropped"    // answered: drop it
	OutcomeTimeout   = "timeout"    // no answer within Timeout (ErrTimeout)
	OutcomeBadAnswer = "bad_answer" // answered with an invalid request (ErrBadAnswer)
	OutcomeFailed    = "failed"     // the program exited, failed for good or was closed
	OutcomeCanceled  = "canceled"   // the caller's context ended first
)

// Reasons a line from the program is discarded: the label values of
// mirrorline_replayer_middleware_answers_discarded_total.
const (
	DiscardInvalid   = "invalid"    // not a JSON object with a string id
	DiscardUnknownID = "unknown_id" // answers no request
	DiscardLate      = "late"       // answers a request that timed out
)

// Outcomes of Response: the label values of
// mirrorline_replayer_middleware_responses_total.
const (
	ResponsePassed  = "passed"  // written to the program
	ResponseSkipped = "skipped" // the program was restarting or behind (queue full)
)

// Metrics of the middleware: mirrorline_replayer_middleware_*.
type Metrics struct {
	// Requests counts Request calls by outcome (Outcome*).
	Requests *prometheus.CounterVec
	// Latency is the time from Request to the program's answer.
	Latency prometheus.Histogram
	// Restarts counts the program's restarts.
	Restarts prometheus.Counter
	// Discarded counts lines from the program that answer nothing, by
	// reason (Discard*).
	Discarded *prometheus.CounterVec
	// Responses counts Response calls by outcome (Response*) when
	// responses are passed.
	Responses *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: telemetry.CounterVec("mirrorline_replayer_middleware_requests_total",
			"Requests passed to the middleware program, by outcome: sent (unchanged), modified, dropped, timeout, bad_answer, failed (program exited or stopped), canceled.",
			"outcome", OutcomeSent, OutcomeModified, OutcomeDropped, OutcomeTimeout, OutcomeBadAnswer, OutcomeFailed, OutcomeCanceled),
		Latency: telemetry.Histogram("mirrorline_replayer_middleware_latency_seconds",
			"Time from a request passed to the middleware program to its answer.", 0.00005, 18),
		Restarts: telemetry.Counter("mirrorline_replayer_middleware_restarts_total",
			"Restarts of the middleware program after it exited."),
		Discarded: telemetry.CounterVec("mirrorline_replayer_middleware_answers_discarded_total",
			"Lines from the middleware program that answer no waiting request, by reason: invalid (not a JSON object with a string id), unknown_id, late (after the request's timeout).",
			"reason", DiscardInvalid, DiscardUnknownID, DiscardLate),
		Responses: telemetry.CounterVec("mirrorline_replayer_middleware_responses_total",
			"Responses for the middleware program (responses on), by outcome: passed, skipped (program restarting or behind).",
			"outcome", ResponsePassed, ResponseSkipped),
	}
	telemetry.Register(reg, m.Requests, m.Latency, m.Restarts, m.Discarded, m.Responses)
	return m
}
