package compute_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/compute"
	"github.com/openagents/runtime/pkg/invoice"
	"github.com/openagents/runtime/pkg/nipsa"
)

// scripted is a hand-written NIP-90 peer on the real relay, for wire shapes the reference
// provider does not produce: it answers one request with the events script returns, then
// delivers "ok" once its devln invoice is settled.
func (d *devnet) scripted(t *testing.T, price int64, script func(req *nostr.Event, bolt11 string) []nostr.Event) compute.Provider {
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	acct := d.ledger.Account("scripted")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	eose := make(chan struct{})
	reqs := d.pool.SubscribeManyNotifyEOSE(ctx, []string{d.url}, nostr.Filter{Kinds: []int{nipsa.KindTextGeneration}, Tags: nostr.TagMap{"p": {pk}}}, eose)
	<-eose
	go func() {
		for ie := range reqs {
			inv, err := acct.MakeInvoice(ctx, price, "scripted", 0)
			if err != nil {
				t.Error(err)
				return
			}
			for _, ev := range script(ie.Event, inv.Bolt11) {
				ev.CreatedAt = nostr.Now()
				if ev.PubKey == "" {
					ev.Sign(sk)
				}
				for range d.pool.PublishMany(ctx, []string{d.url}, ev) {
				}
			}
			if _, err := acct.WaitSettled(ctx, inv.PaymentHash); err != nil {
				return
			}
			res := nostr.Event{Kind: nipsa.KindTextGenResult, CreatedAt: nostr.Now(), Content: "ok",
				Tags: nostr.Tags{{"e", ie.Event.ID}, {"p", ie.Event.PubKey}}}
			res.Sign(sk)
			for range d.pool.PublishMany(ctx, []string{d.url}, res) {
			}
		}
	}()
	return compute.Provider{Pubkey: pk, Name: "scripted", PriceMsat: price, Network: "regtest", NIP90: true}
}

func feedback(req *nostr.Event, content string, tags ...nostr.Tag) nostr.Event {
	return nostr.Event{Kind: nipsa.KindJobFeedback, Content: content,
		Tags: append(nostr.Tags{{"e", req.ID}, {"p", req.PubKey}}, tags...)}
}

func TestBolt11InFeedbackContent(t *testing.T) {
	d := newDevnet(t)
	p := d.scripted(t, 1_000, func(req *nostr.Event, bolt11 string) []nostr.Event {
		return []nostr.Event{feedback(req, "please pay lightning:"+bolt11+" thanks", nostr.Tag{"status", "payment-required"})}
	})
	res, err := d.buyer.Buy(context.Background(), p, compute.Request{Prompt: "x"}, d.pay)
	if err != nil || res.Text != "ok" || res.CostMsat != 1_000 || d.balance("scripted") != 1_000 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestAmountTagMustMatchInvoice(t *testing.T) {
	d := newDevnet(t)
	p := d.scripted(t, 1_000, func(req *nostr.Event, bolt11 string) []nostr.Event {
		return []nostr.Event{feedback(req, "", nostr.Tag{"status", "payment-required"}, nostr.Tag{"amount", "999", bolt11})}
	})
	_, err := d.buyer.Buy(context.Background(), p, compute.Request{Prompt: "x"}, d.pay)
	if !errors.Is(err, compute.ErrInvoiceRefused) || !errors.Is(err, invoice.ErrAmountMismatch) || d.balance("buyer") != buyerFunds {
		t.Fatalf("want refusal, nothing paid: %v", err)
	}
}

// Anyone can publish feedback about a request; only the provider's invoice is paid.
func TestImpostorInvoiceIgnored(t *testing.T) {
	d := newDevnet(t)
	thief := d.ledger.Account("thief")
	thiefKey := nostr.GeneratePrivateKey()
	p := d.scripted(t, 1_000, func(req *nostr.Event, bolt11 string) []nostr.Event {
		stolen, err := thief.MakeInvoice(context.Background(), 1_000, "gimme", 0)
		if err != nil {
			t.Error(err)
		}
		fake := feedback(req, "", nostr.Tag{"status", "payment-required"}, nostr.Tag{"amount", "1000", stolen.Bolt11})
		fake.CreatedAt = nostr.Now()
		fake.Sign(thiefKey)
		return []nostr.Event{fake, feedback(req, "", nostr.Tag{"status", "payment-required"}, nostr.Tag{"amount", "1000", bolt11})}
	})
	res, err := d.buyer.Buy(context.Background(), p, compute.Request{Prompt: "x"}, d.pay)
	if err != nil || res.Text != "ok" || d.balance("thief") != 0 || d.balance("scripted") != 1_000 {
		t.Fatalf("%+v %v thief=%d", res, err, d.balance("thief"))
	}
}

// A payment-required without any bolt11 (e.g. a lightning address) cannot be checked: refused.
func TestPaymentRequiredWithoutBolt11(t *testing.T) {
	d := newDevnet(t)
	p := d.scripted(t, 1_000, func(req *nostr.Event, _ string) []nostr.Event {
		return []nostr.Event{feedback(req, "pay me@example.com", nostr.Tag{"status", "payment-required"}, nostr.Tag{"amount", "1000"})}
	})
	_, err := d.buyer.Buy(context.Background(), p, compute.Request{Prompt: "x"}, d.pay)
	if !errors.Is(err, compute.ErrInvoiceRefused) || !strings.Contains(err.Error(), "without a bolt11") {
		t.Fatalf("%v", err)
	}
}
