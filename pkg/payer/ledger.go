package payer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/budget"
	"github.com/openagents/runtime/pkg/registry"
)

// Payment record statuses in the ledger. Intent is written before the wallet is ever called;
// in_flight just before; only succeeded and failed are final.
const (
	StatusIntent    = "intent"
	StatusInFlight  = "in_flight"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Payment is the ledger record "pay.<hash>". The payment hash is the key, so one invoice has
// one record whoever asks to pay it, under whatever idempotency key.
type Payment struct {
	Hash       string    `json:"hash"`
	Agent      string    `json:"agent"`
	IdemKey    string    `json:"idem_key"`
	TickID     string    `json:"tick_id,omitempty"`
	Purpose    string    `json:"purpose,omitempty"`
	Bolt11     string    `json:"bolt11"`
	AmountMsat int64     `json:"amount_msat"`
	AmountSats int64     `json:"amount_sats"` // what the budget reserved: msat rounded up
	Status     string    `json:"status"`
	Preimage   string    `json:"preimage,omitempty"`
	FeeMsat    int64     `json:"fee_msat,omitempty"`
	Code       string    `json:"code,omitempty"`
	Error      string    `json:"error,omitempty"`
	ExpiresAt  time.Time `json:"expires_at"`
	CreatedAt  time.Time `json:"created_at"`
	InFlightAt time.Time `json:"in_flight_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Final reports whether the outcome is known for certain.
func (p Payment) Final() bool { return p.Status == StatusSucceeded || p.Status == StatusFailed }

// FeeSats rounds the fee up: the budget never under-counts what left the wallet.
func (p Payment) FeeSats() int64 { return ceilSats(p.FeeMsat) }

// Reservation is budget held on an account for a payment whose outcome is not final. The
// pending set is the index reconciliation walks: every non-final payment has one.
type Reservation struct {
	AmountSats int64     `json:"amount_sats"`
	TickID     string    `json:"tick_id,omitempty"`
	IdemKey    string    `json:"idem_key"`
	At         time.Time `json:"at"`
}

// Account is the ledger record "acct.<agent>": budget counters, reservations and the per-day
// spend history the daily burn is measured from.
type Account struct {
	Agent    string                 `json:"agent"`
	Counters budget.Counters        `json:"counters"`
	Pending  map[string]Reservation `json:"pending,omitempty"`
	History  map[string]int64       `json:"history,omitempty"` // UTC day -> sats spent (fees included)
	// With sub-accounts (one shared node) the ledger is the agent's balance: credited by its
	// funding invoices, debited by its settled payments. Credits holds the latest credited
	// invoice hashes so a credit replayed after a crash is not applied twice.
	BalanceMsat int64    `json:"balance_msat,omitempty"`
	Credits     []string `json:"credits,omitempty"`
}

// maxCredits bounds Account.Credits; a credit is marked on its invoice right after it is applied.
const maxCredits = 64

// credit adds a funding invoice's amount once.
func (a *Account) credit(hash string, msat int64) bool {
	if slices.Contains(a.Credits, hash) {
		return false
	}
	a.BalanceMsat += msat
	a.Credits = append(a.Credits, hash)
	if len(a.Credits) > maxCredits {
		a.Credits = a.Credits[len(a.Credits)-maxCredits:]
	}
	return true
}

func (a Account) pendingSats() int64 {
	var n int64
	for _, r := range a.Pending {
		n += r.AmountSats
	}
	return n
}

// historyDays is how many UTC days of spend history an account keeps.
const historyDays = 7

// burnDays is the window the measured daily burn averages over.
const burnDays = 3

// DailyBurn is the sats actually spent over the last burnDays UTC days (today included),
// divided by the days in that window that have history. No history: 0 (runway unbounded).
func (a Account) DailyBurn(now time.Time) int64 {
	var sum, days int64
	for i := range burnDays {
		if v, ok := a.History[budget.Day(now.AddDate(0, 0, -i))]; ok {
			sum += v
			days++
		}
	}
	if days == 0 {
		return 0
	}
	return sum / days
}

// SpentToday is what the budget counts against today: settled and reserved spend.
func (a Account) SpentToday(now time.Time) int64 {
	if a.Counters.Date != budget.Day(now) {
		return 0
	}
	return a.Counters.DailySpent
}

func (a *Account) recordSpend(day string, sats int64, now time.Time) {
	if a.History == nil {
		a.History = map[string]int64{}
	}
	a.History[day] += sats
	cut := budget.Day(now.AddDate(0, 0, -historyDays))
	for d := range a.History {
		if d < cut {
			delete(a.History, d)
		}
	}
}

// FundingInvoice is the ledger record "inv.<hash>": an invoice the payer issued to fund agent.
type FundingInvoice struct {
	Hash       string    `json:"hash"`
	Agent      string    `json:"agent"`
	AmountSats int64     `json:"amount_sats"`
	Status     string    `json:"status"` // open, settled (credited), notified, expired
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	SettledAt  time.Time `json:"settled_at,omitzero"`
}

const (
	invOpen     = "open"
	invSettled  = "settled"
	invNotified = "notified"
	invExpired  = "expired"
)

func payKey(hash string) string   { return "pay." + hash }
func acctKey(agent string) string { return "acct." + agent }
func invKey(hash string) string   { return "inv." + hash }

// idemKey hashes the caller's key: idempotency keys are free text, KV keys are not.
func idemKey(key string) string {
	s := sha256.Sum256([]byte(key))
	return "idem." + hex.EncodeToString(s[:])
}

func ceilSats(msat int64) int64 { return (msat + 999) / 1000 }

// ledger is the sa_ledger bucket with JSON records and CAS helpers.
type ledger struct{ kv jetstream.KeyValue }

// errNoWrite lets an update function decline to write.
var errNoWrite = errors.New("payer: nothing to write")

func (l ledger) get(ctx context.Context, key string, v any) (uint64, error) {
	e, err := l.kv.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("payer: corrupt ledger record %s: %w", key, err)
	}
	return e.Revision(), nil
}

// put writes v at key: Create when rev is 0, compare-and-swap otherwise.
func (l ledger) put(ctx context.Context, key string, rev uint64, v any) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		return l.kv.Create(ctx, key, b)
	}
	return l.kv.Update(ctx, key, b, rev)
}

func notFound(err error) bool { return errors.Is(err, jetstream.ErrKeyNotFound) }

// account reads acct.<agent>; a missing record is an empty account at revision 0.
func (l ledger) account(ctx context.Context, agent string) (Account, uint64, error) {
	var a Account
	rev, err := l.get(ctx, acctKey(agent), &a)
	if notFound(err) {
		return Account{Agent: agent}, 0, nil
	}
	return a, rev, err
}

// updateAccount applies fn under compare-and-swap, retrying lost races.
func (l ledger) updateAccount(ctx context.Context, agent string, fn func(*Account) error) (Account, error) {
	for {
		a, rev, err := l.account(ctx, agent)
		if err != nil {
			return Account{}, err
		}
		if err := fn(&a); err != nil {
			return a, err
		}
		if _, err := l.put(ctx, acctKey(agent), rev, a); err != nil {
			if registry.IsConflict(err) {
				continue
			}
			return Account{}, err
		}
		return a, nil
	}
}

func (l ledger) payment(ctx context.Context, hash string) (Payment, uint64, error) {
	var p Payment
	rev, err := l.get(ctx, payKey(hash), &p)
	return p, rev, err
}
