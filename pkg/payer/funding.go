package payer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/registry"
)

// pollEvery is how often a funding invoice is looked up on wallets that cannot wait for it.
const pollEvery = time.Second

func (p *Payer) handleInvoice(ctx context.Context, msg *nats.Msg) any {
	var req contracts.InvoiceRequest
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		return contracts.InvoiceReply{Error: "bad JSON: " + err.Error()}
	}
	return p.Invoice(ctx, contracts.AgentFromSubject(msg.Subject), req)
}

// Invoice issues a funding invoice on the agent's wallet and watches it: when it settles, a
// Funded notice is published (once, Nats-Msg-Id "funded:<hash>") and the lifecycle re-read.
// Dead agents may be funded; they stay dead and the funds are reported.
func (p *Payer) Invoice(ctx context.Context, agent string, req contracts.InvoiceRequest) contracts.InvoiceReply {
	if req.AmountSats <= 0 {
		return contracts.InvoiceReply{Error: "amount_sats must be > 0"}
	}
	a, _, err := p.reg.Get(ctx, agent)
	if err != nil {
		return contracts.InvoiceReply{Error: err.Error()}
	}
	w, err := p.wallets.Wallet(ctx, a)
	if err != nil {
		return contracts.InvoiceReply{Error: err.Error()}
	}
	memo := req.Memo
	if memo == "" {
		memo = "fund agent " + a.Name
	}
	mctx, cancel := context.WithTimeout(ctx, balanceTimeout)
	inv, err := w.MakeInvoice(mctx, req.AmountSats*1000, memo, p.invoiceExpiry)
	cancel()
	if err != nil {
		return contracts.InvoiceReply{Error: err.Error()}
	}
	rec := FundingInvoice{Hash: inv.PaymentHash, Agent: agent, AmountSats: req.AmountSats, Status: invOpen,
		CreatedAt: p.now(), ExpiresAt: inv.ExpiresAt}
	if _, err := p.ledger.put(ctx, invKey(rec.Hash), 0, rec); err != nil {
		// Without the record nobody would notice the funds arrive: do not hand out the invoice.
		return contracts.InvoiceReply{Error: fmt.Sprintf("record invoice: %v", err)}
	}
	p.watch(rec)
	return contracts.InvoiceReply{Bolt11: inv.Bolt11, PaymentHash: inv.PaymentHash}
}

// watch starts one watcher per invoice in this process; it ends with Run.
func (p *Payer) watch(rec FundingInvoice) {
	if _, dup := p.watching.LoadOrStore(rec.Hash, struct{}{}); dup {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer p.watching.Delete(rec.Hash)
		p.watchInvoice(p.stopCtx, rec)
	}()
}

func (p *Payer) watchInvoice(ctx context.Context, rec FundingInvoice) {
	for ctx.Err() == nil {
		inv, err := p.waitInvoice(ctx, rec)
		if err == nil && inv.Settled {
			p.funded(ctx, rec, inv)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if err == nil && !time.Now().Before(rec.ExpiresAt) {
			p.log.Info("funding invoice expired unpaid", "agent", rec.Agent, "hash", rec.Hash)
			p.updateInvoice(ctx, rec.Hash, func(r *FundingInvoice) bool {
				if r.Status != invOpen {
					return false
				}
				r.Status = invExpired
				return true
			})
			return
		}
		if err != nil {
			p.log.Debug("watch funding invoice", "hash", rec.Hash, "err", err)
			_ = sleep(ctx, pollEvery)
		}
	}
}

// waitInvoice returns the invoice once settled, or as it stands at its expiry; wallets without
// WaitSettled are polled.
func (p *Payer) waitInvoice(ctx context.Context, rec FundingInvoice) (lightning.Invoice, error) {
	a, _, err := p.reg.Get(ctx, rec.Agent)
	if err != nil {
		return lightning.Invoice{}, err
	}
	w, err := p.wallets.Wallet(ctx, a)
	if err != nil {
		return lightning.Invoice{}, err
	}
	deadline := rec.ExpiresAt.Add(time.Second)
	if sw, ok := w.(settleWaiter); ok {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		inv, err := sw.WaitSettled(wctx, rec.Hash)
		cancel()
		if err == nil && inv.Settled {
			return inv, nil
		}
		if ctx.Err() != nil {
			return lightning.Invoice{}, ctx.Err()
		}
	}
	for {
		lctx, cancel := context.WithTimeout(ctx, balanceTimeout)
		inv, err := w.LookupInvoice(lctx, rec.Hash)
		cancel()
		if err != nil || inv.Settled || time.Now().After(deadline) {
			return inv, err
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return lightning.Invoice{}, err
		}
	}
}

// funded records the settlement, publishes Funded exactly once and moves the lifecycle up.
func (p *Payer) funded(ctx context.Context, rec FundingInvoice, inv lightning.Invoice) {
	if p.sub {
		// Credit first, idempotently: a crash before the invoice is marked settled replays this.
		if _, err := p.ledger.updateAccount(ctx, rec.Agent, func(a *Account) error {
			if !a.credit(rec.Hash, inv.AmountMsat) {
				return errNoWrite
			}
			return nil
		}); err != nil && !errors.Is(err, errNoWrite) {
			p.log.Warn("credit funding; retried at next start", "agent", rec.Agent, "hash", rec.Hash, "err", err)
			return
		}
	}
	first := p.updateInvoice(ctx, rec.Hash, func(r *FundingInvoice) bool {
		if r.Status != invOpen && r.Status != invExpired {
			return false
		}
		r.Status, r.SettledAt = invSettled, inv.SettledAt
		return true
	})
	if first {
		p.m.satsReceived.Add(float64(inv.AmountMsat / 1000))
	}
	p.notifyFunded(ctx, rec, inv.AmountMsat/1000)
}

func (p *Payer) notifyFunded(ctx context.Context, rec FundingInvoice, sats int64) {
	reply := p.Balance(ctx, rec.Agent)
	if reply.Lifecycle == string(lifecycle.Dead) {
		p.log.Warn("funds arrived for a dead agent; it stays dead", "agent", rec.Agent, "amount_sats", sats, "hash", rec.Hash)
	} else {
		p.log.Info("agent funded", "agent", rec.Agent, "amount_sats", sats, "lifecycle", reply.Lifecycle)
	}
	b, _ := json.Marshal(contracts.Funded{Agent: rec.Agent, AmountSats: sats, PaymentHash: rec.Hash, At: p.now().Unix()})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := p.js.Publish(pctx, contracts.FundedSubject(rec.Agent), b, jetstream.WithMsgID("funded:"+rec.Hash)); err != nil {
		p.log.Warn("publish funded; will retry at next start", "agent", rec.Agent, "err", err)
		return
	}
	p.updateInvoice(ctx, rec.Hash, func(r *FundingInvoice) bool {
		if r.Status != invSettled {
			return false
		}
		r.Status = invNotified
		return true
	})
}

// updateInvoice applies fn to inv.<hash> by CAS; it reports whether this call wrote.
func (p *Payer) updateInvoice(ctx context.Context, hash string, fn func(*FundingInvoice) bool) bool {
	for {
		var r FundingInvoice
		rev, err := p.ledger.get(ctx, invKey(hash), &r)
		if err != nil || !fn(&r) {
			return false
		}
		if _, err := p.ledger.put(ctx, invKey(hash), rev, r); err != nil {
			if registry.IsConflict(err) {
				continue
			}
			p.log.Warn("update funding invoice", "hash", hash, "err", err)
			return false
		}
		return true
	}
}

// resumeInvoices restarts watchers for open funding invoices and re-sends Funded notices that
// a crash may have cut off (Nats-Msg-Id dedupes the ones that did go out).
func (p *Payer) resumeInvoices(ctx context.Context) error {
	lister, err := p.ledger.kv.ListKeysFiltered(ctx, "inv.*")
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil
		}
		return err
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		var r FundingInvoice
		if _, err := p.ledger.get(ctx, k, &r); err != nil {
			continue
		}
		switch r.Status {
		case invOpen:
			p.watch(r)
		case invSettled:
			p.notifyFunded(ctx, r, r.AmountSats)
		}
	}
	return nil
}
