package lnd

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/lightningnetwork/lnd/zpay32"

	"github.com/openagents/runtime/pkg/lightning"
)

// invoice is lnrpc.Invoice as /v1 sends it: byte fields in standard base64.
type invoice struct {
	Memo           string  `json:"memo"`
	RPreimage      []byte  `json:"r_preimage"`
	RHash          []byte  `json:"r_hash"`
	ValueMsat      jsonInt `json:"value_msat"`
	CreationDate   jsonInt `json:"creation_date"`
	SettleDate     jsonInt `json:"settle_date"`
	PaymentRequest string  `json:"payment_request"`
	Expiry         jsonInt `json:"expiry"`
	State          string  `json:"state"`
	SettleIndex    jsonInt `json:"settle_index"`
}

func (in invoice) toLightning() lightning.Invoice {
	out := lightning.Invoice{
		Bolt11:      in.PaymentRequest,
		PaymentHash: hex.EncodeToString(in.RHash),
		AmountMsat:  int64(in.ValueMsat),
		Memo:        in.Memo,
		ExpiresAt:   time.Unix(int64(in.CreationDate)+int64(in.Expiry), 0).UTC(),
		Settled:     in.State == "SETTLED",
	}
	if out.Settled {
		out.SettledAt = time.Unix(int64(in.SettleDate), 0).UTC()
		out.Preimage = hex.EncodeToString(in.RPreimage)
	}
	return out
}

// MakeInvoice issues an invoice through POST /v1/invoices. expiry 0 takes lnd's default (24 h).
func (w *Wallet) MakeInvoice(ctx context.Context, amountMsat int64, memo string, expiry time.Duration) (lightning.Invoice, error) {
	if amountMsat <= 0 {
		return lightning.Invoice{}, fmt.Errorf("lnd: invoice amount %d msat: must be > 0", amountMsat)
	}
	secs := int64((expiry + time.Second - 1) / time.Second) // never round a short expiry to "default"
	in := map[string]any{"value_msat": strconv.FormatInt(amountMsat, 10), "memo": memo}
	if secs > 0 {
		in["expiry"] = strconv.FormatInt(secs, 10)
	}
	var out struct {
		RHash          []byte `json:"r_hash"`
		PaymentRequest string `json:"payment_request"`
	}
	if err := w.call(ctx, http.MethodPost, "/v1/invoices", in, &out); err != nil {
		return lightning.Invoice{}, err
	}
	// The expiry comes from the invoice itself, so it matches what payers see.
	dec, err := zpay32.Decode(out.PaymentRequest, w.params)
	if err != nil {
		return lightning.Invoice{}, fmt.Errorf("lnd: node issued an invoice this wallet cannot decode: %w", err)
	}
	return lightning.Invoice{
		Bolt11:      out.PaymentRequest,
		PaymentHash: hex.EncodeToString(out.RHash),
		AmountMsat:  amountMsat,
		Memo:        memo,
		ExpiresAt:   dec.Timestamp.Add(dec.Expiry()).UTC(),
	}, nil
}

// LookupInvoice reports an invoice this node issued (GET /v1/invoice/{hex hash}).
func (w *Wallet) LookupInvoice(ctx context.Context, paymentHash string) (lightning.Invoice, error) {
	hash, err := decodeHash(paymentHash)
	if err != nil {
		return lightning.Invoice{}, err
	}
	var in invoice
	if err := w.call(ctx, http.MethodGet, "/v1/invoice/"+hex.EncodeToString(hash), nil, &in); err != nil {
		return lightning.Invoice{}, err
	}
	return in.toLightning(), nil
}

// SubscribeSettled calls fn for every invoice of this node settled from now until ctx ends,
// through the /v1/invoices/subscribe stream, in settle order, one call at a time. When the
// stream breaks it reconnects (with backoff) and resumes after the last settle index seen, so
// no settlement in between is lost. It returns ctx's error once ctx is done.
func (w *Wallet) SubscribeSettled(ctx context.Context, fn func(lightning.Invoice)) error {
	var after int64 // 0: from now; lnd replays settle indexes > after when after > 0
	backoff := 100 * time.Millisecond
	for {
		err := w.subscribeOnce(ctx, after, func(in invoice) {
			if in.State != "SETTLED" || int64(in.SettleIndex) <= after {
				return
			}
			after = int64(in.SettleIndex)
			backoff = 100 * time.Millisecond
			fn(in.toLightning())
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.log.Warn("lnd: invoice subscription broke; reconnecting", "err", err, "after_settle_index", after)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

func (w *Wallet) subscribeOnce(ctx context.Context, settleIndex int64, fn func(invoice)) error {
	path := "/v1/invoices/subscribe"
	if settleIndex > 0 {
		path += "?settle_index=" + strconv.FormatInt(settleIndex, 10)
	}
	req, err := w.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxReply))
		return parseError(resp.StatusCode, b)
	}
	s := newStream(resp.Body, resp.StatusCode)
	for {
		var in invoice
		if err := s.next(&in); err != nil {
			if errors.Is(err, errStreamEnded) {
				return err
			}
			return fmt.Errorf("lnd: invoice stream: %w", err)
		}
		fn(in)
	}
}
