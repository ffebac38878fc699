package compute_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/compute"
	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/model"
	"github.com/openagents/runtime/pkg/provider"
	"github.com/openagents/runtime/pkg/relay"
)

// devnet is a real relay, a devnet Lightning ledger and a funded buyer.
type devnet struct {
	t      *testing.T
	url    string
	ledger *devln.Ledger
	buyer  *compute.Buyer
	wallet *devln.Account // the buyer's
	pool   *nostr.SimplePool
}

const buyerFunds = 1_000_000 // msat

func newDevnet(t *testing.T) *devnet {
	t.Helper()
	r, err := relay.Start(relay.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l := devln.New(devln.Options{})
	if err := l.Faucet(ctx, "buyer", buyerFunds); err != nil {
		t.Fatal(err)
	}
	pool := nostr.NewSimplePool(ctx)
	return &devnet{
		t: t, url: r.URL(), ledger: l, wallet: l.Account("buyer"), pool: pool,
		buyer: &compute.Buyer{SecretKey: nostr.GeneratePrivateKey(), Pool: pool, Relays: []string{r.URL()},
			Network: "regtest", Timeout: 3 * time.Second},
	}
}

// provider starts a reference provider with the builtin model and waits until it is ready.
func (d *devnet) provider(name string, price int64, tweak func(*provider.Config)) *provider.Provider {
	d.t.Helper()
	cfg := provider.Config{
		SecretKey: nostr.GeneratePrivateKey(), Relays: []string{d.url}, Wallet: d.ledger.Account(name),
		PriceMsat: price, Model: model.Builtin{}, ModelName: "builtin", Name: name,
		Log: testLog(),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := provider.New(cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	d.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			d.t.Errorf("provider %s: %v", name, err)
		}
	})
	select {
	case <-p.Ready():
	case err := <-done:
		d.t.Fatalf("provider %s stopped: %v", name, err)
	case <-time.After(10 * time.Second):
		d.t.Fatalf("provider %s not ready", name)
	}
	return p
}

// pay is the buyer's Pay: its devln account pays the invoice.
func (d *devnet) pay(ctx context.Context, bolt11 string, _ int64) (string, error) {
	p, err := d.wallet.PayInvoice(ctx, bolt11)
	if err != nil {
		return "", err
	}
	if p.Status != lightning.PaymentSucceeded {
		return "", fmt.Errorf("payment %s: %s", p.Status, p.FailureReason)
	}
	return p.Preimage, nil
}

func (d *devnet) balance(name string) int64 {
	d.t.Helper()
	b, err := d.ledger.Account(name).Balance(context.Background())
	if err != nil {
		d.t.Fatal(err)
	}
	return b
}

func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func builtinAnswer(t *testing.T, prompt string) string {
	t.Helper()
	rep, err := model.Builtin{}.Complete(context.Background(), model.Request{Prompt: prompt})
	if err != nil {
		t.Fatal(err)
	}
	return rep.Text
}
