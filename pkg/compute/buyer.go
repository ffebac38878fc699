package compute

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/invoice"
	"github.com/openagents/runtime/pkg/nipsa"
)

// Pay pays a checked BOLT11 invoice of amountMsat and returns the preimage (hex). An error
// means the payment failed or its outcome is unknown; Buy never retries it.
type Pay func(ctx context.Context, bolt11 string, amountMsat int64) (preimage string, err error)

// Request is one purchase.
type Request struct {
	Prompt    string
	MaxTokens int
	Model     string
	// BidMsat is the most the buyer pays (the NIP-90 bid tag); 0 bids the announced price.
	BidMsat int64
	// BudgetMsat is what the caller may still spend; 0 means the caller checks no budget here.
	BudgetMsat int64
}

// Result of a purchase. On ErrPaidNoResult and ErrPayFailed it still carries Provider,
// CostMsat and PaymentHash, so the caller can record and reconcile the payment.
type Result struct {
	Text        string
	Provider    string // hex pubkey
	CostMsat    int64
	PaymentHash string
	TokensIn    int
	TokensOut   int
}

// Errors Buy returns; match with errors.Is.
var (
	// ErrInvoiceRefused wraps the pkg/invoice check that failed. Nothing was paid.
	ErrInvoiceRefused = errors.New("compute: invoice refused")
	// ErrTimeout: no invoice or result within Buyer.Timeout. Nothing was paid.
	ErrTimeout = errors.New("compute: provider did not answer in time")
	// ErrProviderError: the provider answered with an error before any payment.
	ErrProviderError = errors.New("compute: provider error")
	// ErrPaidNoResult: paid, but no result came. The money is gone; the caller must record it.
	ErrPaidNoResult = errors.New("compute: paid but no result")
	// ErrPayFailed: the Pay func failed. Its outcome may be unknown: reconcile, never retry.
	ErrPayFailed   = errors.New("compute: payment failed")
	ErrNoProviders = errors.New("compute: no providers")
	// ErrPublish: no relay accepted the request.
	ErrPublish    = errors.New("compute: request not published")
	ErrBadRequest = errors.New("compute: bad request")
)

// DefaultTimeout applies when Buyer.Timeout is zero.
const DefaultTimeout = 60 * time.Second

// Buyer buys compute with its own Nostr key.
type Buyer struct {
	SecretKey string // hex; signs requests
	Pool      *nostr.SimplePool
	Relays    []string
	Network   string // the BOLT11 network the buyer pays on; invoices for others are refused
	// Timeout bounds each wait: for the invoice, then again for the result after paying.
	Timeout time.Duration
}

func (b *Buyer) timeout() time.Duration {
	if b.Timeout > 0 {
		return b.Timeout
	}
	return DefaultTimeout
}

// Discover fetches kind 31990 handlers for kind 5050 from the buyer's relays and returns those
// it can price, on the buyer's network (or not saying), cheapest first.
func (b *Buyer) Discover(ctx context.Context) ([]Provider, error) {
	if b.Pool == nil || len(b.Relays) == 0 {
		return nil, fmt.Errorf("%w: Buyer needs a Pool and Relays", ErrBadRequest)
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout())
	defer cancel()
	type key struct{ pubkey, d string }
	latest := map[key]*nostr.Event{}
	f := nostr.Filter{Kinds: []int{nipsa.KindHandlerInfo}, Tags: nostr.TagMap{"k": {fmt.Sprint(nipsa.KindTextGeneration)}}}
	for ie := range b.Pool.FetchMany(ctx, slices.Clone(b.Relays), f) {
		k := key{ie.Event.PubKey, ie.Event.Tags.GetD()}
		if prev, ok := latest[k]; !ok || ie.Event.CreatedAt > prev.CreatedAt {
			latest[k] = ie.Event
		}
	}
	if err := ctx.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	var out []Provider
	seen := map[string]bool{}
	for _, ev := range latest {
		p, err := ParseHandler(ev)
		if err != nil {
			continue
		}
		if b.Network != "" && p.Network != "" && p.Network != b.Network {
			continue
		}
		// One offer per provider: its cheapest handler.
		if seen[p.Pubkey] {
			i := slices.IndexFunc(out, func(q Provider) bool { return q.Pubkey == p.Pubkey })
			if p.PriceMsat < out[i].PriceMsat {
				out[i] = p
			}
			continue
		}
		seen[p.Pubkey] = true
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Provider) int {
		return cmp.Or(cmp.Compare(a.PriceMsat, b.PriceMsat), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Pubkey, b.Pubkey))
	})
	return out, nil
}

// Buy buys one completion from p: over NIP-90 when p speaks it, else in p's NIP-28 channel.
// The invoice is checked with invoice.Check against p's announced price, the bid, the budget
// and the buyer's network before pay is called, and pay is called at most once.
func (b *Buyer) Buy(ctx context.Context, p Provider, r Request, pay Pay) (Result, error) {
	if err := b.validate(p, r, pay); err != nil {
		return Result{}, err
	}
	bid := r.BidMsat
	if bid == 0 {
		bid = p.PriceMsat
	}
	// The announced price already tells whether an invoice could pass; do not ask for one.
	if p.PriceMsat > bid {
		return Result{}, fmt.Errorf("%w: %w: announced %d msat, bid %d msat", ErrInvoiceRefused, invoice.ErrOverBid, p.PriceMsat, bid)
	}
	if r.BudgetMsat > 0 && p.PriceMsat > r.BudgetMsat {
		return Result{}, fmt.Errorf("%w: %w: announced %d msat, budget %d msat", ErrInvoiceRefused, invoice.ErrOverBudget, p.PriceMsat, r.BudgetMsat)
	}
	relays := b.relaysFor(p)
	s := &session{b: b, p: p, r: r, bid: bid, pay: pay, relays: relays, res: Result{Provider: p.Pubkey}}
	switch {
	case p.NIP90:
		return s.nip90(ctx)
	case p.NIP28:
		return s.nip28(ctx)
	}
	return Result{}, fmt.Errorf("%w: provider speaks neither NIP-90 nor NIP-28", ErrBadRequest)
}

// BuyFirst tries providers in order and moves to the next only when nothing was paid and the
// failure was the provider's (refused invoice, timeout, provider error). It returns the first
// result, or every provider's error joined.
func (b *Buyer) BuyFirst(ctx context.Context, providers []Provider, r Request, pay Pay) (Result, error) {
	if len(providers) == 0 {
		return Result{}, ErrNoProviders
	}
	var errs []error
	for _, p := range providers {
		res, err := b.Buy(ctx, p, r, pay)
		if err == nil {
			return res, nil
		}
		errs = append(errs, fmt.Errorf("provider %s: %w", short(p.Pubkey), err))
		moveOn := errors.Is(err, ErrInvoiceRefused) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrProviderError)
		if !moveOn || errors.Is(err, ErrPaidNoResult) || errors.Is(err, ErrPayFailed) || ctx.Err() != nil {
			return res, errors.Join(errs...)
		}
	}
	return Result{}, errors.Join(errs...)
}

func (b *Buyer) validate(p Provider, r Request, pay Pay) error {
	switch {
	case b.Pool == nil:
		return fmt.Errorf("%w: Buyer.Pool is nil", ErrBadRequest)
	case !nostr.IsValid32ByteHex(b.SecretKey):
		return fmt.Errorf("%w: Buyer.SecretKey must be 64 hex characters", ErrBadRequest)
	case b.Network == "":
		return fmt.Errorf("%w: Buyer.Network is required to check invoices", ErrBadRequest)
	case pay == nil:
		return fmt.Errorf("%w: no Pay func", ErrBadRequest)
	case !nostr.IsValid32ByteHex(p.Pubkey):
		return fmt.Errorf("%w: provider pubkey %q", ErrBadRequest, clip(p.Pubkey))
	case p.PriceMsat <= 0:
		return fmt.Errorf("%w: provider has no price", ErrBadRequest)
	case strings.TrimSpace(r.Prompt) == "":
		return fmt.Errorf("%w: empty prompt", ErrBadRequest)
	case r.BidMsat < 0 || r.BudgetMsat < 0 || r.MaxTokens < 0:
		return fmt.Errorf("%w: negative bid, budget or max tokens", ErrBadRequest)
	case !p.NIP90 && p.NIP28 && !nostr.IsValid32ByteHex(p.Channel):
		return fmt.Errorf("%w: provider channel %q", ErrBadRequest, clip(p.Channel))
	}
	if len(b.Relays) == 0 && len(p.Relays) == 0 {
		return fmt.Errorf("%w: no relays", ErrBadRequest)
	}
	return nil
}

// relaysFor is the buyer's relays plus those the provider announced (NIP-89: where it listens).
func (b *Buyer) relaysFor(p Provider) []string {
	out := slices.Clone(b.Relays)
	for _, r := range p.Relays {
		if !slices.ContainsFunc(out, func(s string) bool { return nostr.NormalizeURL(s) == nostr.NormalizeURL(r) }) {
			out = append(out, r)
		}
	}
	return out
}

func short(pk string) string {
	if len(pk) > 16 {
		return pk[:16]
	}
	return pk
}
