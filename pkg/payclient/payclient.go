// Package payclient is how the ticker and the CLI ask the payer for payments, balances and
// invoices (NATS request/reply on the payer's subjects).
package payclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/openagents/runtime/pkg/contracts"
)

// ErrNoPayer: no payer answered (none running, or it timed out). For a payment this means the
// outcome is unknown: the caller must not assume it failed.
var ErrNoPayer = errors.New("payclient: no answer from the payer")

// Client talks to the payer.
type Client struct{ NC *nats.Conn }

func (c Client) request(ctx context.Context, subject string, req, resp any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	msg, err := c.NC.RequestWithContext(ctx, subject, b)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("%w on %s: %v", ErrNoPayer, subject, err)
		}
		return fmt.Errorf("payclient: %s: %w", subject, err)
	}
	if err := json.Unmarshal(msg.Data, resp); err != nil {
		return fmt.Errorf("payclient: undecodable reply on %s: %w", subject, err)
	}
	return nil
}

// Pay asks the payer to pay. An error means the outcome is unknown (treat as in flight).
func (c Client) Pay(ctx context.Context, agent string, req contracts.PayRequest) (contracts.PayResult, error) {
	var res contracts.PayResult
	err := c.request(ctx, contracts.PaySubject(agent), req, &res)
	return res, err
}

// Balance asks for the agent's confirmed balance and lifecycle.
func (c Client) Balance(ctx context.Context, agent string) (contracts.BalanceReply, error) {
	var res contracts.BalanceReply
	if err := c.request(ctx, contracts.BalanceSubject(agent), contracts.BalanceRequest{}, &res); err != nil {
		return contracts.BalanceReply{Known: false, Error: err.Error()}, err
	}
	return res, nil
}

// Invoice asks for an invoice that funds the agent.
func (c Client) Invoice(ctx context.Context, agent string, sats int64, memo string) (contracts.InvoiceReply, error) {
	var res contracts.InvoiceReply
	if err := c.request(ctx, contracts.InvoiceSubject(agent), contracts.InvoiceRequest{AmountSats: sats, Memo: memo}, &res); err != nil {
		return res, err
	}
	if res.Error != "" {
		return res, fmt.Errorf("payer: %s", res.Error)
	}
	return res, nil
}
