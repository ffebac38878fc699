package nwc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/invoice"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/nipsa"
)

// ClientOptions are the optional knobs of a Client.
type ClientOptions struct {
	// Network the wallet pays on; empty: ask the service with get_info on first use.
	Network string
	// Timeout for one request/response round trip when ctx has no earlier deadline; default 30s.
	Timeout time.Duration
	// Pool to share relay connections; nil: the client makes its own (closed by Close).
	Pool *nostr.SimplePool
}

// Client is a lightning.Wallet backed by a NIP-47 wallet service. Safe for concurrent use.
type Client struct {
	uri      URI
	pk       string
	c        *cipher
	pool     *nostr.SimplePool
	ownPool  bool
	timeout  time.Duration
	mu       sync.Mutex
	network  string
	scheme   string // "" until the wallet's info event has been read
	infoOnce time.Time
}

var _ lightning.Wallet = (*Client)(nil)

// NewClient connects lazily: relays are dialled on the first request.
func NewClient(uri URI, o ClientOptions) (*Client, error) {
	if err := uri.Validate(); err != nil {
		return nil, err
	}
	pk, err := uri.ClientPubkey()
	if err != nil {
		return nil, err
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	c := &Client{uri: uri, pk: pk, c: newCipher(uri.Secret), pool: o.Pool, timeout: o.Timeout, network: o.Network}
	if c.pool == nil {
		c.pool = nostr.NewSimplePool(context.Background())
		c.ownPool = true
	}
	return c, nil
}

// Close drops relay connections if the client owns its pool.
func (c *Client) Close() {
	if c.ownPool {
		c.pool.Close("nwc client closed")
	}
}

// Network implements lightning.Wallet: the configured network, else get_info's answer
// (cached); "" if the service can not be asked right now.
func (c *Client) Network() string {
	c.mu.Lock()
	n := c.network
	c.mu.Unlock()
	if n != "" {
		return n
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(c.timeout, 10*time.Second))
	defer cancel()
	var info infoResult
	if err := c.call(ctx, MethodGetInfo, struct{}{}, &info); err != nil {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.network = info.Network
	return c.network
}

// Balance implements lightning.Wallet (get_balance).
func (c *Client) Balance(ctx context.Context) (int64, error) {
	var r balanceResult
	if err := c.call(ctx, MethodGetBalance, struct{}{}, &r); err != nil {
		return 0, err
	}
	return r.Balance, nil
}

// MakeInvoice implements lightning.Wallet (make_invoice).
func (c *Client) MakeInvoice(ctx context.Context, amountMsat int64, memo string, expiry time.Duration) (lightning.Invoice, error) {
	if amountMsat <= 0 {
		return lightning.Invoice{}, fmt.Errorf("%w: amount must be > 0 msat", lightning.ErrInvalidInvoice)
	}
	p := makeInvoiceParams{Amount: amountMsat, Description: memo, Expiry: int64((expiry + time.Second - 1) / time.Second)}
	var tx transaction
	if err := c.call(ctx, MethodMakeInvoice, p, &tx); err != nil {
		return lightning.Invoice{}, err
	}
	inv := tx.invoice()
	// Trust the signed invoice over the JSON around it.
	d, err := invoice.Decode(inv.Bolt11)
	if err != nil {
		return lightning.Invoice{}, fmt.Errorf("nwc: make_invoice returned a bad invoice: %w", err)
	}
	if d.AmountMsat != amountMsat {
		return lightning.Invoice{}, fmt.Errorf("nwc: make_invoice returned %d msat, asked %d", d.AmountMsat, amountMsat)
	}
	inv.PaymentHash, inv.AmountMsat, inv.ExpiresAt = d.PaymentHash, d.AmountMsat, d.ExpiresAt
	return inv, nil
}

// PayInvoice implements lightning.Wallet (pay_invoice). NWC has no idempotency key, so a
// missing answer is lightning.ErrOutcomeUnknown: reconcile with LookupPayment, never pay again.
func (c *Client) PayInvoice(ctx context.Context, bolt11 string) (lightning.Payment, error) {
	d, err := invoice.Decode(bolt11)
	if err != nil {
		return lightning.Payment{}, fmt.Errorf("%w: %v", lightning.ErrInvalidInvoice, err)
	}
	if d.AmountMsat <= 0 {
		return lightning.Payment{}, fmt.Errorf("%w: invoice has no amount", lightning.ErrInvalidInvoice)
	}
	var r payInvoiceResult
	err = c.call(ctx, MethodPayInvoice, payInvoiceParams{Invoice: bolt11}, &r)
	var ne *Error
	switch {
	case errors.As(err, &ne) && ne.Code == CodePaymentFailed:
		return lightning.Payment{PaymentHash: d.PaymentHash, Status: lightning.PaymentFailed,
			AmountMsat: d.AmountMsat, FailureReason: ne.Message}, nil
	case errors.As(err, &ne) && (ne.Code == CodeInternal || ne.Code == CodeOther):
		// The service may have failed after handing the payment to its node.
		return lightning.Payment{}, fmt.Errorf("%w: %w", lightning.ErrOutcomeUnknown, err)
	case errors.Is(err, ErrTimeout) || errors.Is(err, errSent):
		return lightning.Payment{}, fmt.Errorf("%w: %w", lightning.ErrOutcomeUnknown, err)
	case err != nil:
		return lightning.Payment{}, err
	}
	pre, _ := hex.DecodeString(r.Preimage)
	if h := sha256.Sum256(pre); hex.EncodeToString(h[:]) != d.PaymentHash {
		return lightning.Payment{}, fmt.Errorf("%w: the service answered with a preimage that does not match the payment hash", lightning.ErrOutcomeUnknown)
	}
	return lightning.Payment{PaymentHash: d.PaymentHash, Preimage: strings.ToLower(r.Preimage),
		Status: lightning.PaymentSucceeded, AmountMsat: d.AmountMsat, FeeMsat: r.FeesPaid}, nil
}

// LookupPayment implements lightning.Wallet with lookup_invoice by payment_hash: NIP-47 has no
// separate call for outgoing payments. A result that is not outgoing is ErrNotFound.
func (c *Client) LookupPayment(ctx context.Context, paymentHash string) (lightning.Payment, error) {
	var tx transaction
	if err := c.call(ctx, MethodLookupInvoice, lookupInvoiceParams{PaymentHash: strings.ToLower(paymentHash)}, &tx); err != nil {
		return lightning.Payment{}, err
	}
	if tx.Type != "outgoing" {
		return lightning.Payment{}, fmt.Errorf("%w: %s is not an outgoing payment", lightning.ErrNotFound, paymentHash)
	}
	p := lightning.Payment{PaymentHash: tx.PaymentHash, Preimage: tx.Preimage, AmountMsat: tx.Amount, FeeMsat: tx.FeesPaid}
	switch {
	case tx.State == "failed":
		p.Status = lightning.PaymentFailed
	case tx.State == "settled" || tx.Preimage != "" || tx.SettledAt > 0:
		p.Status = lightning.PaymentSucceeded
	default:
		p.Status = lightning.PaymentInFlight
	}
	return p, nil
}

// LookupInvoice implements lightning.Wallet (lookup_invoice by payment_hash).
func (c *Client) LookupInvoice(ctx context.Context, paymentHash string) (lightning.Invoice, error) {
	var tx transaction
	if err := c.call(ctx, MethodLookupInvoice, lookupInvoiceParams{PaymentHash: strings.ToLower(paymentHash)}, &tx); err != nil {
		return lightning.Invoice{}, err
	}
	if tx.Type == "outgoing" {
		return lightning.Invoice{}, fmt.Errorf("%w: %s is not an invoice of this wallet", lightning.ErrNotFound, paymentHash)
	}
	return tx.invoice(), nil
}

func (tx transaction) invoice() lightning.Invoice {
	inv := lightning.Invoice{Bolt11: tx.Invoice, PaymentHash: tx.PaymentHash, AmountMsat: tx.Amount,
		Memo: tx.Description, Preimage: tx.Preimage, Settled: tx.State == "settled" || tx.SettledAt > 0}
	if tx.ExpiresAt > 0 {
		inv.ExpiresAt = time.Unix(tx.ExpiresAt, 0)
	}
	if tx.SettledAt > 0 {
		inv.SettledAt = time.Unix(tx.SettledAt, 0)
	}
	return inv
}

// errSent marks failures after the request may have reached a relay.
var errSent = errors.New("nwc: request published but the exchange failed")

// call does one request/response exchange: sign, subscribe for the answer by #e, wait for the
// relays to confirm the subscription, publish, await the answer.
func (c *Client) call(ctx context.Context, method string, params, out any) error {
	timeout := c.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	scheme := c.encryption(ctx)
	pb, err := json.Marshal(params)
	if err != nil {
		return err
	}
	body, err := json.Marshal(request{Method: method, Params: pb})
	if err != nil {
		return err
	}
	content, err := c.c.encrypt(scheme, c.uri.WalletPubkey, string(body))
	if err != nil {
		return err
	}
	req := nostr.Event{
		Kind:      nipsa.KindWalletRequest,
		CreatedAt: nostr.Now(),
		Content:   content,
		Tags: nostr.Tags{
			{"p", c.uri.WalletPubkey},
			// A request that arrives after we stopped waiting must not be acted on.
			{"expiration", strconv.FormatInt(time.Now().Add(timeout).Unix()+1, 10)},
		},
	}
	if scheme == EncNIP44 {
		req.Tags = append(req.Tags, nostr.Tag{"encryption", EncNIP44})
	}
	if err := req.Sign(c.uri.Secret); err != nil {
		return fmt.Errorf("nwc: sign request: %w", err)
	}

	eose := make(chan struct{})
	events := c.pool.SubscribeManyNotifyEOSE(ctx, append([]string(nil), c.uri.Relays...), nostr.Filter{
		Kinds:   []int{nipsa.KindWalletResponse},
		Authors: []string{c.uri.WalletPubkey},
		Tags:    nostr.TagMap{"e": {req.ID}, "p": {c.pk}},
	}, eose)
	select {
	case <-eose:
	case <-ctx.Done():
		return fmt.Errorf("%w: subscribing: %v", ErrTimeout, ctx.Err())
	}

	var published, maybe bool
	var lastErr error
	for r := range c.pool.PublishMany(ctx, c.uri.Relays, req) {
		switch {
		case r.Error == nil:
			published = true
		case r.Relay != nil && !strings.HasPrefix(r.Error.Error(), "msg: "):
			// Connected but no OK/NOTOK came back: the relay may have passed the event on.
			maybe = true
		}
		if r.Error != nil {
			lastErr = r.Error
		}
	}
	switch {
	case published:
	case maybe:
		return fmt.Errorf("%w: publish %s: %v", errSent, method, lastErr)
	default:
		// Every relay was unreachable or answered OK false (khatru: "mute: no one was
		// listening"): the service can not have seen the request.
		return fmt.Errorf("%w: %s: %v", ErrNotDelivered, method, lastErr)
	}

	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %s after %s", ErrTimeout, method, timeout)
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("%w: relays closed the subscription", errSent)
			}
			if ev.PubKey != c.uri.WalletPubkey || ev.Tags.FindWithValue("e", req.ID) == nil {
				continue
			}
			plain, _, err := c.c.decrypt(ev.PubKey, ev.Content)
			if err != nil {
				continue // not for us or garbled: keep waiting for a readable answer
			}
			var resp response
			if err := json.Unmarshal([]byte(plain), &resp); err != nil {
				continue
			}
			if resp.Error != nil {
				return mapError(resp.Error)
			}
			if resp.ResultType != method {
				return fmt.Errorf("nwc: %s answered with result_type %q", method, resp.ResultType)
			}
			if err := json.Unmarshal(resp.Result, out); err != nil {
				return fmt.Errorf("nwc: %s result: %w", method, err)
			}
			return nil
		}
	}
}

func mapError(e *Error) error {
	switch e.Code {
	case CodeInsufficientBalance:
		return fmt.Errorf("%w: %w", lightning.ErrInsufficientBalance, e)
	case CodeNotFound:
		return fmt.Errorf("%w: %w", lightning.ErrNotFound, e)
	}
	return e
}

// encryption picks NIP-44 unless the wallet's 13194 info event says it speaks only NIP-04.
// The answer is cached once the info event has been seen; without one, NIP-44 is assumed and
// the info event is looked for again at most once a minute.
func (c *Client) encryption(ctx context.Context) string {
	c.mu.Lock()
	if c.scheme != "" {
		defer c.mu.Unlock()
		return c.scheme
	}
	if time.Since(c.infoOnce) < time.Minute {
		c.mu.Unlock()
		return EncNIP44
	}
	c.infoOnce = time.Now()
	c.mu.Unlock()

	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var info *nostr.Event
	for ev := range c.pool.FetchMany(fctx, append([]string(nil), c.uri.Relays...), nostr.Filter{
		Kinds: []int{nipsa.KindWalletInfo}, Authors: []string{c.uri.WalletPubkey}, Limit: 1,
	}) {
		if info == nil || ev.CreatedAt > info.CreatedAt {
			info = ev.Event
		}
	}
	if info == nil {
		return EncNIP44
	}
	scheme := EncNIP44
	if t := info.Tags.Find("encryption"); t == nil || !strings.Contains(" "+t[1]+" ", " "+EncNIP44+" ") {
		// No tag means a NIP-04-only wallet (NIP-47: absence implies nip04).
		scheme = EncNIP04
	}
	c.mu.Lock()
	c.scheme = scheme
	c.mu.Unlock()
	return scheme
}
