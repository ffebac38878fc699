package lnd_test

import (
	"context"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/lightning"
)

// WaitSettled follows the node's settled-invoice stream: several waiters on different invoices
// share it, each wakes for its own invoice only, and a waiter that arrives after settlement
// returns at once.
func TestWaitSettled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n := startNetwork(t, ctx)
	alice, bob := wallet(t, n.Alice), wallet(t, n.Bob)
	first, err := bob.MakeInvoice(ctx, 11_000, "first", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	second, err := bob.MakeInvoice(ctx, 22_000, "second", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		inv lightning.Invoice
		err error
	}
	wait := func(hash string) chan result {
		ch := make(chan result, 1)
		go func() {
			inv, err := bob.WaitSettled(ctx, hash)
			ch <- result{inv, err}
		}()
		return ch
	}
	w1, w2 := wait(first.PaymentHash), wait(second.PaymentHash)
	if _, err := alice.PayInvoice(ctx, first.Bolt11); err != nil {
		t.Fatal(err)
	}
	r := <-w1
	if r.err != nil || !r.inv.Settled || r.inv.PaymentHash != first.PaymentHash {
		t.Fatalf("first: %+v %v", r.inv, r.err)
	}
	select {
	case r := <-w2:
		t.Fatalf("second woke before it was paid: %+v %v", r.inv, r.err)
	default:
	}
	if _, err := alice.PayInvoice(ctx, second.Bolt11); err != nil {
		t.Fatal(err)
	}
	if r := <-w2; r.err != nil || !r.inv.Settled || r.inv.AmountMsat != 22_000 {
		t.Fatalf("second: %+v %v", r.inv, r.err)
	}
	// Already settled: returns at once.
	quick, qcancel := context.WithTimeout(ctx, 2*time.Second)
	defer qcancel()
	if inv, err := bob.WaitSettled(quick, first.PaymentHash); err != nil || !inv.Settled {
		t.Fatalf("already settled: %+v %v", inv, err)
	}
}
