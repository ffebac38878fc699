package lnd

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/lightningnetwork/lnd/zpay32"

	"github.com/openagents/runtime/pkg/lightning"
)

// payment is lnrpc.Payment as /v2/router streams it (hashes and preimages in hex).
type payment struct {
	PaymentHash     string  `json:"payment_hash"`
	PaymentPreimage string  `json:"payment_preimage"`
	ValueMsat       jsonInt `json:"value_msat"`
	FeeMsat         jsonInt `json:"fee_msat"`
	Status          string  `json:"status"`
	FailureReason   string  `json:"failure_reason"`
}

func (p payment) toLightning() lightning.Payment {
	out := lightning.Payment{
		PaymentHash: strings.ToLower(p.PaymentHash),
		AmountMsat:  int64(p.ValueMsat),
		FeeMsat:     int64(p.FeeMsat),
	}
	switch p.Status {
	case "SUCCEEDED":
		out.Status = lightning.PaymentSucceeded
		out.Preimage = strings.ToLower(p.PaymentPreimage)
	case "FAILED":
		out.Status = lightning.PaymentFailed
		out.FailureReason = p.FailureReason
	default: // INITIATED, IN_FLIGHT, and the deprecated UNKNOWN
		out.Status = lightning.PaymentInFlight
	}
	return out
}

// PayInvoice pays bolt11 through POST /v2/router/send and waits for the final state.
//
// The outcome, for the payer's ledger:
//   - nil error: succeeded (Payment.Preimage set).
//   - ErrPaymentFailed (plus ErrNoRoute, ErrInsufficientBalance... when lnd says why): lnd
//     reports the payment finally failed; nothing moved.
//   - lightning.ErrAlreadyPaid: lnd has paid or is paying this hash; never pay it again.
//   - lightning.ErrInvalidInvoice / ErrExpired: refused before anything was sent.
//   - lightning.ErrOutcomeUnknown: the request may have reached lnd and the final state was not
//     read (connection cut, timeout, stream error). The payment is in flight: reconcile with
//     LookupPayment, never retry.
//
// The returned Payment always carries the payment hash once the invoice decodes.
func (w *Wallet) PayInvoice(ctx context.Context, bolt11 string) (lightning.Payment, error) {
	bolt11 = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(bolt11)), "lightning:")
	inv, err := zpay32.Decode(bolt11, w.params)
	if err != nil {
		return lightning.Payment{}, fmt.Errorf("%w: %v", lightning.ErrInvalidInvoice, err)
	}
	if inv.PaymentHash == nil || inv.MilliSat == nil || *inv.MilliSat <= 0 {
		return lightning.Payment{}, fmt.Errorf("%w: no amount or payment hash", lightning.ErrInvalidInvoice)
	}
	p := lightning.Payment{
		PaymentHash: hex.EncodeToString(inv.PaymentHash[:]),
		AmountMsat:  int64(*inv.MilliSat),
		Status:      lightning.PaymentInFlight,
	}
	if time.Now().After(inv.Timestamp.Add(inv.Expiry())) {
		p.Status = lightning.PaymentFailed
		return p, lightning.ErrExpired
	}

	feeLimit := w.feeLimit
	if feeLimit <= 0 {
		feeLimit = 10 + p.AmountMsat/1000/100
	}
	body := map[string]any{
		"payment_request":     bolt11,
		"timeout_seconds":     int32(w.payTimeout / time.Second),
		"fee_limit_sat":       fmt.Sprint(feeLimit),
		"no_inflight_updates": true,
	}
	// lnd gives up after timeout_seconds by itself; the margin lets its final FAILED arrive
	// before this side stops listening and has to call the outcome unknown.
	ctx, cancel := context.WithTimeout(ctx, w.payTimeout+30*time.Second)
	defer cancel()
	req, err := w.request(ctx, http.MethodPost, "/v2/router/send", body)
	if err != nil {
		return p, err
	}
	log := w.log.With("payment_hash", p.PaymentHash, "amount_msat", p.AmountMsat)
	resp, err := w.hc.Do(req)
	if err != nil {
		log.Warn("lnd pay: outcome unknown", "err", err)
		return p, fmt.Errorf("%w: %w", lightning.ErrOutcomeUnknown, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxReply))
		err := parseError(resp.StatusCode, b)
		var le *Error
		if rerr != nil || !errors.As(err, &le) {
			// Not lnd's own refusal (a proxy page, a cut body): it may have started paying.
			log.Warn("lnd pay: outcome unknown", "http", resp.StatusCode, "err", err)
			return p, fmt.Errorf("%w: %w", lightning.ErrOutcomeUnknown, err)
		}
		if errors.Is(err, lightning.ErrAlreadyPaid) {
			p.Status = "" // lnd's state for this hash is for LookupPayment to tell
			return p, err
		}
		// lnd refused before creating the payment: final, nothing moved.
		p.Status = lightning.PaymentFailed
		p.FailureReason = le.Message
		return p, err
	}
	return readPayStream(newStream(resp.Body, resp.StatusCode), p, log)
}

// readPayStream reads updates until a final one. Anything short of a final state is unknown.
func readPayStream(s *stream, p lightning.Payment, log *slog.Logger) (lightning.Payment, error) {
	for {
		var up payment
		err := s.next(&up)
		if err != nil {
			if errors.Is(err, lightning.ErrAlreadyPaid) {
				p.Status = ""
				return p, err
			}
			log.Warn("lnd pay: outcome unknown", "err", err)
			return p, fmt.Errorf("%w: %w", lightning.ErrOutcomeUnknown, err)
		}
		got := up.toLightning()
		if got.PaymentHash == "" {
			got.PaymentHash = p.PaymentHash
		}
		if got.AmountMsat == 0 {
			got.AmountMsat = p.AmountMsat
		}
		switch got.Status {
		case lightning.PaymentSucceeded:
			return got, nil
		case lightning.PaymentFailed:
			return got, failureError(up.FailureReason)
		}
	}
}

// LookupPayment reports an outgoing payment by hash via /v2/router/track/{hash}. It reads only
// the first update, which is the current state: no_inflight_updates would make lnd hold the
// reply back until an in-flight payment ends, and reconciliation needs "in flight" now.
func (w *Wallet) LookupPayment(ctx context.Context, paymentHash string) (lightning.Payment, error) {
	hash, err := decodeHash(paymentHash)
	if err != nil {
		return lightning.Payment{}, err
	}
	ctx, cancel := context.WithCancel(ctx) // closes the stream once the first update is read
	defer cancel()
	req, err := w.request(ctx, http.MethodGet,
		"/v2/router/track/"+rHashURL(hash), nil)
	if err != nil {
		return lightning.Payment{}, err
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		return lightning.Payment{}, fmt.Errorf("lnd: track payment: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxReply))
		return lightning.Payment{}, parseError(resp.StatusCode, b)
	}
	var up payment
	if err := newStream(resp.Body, resp.StatusCode).next(&up); err != nil {
		return lightning.Payment{}, fmt.Errorf("lnd: track payment: %w", err)
	}
	return up.toLightning(), nil
}

// decodeHash accepts a 32-byte hash in hex, as the lightning package spells hashes.
func decodeHash(h string) ([]byte, error) {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("lnd: payment hash %q: want 64 hex characters", h)
	}
	return b, nil
}

// rHashURL is how a 32-byte hash goes into a /v2 URL path: base64url (hex is rejected there).
func rHashURL(hash []byte) string { return base64.URLEncoding.EncodeToString(hash) }
