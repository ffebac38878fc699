package payer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/lightning"
)

// ReconcileAll settles every reservation the ledger holds: each non-final payment has one on
// its agent's account, so walking the accounts finds them all (after a crash at any point).
// Outcomes the wallet can not confirm stay in flight.
func (p *Payer) ReconcileAll(ctx context.Context) error {
	lister, err := p.ledger.kv.ListKeysFiltered(ctx, "acct.*")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return fmt.Errorf("list accounts: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	var open int
	var firstErr error
	for _, k := range keys {
		agent := strings.TrimPrefix(k, "acct.")
		acct, _, err := p.ledger.account(ctx, agent)
		if err != nil {
			firstErr = cmp(firstErr, err)
			continue
		}
		for hash, res := range acct.Pending {
			if err := p.reconcilePending(ctx, agent, hash, res); err != nil {
				firstErr = cmp(firstErr, err)
			}
		}
		if acct, _, err = p.ledger.account(ctx, agent); err == nil {
			open += len(acct.Pending)
		}
	}
	p.m.inflight.Set(float64(open))
	p.countAgents(ctx)
	return firstErr
}

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// reconcilePending settles one reservation of agent.
func (p *Payer) reconcilePending(ctx context.Context, agent, hash string, res Reservation) error {
	rec, rev, err := p.ledger.payment(ctx, hash)
	if notFound(err) {
		if p.now().Sub(res.At) < p.grace {
			return nil // a live replica may be about to write the intent
		}
		// Fence the hash with a failed record, so a slow replica that reserved it and has not yet
		// written its intent finds the record and does not pay.
		rec = Payment{Hash: hash, Agent: agent, IdemKey: res.IdemKey, TickID: res.TickID, AmountSats: res.AmountSats,
			Status: StatusFailed, Code: CodeAbandoned, Error: "reserved but never recorded (crash)",
			CreatedAt: res.At, FinishedAt: p.now()}
		if _, err := p.ledger.put(ctx, payKey(hash), 0, rec); err != nil {
			if rec, rev, err = p.ledger.payment(ctx, hash); err != nil {
				return err
			}
		} else {
			p.m.reconcile.WithLabelValues(CodeAbandoned).Inc()
			return p.settleAccount(ctx, rec)
		}
	} else if err != nil {
		return err
	}
	if rec.Agent != agent || rec.IdemKey != res.IdemKey {
		// Another request owns this invoice's record; ours never got past reserving.
		if p.now().Sub(res.At) >= p.grace {
			p.release(ctx, Payment{Hash: hash, Agent: agent, IdemKey: res.IdemKey})
		}
		return nil
	}
	_, err = p.reconcilePayment(ctx, rec, rev)
	return err
}

// reconcilePayment brings a record up to date with its wallet and returns it.
func (p *Payer) reconcilePayment(ctx context.Context, rec Payment, rev uint64) (Payment, error) {
	now := p.now()
	switch rec.Status {
	case StatusSucceeded, StatusFailed:
		return rec, p.settleAccount(ctx, rec)
	case StatusIntent:
		if now.Sub(rec.CreatedAt) < p.grace {
			return rec, nil
		}
		// The wallet is only called after the record says in_flight: an old intent never paid.
		rec.Code, rec.Error = CodeAbandoned, "intent recorded but never sent (crash)"
		p.m.reconcile.WithLabelValues(CodeAbandoned).Inc()
		return p.finish(ctx, rec, rev, StatusFailed, lightning.Payment{})
	}
	a, _, err := p.reg.Get(ctx, rec.Agent)
	if err != nil {
		p.m.reconcile.WithLabelValues("error").Inc()
		return rec, err
	}
	w, err := p.wallets.Wallet(ctx, a)
	if err != nil {
		p.m.reconcile.WithLabelValues("error").Inc()
		return rec, err
	}
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	pm, err := w.LookupPayment(lctx, rec.Hash)
	cancel()
	switch {
	case err == nil && pm.Status == lightning.PaymentSucceeded:
		p.m.reconcile.WithLabelValues("succeeded").Inc()
		p.log.Info("reconciled in-flight payment", "hash", rec.Hash, "status", "succeeded")
		return p.finish(ctx, rec, rev, StatusSucceeded, pm)
	case err == nil && pm.Status == lightning.PaymentFailed:
		p.m.reconcile.WithLabelValues("failed").Inc()
		rec.Code, rec.Error = "payment_failed", pm.FailureReason
		return p.finish(ctx, rec, rev, StatusFailed, pm)
	case errors.Is(err, lightning.ErrNotFound) && !now.Before(rec.ExpiresAt) && now.Sub(rec.InFlightAt) >= p.grace:
		// The wallet never saw it, and an expired invoice can no longer be paid: it never will be.
		p.m.reconcile.WithLabelValues(CodeNotFound).Inc()
		rec.Code, rec.Error = CodeNotFound, "the wallet never saw the payment and the invoice has expired"
		return p.finish(ctx, rec, rev, StatusFailed, lightning.Payment{})
	case err != nil && !errors.Is(err, lightning.ErrNotFound):
		p.m.reconcile.WithLabelValues("error").Inc()
		return rec, err
	}
	p.m.reconcile.WithLabelValues("in_flight").Inc()
	return rec, nil
}

// countAgents sets sa_payer_agents from the registry.
func (p *Payer) countAgents(ctx context.Context) {
	agents, err := p.reg.List(ctx)
	if err != nil {
		return
	}
	n := map[string]int{}
	for _, a := range agents {
		n[a.Lifecycle]++
	}
	for _, s := range lifecycle.All {
		p.m.agents.WithLabelValues(string(s)).Set(float64(n[string(s)]))
	}
}
