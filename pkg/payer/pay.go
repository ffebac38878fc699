package payer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/openagents/runtime/pkg/budget"
	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/invoice"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/lnd"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/registry"
)

// Codes in PayResult.Code besides invoice.Reason labels (decode, wrong_network, expired,
// over_bid, no_amount) and "budget_" + budget.Reason (budget_reserve, budget_daily...).
const (
	CodeBadRequest          = "bad_request"
	CodeUnknownAgent        = "unknown_agent"
	CodeDead                = "dead"
	CodeNoWallet            = "wallet_unavailable"
	CodeBalanceUnknown      = "balance_unknown"
	CodeLedger              = "ledger_unavailable"
	CodeDuplicate           = "duplicate" // this invoice was already asked for under another key
	CodeIdempotencyConflict = "idempotency_conflict"
	CodeAbandoned           = "abandoned" // an intent that never reached the wallet
	CodeNotFound            = "not_found" // the wallet never saw it and the invoice has expired
	CodeOutcomeUnknown      = "outcome_unknown"
)

var (
	errPending        = errors.New("payer: payment already reserved")
	errBalanceUnknown = errors.New("payer: balance unknown")
)

func (p *Payer) handlePay(ctx context.Context, msg *nats.Msg) any {
	agent := contracts.AgentFromSubject(msg.Subject)
	var req contracts.PayRequest
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		return p.refuse(CodeBadRequest, fmt.Errorf("bad JSON: %w", err))
	}
	res := p.Pay(ctx, agent, req)
	if res.Status == contracts.PayStatusSucceeded && res.Code == "" {
		// A confirmed read after spending may move the lifecycle down; not on the reply's path.
		// (Adding to wg from a handler it already counts is safe against Run's Wait.)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.refreshLifecycle(ctx, agent)
		}()
	}
	return res
}

func (p *Payer) refuse(code string, err error) contracts.PayResult {
	p.m.payments.WithLabelValues(contracts.PayStatusRefused).Inc()
	return contracts.PayResult{Status: contracts.PayStatusRefused, Code: code, Error: err.Error()}
}

// Pay pays req.Bolt11 for agent at most once. See the package comment for the guarantees.
func (p *Payer) Pay(ctx context.Context, agent string, req contracts.PayRequest) contracts.PayResult {
	if req.IdempotencyKey == "" {
		return p.refuse(CodeBadRequest, errors.New("idempotency_key is required"))
	}
	// A repeat under the same key gets the recorded result, whatever it carries now.
	var hash string
	if _, err := p.ledger.get(ctx, idemKey(req.IdempotencyKey), &hash); err == nil {
		if res, ok := p.replay(ctx, hash, req.IdempotencyKey); ok {
			return res
		}
	} else if !notFound(err) {
		return p.refuse(CodeLedger, err)
	}
	d, err := invoice.Decode(req.Bolt11)
	if err != nil {
		return p.refuse(invoice.Reason(err), err)
	}
	// The same invoice under another key: never pay it again.
	if res, ok := p.replay(ctx, d.PaymentHash, req.IdempotencyKey); ok {
		return res
	}
	if req.MaxSats <= 0 {
		return p.refuse(CodeBadRequest, errors.New("max_sats must be > 0"))
	}
	a, _, err := p.reg.Get(ctx, agent)
	if err != nil {
		return p.refuse(CodeUnknownAgent, err)
	}
	if a.Lifecycle == string(lifecycle.Dead) {
		// Stopped agents may still pay (a tick in flight); dead ones spend nothing.
		return p.refuse(CodeDead, fmt.Errorf("agent %s is dead", a.Name))
	}
	w, err := p.wallets.Wallet(ctx, a)
	if err != nil {
		return p.refuse(CodeNoWallet, err)
	}
	network := p.network
	if network == "" {
		network = w.Network()
	}
	now := p.now()
	if _, err := invoice.Check(req.Bolt11, invoice.Expect{BidMsat: req.MaxSats * 1000, Network: network, Now: now}); err != nil {
		return p.refuse(invoice.Reason(err), err)
	}
	rec := Payment{
		Hash: d.PaymentHash, Agent: agent, IdemKey: req.IdempotencyKey, TickID: req.TickID,
		Purpose: req.Purpose, Bolt11: req.Bolt11, AmountMsat: d.AmountMsat,
		AmountSats: ceilSats(d.AmountMsat), Status: StatusIntent, ExpiresAt: d.ExpiresAt, CreatedAt: now,
	}

	// 1. Reserve the budget: the serialisation point across requests and replicas.
	if err := p.reserve(ctx, a, w, rec); err != nil {
		switch {
		case errors.Is(err, errPending):
			p.m.payments.WithLabelValues("duplicate").Inc()
			return contracts.PayResult{Status: contracts.PayStatusInFlight, PaymentHash: rec.Hash, AmountSats: rec.AmountSats, Code: CodeDuplicate}
		case errors.Is(err, errBalanceUnknown):
			return p.refuse(CodeBalanceUnknown, err)
		case isBudget(err):
			p.m.budgetRefusals.WithLabelValues(budget.Reason(err)).Inc()
			return p.refuse("budget_"+budget.Reason(err), err)
		}
		return p.refuse(CodeLedger, err)
	}
	// 2. Record the intent before the wallet is ever called.
	rev, err := p.ledger.put(ctx, payKey(rec.Hash), 0, rec)
	if err != nil {
		p.release(ctx, rec)
		if res, ok := p.replay(ctx, rec.Hash, rec.IdemKey); ok {
			return res
		}
		return p.refuse(CodeLedger, err)
	}
	// 3. Index by idempotency key. The record itself carries the key, so a crash before this
	// write still finds the record by hash.
	if _, err := p.ledger.put(ctx, idemKey(rec.IdemKey), 0, rec.Hash); err != nil {
		var other string
		if _, gerr := p.ledger.get(ctx, idemKey(rec.IdemKey), &other); gerr != nil || other != rec.Hash {
			rec.Code, rec.Error = CodeIdempotencyConflict, "idempotency key already used for another invoice"
			if _, ferr := p.finish(ctx, rec, rev, StatusFailed, lightning.Payment{}); ferr != nil {
				p.log.Warn("close conflicting intent", "hash", rec.Hash, "err", ferr)
			}
			return p.refuse(CodeIdempotencyConflict, errors.New(rec.Error))
		}
	}
	// 4. In flight: from here on only the wallet knows, until it tells us.
	rec.Status, rec.InFlightAt = StatusInFlight, p.now()
	if rev, err = p.ledger.put(ctx, payKey(rec.Hash), rev, rec); err != nil {
		// Reconciliation closed our intent (we were too slow) or the ledger failed: we have
		// not paid, so report what the ledger says.
		if res, ok := p.replay(ctx, rec.Hash, rec.IdemKey); ok {
			return res
		}
		return p.refuse(CodeLedger, err)
	}
	p.m.inflight.Inc()
	pctx, cancel := context.WithTimeout(ctx, p.payTimeout)
	pm, err := w.PayInvoice(pctx, rec.Bolt11)
	cancel()
	status, pm := classify(ctx, w, rec.Hash, pm, err)
	if status == StatusInFlight {
		p.log.Warn("payment outcome unknown; left in flight for reconciliation", "agent", agent, "hash", rec.Hash, "err", err)
		p.m.payments.WithLabelValues(contracts.PayStatusInFlight).Inc()
		return contracts.PayResult{Status: contracts.PayStatusInFlight, PaymentHash: rec.Hash, AmountSats: rec.AmountSats, Code: CodeOutcomeUnknown}
	}
	if status == StatusFailed {
		rec.Code, rec.Error = failCode(err, pm), failText(err, pm)
	}
	final, err := p.finish(ctx, rec, rev, status, pm)
	if err != nil {
		// The wallet's answer is known but not recorded: reconciliation records it later.
		p.log.Warn("record payment outcome", "hash", rec.Hash, "err", err)
		p.m.payments.WithLabelValues(contracts.PayStatusInFlight).Inc()
		return contracts.PayResult{Status: contracts.PayStatusInFlight, PaymentHash: rec.Hash, AmountSats: rec.AmountSats, Code: CodeLedger}
	}
	p.m.payments.WithLabelValues(final.Status).Inc()
	return result(final)
}

// classify turns a wallet answer into a ledger status. Only an answer that is certain is final:
// any error the wallet does not name as a refusal leaves the payment in flight.
func classify(ctx context.Context, w lightning.Wallet, hash string, pm lightning.Payment, err error) (string, lightning.Payment) {
	if err == nil {
		switch pm.Status {
		case lightning.PaymentSucceeded:
			return StatusSucceeded, pm
		case lightning.PaymentFailed:
			return StatusFailed, pm
		}
		return StatusInFlight, pm
	}
	if errors.Is(err, lightning.ErrAlreadyPaid) {
		// Paid by us in an earlier life, or by someone else: only our wallet can say which.
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if lp, lerr := w.LookupPayment(lctx, hash); lerr == nil && lp.Status == lightning.PaymentSucceeded {
			return StatusSucceeded, lp
		} else if lerr != nil && !errors.Is(lerr, lightning.ErrNotFound) {
			return StatusInFlight, pm
		}
		return StatusFailed, pm
	}
	if errors.Is(err, lightning.ErrOutcomeUnknown) {
		return StatusInFlight, pm
	}
	for _, certain := range []error{lightning.ErrInsufficientBalance, lightning.ErrExpired,
		lightning.ErrInvalidInvoice, lightning.ErrNoRoute, lnd.ErrPaymentFailed} {
		if errors.Is(err, certain) {
			return StatusFailed, pm
		}
	}
	return StatusInFlight, pm
}

func failCode(err error, pm lightning.Payment) string {
	switch {
	case errors.Is(err, lightning.ErrInsufficientBalance):
		return "insufficient_balance"
	case errors.Is(err, lightning.ErrExpired):
		return "expired"
	case errors.Is(err, lightning.ErrInvalidInvoice):
		return "invalid_invoice"
	case errors.Is(err, lightning.ErrNoRoute):
		return "no_route"
	case errors.Is(err, lightning.ErrAlreadyPaid):
		return "already_paid"
	}
	return "payment_failed"
}

func failText(err error, pm lightning.Payment) string {
	if err != nil {
		return err.Error()
	}
	return pm.FailureReason
}

func result(r Payment) contracts.PayResult {
	out := contracts.PayResult{PaymentHash: r.Hash, AmountSats: r.AmountSats, Code: r.Code, Error: r.Error}
	switch r.Status {
	case StatusSucceeded:
		out.Status, out.Preimage, out.FeeSats = contracts.PayStatusSucceeded, r.Preimage, r.FeeSats()
	case StatusFailed:
		out.Status = contracts.PayStatusFailed
	default:
		out.Status = contracts.PayStatusInFlight
	}
	return out
}

// replay answers a repeat from the ledger record for hash, reconciling it first if its outcome
// is not final. ok is false when there is no record.
func (p *Payer) replay(ctx context.Context, hash, key string) (contracts.PayResult, bool) {
	rec, rev, err := p.ledger.payment(ctx, hash)
	if err != nil {
		return contracts.PayResult{}, false
	}
	if !rec.Final() {
		if r, err := p.reconcilePayment(ctx, rec, rev); err == nil {
			rec = r
		}
	}
	p.m.payments.WithLabelValues("duplicate").Inc()
	res := result(rec)
	if rec.IdemKey != key {
		res.Code = CodeDuplicate
	}
	return res, true
}

func isBudget(err error) bool {
	return errors.Is(err, budget.ErrOverBalance) || errors.Is(err, budget.ErrReserve) ||
		errors.Is(err, budget.ErrDailyLimit) || errors.Is(err, budget.ErrTickLimit) || errors.Is(err, budget.ErrAmount)
}

// Limits are the agent's budget limits; a zero daily or per-tick limit takes the default (a
// zero limit would refuse everything), and all-zero limits take every default.
func Limits(a registry.Agent) nipsa.BudgetLimits {
	l := a.Limits
	if l == (nipsa.BudgetLimits{}) {
		return budget.Defaults
	}
	if l.DailyLimitSats <= 0 {
		l.DailyLimitSats = budget.Defaults.DailyLimitSats
	}
	if l.PerTickLimitSats <= 0 {
		l.PerTickLimitSats = budget.Defaults.PerTickLimitSats
	}
	return l
}

// reserve checks the budget against the wallet's confirmed balance and holds the amount on the
// account, by compare-and-swap. The account is read before the balance: a payment finished
// (and released) before the account read is already out of the balance read after it, so the
// check can only over-count what is spent, never under-count.
func (p *Payer) reserve(ctx context.Context, a registry.Agent, w lightning.Wallet, rec Payment) error {
	// The CAS alone is correct across replicas; the lock keeps this process's requests for one
	// agent from all racing for the same revision (100 concurrent requests would cost O(n^2)).
	mu, _ := p.agentLocks.LoadOrStore(a.Pubkey, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	lim := Limits(a)
	deadline := time.Now().Add(p.payTimeout)
	for {
		acct, rev, err := p.ledger.account(ctx, a.Pubkey)
		if err != nil {
			return err
		}
		if _, ok := acct.Pending[rec.Hash]; ok {
			return errPending
		}
		msat, err := p.walletBalance(ctx, w, acct)
		if err != nil {
			return fmt.Errorf("%w: %w", errBalanceUnknown, err)
		}
		bal, pending, now := msat/1000, acct.pendingSats(), p.now()
		if err := budget.Check(bal-pending, rec.AmountSats, lim, acct.Counters, now, rec.TickID); err != nil {
			// A pending payment that has settled but is not yet released is counted twice
			// (in the balance and as pending). If the refusal is only that, wait for it.
			// (With ledger balances the balance and the pending set change in one CAS: exact.)
			if !p.sub && (errors.Is(err, budget.ErrOverBalance) || errors.Is(err, budget.ErrReserve)) && pending > 0 &&
				budget.Check(bal, rec.AmountSats, lim, acct.Counters, now, rec.TickID) == nil && time.Now().Before(deadline) {
				if err := sleep(ctx, 20*time.Millisecond); err != nil {
					return err
				}
				continue
			}
			return err
		}
		acct.Counters = acct.Counters.Spend(rec.AmountSats, now, rec.TickID)
		if acct.Pending == nil {
			acct.Pending = map[string]Reservation{}
		}
		acct.Pending[rec.Hash] = Reservation{AmountSats: rec.AmountSats, TickID: rec.TickID, IdemKey: rec.IdemKey, At: now}
		if _, err := p.ledger.put(ctx, acctKey(a.Pubkey), rev, acct); err != nil {
			if registry.IsConflict(err) {
				continue
			}
			return err
		}
		return nil
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// release drops a reservation whose payment was never attempted, refunding the budget.
func (p *Payer) release(ctx context.Context, rec Payment) {
	if _, err := p.ledger.updateAccount(ctx, rec.Agent, func(a *Account) error {
		r, ok := a.Pending[rec.Hash]
		if !ok || r.IdemKey != rec.IdemKey {
			return errNoWrite
		}
		delete(a.Pending, rec.Hash)
		a.Counters = a.Counters.Refund(r.AmountSats, r.At, r.TickID)
		return nil
	}); err != nil && !errors.Is(err, errNoWrite) {
		p.log.Warn("release reservation", "hash", rec.Hash, "err", err)
	}
}

// finish records a final outcome on the payment record (CAS from rev) and then settles the
// account. Whoever wins the CAS counts the metrics; the account step is idempotent (keyed by
// the pending reservation), so reconciliation can redo it after a crash in between.
func (p *Payer) finish(ctx context.Context, rec Payment, rev uint64, status string, pm lightning.Payment) (Payment, error) {
	rec.Status, rec.FinishedAt = status, p.now()
	if status == StatusSucceeded {
		rec.Preimage, rec.FeeMsat, rec.Code, rec.Error = pm.Preimage, pm.FeeMsat, "", ""
	}
	if _, err := p.ledger.put(ctx, payKey(rec.Hash), rev, rec); err != nil {
		if !registry.IsConflict(err) {
			return rec, err
		}
		cur, _, gerr := p.ledger.payment(ctx, rec.Hash)
		if gerr != nil {
			return rec, gerr
		}
		if !cur.Final() {
			return rec, fmt.Errorf("payer: record %s changed under us: %w", rec.Hash, err)
		}
		rec = cur // someone else recorded it; still make sure the account is settled
	} else {
		if rec.InFlightAt != (time.Time{}) {
			p.m.inflight.Dec()
		}
		if status == StatusSucceeded {
			p.m.satsSpent.WithLabelValues(purposeLabel(rec.Purpose)).Add(float64(rec.AmountSats))
			p.m.fees.Add(float64(rec.FeeSats()))
		}
	}
	if err := p.settleAccount(ctx, rec); err != nil {
		p.log.Warn("settle account; reconciliation will retry", "hash", rec.Hash, "err", err)
	}
	return rec, nil
}

func (p *Payer) settleAccount(ctx context.Context, rec Payment) error {
	_, err := p.ledger.updateAccount(ctx, rec.Agent, func(a *Account) error {
		r, ok := a.Pending[rec.Hash]
		if !ok {
			return errNoWrite
		}
		delete(a.Pending, rec.Hash)
		if rec.Status == StatusSucceeded {
			a.recordSpend(budget.Day(rec.FinishedAt), rec.AmountSats+rec.FeeSats(), p.now())
			if p.sub {
				a.BalanceMsat -= rec.AmountMsat + rec.FeeMsat
			}
		} else {
			a.Counters = a.Counters.Refund(r.AmountSats, r.At, r.TickID)
		}
		return nil
	})
	if errors.Is(err, errNoWrite) {
		return nil
	}
	return err
}

func purposeLabel(p string) string {
	switch p {
	case contracts.PurposeCompute, contracts.PurposeZap:
		return p
	}
	return "other"
}

// walletBalance is the agent's confirmed balance in msat: the wallet's, or with sub-accounts
// the ledger's (acct is the account as just read).
func (p *Payer) walletBalance(ctx context.Context, w lightning.Wallet, acct Account) (int64, error) {
	if p.sub {
		return acct.BalanceMsat, nil
	}
	bctx, cancel := context.WithTimeout(ctx, balanceTimeout)
	defer cancel()
	return w.Balance(bctx)
}
