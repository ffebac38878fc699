package nwc_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"

	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/nwc"
	"github.com/openagents/runtime/pkg/relay"
)

type env struct {
	relay  *relay.Relay
	ledger *devln.Ledger
	svc    *nwc.Service
	sk     string // wallet service key
	conn   nwc.URI
}

// start brings up a real relay and a Service in front of w (nil: a funded devln account).
func start(t *testing.T, w lightning.Wallet) *env {
	t.Helper()
	r, err := relay.Start(relay.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	l := devln.New(devln.Options{})
	if w == nil {
		if err := l.Faucet(context.Background(), "wallet", 100_000); err != nil {
			t.Fatal(err)
		}
		w = l.Account("wallet")
	}
	sk := nostr.GeneratePrivateKey()
	svc, err := nwc.NewService(sk, w, []string{r.URL()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("Run ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("service not ready")
	}
	conn, err := svc.NewConnection()
	if err != nil {
		t.Fatal(err)
	}
	return &env{relay: r, ledger: l, svc: svc, sk: sk, conn: conn}
}

func client(t *testing.T, u nwc.URI, timeout time.Duration) *nwc.Client {
	t.Helper()
	c, err := nwc.NewClient(u, nwc.ClientOptions{Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestWalletOverRelay(t *testing.T) {
	ctx := context.Background()
	e := start(t, nil)
	c := client(t, e.conn, 10*time.Second)
	bob := e.ledger.Account("bob")

	if n := c.Network(); n != "regtest" {
		t.Fatalf("network %q", n)
	}
	if b, err := c.Balance(ctx); err != nil || b != 100_000 {
		t.Fatalf("balance %d %v", b, err)
	}

	// Pay bob's invoice through NWC.
	inv, _ := bob.MakeInvoice(ctx, 30_000, "over nwc", time.Hour)
	p, err := c.PayInvoice(ctx, inv.Bolt11)
	if err != nil {
		t.Fatal(err)
	}
	pre, _ := hex.DecodeString(p.Preimage)
	if h := sha256.Sum256(pre); p.Status != lightning.PaymentSucceeded || hex.EncodeToString(h[:]) != inv.PaymentHash || p.AmountMsat != 30_000 {
		t.Fatalf("payment %+v", p)
	}
	if got, _ := bob.Balance(ctx); got != 30_000 {
		t.Fatalf("bob has %d", got)
	}
	if lp, err := c.LookupPayment(ctx, inv.PaymentHash); err != nil || lp.Status != lightning.PaymentSucceeded || lp.Preimage != p.Preimage {
		t.Fatalf("LookupPayment %+v %v", lp, err)
	}

	// Paying it again is a final failure, not an unknown outcome.
	again, err := c.PayInvoice(ctx, inv.Bolt11)
	if err != nil || again.Status != lightning.PaymentFailed || !strings.Contains(again.FailureReason, "already paid") {
		t.Fatalf("second pay %+v %v", again, err)
	}

	// Make an invoice through NWC, have bob pay it, look it up.
	mine, err := c.MakeInvoice(ctx, 5_000, "for bob", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if mine.AmountMsat != 5_000 || mine.Memo != "for bob" || mine.Settled || len(mine.PaymentHash) != 64 {
		t.Fatalf("made %+v", mine)
	}
	if got, err := c.LookupInvoice(ctx, mine.PaymentHash); err != nil || got.Settled {
		t.Fatalf("lookup unpaid %+v %v", got, err)
	}
	if _, err := bob.PayInvoice(ctx, mine.Bolt11); err != nil {
		t.Fatal(err)
	}
	got, err := c.LookupInvoice(ctx, mine.PaymentHash)
	if err != nil || !got.Settled || got.Preimage == "" || got.SettledAt.IsZero() {
		t.Fatalf("lookup paid %+v %v", got, err)
	}
	if b, _ := c.Balance(ctx); b != 100_000-30_000+5_000 {
		t.Fatalf("balance after %d", b)
	}

	// Refusals map to the lightning sentinels.
	big, _ := bob.MakeInvoice(ctx, 1_000_000, "too much", time.Hour)
	if _, err := c.PayInvoice(ctx, big.Bolt11); !errors.Is(err, lightning.ErrInsufficientBalance) {
		t.Fatalf("over balance: %v", err)
	}
	var ne *nwc.Error
	if _, err := c.LookupInvoice(ctx, strings.Repeat("ab", 32)); !errors.Is(err, lightning.ErrNotFound) || !errors.As(err, &ne) || ne.Code != nwc.CodeNotFound {
		t.Fatalf("unknown invoice: %v", err)
	}
	if _, err := c.PayInvoice(ctx, "lnbcrt1nonsense"); !errors.Is(err, lightning.ErrInvalidInvoice) {
		t.Fatalf("bad bolt11: %v", err)
	}
	if e.ledger.Total() != devln.DefaultSupply {
		t.Fatal("conservation")
	}
}

func TestUnauthorised(t *testing.T) {
	e := start(t, nil)
	stranger := e.conn
	stranger.Secret = nostr.GeneratePrivateKey()
	c := client(t, stranger, 10*time.Second)
	_, err := c.Balance(context.Background())
	var ne *nwc.Error
	if !errors.As(err, &ne) || ne.Code != nwc.CodeUnauthorized {
		t.Fatalf("got %v", err)
	}
	// A revoked client is a stranger too.
	pk, _ := e.conn.ClientPubkey()
	e.svc.Revoke(pk)
	if _, err := client(t, e.conn, 10*time.Second).Balance(context.Background()); !errors.As(err, &ne) || ne.Code != nwc.CodeUnauthorized {
		t.Fatalf("revoked: %v", err)
	}
}

// TestExpiredRequestIgnored: a pay_invoice past its expiration is dropped: no answer, no payment.
func TestExpiredRequestIgnored(t *testing.T) {
	ctx := context.Background()
	e := start(t, nil)
	ignored := make(chan [2]string, 4)
	nwc.SetIgnoredHook(e.svc, func(id, reason string) { ignored <- [2]string{id, reason} })

	inv, _ := e.ledger.Account("bob").MakeInvoice(ctx, 1000, "", time.Hour)
	ev := request(t, e, `{"method":"pay_invoice","params":{"invoice":"`+inv.Bolt11+`"}}`,
		nostr.Tag{"expiration", strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)})
	rr := connect(t, e.relay.URL())
	sub, err := rr.Subscribe(ctx, nostr.Filters{{Kinds: []int{nipsa.KindWalletResponse}, Tags: nostr.TagMap{"e": {ev.ID}}}})
	if err != nil {
		t.Fatal(err)
	}
	<-sub.EndOfStoredEvents
	if err := rr.Publish(ctx, ev); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-ignored:
		if got != [2]string{ev.ID, "expired"} {
			t.Fatalf("ignored %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("expired request was not dropped")
	}
	// handle has returned: nothing can be answered or paid for this request any more.
	select {
	case r := <-sub.Events:
		t.Fatalf("answered an expired request: %v", r)
	default:
	}
	if got, _ := e.ledger.Account("wallet").Balance(ctx); got != 100_000 {
		t.Fatalf("paid anyway: balance %d", got)
	}
}

// request builds a signed NIP-44 request from the connection's client key.
func request(t *testing.T, e *env, body string, extra ...nostr.Tag) nostr.Event {
	t.Helper()
	key, err := nip44.GenerateConversationKey(e.svc.Pubkey(), e.conn.Secret)
	if err != nil {
		t.Fatal(err)
	}
	content, err := nip44.Encrypt(body, key)
	if err != nil {
		t.Fatal(err)
	}
	ev := nostr.Event{Kind: nipsa.KindWalletRequest, CreatedAt: nostr.Now(), Content: content,
		Tags: append(nostr.Tags{{"p", e.svc.Pubkey()}, {"encryption", "nip44_v2"}}, extra...)}
	if err := ev.Sign(e.conn.Secret); err != nil {
		t.Fatal(err)
	}
	return ev
}

// unsure is a wallet that loses track of payments: its PayInvoice outcome is unknown.
type unsure struct{ *devln.Account }

func (u unsure) PayInvoice(ctx context.Context, bolt11 string) (lightning.Payment, error) {
	return lightning.Payment{}, lightning.ErrOutcomeUnknown
}

func TestRefusingWallet(t *testing.T) {
	ctx := context.Background()
	l := devln.New(devln.Options{})
	poor := l.Account("poor") // no funds
	e := start(t, poor)
	c := client(t, e.conn, 10*time.Second)
	inv, _ := l.Account("bob").MakeInvoice(ctx, 1000, "", time.Hour)
	if _, err := c.PayInvoice(ctx, inv.Bolt11); !errors.Is(err, lightning.ErrInsufficientBalance) {
		t.Fatalf("poor wallet: %v", err)
	}
	// An invoice from another network of nodes: the devnet has no route, a final failure.
	foreign, _ := devln.New(devln.Options{}).Account("x").MakeInvoice(ctx, 1, "", time.Hour)
	if p, err := c.PayInvoice(ctx, foreign.Bolt11); err != nil || p.Status != lightning.PaymentFailed {
		t.Fatalf("no route: %+v %v", p, err)
	}

	e2 := start(t, unsure{l.Account("unsure")})
	c2 := client(t, e2.conn, 10*time.Second)
	_, err := c2.PayInvoice(ctx, inv.Bolt11)
	var ne *nwc.Error
	if !errors.Is(err, lightning.ErrOutcomeUnknown) || !errors.As(err, &ne) || ne.Code != nwc.CodeInternal {
		t.Fatalf("unsure wallet: %v", err)
	}
}

// TestNoAnswer: a payment nobody answers is unknown, not failed; a request no service
// listens for is not delivered, so nothing can have been paid.
func TestNoAnswer(t *testing.T) {
	ctx := context.Background()
	r, err := relay.Start(relay.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wpk, _ := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	c := client(t, nwc.URI{WalletPubkey: wpk, Relays: []string{r.URL()}, Secret: nostr.GeneratePrivateKey()}, 500*time.Millisecond)
	inv, _ := devln.New(devln.Options{}).Account("x").MakeInvoice(ctx, 1000, "", time.Hour)
	if _, err := c.PayInvoice(ctx, inv.Bolt11); !errors.Is(err, nwc.ErrNotDelivered) || errors.Is(err, lightning.ErrOutcomeUnknown) {
		t.Fatalf("pay with nobody listening: %v", err)
	}

	// A silent listener: the relay delivers, nobody answers.
	rr := connect(t, r.URL())
	sub, err := rr.Subscribe(ctx, nostr.Filters{{Kinds: []int{nipsa.KindWalletRequest}}})
	if err != nil {
		t.Fatal(err)
	}
	<-sub.EndOfStoredEvents
	if _, err := c.PayInvoice(ctx, inv.Bolt11); !errors.Is(err, lightning.ErrOutcomeUnknown) {
		t.Fatalf("pay: %v", err)
	}
	req := <-sub.Events
	if exp := req.Tags.Find("expiration"); exp == nil {
		t.Fatal("request without expiration")
	}
	if _, err := c.Balance(ctx); !errors.Is(err, nwc.ErrTimeout) {
		t.Fatalf("balance: %v", err)
	}
}

// TestNIP04Fallback: a wallet whose info event lists only nip04 gets NIP-04 requests.
func TestNIP04Fallback(t *testing.T) {
	ctx := context.Background()
	e := start(t, nil)
	rr := connect(t, e.relay.URL())
	info := nostr.Event{Kind: nipsa.KindWalletInfo, CreatedAt: nostr.Now() + 1, Content: "get_balance",
		Tags: nostr.Tags{{"encryption", "nip04"}}}
	if err := info.Sign(e.sk); err != nil {
		t.Fatal(err)
	}
	if err := rr.Publish(ctx, info); err != nil {
		t.Fatal(err)
	}
	sub, err := rr.Subscribe(ctx, nostr.Filters{{Kinds: []int{nipsa.KindWalletRequest}, Tags: nostr.TagMap{"p": {e.svc.Pubkey()}}}})
	if err != nil {
		t.Fatal(err)
	}
	<-sub.EndOfStoredEvents
	c := client(t, e.conn, 10*time.Second)
	if b, err := c.Balance(ctx); err != nil || b != 100_000 {
		t.Fatalf("balance %d %v", b, err)
	}
	req := <-sub.Events
	if !strings.Contains(req.Content, "?iv=") || req.Tags.Find("encryption") != nil {
		t.Fatalf("request not NIP-04: %v", req)
	}
}

// connect opens a raw relay connection, ended by cancelling its context: go-nostr v0.52.0's
// Relay.Close races with its own writer goroutine under -race.
func connect(t *testing.T, url string) *nostr.Relay {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rr, err := nostr.RelayConnect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}
