// Package invoice decodes BOLT11 invoices and runs the checks a buyer must pass before paying
// (SPEC.md "What a buyer must check before paying"). It does no I/O: decoding and signature
// checks are lnd's zpay32, the rules are here.
package invoice

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/zpay32"
)

// Network names, as lightning.Wallet.Network reports them.
const (
	Mainnet = "mainnet"
	Testnet = "testnet"
	Signet  = "signet"
	Regtest = "regtest"
)

// Decoded is what a payer needs from a BOLT11 invoice.
type Decoded struct {
	PaymentHash string // lowercase hex
	AmountMsat  int64  // 0: the invoice carries no amount
	Network     string // mainnet, testnet, signet or regtest
	CreatedAt   time.Time
	ExpiresAt   time.Time
	Description string
	Payee       string // hex compressed secp256k1 pubkey of the signing node
	// DescriptionHash is the hex 'h' field when the invoice commits to a description by hash
	// (NIP-57 zaps do); empty otherwise.
	DescriptionHash string
}

// Refusals. Check wraps exactly one of them with the numbers that failed; match with errors.Is.
var (
	ErrDecode         = errors.New("invoice: does not decode")
	ErrNoAmount       = errors.New("invoice: no amount")
	ErrAmountMismatch = errors.New("invoice: amount differs from the quote")
	ErrOverBid        = errors.New("invoice: amount over the bid")
	ErrOverBudget     = errors.New("invoice: amount over the budget")
	ErrWrongNetwork   = errors.New("invoice: wrong network")
	ErrExpired        = errors.New("invoice: expired")
)

// networks maps the BOLT11 human-readable prefix to chain parameters. The longer prefix comes
// first: "lnbcrt" also starts with "lnbc", "lntbs" with "lntb". A BOLT11 amount starts with a
// digit, so a prefix followed by a letter can not be an amount.
var networks = []struct {
	prefix string
	name   string
	params *chaincfg.Params
}{
	{"lnbcrt", Regtest, &chaincfg.RegressionNetParams},
	{"lnbc", Mainnet, &chaincfg.MainNetParams},
	{"lntbs", Signet, &chaincfg.SigNetParams},
	{"lntb", Testnet, &chaincfg.TestNet3Params},
}

// Params returns the chain parameters for a network name (mainnet, testnet, signet, regtest).
func Params(network string) (*chaincfg.Params, bool) {
	for _, n := range networks {
		if n.name == network {
			return n.params, true
		}
	}
	return nil, false
}

// Normalize lowercases an invoice and strips a "lightning:" URI scheme and whitespace, so two
// spellings of one invoice compare equal.
func Normalize(bolt11 string) string {
	s := strings.ToLower(strings.TrimSpace(bolt11))
	return strings.TrimPrefix(s, "lightning:")
}

// Decode parses a BOLT11 invoice for any of the four networks and verifies its signature.
// Every failure wraps ErrDecode.
func Decode(bolt11 string) (Decoded, error) {
	s := Normalize(bolt11)
	for _, n := range networks {
		if !strings.HasPrefix(s, n.prefix) {
			continue
		}
		inv, err := zpay32.Decode(s, n.params)
		if err != nil {
			return Decoded{}, fmt.Errorf("%w: %v", ErrDecode, err)
		}
		return fromZpay32(inv, n.name)
	}
	return Decoded{}, fmt.Errorf("%w: unknown prefix (want lnbc, lntb, lntbs or lnbcrt)", ErrDecode)
}

func fromZpay32(inv *zpay32.Invoice, network string) (Decoded, error) {
	d := Decoded{
		Network:   network,
		CreatedAt: inv.Timestamp,
		ExpiresAt: inv.Timestamp.Add(inv.Expiry()),
	}
	if inv.PaymentHash == nil || inv.Destination == nil {
		return Decoded{}, fmt.Errorf("%w: missing payment hash or payee", ErrDecode)
	}
	d.PaymentHash = hex.EncodeToString(inv.PaymentHash[:])
	d.Payee = hex.EncodeToString(inv.Destination.SerializeCompressed())
	if inv.MilliSat != nil {
		// BOLT11 amounts are unbounded; anything past int64 is not a payable amount here.
		if uint64(*inv.MilliSat) > math.MaxInt64 {
			return Decoded{}, fmt.Errorf("%w: amount %d msat out of range", ErrDecode, uint64(*inv.MilliSat))
		}
		d.AmountMsat = int64(*inv.MilliSat)
	}
	if inv.Description != nil {
		d.Description = *inv.Description
	}
	if inv.DescriptionHash != nil {
		d.DescriptionHash = hex.EncodeToString(inv.DescriptionHash[:])
	}
	return d, nil
}

// Expect is what the buyer agreed to. Zero quote, bid or budget skip that check; Network is
// required; a zero Now means time.Now().
type Expect struct {
	QuoteMsat  int64
	BidMsat    int64
	BudgetMsat int64
	Network    string
	Now        time.Time
}

// Check decodes bolt11 and refuses it unless it is payable under e. The checks run in a fixed
// order (decode, amount present, quote, bid, budget, network, expiry) so the first failing rule
// is the one reported.
func Check(bolt11 string, e Expect) (Decoded, error) {
	d, err := Decode(bolt11)
	if err != nil {
		return Decoded{}, err
	}
	switch {
	case d.AmountMsat <= 0:
		return d, fmt.Errorf("%w: the invoice must state the amount", ErrNoAmount)
	case e.QuoteMsat > 0 && d.AmountMsat != e.QuoteMsat:
		return d, fmt.Errorf("%w: invoice %d msat, quote %d msat", ErrAmountMismatch, d.AmountMsat, e.QuoteMsat)
	case e.BidMsat > 0 && d.AmountMsat > e.BidMsat:
		return d, fmt.Errorf("%w: invoice %d msat, bid %d msat", ErrOverBid, d.AmountMsat, e.BidMsat)
	case e.BudgetMsat > 0 && d.AmountMsat > e.BudgetMsat:
		return d, fmt.Errorf("%w: invoice %d msat, budget %d msat", ErrOverBudget, d.AmountMsat, e.BudgetMsat)
	case d.Network != e.Network:
		// An empty expected network is refused too: paying without knowing the network is the
		// mistake this check exists for.
		return d, fmt.Errorf("%w: invoice for %s, expected %q", ErrWrongNetwork, d.Network, e.Network)
	}
	now := e.Now
	if now.IsZero() {
		now = time.Now()
	}
	if !now.Before(d.ExpiresAt) {
		return d, fmt.Errorf("%w: expired at %s, now %s", ErrExpired,
			d.ExpiresAt.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return d, nil
}

// Reason is a short, stable label for a Check error, for logs, metrics and refusal records:
// decode, no_amount, amount_mismatch, over_bid, over_budget, wrong_network, expired; "" for nil
// and "other" for anything else.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrDecode):
		return "decode"
	case errors.Is(err, ErrNoAmount):
		return "no_amount"
	case errors.Is(err, ErrAmountMismatch):
		return "amount_mismatch"
	case errors.Is(err, ErrOverBid):
		return "over_bid"
	case errors.Is(err, ErrOverBudget):
		return "over_budget"
	case errors.Is(err, ErrWrongNetwork):
		return "wrong_network"
	case errors.Is(err, ErrExpired):
		return "expired"
	}
	return "other"
}
