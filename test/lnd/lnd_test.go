// Package lnd_test pays real Lightning invoices between two lnd nodes on a regtest network
// (pkg/regtest) through the LND REST wallet (pkg/lnd).
package lnd_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/lnd"
	"github.com/openagents/runtime/pkg/regtest"
)

// startNetwork skips (fails under CI=true) when the binaries are not built.
func startNetwork(t *testing.T, ctx context.Context) *regtest.Network {
	t.Helper()
	bin := regtest.BinDir()
	if err := regtest.CheckBinaries(bin); err != nil {
		msg := fmt.Sprintf("%v; build them once with `bash %s` (about 10 minutes, cached by version)", err, regtest.BuildScript)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING the real-Lightning test: " + msg)
	}
	began := time.Now()
	n, err := regtest.Start(ctx, regtest.Options{Dir: t.TempDir(), BinDir: bin})
	if err != nil {
		t.Fatalf("regtest network: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	t.Logf("network up in %s", time.Since(began).Round(time.Millisecond))
	return n
}

func wallet(t *testing.T, node *regtest.Node) *lnd.Wallet {
	t.Helper()
	w, err := lnd.New(lnd.Config{
		URL:          node.RESTURL,
		MacaroonPath: node.MacaroonPath,
		TLSCertPath:  node.TLSCertPath,
		Network:      "regtest",
		PayTimeout:   20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// eventually polls f every 50 ms until it returns nil or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

func TestPayInvoiceOverRegtest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := startNetwork(t, ctx)
	alice, bob := wallet(t, n.Alice), wallet(t, n.Bob)

	// Bob's funding notifications. The subscription gives no sign of being live, so small
	// payments go through until one is seen: from then on, no settlement can be missed.
	settled := make(chan lightning.Invoice, 64)
	subCtx, stopSub := context.WithCancel(ctx)
	subDone := make(chan error, 1)
	go func() { subDone <- bob.SubscribeSettled(subCtx, func(in lightning.Invoice) { settled <- in }) }()
	defer func() {
		stopSub()
		if err := <-subDone; !errors.Is(err, context.Canceled) {
			t.Errorf("SubscribeSettled returned %v, want context.Canceled", err)
		}
	}()
	waitSettled := func(hash string, within time.Duration) bool {
		timeout := time.After(within)
		for {
			select {
			case in := <-settled:
				if in.PaymentHash == hash {
					if !in.Settled || in.Preimage == "" {
						t.Errorf("settled notification %+v: want Settled and a preimage", in)
					}
					return true
				}
			case <-timeout:
				return false
			}
		}
	}
	warmups := int64(0)
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("SubscribeSettled saw none of 20 settled warm-up invoices")
		}
		inv, err := bob.MakeInvoice(ctx, 1000, "warm-up", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.PayInvoice(ctx, inv.Bolt11); err != nil {
			t.Fatalf("warm-up payment: %v", err)
		}
		warmups++
		if waitSettled(inv.PaymentHash, 2*time.Second) {
			break
		}
	}

	// The payee's commitment catches up a moment after the payer sees the preimage: read the
	// starting balances once bob holds exactly the warm-ups.
	var aliceBefore, bobBefore int64
	eventually(t, 10*time.Second, "bob's balance holds the warm-ups", func() (err error) {
		if bobBefore, err = bob.Balance(ctx); err != nil {
			return err
		}
		if bobBefore != warmups*1000 {
			return fmt.Errorf("bob has %d msat, want %d", bobBefore, warmups*1000)
		}
		aliceBefore, err = alice.Balance(ctx)
		return err
	})
	if aliceBefore <= 0 || aliceBefore > regtest.ChannelSat*1000 {
		t.Fatalf("alice's channel balance %d msat: want in (0, %d]", aliceBefore, regtest.ChannelSat*1000)
	}

	const amount = 21_000_123 // msat, not a whole sat: msat precision must survive the trip
	inv, err := bob.MakeInvoice(ctx, amount, "regtest payment", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if inv.AmountMsat != amount || len(inv.PaymentHash) != 64 || inv.ExpiresAt.Before(time.Now().Add(9*time.Minute)) {
		t.Fatalf("invoice %+v", inv)
	}

	began := time.Now()
	pay, err := alice.PayInvoice(ctx, inv.Bolt11)
	if err != nil {
		t.Fatalf("PayInvoice: %v", err)
	}
	t.Logf("payment took %s", time.Since(began).Round(time.Millisecond))
	if pay.Status != lightning.PaymentSucceeded || pay.PaymentHash != inv.PaymentHash || pay.AmountMsat != amount {
		t.Fatalf("payment %+v, want succeeded for %s", pay, inv.PaymentHash)
	}
	preimage, err := hex.DecodeString(pay.Preimage)
	if err != nil {
		t.Fatalf("preimage %q: %v", pay.Preimage, err)
	}
	if sum := sha256.Sum256(preimage); hex.EncodeToString(sum[:]) != inv.PaymentHash {
		t.Fatalf("sha256(preimage) = %x, want %s", sum, inv.PaymentHash)
	}

	if _, err := alice.PayInvoice(ctx, inv.Bolt11); !errors.Is(err, lightning.ErrAlreadyPaid) {
		t.Fatalf("paying again: %v, want ErrAlreadyPaid", err)
	}

	got, err := alice.LookupPayment(ctx, inv.PaymentHash)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != lightning.PaymentSucceeded || got.Preimage != pay.Preimage || got.AmountMsat != amount {
		t.Fatalf("LookupPayment %+v", got)
	}

	binv, err := bob.LookupInvoice(ctx, inv.PaymentHash)
	if err != nil {
		t.Fatal(err)
	}
	if !binv.Settled || binv.Preimage != pay.Preimage || binv.Bolt11 != inv.Bolt11 || binv.AmountMsat != amount {
		t.Fatalf("bob's LookupInvoice %+v", binv)
	}
	if !waitSettled(inv.PaymentHash, 10*time.Second) {
		t.Fatal("SubscribeSettled did not report the payment")
	}

	// Balances settle on both commitments shortly after the payer learns the preimage.
	eventually(t, 10*time.Second, "balances moved by the amount", func() error {
		a, err := alice.Balance(ctx)
		if err != nil {
			return err
		}
		b, err := bob.Balance(ctx)
		if err != nil {
			return err
		}
		if aliceBefore-a != amount+pay.FeeMsat || b-bobBefore != amount {
			return fmt.Errorf("alice %d -> %d, bob %d -> %d", aliceBefore, a, bobBefore, b)
		}
		return nil
	})

	// Hashes the nodes never saw.
	unknown := make([]byte, 32)
	_, _ = rand.Read(unknown)
	if _, err := alice.LookupPayment(ctx, hex.EncodeToString(unknown)); !errors.Is(err, lightning.ErrNotFound) {
		t.Errorf("LookupPayment(unknown): %v, want ErrNotFound", err)
	}
	if _, err := bob.LookupInvoice(ctx, hex.EncodeToString(unknown)); !errors.Is(err, lightning.ErrNotFound) {
		t.Errorf("LookupInvoice(unknown): %v, want ErrNotFound", err)
	}

	// Bob holds about 21k sat; an invoice for 5M sat cannot leave his side of the channel.
	big, err := alice.MakeInvoice(ctx, 5_000_000_000, "too big", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	failed, err := bob.PayInvoice(ctx, big.Bolt11)
	if !errors.Is(err, lnd.ErrPaymentFailed) || !errors.Is(err, lightning.ErrInsufficientBalance) {
		t.Fatalf("paying beyond the balance: %v, want ErrPaymentFailed and ErrInsufficientBalance", err)
	}
	if failed.Status != lightning.PaymentFailed || failed.PaymentHash != big.PaymentHash {
		t.Fatalf("failed payment %+v", failed)
	}
}
