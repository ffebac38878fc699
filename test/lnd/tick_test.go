package lnd_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openagents/runtime/pkg/devnet"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/payclient"
	"github.com/openagents/runtime/pkg/payer"
	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/ticker"
)

// TestTickPaysProviderOverLND runs a whole tick with real Lightning: the payer serves the
// agent from alice's lnd node (per-agent balance in its ledger), the reference provider is paid
// into bob's node, and the provider delivers only once bob's node shows the invoice settled.
func TestTickPaysProviderOverLND(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := startNetwork(t, ctx)
	alice, bob := wallet(t, n.Alice), wallet(t, n.Bob)
	// Bob starts with no outbound liquidity; give him some so he can fund the agent.
	seed, err := bob.MakeInvoice(ctx, 200_000_000, "liquidity", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.PayInvoice(ctx, seed.Bolt11); err != nil {
		t.Fatal(err)
	}
	// The payment returns once alice sees the preimage; bob can spend it once his channel state
	// has caught up.
	eventually(t, 30*time.Second, "bob's liquidity", func() error {
		if msat, err := bob.Balance(ctx); err != nil || msat < 200_000_000 {
			return fmt.Errorf("bob has %d msat (%v)", msat, err)
		}
		return nil
	})

	outcomes := make(chan ticker.Outcome, 4)
	d, err := devnet.Start(ctx, devnet.Options{Dir: t.TempDir(), Services: true, Without: []string{"payer"},
		MinTickInterval: time.Millisecond, BuyTimeout: 30 * time.Second, TickTimeout: time.Minute,
		Providers: []devnet.ProviderSpec{{Name: "lnd-provider", PriceSats: 21, Wallet: bob}},
		OnTick:    func(o ticker.Outcome) { outcomes <- o }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p, err := payer.New(ctx, payer.Config{NC: d.NC, JS: d.JS, Registry: d.Fleet.Registry, Wallets: payer.SubAccounts{Node: alice},
		Network: "regtest", Metrics: prometheus.NewRegistry(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pctx, stopPayer := context.WithCancel(ctx)
	payerDone := make(chan error, 1)
	go func() { payerDone <- p.Run(pctx) }()
	defer func() { stopPayer(); <-payerDone }()
	<-p.Ready()

	d.Fleet.Wallet = registry.WalletLND
	if _, err := d.Fleet.Spawn(ctx, fleet.SpawnOptions{Name: "lnd-agent", HeartbeatSeconds: 3600,
		Limits: nipsa.BudgetLimits{DailyLimitSats: 10_000, PerTickLimitSats: 100}}); err != nil {
		t.Fatal(err)
	}
	a, bolt11, err := d.Fleet.Fund(ctx, "lnd-agent", 5000)
	if err != nil {
		t.Fatal(err)
	}
	// A failed payment is final in lnd and may be tried again: right after the liquidity
	// payment bob's spendable balance can lag his channel balance for a moment.
	eventually(t, 30*time.Second, "fund the agent from bob", func() error {
		_, err := bob.PayInvoice(ctx, bolt11)
		if errors.Is(err, lightning.ErrInsufficientBalance) || errors.Is(err, lightning.ErrNoRoute) {
			return err
		}
		if err != nil {
			t.Fatalf("fund the agent from bob: %v", err)
		}
		return nil
	})
	pc := payclient.Client{NC: d.NC}
	eventually(t, 30*time.Second, "funding credited to the agent", func() error {
		b, err := pc.Balance(ctx, a.Pubkey)
		if err != nil || !b.Known || b.BalanceSats != 5000 {
			return errors.New("balance not 5000 yet")
		}
		return nil
	})
	if _, _, err := d.Fleet.Trigger(ctx, "lnd-agent", "manual", "think over real lightning"); err != nil {
		t.Fatal(err)
	}
	var o ticker.Outcome
	select {
	case o = <-outcomes:
	case <-ctx.Done():
		t.Fatal("no tick")
	}
	if o.Status != nipsa.TickSuccess || o.CostSats != 21 {
		t.Fatalf("tick over LND: %+v", o)
	}
	b, err := pc.Balance(ctx, a.Pubkey)
	if err != nil || b.BalanceSats != 5000-21 {
		t.Fatalf("agent balance after the tick: %+v %v", b, err)
	}
	// The provider saw its invoice settle on bob's node before it delivered.
	if st := d.Providers[0].Stats(); st.Paid != 1 || st.Delivered != 1 || st.Unpaid != 0 {
		t.Fatalf("provider stats %+v", st)
	}
}
