package app

import (
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// PaymentRequest is the POST /payments body.
type PaymentRequest struct {
	// Amount is in minor units (cents); required, > 0.
	Amount *int64 `json:"amount"`
	// Currency is an ISO 4217 code such as "EUR"; required.
	Currency string `json:"currency"`
	// Card is required.
	Card *Card `json:"card"`
	// Customer is optional.
	Customer *Customer `json:"customer,omitempty"`
}

// Card is the card part of a PaymentRequest.
type Card struct {
	// Number is 12-19 digits (spaces and dashes allowed); required.
	Number string `json:"number"`
	// Expiry is "MM/YY"; required.
	Expiry string `json:"expiry"`
	// Holder is the cardholder name.
	Holder string `json:"holder,omitempty"`
}

// Customer is the customer part of a PaymentRequest. All fields are
// optional; v2 rejects an Address containing non-ASCII characters.
type Customer struct {
	ID      string `json:"id,omitempty"`
	Email   string `json:"email,omitempty"`
	Phone   string `json:"phone,omitempty"`
	Address string `json:"address,omitempty"`
}

// PaymentResponse is the 201 body of POST /payments.
type PaymentResponse struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	CreatedAt string `json:"created_at"`
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
	CardLast4 string `json:"card_last4"`
}

// Payment is the 200 body of GET /payments/{id}.
type Payment struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Amount    int64  `json:"amount"`
	Currency  string `json:"currency"`
	FetchedAt string `json:"fetched_at"`
}

// User is the 200 body of GET /users/{id}.
type User struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Profile   *Profile `json:"profile,omitempty"`
	RequestID string   `json:"request_id"`
}

// Profile is included in User when the query has include=profile.
type Profile struct {
	Tier        string `json:"tier"`
	MemberSince string `json:"member_since"`
}

func (a *App) createPayment(w http.ResponseWriter, r *http.Request) {
	var req PaymentRequest
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON")
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "invalid JSON: trailing data")
		return
	}
	number, field := validatePayment(&req)
	if field != "" {
		writeError(w, http.StatusBadRequest, "missing or invalid field: "+field)
		return
	}
	// The v2 regression: addresses are wrongly restricted to ASCII.
	if a.cfg.Version == V2 && req.Customer != nil && !isASCII(req.Customer.Address) {
		writeError(w, http.StatusUnprocessableEntity, "invalid address")
		return
	}
	if a.cfg.Gateway != "" {
		if err := a.charge(r.Context(), r, *req.Amount, req.Currency); err != nil {
			writeError(w, http.StatusBadGateway, "card gateway error")
			return
		}
	}
	writeJSON(w, http.StatusCreated, PaymentResponse{
		ID:        uuid.NewString(),
		Status:    "authorized",
		CreatedAt: a.cfg.Now().UTC().Format(time.RFC3339Nano),
		Amount:    *req.Amount,
		Currency:  req.Currency,
		CardLast4: number[len(number)-4:],
	})
}

// validatePayment returns the normalized card number, or the name of the
// first missing or invalid field.
func validatePayment(req *PaymentRequest) (number, field string) {
	switch {
	case req.Amount == nil || *req.Amount <= 0:
		return "", "amount"
	case !isCurrency(req.Currency):
		return "", "currency"
	case req.Card == nil:
		return "", "card"
	}
	number = strings.NewReplacer(" ", "", "-", "").Replace(req.Card.Number)
	if len(number) < 12 || len(number) > 19 || !allDigits(number) {
		return "", "card.number"
	}
	if !isExpiry(req.Card.Expiry) {
		return "", "card.expiry"
	}
	return number, ""
}

func isCurrency(s string) bool { return len(s) == 3 && allIn(s, 'A', 'Z') }

func isExpiry(s string) bool {
	mm, yy, ok := strings.Cut(s, "/")
	if !ok || len(mm) != 2 || len(yy) != 2 || !allDigits(mm) || !allDigits(yy) {
		return false
	}
	m, _ := strconv.Atoi(mm)
	return m >= 1 && m <= 12
}

func allDigits(s string) bool { return s != "" && allIn(s, '0', '9') }

func isASCII(s string) bool { return allIn(s, 0, 0x7f) }

// allIn reports whether every byte of s is in [lo, hi].
func allIn(s string, lo, hi byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < lo || s[i] > hi {
			return false
		}
	}
	return true
}

func (a *App) getPayment(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	h := hash64(id)
	statuses := []string{"authorized", "captured", "captured", "settled", "refunded"}
	currencies := []string{"EUR", "EUR", "USD", "GBP", "PLN", "JPY"}
	writeJSON(w, http.StatusOK, Payment{
		ID:        id,
		Status:    statuses[h%uint64(len(statuses))],
		Amount:    int64(100 + (h>>8)%99900),
		Currency:  currencies[(h>>24)%uint64(len(currencies))],
		FetchedAt: a.cfg.Now().UTC().Format(time.RFC3339Nano),
	})
}

func (a *App) getUser(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	h := hash64(id)
	first := []string{"Ada", "Zoë", "José", "Anna", "Hiro", "Ngozi", "Liam", "Maja"}
	last := []string{"Lovelace", "Müller", "Álvarez", "Kowalska", "Tanaka", "Okafor", "Smith", "Nowak"}
	u := User{
		ID:        id,
		Name:      first[h%uint64(len(first))] + " " + last[(h>>8)%uint64(len(last))],
		RequestID: uuid.NewString(),
	}
	if slices.Contains(r.URL.Query()["include"], "profile") {
		tiers := []string{"basic", "silver", "gold"}
		since := time.Date(2015+int((h>>16)%10), time.Month(1+(h>>20)%12), 1, 0, 0, 0, 0, time.UTC)
		u.Profile = &Profile{Tier: tiers[(h>>28)%uint64(len(tiers))], MemberSince: since.Format(time.DateOnly)}
	}
	writeJSON(w, http.StatusOK, u)
}

func (a *App) health(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *App) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.Stats())
}

// handleRequests serves the recorded requests, oldest first. Optional query
// parameters: limit=N (the last N only), shadow=true|false (filter).
func (a *App) handleRequests(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	reqs := a.Requests()
	if s := q.Get("shadow"); s != "" {
		want, err := strconv.ParseBool(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid shadow parameter")
			return
		}
		reqs = slices.DeleteFunc(reqs, func(rq Request) bool { return rq.Shadow != want })
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "invalid limit parameter")
			return
		}
		if n < len(reqs) {
			reqs = reqs[len(reqs)-n:]
		}
	}
	writeJSON(w, http.StatusOK, reqs)
}

func (a *App) handleReset(w http.ResponseWriter, _ *http.Request) {
	a.Reset()
	writeJSON(w, http.StatusOK, map[string]string{"status": "reset"})
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	_, _ = io.WriteString(h, s)
	return mix64(h.Sum64(), 0)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
