// Package lightning defines the one interface every wallet backend implements (devnet, LND
// REST, Nostr Wallet Connect) and the errors callers branch on. Amounts are millisatoshis.
package lightning

import (
	"context"
	"errors"
	"time"
)

// Invoice is an invoice this wallet issued.
type Invoice struct {
	Bolt11      string    `json:"bolt11"`
	PaymentHash string    `json:"payment_hash"` // lowercase hex
	AmountMsat  int64     `json:"amount_msat"`
	Memo        string    `json:"memo,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
	Settled     bool      `json:"settled"`
	SettledAt   time.Time `json:"settled_at,omitzero"`
	Preimage    string    `json:"preimage,omitempty"` // hex, once settled
}

// PaymentStatus of an outgoing payment.
type PaymentStatus string

const (
	PaymentSucceeded PaymentStatus = "succeeded"
	PaymentFailed    PaymentStatus = "failed"
	// PaymentInFlight: the wallet may still complete it. Never pay the invoice again.
	PaymentInFlight PaymentStatus = "in_flight"
)

// Payment is an outgoing payment as the wallet knows it.
type Payment struct {
	PaymentHash   string        `json:"payment_hash"`
	Preimage      string        `json:"preimage,omitempty"`
	Status        PaymentStatus `json:"status"`
	AmountMsat    int64         `json:"amount_msat"`
	FeeMsat       int64         `json:"fee_msat"`
	FailureReason string        `json:"failure_reason,omitempty"`
}

// Wallet is a Lightning wallet. Implementations must be safe for concurrent use.
type Wallet interface {
	// Network is the BOLT11 network this wallet pays on: mainnet, testnet, signet or regtest.
	Network() string
	// Balance is the spendable balance, confirmed by the wallet. An error is "unknown", never 0.
	Balance(ctx context.Context) (int64, error)
	// MakeInvoice issues an invoice for amountMsat (> 0).
	MakeInvoice(ctx context.Context, amountMsat int64, memo string, expiry time.Duration) (Invoice, error)
	// PayInvoice pays a BOLT11 invoice. A nil error means Payment.Status is final
	// (succeeded or failed). ErrOutcomeUnknown means the payment may be in flight: the caller
	// must reconcile with LookupPayment, never pay again.
	PayInvoice(ctx context.Context, bolt11 string) (Payment, error)
	// LookupPayment reports an outgoing payment by hash; ErrNotFound if the wallet never saw it.
	LookupPayment(ctx context.Context, paymentHash string) (Payment, error)
	// LookupInvoice reports an invoice this wallet issued; ErrNotFound if unknown.
	LookupInvoice(ctx context.Context, paymentHash string) (Invoice, error)
}

// Errors every backend maps its failures to.
var (
	ErrInsufficientBalance = errors.New("lightning: insufficient balance")
	ErrAlreadyPaid         = errors.New("lightning: invoice already paid")
	ErrExpired             = errors.New("lightning: invoice expired")
	ErrNotFound            = errors.New("lightning: not found")
	ErrInvalidInvoice      = errors.New("lightning: invalid invoice")
	ErrNoRoute             = errors.New("lightning: no route")
	// ErrOutcomeUnknown: timeout, crash or connection loss mid-payment. Treat as in flight.
	ErrOutcomeUnknown = errors.New("lightning: payment outcome unknown")
)
