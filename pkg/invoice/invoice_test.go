package invoice_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/invoice"
)

// Published examples from BOLT #11 ("Examples"), signed by the spec's node key.
const (
	// "Please send $3 for a cup of coffee to the same peer, within one minute"
	specCoffee = "lnbc2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpuaztrnwngzn3kdzw5hydlzf03qdgm2hdq27cqv3agm2awhz5se903vruatfhq77w3ls4evs3ch9zw97j25emudupq63nyw24cg27h2rspfj9srp"
	// "The same, on testnet, with a fallback address" (description by hash)
	specTestnet = "lntb20m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqhp58yjmdan79s6qqdhdzgynm4zwqd5d7xmw5fk98klysy043l2ahrqsfpp3x9et2e20v6pu37c5d9vax37wxq72un98k6vcx9fz94w0qf237cm2rqv9pmn5lnexfvf5579slr4zq3u8kmczecytdx0xg9rwzngp7e6guwqpqlhssu04sucpnz4axcv2dstmknqq6jsk2l"
	specPayee   = "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad"
	specHash    = "0001020304050607080900010203040506070809000102030405060708090102"
)

var specTime = time.Unix(1496314658, 0)

func TestDecodeSpecExamples(t *testing.T) {
	d, err := invoice.Decode(specCoffee)
	if err != nil {
		t.Fatal(err)
	}
	want := invoice.Decoded{PaymentHash: specHash, AmountMsat: 250_000_000, Network: "mainnet",
		CreatedAt: specTime, ExpiresAt: specTime.Add(time.Minute), Description: "1 cup coffee", Payee: specPayee}
	if !same(d, want) {
		t.Fatalf("got %+v\nwant %+v", d, want)
	}
	// Case and a lightning: scheme do not matter.
	if d2, err := invoice.Decode("  LIGHTNING:" + strings.ToUpper(specCoffee)); err != nil || !same(d2, want) {
		t.Fatalf("upper case: %+v %v", d2, err)
	}

	d, err = invoice.Decode(specTestnet)
	if err != nil {
		t.Fatal(err)
	}
	if d.Network != "testnet" || d.AmountMsat != 2_000_000_000 || d.Payee != specPayee || d.Description != "" ||
		d.DescriptionHash != "3925b6f67e2c340036ed12093dd44e0368df1b6ea26c53dbe4811f58fd5db8c1" ||
		!d.ExpiresAt.Equal(specTime.Add(time.Hour)) {
		t.Fatalf("testnet: %+v", d)
	}
}

func same(a, b invoice.Decoded) bool {
	return a.PaymentHash == b.PaymentHash && a.AmountMsat == b.AmountMsat && a.Network == b.Network &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt) && a.Description == b.Description &&
		a.Payee == b.Payee && a.DescriptionHash == b.DescriptionHash
}

func TestDecodeRejects(t *testing.T) {
	flipped := []byte(specCoffee)
	flipped[40] ^= 1 // breaks the bech32 checksum
	for name, s := range map[string]string{
		"empty":          "",
		"not an invoice": "hello",
		"bitcoin addr":   "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
		"unknown net":    "lnxy2500u1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypq",
		"bad checksum":   string(flipped),
		"truncated":      specCoffee[:len(specCoffee)-10],
	} {
		if _, err := invoice.Decode(s); !errors.Is(err, invoice.ErrDecode) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0)
	l := devln.New(devln.Options{Now: func() time.Time { return now }})
	inv, err := l.Account("provider").MakeInvoice(ctx, 10_000, "job 42", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ok := invoice.Expect{QuoteMsat: 10_000, BidMsat: 12_000, BudgetMsat: 50_000, Network: "regtest", Now: now}
	d, err := invoice.Check(inv.Bolt11, ok)
	if err != nil {
		t.Fatal(err)
	}
	if d.PaymentHash != inv.PaymentHash || d.AmountMsat != 10_000 || d.Description != "job 42" || d.Payee != l.NodePubkey() {
		t.Fatalf("decoded %+v", d)
	}

	with := func(f func(*invoice.Expect)) invoice.Expect { e := ok; f(&e); return e }
	cases := []struct {
		name   string
		bolt11 string
		e      invoice.Expect
		want   error
		reason string
	}{
		{"no checks but network", inv.Bolt11, invoice.Expect{Network: "regtest", Now: now}, nil, ""},
		{"exactly at bid and budget", inv.Bolt11, with(func(e *invoice.Expect) { e.BidMsat, e.BudgetMsat = 10_000, 10_000 }), nil, ""},
		{"garbage", "lnbcrt1garbage", ok, invoice.ErrDecode, "decode"},
		{"quote differs", inv.Bolt11, with(func(e *invoice.Expect) { e.QuoteMsat = 9_999 }), invoice.ErrAmountMismatch, "amount_mismatch"},
		{"over bid", inv.Bolt11, with(func(e *invoice.Expect) { e.QuoteMsat, e.BidMsat = 0, 9_000 }), invoice.ErrOverBid, "over_bid"},
		{"over budget", inv.Bolt11, with(func(e *invoice.Expect) { e.BudgetMsat = 9_999 }), invoice.ErrOverBudget, "over_budget"},
		{"wrong network", inv.Bolt11, with(func(e *invoice.Expect) { e.Network = "mainnet" }), invoice.ErrWrongNetwork, "wrong_network"},
		{"no network expected", inv.Bolt11, with(func(e *invoice.Expect) { e.Network = "" }), invoice.ErrWrongNetwork, "wrong_network"},
		{"expired at the second", inv.Bolt11, with(func(e *invoice.Expect) { e.Now = now.Add(10 * time.Minute) }), invoice.ErrExpired, "expired"},
		{"valid one second before", inv.Bolt11, with(func(e *invoice.Expect) { e.Now = now.Add(10*time.Minute - time.Second) }), nil, ""},
		// Order: quote is checked before network and expiry.
		{"quote before network", inv.Bolt11, with(func(e *invoice.Expect) { e.QuoteMsat, e.Network, e.Now = 1, "mainnet", now.Add(time.Hour) }), invoice.ErrAmountMismatch, "amount_mismatch"},
		{"bid before budget", inv.Bolt11, with(func(e *invoice.Expect) { e.QuoteMsat, e.BidMsat, e.BudgetMsat = 0, 1, 1 }), invoice.ErrOverBid, "over_bid"},
		{"network before expiry", inv.Bolt11, with(func(e *invoice.Expect) { e.Network, e.Now = "testnet", now.Add(time.Hour) }), invoice.ErrWrongNetwork, "wrong_network"},
		{"spec example on mainnet is expired now", specCoffee, invoice.Expect{QuoteMsat: 250_000_000, Network: "mainnet"}, invoice.ErrExpired, "expired"},
		{"spec example within its minute", specCoffee, invoice.Expect{QuoteMsat: 250_000_000, Network: "mainnet", Now: specTime.Add(59 * time.Second)}, nil, ""},
	}
	for _, c := range cases {
		_, err := invoice.Check(c.bolt11, c.e)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
		if got := invoice.Reason(err); got != c.reason {
			t.Errorf("%s: reason %q, want %q", c.name, got, c.reason)
		}
	}
	if invoice.Reason(errors.New("x")) != "other" {
		t.Error("reason of a foreign error")
	}
}

func TestCheckNoAmount(t *testing.T) {
	inv := amountless(t)
	_, err := invoice.Check(inv, invoice.Expect{Network: "regtest", Now: time.Unix(1_700_000_000, 0)})
	if !errors.Is(err, invoice.ErrNoAmount) || invoice.Reason(err) != "no_amount" {
		t.Fatalf("got %v", err)
	}
}
