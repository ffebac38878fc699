package devln

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/openagents/runtime/pkg/lightning"
)

// Client is one devnet account reached over the HTTP API. It implements lightning.Wallet and
// maps error responses back to the same lightning sentinels the in-process Account returns.
type Client struct {
	base    string
	account string
	hc      *http.Client

	mu      sync.Mutex
	network string // learned from /v1/info on first use
}

var _ lightning.Wallet = (*Client)(nil)

// NewClient talks to the ledger served at baseURL (e.g. http://127.0.0.1:8090) as account.
func NewClient(baseURL, account string) *Client {
	// No client-wide timeout: calls are bounded by their context, and WaitSettled long-polls.
	return &Client{base: strings.TrimRight(baseURL, "/"), account: account, hc: &http.Client{}}
}

// Network implements lightning.Wallet. It asks the server once; if the server can not be
// reached it returns "" (unknown) and asks again next time.
func (c *Client) Network() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.network != "" {
		return c.network
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var info infoResponse
	if err := c.do(ctx, http.MethodGet, "/v1/info", nil, &info); err != nil {
		return ""
	}
	c.network = info.Network
	return c.network
}

// Faucet asks the ledger's faucet to send msat to this client's account.
func (c *Client) Faucet(ctx context.Context, msat int64) error {
	return c.do(ctx, http.MethodPost, "/v1/faucet", faucetRequest{Account: c.account, AmountMsat: msat}, &struct{}{})
}

// Balance implements lightning.Wallet.
func (c *Client) Balance(ctx context.Context) (int64, error) {
	var b balanceResponse
	if err := c.do(ctx, http.MethodGet, c.path("balance"), nil, &b); err != nil {
		return 0, err
	}
	return b.BalanceMsat, nil
}

// MakeInvoice implements lightning.Wallet.
func (c *Client) MakeInvoice(ctx context.Context, amountMsat int64, memo string, expiry time.Duration) (lightning.Invoice, error) {
	secs := int64(expiry / time.Second)
	if expiry%time.Second != 0 {
		secs++
	}
	var inv lightning.Invoice
	err := c.do(ctx, http.MethodPost, c.path("invoice"), invoiceRequest{AmountMsat: amountMsat, Memo: memo, ExpirySeconds: secs}, &inv)
	return inv, err
}

// PayInvoice implements lightning.Wallet. If the request may have reached the server but no
// answer came back (connection lost, timeout, cancel), the error is lightning.ErrOutcomeUnknown:
// reconcile with LookupPayment, never pay again.
func (c *Client) PayInvoice(ctx context.Context, bolt11 string) (lightning.Payment, error) {
	var p lightning.Payment
	err := c.do(ctx, http.MethodPost, c.path("pay"), payRequest{Bolt11: bolt11}, &p)
	var te *transportError
	if errors.As(err, &te) {
		return lightning.Payment{}, fmt.Errorf("%w: %v", lightning.ErrOutcomeUnknown, te.err)
	}
	return p, err
}

// LookupPayment implements lightning.Wallet.
func (c *Client) LookupPayment(ctx context.Context, paymentHash string) (lightning.Payment, error) {
	var p lightning.Payment
	err := c.do(ctx, http.MethodGet, c.path("payment", paymentHash), nil, &p)
	return p, err
}

// LookupInvoice implements lightning.Wallet.
func (c *Client) LookupInvoice(ctx context.Context, paymentHash string) (lightning.Invoice, error) {
	var inv lightning.Invoice
	err := c.do(ctx, http.MethodGet, c.path("invoice", paymentHash), nil, &inv)
	return inv, err
}

// WaitSettled long-polls until the invoice is settled or ctx ends.
func (c *Client) WaitSettled(ctx context.Context, paymentHash string) (lightning.Invoice, error) {
	wait := 30 * time.Second
	for {
		if dl, ok := ctx.Deadline(); ok {
			// Ask the server to answer a little before our deadline, so we see a reply, not a cut.
			if left := time.Until(dl) - 100*time.Millisecond; left < wait {
				wait = max(left, 10*time.Millisecond)
			}
		}
		var inv lightning.Invoice
		err := c.do(ctx, http.MethodGet, c.path("invoice", paymentHash, "wait")+"?timeout="+wait.String(), nil, &inv)
		if err != nil {
			if ctx.Err() != nil {
				return lightning.Invoice{}, ctx.Err()
			}
			return lightning.Invoice{}, err
		}
		if inv.Settled {
			return inv, nil
		}
		if err := ctx.Err(); err != nil {
			return lightning.Invoice{}, err
		}
	}
}

func (c *Client) path(parts ...string) string {
	p := "/v1/" + url.PathEscape(c.account)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// transportError: the request failed without an answer from the ledger.
type transportError struct{ err error }

func (e *transportError) Error() string { return "devln: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &transportError{err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return &transportError{err}
	}
	if resp.StatusCode != http.StatusOK {
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusGatewayTimeout {
			// A proxy's or crashed server's 5xx says nothing about whether the work was done.
			if de := decodeErr(resp.StatusCode, b); errors.As(de, new(*APIError)) {
				return &transportError{de}
			}
		}
		return decodeErr(resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return &transportError{fmt.Errorf("bad response body: %w", err)}
	}
	return nil
}
