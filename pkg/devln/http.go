package devln

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/openagents/runtime/pkg/lightning"
)

// The HTTP JSON API lets the services, running as separate processes, share one devnet.
// It has no authentication: bind it to localhost and never expose it.
//
//	GET  /v1/info                              {network, node_pubkey}
//	POST /v1/faucet                            {account, amount_msat}
//	POST /v1/{account}/invoice                 {amount_msat, memo, expiry_seconds} -> Invoice
//	POST /v1/{account}/pay                     {bolt11} -> Payment
//	GET  /v1/{account}/balance                 {balance_msat}
//	GET  /v1/{account}/payment/{hash}          Payment
//	GET  /v1/{account}/invoice/{hash}          Invoice
//	GET  /v1/{account}/invoice/{hash}/wait?timeout=30s   Invoice once settled, or unsettled at timeout
//
// Errors are {"error": code, "message": text}; codes name the lightning sentinels (see errCodes).

// MaxWait caps a long poll so proxies and clients see a response before their own timeouts.
const MaxWait = 60 * time.Second

type infoResponse struct {
	Network    string `json:"network"`
	NodePubkey string `json:"node_pubkey"`
}

type faucetRequest struct {
	Account    string `json:"account"`
	AmountMsat int64  `json:"amount_msat"`
}

type invoiceRequest struct {
	AmountMsat    int64  `json:"amount_msat"`
	Memo          string `json:"memo"`
	ExpirySeconds int64  `json:"expiry_seconds"`
}

type payRequest struct {
	Bolt11 string `json:"bolt11"`
}

type balanceResponse struct {
	BalanceMsat int64 `json:"balance_msat"`
}

type errorResponse struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

// errCodes maps sentinels to wire codes and HTTP statuses, both ways.
var errCodes = []struct {
	err    error
	code   string
	status int
}{
	{lightning.ErrInsufficientBalance, "insufficient_balance", http.StatusPaymentRequired},
	{lightning.ErrAlreadyPaid, "already_paid", http.StatusConflict},
	{lightning.ErrExpired, "expired", http.StatusGone},
	{lightning.ErrNotFound, "not_found", http.StatusNotFound},
	{lightning.ErrInvalidInvoice, "invalid_invoice", http.StatusBadRequest},
	{lightning.ErrNoRoute, "no_route", http.StatusUnprocessableEntity},
	{lightning.ErrOutcomeUnknown, "outcome_unknown", http.StatusGatewayTimeout},
}

// accountName keeps names safe in URLs and logs.
var accountName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Handler serves the ledger's HTTP JSON API.
func (l *Ledger) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, infoResponse{Network: l.network, NodePubkey: l.NodePubkey()})
	})
	mux.HandleFunc("POST /v1/faucet", func(w http.ResponseWriter, r *http.Request) {
		var req faucetRequest
		if !readJSON(w, r, &req) {
			return
		}
		if !accountName.MatchString(req.Account) {
			writeBadRequest(w, "account must match "+accountName.String())
			return
		}
		if err := l.Faucet(r.Context(), req.Account, req.AmountMsat); err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, struct{}{})
	})
	mux.HandleFunc("POST /v1/{account}/invoice", l.withAccount(func(a *Account, w http.ResponseWriter, r *http.Request) {
		var req invoiceRequest
		if !readJSON(w, r, &req) {
			return
		}
		inv, err := a.MakeInvoice(r.Context(), req.AmountMsat, req.Memo, time.Duration(req.ExpirySeconds)*time.Second)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, inv)
	}))
	mux.HandleFunc("POST /v1/{account}/pay", l.withAccount(func(a *Account, w http.ResponseWriter, r *http.Request) {
		var req payRequest
		if !readJSON(w, r, &req) {
			return
		}
		// The payment must not depend on the client staying connected: once we start, finish.
		p, err := a.PayInvoice(context.WithoutCancel(r.Context()), req.Bolt11)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	}))
	mux.HandleFunc("GET /v1/{account}/balance", l.withAccount(func(a *Account, w http.ResponseWriter, r *http.Request) {
		b, err := a.Balance(r.Context())
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, balanceResponse{BalanceMsat: b})
	}))
	mux.HandleFunc("GET /v1/{account}/payment/{hash}", l.withAccount(func(a *Account, w http.ResponseWriter, r *http.Request) {
		p, err := a.LookupPayment(r.Context(), r.PathValue("hash"))
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, p)
	}))
	mux.HandleFunc("GET /v1/{account}/invoice/{hash}", l.withAccount(func(a *Account, w http.ResponseWriter, r *http.Request) {
		inv, err := a.LookupInvoice(r.Context(), r.PathValue("hash"))
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, inv)
	}))
	mux.HandleFunc("GET /v1/{account}/invoice/{hash}/wait", l.withAccount(func(a *Account, w http.ResponseWriter, r *http.Request) {
		wait := 30 * time.Second
		if s := r.URL.Query().Get("timeout"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				writeBadRequest(w, "timeout must be a positive Go duration such as 30s")
				return
			}
			wait = min(d, MaxWait)
		}
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		defer cancel()
		inv, err := a.WaitSettled(ctx, r.PathValue("hash"))
		if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
			// Not settled yet: answer with the invoice as it stands; the client polls again.
			inv, err = a.LookupInvoice(r.Context(), r.PathValue("hash"))
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, inv)
	}))
	return mux
}

func (l *Ledger) withAccount(h func(*Account, http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("account")
		if !accountName.MatchString(name) {
			writeBadRequest(w, "account must match "+accountName.String())
			return
		}
		h(l.Account(name), w, r)
	}
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeBadRequest(w, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("devln: write response", "err", err)
	}
}

func writeBadRequest(w http.ResponseWriter, msg string) {
	writeJSON(w, http.StatusBadRequest, errorResponse{Error: "bad_request", Message: msg})
}

func writeErr(w http.ResponseWriter, err error) {
	for _, c := range errCodes {
		if errors.Is(err, c.err) {
			writeJSON(w, c.status, errorResponse{Error: c.code, Message: err.Error()})
			return
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		writeJSON(w, http.StatusServiceUnavailable, errorResponse{Error: "canceled", Message: err.Error()})
		return
	}
	writeJSON(w, http.StatusBadRequest, errorResponse{Error: "bad_request", Message: err.Error()})
}

// APIError is an error response the client could not map to a lightning sentinel.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return "devln: http " + strconv.Itoa(e.Status) + " " + e.Code + ": " + e.Message
}

// decodeErr turns an error response back into the sentinel the server matched.
func decodeErr(status int, body []byte) error {
	var er errorResponse
	if err := json.Unmarshal(body, &er); err != nil || er.Error == "" {
		return &APIError{Status: status, Code: "http", Message: truncate(string(body), 200)}
	}
	for _, c := range errCodes {
		if c.code == er.Error {
			return fmt.Errorf("%w (devln: %s)", c.err, er.Message)
		}
	}
	return &APIError{Status: status, Code: er.Error, Message: er.Message}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
