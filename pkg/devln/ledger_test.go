package devln_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcsuite/btcd/chaincfg"
	"github.com/lightningnetwork/lnd/zpay32"

	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/invoice"
	"github.com/openagents/runtime/pkg/lightning"
)

// clock is a settable fake time source, so expiry is tested without sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type wallet interface {
	lightning.Wallet
	WaitSettled(ctx context.Context, paymentHash string) (lightning.Invoice, error)
}

// backends run the same behaviour table against the in-process Account and the HTTP Client.
var backends = []struct {
	name string
	open func(t *testing.T, l *devln.Ledger) func(account string) wallet
}{
	{"inprocess", func(t *testing.T, l *devln.Ledger) func(string) wallet {
		return func(name string) wallet { return l.Account(name) }
	}},
	{"http", func(t *testing.T, l *devln.Ledger) func(string) wallet {
		srv := httptest.NewServer(l.Handler())
		t.Cleanup(srv.Close)
		return func(name string) wallet { return devln.NewClient(srv.URL, name) }
	}},
}

func TestBehaviour(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			clk := &clock{t: time.Unix(1_700_000_000, 0)}
			l := devln.New(devln.Options{Now: clk.Now})
			supply := l.Total()
			w := b.open(t, l)
			alice, bob := w("alice"), w("bob")
			if err := l.Faucet(ctx, "alice", 100_000); err != nil {
				t.Fatal(err)
			}
			if got := alice.Network(); got != "regtest" {
				t.Fatalf("network %q", got)
			}

			inv, err := bob.MakeInvoice(ctx, 21_000, "a coffee", 10*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			checkInvoice(t, l, inv, 21_000, "a coffee", clk.Now().Add(10*time.Minute))

			// A waiter started before the payment wakes on it.
			waited := make(chan lightning.Invoice, 1)
			go func() {
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				got, err := bob.WaitSettled(wctx, inv.PaymentHash)
				if err != nil {
					t.Errorf("WaitSettled: %v", err)
				}
				waited <- got
			}()

			p, err := alice.PayInvoice(ctx, inv.Bolt11)
			if err != nil {
				t.Fatal(err)
			}
			if p.Status != lightning.PaymentSucceeded || p.AmountMsat != 21_000 || p.FeeMsat != 0 || p.PaymentHash != inv.PaymentHash {
				t.Fatalf("payment %+v", p)
			}
			pre, _ := hex.DecodeString(p.Preimage)
			if h := sha256.Sum256(pre); hex.EncodeToString(h[:]) != inv.PaymentHash {
				t.Fatalf("sha256(preimage) %x != hash %s", h, inv.PaymentHash)
			}
			if got := <-waited; !got.Settled || got.Preimage != p.Preimage {
				t.Fatalf("waited invoice %+v", got)
			}
			wantBalance(t, alice, 79_000)
			wantBalance(t, bob, 21_000)

			if got, err := bob.LookupInvoice(ctx, inv.PaymentHash); err != nil || !got.Settled || got.Preimage != p.Preimage || got.SettledAt.IsZero() {
				t.Fatalf("LookupInvoice %+v %v", got, err)
			}
			if got, err := alice.LookupPayment(ctx, inv.PaymentHash); err != nil || got != p {
				t.Fatalf("LookupPayment %+v %v, want %+v", got, err, p)
			}
			// Each side sees only its own: bob did not pay it, alice did not issue it.
			if _, err := bob.LookupPayment(ctx, inv.PaymentHash); !errors.Is(err, lightning.ErrNotFound) {
				t.Fatalf("bob LookupPayment: %v", err)
			}
			if _, err := alice.LookupInvoice(ctx, inv.PaymentHash); !errors.Is(err, lightning.ErrNotFound) {
				t.Fatalf("alice LookupInvoice: %v", err)
			}
			if _, err := alice.LookupInvoice(ctx, "zz"); !errors.Is(err, lightning.ErrNotFound) {
				t.Fatalf("malformed hash: %v", err)
			}

			// Refusals, each with its own sentinel and no money moved.
			refuse := func(name string, payer wallet, bolt11 string, want error) {
				t.Helper()
				before := l.Balances()
				_, err := payer.PayInvoice(ctx, bolt11)
				if !errors.Is(err, want) {
					t.Fatalf("%s: got %v, want %v", name, err, want)
				}
				for _, other := range []error{lightning.ErrAlreadyPaid, lightning.ErrExpired, lightning.ErrInsufficientBalance, lightning.ErrNoRoute, lightning.ErrInvalidInvoice, lightning.ErrOutcomeUnknown} {
					if other != want && errors.Is(err, other) {
						t.Fatalf("%s: %v also matches %v", name, err, other)
					}
				}
				after := l.Balances()
				for n, v := range before {
					if after[n] != v {
						t.Fatalf("%s: balance of %s moved %d -> %d", name, n, v, after[n])
					}
				}
			}
			refuse("double pay", alice, inv.Bolt11, lightning.ErrAlreadyPaid)

			big, _ := bob.MakeInvoice(ctx, 1_000_000, "too much", time.Hour)
			refuse("over balance", alice, big.Bolt11, lightning.ErrInsufficientBalance)

			refuse("not issued here", alice, foreignInvoice(t), lightning.ErrNoRoute)
			other := devln.New(devln.Options{})
			oinv, _ := other.Account("x").MakeInvoice(ctx, 1000, "", time.Hour)
			refuse("other ledger", alice, oinv.Bolt11, lightning.ErrNoRoute)
			refuse("garbage", alice, "lnbcrt1notaninvoice", lightning.ErrInvalidInvoice)

			short, _ := bob.MakeInvoice(ctx, 1000, "short", time.Minute)
			clk.Add(time.Minute)
			refuse("expired", alice, short.Bolt11, lightning.ErrExpired)

			if _, err := bob.MakeInvoice(ctx, 0, "", time.Hour); !errors.Is(err, lightning.ErrInvalidInvoice) {
				t.Fatalf("zero amount invoice: %v", err)
			}

			// Paying yourself works and conserves.
			self, _ := alice.MakeInvoice(ctx, 5000, "self", time.Hour)
			if _, err := alice.PayInvoice(ctx, self.Bolt11); err != nil {
				t.Fatal(err)
			}
			wantBalance(t, alice, 79_000)

			// WaitSettled honours ctx and unknown hashes.
			open, _ := bob.MakeInvoice(ctx, 1000, "never paid", time.Hour)
			wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			if _, err := bob.WaitSettled(wctx, open.PaymentHash); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("WaitSettled unpaid: %v", err)
			}
			cancel()
			if _, err := alice.WaitSettled(ctx, open.PaymentHash); !errors.Is(err, lightning.ErrNotFound) {
				t.Fatalf("WaitSettled foreign: %v", err)
			}

			if l.Total() != supply {
				t.Fatalf("total %d != supply %d", l.Total(), supply)
			}
			tr := l.Transfers()
			if len(tr) != 3 || tr[1].From != "alice" || tr[1].To != "bob" || tr[1].AmountMsat != 21_000 || tr[1].PaymentHash != inv.PaymentHash {
				t.Fatalf("transfers %+v", tr)
			}
		})
	}
}

func checkInvoice(t *testing.T, l *devln.Ledger, inv lightning.Invoice, amt int64, memo string, expires time.Time) {
	t.Helper()
	zi, err := zpay32.Decode(inv.Bolt11, &chaincfg.RegressionNetParams)
	if err != nil {
		t.Fatalf("zpay32: %v", err)
	}
	if zi.MilliSat == nil || int64(*zi.MilliSat) != amt || hex.EncodeToString(zi.PaymentHash[:]) != inv.PaymentHash {
		t.Fatalf("zpay32 decoded %+v", zi)
	}
	d, err := invoice.Decode(inv.Bolt11)
	if err != nil {
		t.Fatal(err)
	}
	if d.Network != "regtest" || d.AmountMsat != amt || d.PaymentHash != inv.PaymentHash || d.Description != memo ||
		!d.ExpiresAt.Equal(expires) || !inv.ExpiresAt.Equal(expires) || d.Payee != l.NodePubkey() || inv.Bolt11[:8] != "lnbcrt21" {
		t.Fatalf("decoded %+v from %+v", d, inv)
	}
}

func wantBalance(t *testing.T, w wallet, want int64) {
	t.Helper()
	got, err := w.Balance(context.Background())
	if err != nil || got != want {
		t.Fatalf("balance %d %v, want %d", got, err, want)
	}
}

// foreignInvoice is a valid regtest invoice signed by another node, unknown to the ledger under
// test.
func foreignInvoice(t *testing.T) string {
	t.Helper()
	l := devln.New(devln.Options{})
	inv, err := l.Account("elsewhere").MakeInvoice(context.Background(), 250_000, "1 cup coffee", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return inv.Bolt11
}

// TestConservation: concurrent payments among ten accounts never create or destroy money and
// never drive a balance negative; a contested invoice is paid exactly once.
func TestConservation(t *testing.T) {
	ctx := context.Background()
	l := devln.New(devln.Options{})
	supply := l.Total()
	const n = 10
	for i := range n {
		if err := l.Faucet(ctx, fmt.Sprint("acct", i), 50_000); err != nil {
			t.Fatal(err)
		}
	}
	contested, _ := l.Account("acct0").MakeInvoice(ctx, 1000, "contested", time.Hour)
	var ok, paidContested atomic.Int64
	var wg sync.WaitGroup
	for g := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 8 {
				payee := l.Account(fmt.Sprint("acct", r.IntN(n)))
				payer := l.Account(fmt.Sprint("acct", r.IntN(n)))
				inv, err := payee.MakeInvoice(ctx, 1+r.Int64N(20_000), "", time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				switch _, err := payer.PayInvoice(ctx, inv.Bolt11); {
				case err == nil:
					ok.Add(1)
				case !errors.Is(err, lightning.ErrInsufficientBalance):
					t.Error(err)
				}
			}
			if _, err := l.Account(fmt.Sprint("acct", g%n)).PayInvoice(ctx, contested.Bolt11); err == nil {
				paidContested.Add(1)
			} else if !errors.Is(err, lightning.ErrAlreadyPaid) && !errors.Is(err, lightning.ErrInsufficientBalance) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if l.Total() != supply {
		t.Fatalf("total %d != supply %d", l.Total(), supply)
	}
	for name, b := range l.Balances() {
		if b < 0 {
			t.Fatalf("%s negative: %d", name, b)
		}
	}
	if paidContested.Load() != 1 {
		t.Fatalf("contested invoice paid %d times", paidContested.Load())
	}
	if ok.Load() == 0 {
		t.Fatal("no payment succeeded")
	}
	if got := int64(len(l.Transfers())); got != n+ok.Load()+1 {
		t.Fatalf("%d transfers, want %d", got, n+ok.Load()+1)
	}
}

// TestClientOutcomeUnknown: a pay request that gets no answer is in flight, not failed.
func TestClientOutcomeUnknown(t *testing.T) {
	l := devln.New(devln.Options{})
	inv, _ := l.Account("bob").MakeInvoice(context.Background(), 1000, "", time.Hour)
	srv := httptest.NewServer(l.Handler())
	c := devln.NewClient(srv.URL, "alice")
	srv.Close()
	_, err := c.PayInvoice(context.Background(), inv.Bolt11)
	if !errors.Is(err, lightning.ErrOutcomeUnknown) {
		t.Fatalf("got %v", err)
	}
	if _, err := c.Balance(context.Background()); err == nil {
		t.Fatal("balance from a closed server")
	}
	if c.Network() != "" {
		t.Fatal("network known without a server")
	}
}

func TestFaucet(t *testing.T) {
	ctx := context.Background()
	l := devln.New(devln.Options{Supply: 1000})
	if err := l.Faucet(ctx, "a", 0); err == nil {
		t.Fatal("zero faucet accepted")
	}
	if err := l.Faucet(ctx, "a", 1001); !errors.Is(err, lightning.ErrInsufficientBalance) {
		t.Fatalf("overdrawn faucet: %v", err)
	}
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	c := devln.NewClient(srv.URL, "a")
	if err := c.Faucet(ctx, 600); err != nil {
		t.Fatal(err)
	}
	wantBalance(t, c, 600)
	if l.Total() != 1000 {
		t.Fatal("faucet broke conservation")
	}
}
