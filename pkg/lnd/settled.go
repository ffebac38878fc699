package lnd

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/openagents/runtime/pkg/lightning"
)

// settlePoll is the safety net of WaitSettled: a settlement that happened while the stream
// was (re)connecting is still seen within this period.
const settlePoll = 5 * time.Second

// settleHub fans one /v1/invoices/subscribe stream out to every WaitSettled caller, so a payer
// watching many funding invoices holds one stream, not one poller per invoice.
type settleHub struct {
	mu      sync.Mutex
	waiters map[string]map[chan lightning.Invoice]struct{}
	stop    context.CancelFunc
}

// WaitSettled returns once the invoice with paymentHash is settled, or ctx ends. It follows
// the node's settled-invoice stream and re-checks with LookupInvoice now and then.
func (w *Wallet) WaitSettled(ctx context.Context, paymentHash string) (lightning.Invoice, error) {
	ch := w.hub.add(w, paymentHash)
	defer w.hub.remove(paymentHash, ch)
	tick := time.NewTicker(settlePoll)
	defer tick.Stop()
	for {
		// Checked after registering, so a settlement before the stream saw it is not missed.
		inv, err := w.LookupInvoice(ctx, paymentHash)
		if err == nil && inv.Settled {
			return inv, nil
		}
		if err != nil && !errors.Is(err, lightning.ErrNotFound) && ctx.Err() == nil {
			w.log.Debug("lnd: lookup while waiting for settlement", "err", err)
		}
		select {
		case inv := <-ch:
			return inv, nil
		case <-tick.C:
		case <-ctx.Done():
			return lightning.Invoice{}, ctx.Err()
		}
	}
}

func (h *settleHub) add(w *Wallet, hash string) chan lightning.Invoice {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiters == nil {
		h.waiters = map[string]map[chan lightning.Invoice]struct{}{}
	}
	ch := make(chan lightning.Invoice, 1)
	if h.waiters[hash] == nil {
		h.waiters[hash] = map[chan lightning.Invoice]struct{}{}
	}
	h.waiters[hash][ch] = struct{}{}
	if h.stop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		h.stop = cancel
		go func() { _ = w.SubscribeSettled(ctx, h.deliver) }()
	}
	return ch
}

func (h *settleHub) remove(hash string, ch chan lightning.Invoice) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.waiters[hash], ch)
	if len(h.waiters[hash]) == 0 {
		delete(h.waiters, hash)
	}
	if len(h.waiters) == 0 && h.stop != nil {
		h.stop()
		h.stop = nil
	}
}

func (h *settleHub) deliver(inv lightning.Invoice) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.waiters[inv.PaymentHash] {
		select {
		case ch <- inv:
		default:
		}
	}
}
