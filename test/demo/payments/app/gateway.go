package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// InstanceHeader names the calling instance (Config.Name) on the calls to
// the card gateway, which counts its calls by it.
const InstanceHeader = "X-Demo-Instance"

// Trace context headers (W3C Trace Context) the service propagates from its
// inbound request to its outbound calls, as any OpenTelemetry-instrumented
// service does: mirrorline correlates each outbound call with the inbound
// request it was made for by them.
var traceHeaders = []string{"traceparent", "tracestate"}

// ChargeRequest is the body of POST {gateway}/charge. v1 sends the amount in
// minor units; v2 has a downstream regression: it sends the amount in major
// units in the same field (1250 cents go out as 12.5), while its own
// response stays as v1's.
type ChargeRequest struct {
	AmountCents json.Number `json:"amount_cents"`
	Currency    string      `json:"currency"`
}

// chargeRequest is the gateway request of a payment of amount (cents).
func (a *App) chargeRequest(amount int64, currency string) ChargeRequest {
	n := json.Number(strconv.FormatInt(amount, 10))
	if a.cfg.Version == V2 {
		n = json.Number(strconv.FormatFloat(float64(amount)/100, 'f', -1, 64))
	}
	return ChargeRequest{AmountCents: n, Currency: currency}
}

// charge calls the card gateway for a payment, propagating the trace
// context of in. It returns an error for a transport error or a non-2xx
// answer; the error names no payload.
func (a *App) charge(ctx context.Context, in *http.Request, amount int64, currency string) error {
	body, err := json.Marshal(a.chargeRequest(amount, currency))
	if err != nil {
		return fmt.Errorf("encode charge: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Gateway+"/charge", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("charge request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(InstanceHeader, a.cfg.Name)
	for _, h := range traceHeaders {
		for _, v := range in.Header.Values(h) {
			req.Header.Add(h, v)
		}
	}
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("charge: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("charge: gateway status %d", resp.StatusCode)
	}
	return nil
}
