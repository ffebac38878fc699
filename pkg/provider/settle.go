package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/openagents/runtime/pkg/lightning"
)

// settledWaiter is implemented by wallets that can block until an invoice settles (devln does);
// others are polled with LookupInvoice.
type settledWaiter interface {
	WaitSettled(ctx context.Context, paymentHash string) (lightning.Invoice, error)
}

// invoiceJob is an invoice issued for one job.
type invoiceJob struct {
	inv    lightning.Invoice
	amount int64
}

// issue makes the job's invoice; it is the price plus the overcharge knob.
func (p *Provider) issue(ctx context.Context, memo string) (invoiceJob, error) {
	amount := p.cfg.PriceMsat + p.cfg.OverchargeMsat
	inv, err := p.cfg.Wallet.MakeInvoice(ctx, amount, memo, p.cfg.InvoiceExpiry)
	if err != nil {
		return invoiceJob{}, fmt.Errorf("provider: make invoice: %w", err)
	}
	p.st.invoices.Add(1)
	return invoiceJob{inv: inv, amount: amount}, nil
}

// reserve counts a job awaiting payment; false when MaxPending are already waiting.
func (p *Provider) reserve() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending >= p.cfg.MaxPending {
		return false
	}
	p.pending++
	return true
}

func (p *Provider) release() {
	p.mu.Lock()
	p.pending--
	p.mu.Unlock()
}

// waitPaid reports whether the wallet shows the invoice settled for at least its amount before
// it expires. nudge (may be nil) asks for an immediate check, e.g. on a buyer's PaymentSent.
// This is the one gate in front of every delivery.
func (p *Provider) waitPaid(ctx context.Context, j invoiceJob, nudge <-chan struct{}) bool {
	deadline := j.inv.ExpiresAt
	if deadline.IsZero() {
		deadline = time.Now().Add(p.cfg.InvoiceExpiry)
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	interval := p.cfg.PollInterval
	var waited chan lightning.Invoice
	if w, ok := p.cfg.Wallet.(settledWaiter); ok {
		waited = make(chan lightning.Invoice, 1)
		go func() {
			inv, err := w.WaitSettled(wctx, j.inv.PaymentHash)
			if err == nil {
				waited <- inv
			}
		}()
		// The waiter wakes us; polling is only a backstop should it fail.
		interval = max(interval, 2*time.Second)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case inv := <-waited:
			if p.settledEnough(inv, j) {
				return true
			}
			waited = nil
		case <-nudge:
			if p.lookupPaid(wctx, j) {
				return true
			}
		case <-tick.C:
			if p.lookupPaid(wctx, j) {
				return true
			}
		case <-wctx.Done():
			if ctx.Err() != nil {
				return false
			}
			// A payment may have raced the expiry; one last look.
			lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer lcancel()
			return p.lookupPaid(lctx, j)
		}
	}
}

func (p *Provider) lookupPaid(ctx context.Context, j invoiceJob) bool {
	inv, err := p.cfg.Wallet.LookupInvoice(ctx, j.inv.PaymentHash)
	if err != nil {
		p.log.Debug("lookup invoice", "payment_hash", j.inv.PaymentHash, "err", err)
		return false
	}
	return p.settledEnough(inv, j)
}

func (p *Provider) settledEnough(inv lightning.Invoice, j invoiceJob) bool {
	if !inv.Settled {
		return false
	}
	if inv.AmountMsat != 0 && inv.AmountMsat < j.amount {
		p.log.Warn("invoice settled for less than asked", "payment_hash", j.inv.PaymentHash,
			"settled_msat", inv.AmountMsat, "asked_msat", j.amount)
		return false
	}
	return true
}
