package compute_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/compute"
	"github.com/openagents/runtime/pkg/invoice"
	"github.com/openagents/runtime/pkg/model"
	"github.com/openagents/runtime/pkg/provider"
)

const prompt = "## Agent\nname: scout\n## Goals\n- [g1] (active, 0.25) Map the relays\n## Balance\n900 sats\n"

func discoverOne(t *testing.T, d *devnet, pubkey string) compute.Provider {
	t.Helper()
	ps, err := d.buyer.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Pubkey == pubkey {
			return p
		}
	}
	t.Fatalf("provider %s not discovered among %d", pubkey, len(ps))
	return compute.Provider{}
}

func TestBuyNIP90(t *testing.T) {
	d := newDevnet(t)
	prov := d.provider("alpha", 5_000, nil)
	p := discoverOne(t, d, prov.Pubkey())
	if !p.NIP90 {
		t.Fatal("reference provider not seen as NIP-90")
	}
	res, err := d.buyer.Buy(context.Background(), p, compute.Request{Prompt: prompt, MaxTokens: 64, BudgetMsat: 10_000}, d.pay)
	if err != nil {
		t.Fatal(err)
	}
	checkPurchase(t, d, res, prov, "alpha", 5_000)
}

func TestBuyNIP28(t *testing.T) {
	d := newDevnet(t)
	prov := d.provider("beta", 7_000, nil)
	p := discoverOne(t, d, prov.Pubkey())
	if !p.NIP28 || p.Channel != prov.Channel() {
		t.Fatalf("channel %q, provider's %q", p.Channel, prov.Channel())
	}
	p.NIP90 = false // force the channel protocol
	res, err := d.buyer.Buy(context.Background(), p, compute.Request{Prompt: prompt}, d.pay)
	if err != nil {
		t.Fatal(err)
	}
	checkPurchase(t, d, res, prov, "beta", 7_000)
}

func checkPurchase(t *testing.T, d *devnet, res compute.Result, prov *provider.Provider, name string, price int64) {
	t.Helper()
	if want := builtinAnswer(t, prompt); res.Text != want {
		t.Errorf("text %q, want the builtin's %q", res.Text, want)
	}
	if res.Provider != prov.Pubkey() || res.CostMsat != price || len(res.PaymentHash) != 64 {
		t.Errorf("result %+v", res)
	}
	if res.TokensIn != len(strings.Fields(prompt)) || res.TokensOut == 0 {
		t.Errorf("tokens %d/%d", res.TokensIn, res.TokensOut)
	}
	if got := d.balance("buyer"); got != buyerFunds-price {
		t.Errorf("buyer balance %d, want %d", got, buyerFunds-price)
	}
	if got := d.balance(name); got != price {
		t.Errorf("provider balance %d, want %d", got, price)
	}
	tr := d.ledger.Transfers()
	last := tr[len(tr)-1]
	if last.From != "buyer" || last.To != name || last.PaymentHash != res.PaymentHash || last.AmountMsat != price {
		t.Errorf("last transfer %+v", last)
	}
	if st := prov.Stats(); st.Paid != 1 || st.Delivered != 1 {
		t.Errorf("provider stats %+v", st)
	}
}

func TestOverchargeRefusedThenNext(t *testing.T) {
	d := newDevnet(t)
	greedy := d.provider("greedy", 1_000, func(c *provider.Config) { c.OverchargeMsat = 500 })
	honest := d.provider("honest", 2_000, nil)
	ps, err := d.buyer.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Pubkey != greedy.Pubkey() || ps[1].Pubkey != honest.Pubkey() {
		t.Fatalf("discovered %+v", ps)
	}
	for _, nip90 := range []bool{true, false} {
		p := ps[0]
		p.NIP90 = nip90
		_, err = d.buyer.Buy(context.Background(), p, compute.Request{Prompt: prompt}, d.pay)
		if !errors.Is(err, compute.ErrInvoiceRefused) || !errors.Is(err, invoice.ErrAmountMismatch) {
			t.Fatalf("nip90=%v: want a refused invoice (amount mismatch), got %v", nip90, err)
		}
	}
	if got := d.balance("buyer"); got != buyerFunds {
		t.Fatalf("buyer paid something: balance %d", got)
	}

	res, err := d.buyer.BuyFirst(context.Background(), ps, compute.Request{Prompt: prompt}, d.pay)
	if err != nil {
		t.Fatal(err)
	}
	if res.Provider != honest.Pubkey() || res.CostMsat != 2_000 || d.balance("buyer") != buyerFunds-2_000 || d.balance("greedy") != 0 {
		t.Fatalf("result %+v, buyer %d, greedy %d", res, d.balance("buyer"), d.balance("greedy"))
	}
}

func TestSilentProviderTimesOut(t *testing.T) {
	d := newDevnet(t)
	d.buyer.Timeout = 1500 * time.Millisecond
	silent := d.provider("silent", 1_000, func(c *provider.Config) { c.Silent = true })
	p := discoverOne(t, d, silent.Pubkey())
	start := time.Now()
	res, err := d.buyer.Buy(context.Background(), p, compute.Request{Prompt: prompt}, d.pay)
	if !errors.Is(err, compute.ErrTimeout) || res != (compute.Result{}) {
		t.Fatalf("want ErrTimeout and no result, got %+v %v", res, err)
	}
	if el := time.Since(start); el < d.buyer.Timeout || el > 3*d.buyer.Timeout {
		t.Errorf("timed out after %s", el)
	}
	if d.balance("buyer") != buyerFunds {
		t.Fatal("buyer paid a silent provider")
	}
}

// A provider that is paid but whose model fails: the buyer learns it paid for nothing.
func TestPaidNoResult(t *testing.T) {
	d := newDevnet(t)
	prov := d.provider("broken", 3_000, func(c *provider.Config) { c.Model = failing{} })
	p := discoverOne(t, d, prov.Pubkey())
	res, err := d.buyer.Buy(context.Background(), p, compute.Request{Prompt: prompt}, d.pay)
	if !errors.Is(err, compute.ErrPaidNoResult) || errors.Is(err, compute.ErrProviderError) {
		t.Fatalf("want ErrPaidNoResult only, got %v", err)
	}
	if res.CostMsat != 3_000 || len(res.PaymentHash) != 64 || res.Provider != prov.Pubkey() || res.Text != "" {
		t.Fatalf("result must carry the payment: %+v", res)
	}
	if d.balance("buyer") != buyerFunds-3_000 {
		t.Fatal("payment not as recorded")
	}
	// BuyFirst stops after a payment instead of paying the next provider too.
	other := d.provider("other", 3_000, nil)
	q := discoverOne(t, d, other.Pubkey())
	_, err = d.buyer.BuyFirst(context.Background(), []compute.Provider{p, q}, compute.Request{Prompt: prompt}, d.pay)
	if !errors.Is(err, compute.ErrPaidNoResult) || d.balance("other") != 0 {
		t.Fatalf("BuyFirst went on after paying: %v, other has %d", err, d.balance("other"))
	}
}

type failing struct{}

func (failing) Complete(context.Context, model.Request) (model.Reply, error) {
	return model.Reply{}, errors.New("GPU on fire")
}

// A buyer that claims to have paid but did not gets no result, on either protocol.
func TestUnpaidGetsNothing(t *testing.T) {
	d := newDevnet(t)
	// 2 s: BOLT11 timestamps are whole seconds, so a 1 s invoice may look expired at once.
	prov := d.provider("strict", 2_000, func(c *provider.Config) { c.InvoiceExpiry = 2 * time.Second })
	p := discoverOne(t, d, prov.Pubkey())
	liar := func(context.Context, string, int64) (string, error) { return strings.Repeat("0", 64), nil }
	t.Run("protocols", func(t *testing.T) {
		for _, nip90 := range []bool{true, false} {
			t.Run(map[bool]string{true: "nip90", false: "nip28"}[nip90], func(t *testing.T) {
				t.Parallel()
				p := p
				p.NIP90 = nip90
				res, err := d.buyer.Buy(context.Background(), p, compute.Request{Prompt: prompt}, liar)
				if !errors.Is(err, compute.ErrPaidNoResult) || res.Text != "" {
					t.Fatalf("unpaid buyer got %+v %v", res, err)
				}
				if !strings.Contains(err.Error(), "payment not received") {
					t.Errorf("provider's reason missing: %v", err)
				}
			})
		}
	})
	if st := prov.Stats(); st.Delivered != 0 || st.Unpaid != 2 || st.Paid != 0 {
		t.Fatalf("stats %+v", st)
	}
	if d.balance("strict") != 0 {
		t.Fatal("money appeared")
	}
}

// The provider's price is higher than the buyer believes: it refuses the bid, the buyer learns
// it as a provider error and BuyFirst moves on.
func TestProviderErrorMovesOn(t *testing.T) {
	d := newDevnet(t)
	dear := d.provider("dear", 9_000, nil)
	cheap := d.provider("cheap", 4_000, nil)
	p := discoverOne(t, d, dear.Pubkey())
	p.PriceMsat = 1_000 // stale announcement
	q := discoverOne(t, d, cheap.Pubkey())
	res, err := d.buyer.BuyFirst(context.Background(), []compute.Provider{p, q}, compute.Request{Prompt: prompt}, d.pay)
	if err != nil || res.Provider != cheap.Pubkey() {
		t.Fatalf("%+v %v", res, err)
	}
	_, err = d.buyer.Buy(context.Background(), p, compute.Request{Prompt: prompt}, d.pay)
	if !errors.Is(err, compute.ErrProviderError) || !strings.Contains(err.Error(), "bid below price") {
		t.Fatalf("want ErrProviderError (bid below price), got %v", err)
	}
	_, err = d.buyer.BuyFirst(context.Background(), []compute.Provider{p, p}, compute.Request{Prompt: prompt}, d.pay)
	if !errors.Is(err, compute.ErrProviderError) || strings.Count(err.Error(), "bid below price") != 2 {
		t.Fatalf("want both errors joined, got %v", err)
	}
	if d.balance("buyer") != buyerFunds-4_000 {
		t.Fatal("wrong spend")
	}
}

func TestBuyRefusesBeforeAsking(t *testing.T) {
	d := newDevnet(t)
	p := compute.Provider{Pubkey: strings.Repeat("ab", 32), PriceMsat: 5_000, NIP90: true}
	cases := []struct {
		r    compute.Request
		want error
	}{
		{compute.Request{Prompt: "x", BidMsat: 4_000}, invoice.ErrOverBid},
		{compute.Request{Prompt: "x", BudgetMsat: 4_999}, invoice.ErrOverBudget},
		{compute.Request{Prompt: " "}, compute.ErrBadRequest},
		{compute.Request{Prompt: "x", MaxTokens: -1}, compute.ErrBadRequest},
	}
	for _, c := range cases {
		if _, err := d.buyer.Buy(context.Background(), p, c.r, d.pay); !errors.Is(err, c.want) {
			t.Errorf("%+v: got %v, want %v", c.r, err, c.want)
		}
	}
	if _, err := d.buyer.BuyFirst(context.Background(), nil, compute.Request{Prompt: "x"}, d.pay); !errors.Is(err, compute.ErrNoProviders) {
		t.Errorf("no providers: %v", err)
	}
	bad := *d.buyer
	bad.Network = ""
	if _, err := bad.Buy(context.Background(), p, compute.Request{Prompt: "x"}, d.pay); !errors.Is(err, compute.ErrBadRequest) {
		t.Errorf("no network: %v", err)
	}
}

func TestDiscover(t *testing.T) {
	d := newDevnet(t)
	b := d.provider("bravo", 3_000, nil)
	a := d.provider("alpha", 2_000, nil)
	// Handlers that must be skipped: unpriced, other network, another job kind.
	for _, tags := range []nostr.Tags{
		{{"d", "x"}, {"k", "5050"}},
		{{"d", "y"}, {"k", "5050"}, {"price", "1", "per-request", "msats"}, {"network", "mainnet"}},
		{{"d", "z"}, {"k", "5100"}, {"price", "1", "per-request", "msats"}},
	} {
		ev := nostr.Event{Kind: 31990, CreatedAt: nostr.Now(), Tags: tags, Content: `{"name":"junk"}`}
		ev.Sign(nostr.GeneratePrivateKey())
		for r := range d.pool.PublishMany(context.Background(), []string{d.url}, ev) {
			if r.Error != nil {
				t.Fatal(r.Error)
			}
		}
	}
	ps, err := d.buyer.Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Pubkey != a.Pubkey() || ps[1].Pubkey != b.Pubkey() {
		t.Fatalf("want alpha then bravo, got %+v", ps)
	}
	got := ps[0]
	if got.Name != "alpha" || got.PriceMsat != 2_000 || got.Network != "regtest" || got.Channel != a.Channel() ||
		len(got.Models) != 1 || got.Models[0] != "builtin" || len(got.Relays) != 1 || got.Relays[0] != d.url ||
		!got.NIP90 || !got.NIP28 {
		t.Fatalf("parsed %+v", got)
	}
}
