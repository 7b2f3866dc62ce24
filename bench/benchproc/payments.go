package benchproc

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// PaymentJSON is the POST body of the benchmark traffic: a ~1 KB JSON
// payments request carrying synthetic personal data (the redactor's benchmark
// payload), so the redactor does the work production traffic would give it.
// The request mix alternates a GET of one payment and a POST of PaymentJSON.
const PaymentJSON = `{
  "payment_id": "pay_01HQ3Z8K4V6W2X9Y7T5R3N1M0B",
  "merchant": {"id": "mch_8842", "name": "Café Zürich GmbH", "mcc": "5812", "country": "CH"},
  "amount": {"value": 1249.90, "currency": "CHF"},
  "customer": {
    "id": "cus_4411", "email": "zoe.angstrom@example.org", "name": "Zoë Ångström",
    "phone": "+41 44 668 18 00", "locale": "de-CH"
  },
  "card": {"number": "4111 1111 1111 1111", "exp_month": 12, "exp_year": 2029, "cvv": "123", "brand": "visa"},
  "billing_address": {"line1": "Bahnhofstrasse 1", "city": "Zürich", "postal_code": "8001", "country": "CH"},
  "items": [
    {"sku": "SKU-1001", "title": "Espresso beans 1kg", "qty": 2, "unit_price": 24.50},
    {"sku": "SKU-2002", "title": "Milk frother", "qty": 1, "unit_price": 89.00}
  ],
  "metadata": {"order_ref": "ORD-2024-000123", "channel": "web", "created_at": "2024-01-15T10:20:30Z"},
  "capture": true, "three_ds": {"version": "2.2.0", "status": "authenticated"}
}`

// GetAnswer is the primary's and the shadow's answer to a GET of a payment.
const GetAnswer = `{"id":"p-1","status":"captured","amount":{"value":1249.90,"currency":"CHF"},"merchant":"mch_8842","created_at":"2024-01-15T10:20:30Z","links":{"self":"/payments/p-1","refunds":"/payments/p-1/refunds"}}`

// PostAnswer is the primary's and the shadow's answer (201) to a POST of
// PaymentJSON.
const PostAnswer = `{"id":"pay_01HQ3Z8K4V6W2X9Y7T5R3N1M0B","status":"authorized","risk":{"score":12,"decision":"accept"}}`

// WriteAnswer writes the payments API's answer to r (after its body was
// read), marked as served by name.
func WriteAnswer(w http.ResponseWriter, r *http.Request, name string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Served-By", name)
	if r.Method == http.MethodPost {
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(PostAnswer))
		return
	}
	_, _ = w.Write([]byte(GetAnswer))
}

// GoProxy is a plain httputil.ReverseProxy with the transport settings of
// mirrorline's proxy collector and no capture: the baseline for what a Go
// reverse proxy costs before mirrorline adds anything.
func GoProxy(primary *url.URL) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(primary)
			pr.SetXForwarded()
		},
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			ForceAttemptHTTP2:     true,
		},
	}
}
