package invoice_test

import (
	"errors"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/invoice"
)

func FuzzDecode(f *testing.F) {
	for _, s := range []string{specCoffee, specTestnet, amountless(f), "", "lnbcrt1", "lntbs1qq", "LNBC1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := invoice.Decode(s)
		if err != nil {
			if !errors.Is(err, invoice.ErrDecode) {
				t.Fatalf("error not ErrDecode: %v", err)
			}
			return
		}
		if len(d.PaymentHash) != 64 || len(d.Payee) != 66 || d.AmountMsat < 0 || d.ExpiresAt.Before(d.CreatedAt) {
			t.Fatalf("inconsistent decode %+v", d)
		}
		if _, ok := invoice.Params(d.Network); !ok {
			t.Fatalf("network %q", d.Network)
		}
	})
}

func FuzzCheck(f *testing.F) {
	f.Add(specCoffee, int64(250_000_000), int64(0), int64(0), "mainnet", int64(1496314660))
	f.Add(amountless(f), int64(0), int64(1), int64(1), "regtest", int64(0))
	f.Fuzz(func(t *testing.T, s string, quote, bid, budget int64, network string, now int64) {
		e := invoice.Expect{QuoteMsat: quote, BidMsat: bid, BudgetMsat: budget, Network: network, Now: time.Unix(now, 0)}
		d, err := invoice.Check(s, e)
		if err != nil {
			if invoice.Reason(err) == "other" {
				t.Fatalf("unlabelled refusal: %v", err)
			}
			return
		}
		// Accepted: every rule must actually hold.
		if d.AmountMsat <= 0 || quote > 0 && d.AmountMsat != quote || bid > 0 && d.AmountMsat > bid ||
			budget > 0 && d.AmountMsat > budget || d.Network != network || !e.Now.Before(d.ExpiresAt) {
			t.Fatalf("accepted %+v under %+v", d, e)
		}
	})
}
