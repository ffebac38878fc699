package nwc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/invoice"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/nipsa"
)

// Capabilities a Service advertises in its 13194 info event.
var Capabilities = []string{MethodPayInvoice, MethodGetBalance, MethodMakeInvoice, MethodLookupInvoice, MethodGetInfo}

// Service exposes a lightning.Wallet as a NIP-47 wallet service to authorised client pubkeys.
type Service struct {
	sk, pk string
	w      lightning.Wallet
	relays []string
	c      *cipher
	log    *slog.Logger
	pool   *nostr.SimplePool

	ready   chan struct{}
	ignored func(id, reason string) // test hook: a request was dropped without an answer

	mu      sync.Mutex
	clients map[string]bool
	seen    map[string]time.Time // request ids handled, so a relay's replay never pays twice
}

// NewService makes a service for w signing as walletSK (hex). Call Authorize, then Run.
func NewService(walletSK string, w lightning.Wallet, relays []string) (*Service, error) {
	pk, err := nostr.GetPublicKey(walletSK)
	if err != nil || !validSecret(walletSK) {
		return nil, errors.New("nwc: wallet secret key must be 64 hex characters")
	}
	if len(relays) == 0 {
		return nil, errors.New("nwc: at least one relay is required")
	}
	return &Service{
		sk: walletSK, pk: pk, w: w, relays: append([]string(nil), relays...),
		c: newCipher(walletSK), log: slog.Default().With("component", "nwc", "wallet", pk[:12]),
		clients: map[string]bool{}, seen: map[string]time.Time{}, ready: make(chan struct{}),
	}, nil
}

// Pubkey is the wallet service's pubkey.
func (s *Service) Pubkey() string { return s.pk }

// Authorize lets clientPubkey use the wallet and returns its connection URI without the
// secret, which only the client holds: set URI.Secret to the client's key to connect.
func (s *Service) Authorize(clientPubkey string) (URI, error) {
	clientPubkey = strings.ToLower(clientPubkey)
	if !isHexKey(clientPubkey) || !nostr.IsValidPublicKey(clientPubkey) {
		return URI{}, errors.New("nwc: client pubkey must be 64 hex characters")
	}
	s.mu.Lock()
	s.clients[clientPubkey] = true
	s.mu.Unlock()
	return URI{WalletPubkey: s.pk, Relays: append([]string(nil), s.relays...)}, nil
}

// NewConnection makes a fresh client key, authorises it and returns the full connection URI.
func (s *Service) NewConnection() (URI, error) {
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		return URI{}, err
	}
	u, err := s.Authorize(pk)
	u.Secret = sk
	return u, err
}

// Revoke removes a client's access.
func (s *Service) Revoke(clientPubkey string) {
	s.mu.Lock()
	delete(s.clients, strings.ToLower(clientPubkey))
	s.mu.Unlock()
}

// Ready is closed once Run's subscription is live on every reachable relay: requests
// published after that are answered.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// Run publishes the info event and answers requests until ctx ends. Call it once.
func (s *Service) Run(ctx context.Context) error {
	s.pool = nostr.NewSimplePool(ctx)
	defer s.pool.Close("nwc service stopped")

	info := nostr.Event{
		Kind:      nipsa.KindWalletInfo,
		CreatedAt: nostr.Now(),
		Content:   strings.Join(Capabilities, " "),
		Tags:      nostr.Tags{{"encryption", EncNIP44 + " " + EncNIP04}},
	}
	if err := info.Sign(s.sk); err != nil {
		return fmt.Errorf("nwc: sign info event: %w", err)
	}
	var ok int
	for r := range s.pool.PublishMany(ctx, s.relays, info) {
		if r.Error != nil {
			s.log.Warn("publish info event", "relay", r.RelayURL, "err", r.Error)
		} else {
			ok++
		}
	}
	if ok == 0 {
		return errors.New("nwc: no relay accepted the info event")
	}

	// Only requests from now on: a restart must not replay old pay_invoice requests.
	since := nostr.Now()
	eose := make(chan struct{})
	events := s.pool.SubscribeManyNotifyEOSE(ctx, append([]string(nil), s.relays...), nostr.Filter{
		Kinds: []int{nipsa.KindWalletRequest},
		Tags:  nostr.TagMap{"p": {s.pk}},
		Since: &since,
	}, eose)
	go func() {
		select {
		case <-eose:
			close(s.ready)
		case <-ctx.Done():
		}
	}()
	s.log.Info("nwc service running", "relays", len(s.relays))
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, 16) // bound concurrent requests
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, more := <-events:
			if !more {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("nwc: every relay subscription ended")
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				s.handle(ctx, ev.Event)
			}()
		}
	}
}

// handle answers one request event, or ignores it.
func (s *Service) handle(ctx context.Context, ev *nostr.Event) {
	now := time.Now()
	if ev.Kind != nipsa.KindWalletRequest || ev.Tags.FindWithValue("p", s.pk) == nil {
		return
	}
	if expired(ev, now.Unix()) {
		s.ignore(ev.ID, "expired")
		return
	}
	if ok, _ := ev.CheckSignature(); !ok {
		s.ignore(ev.ID, "bad signature")
		return
	}
	if !s.firstSight(ev.ID, now) {
		s.ignore(ev.ID, "duplicate")
		return
	}
	plain, scheme, err := s.c.decrypt(ev.PubKey, ev.Content)
	if err != nil {
		s.ignore(ev.ID, "undecryptable")
		return
	}
	var req request
	if err := json.Unmarshal([]byte(plain), &req); err != nil {
		s.reply(ctx, ev, scheme, response{Error: &Error{Code: CodeOther, Message: "request is not JSON"}})
		return
	}
	s.mu.Lock()
	authorised := s.clients[ev.PubKey]
	s.mu.Unlock()
	if !authorised {
		s.log.Info("unauthorised request", "from", ev.PubKey, "method", req.Method)
		s.reply(ctx, ev, scheme, response{ResultType: req.Method, Error: &Error{Code: CodeUnauthorized, Message: "no wallet connected for this pubkey"}})
		return
	}
	result, err := s.dispatch(ctx, req)
	resp := response{ResultType: req.Method}
	if err != nil {
		resp.Error = toError(err)
		s.log.Info("request refused", "method", req.Method, "code", resp.Error.Code, "err", err)
	} else {
		resp.Result, _ = json.Marshal(result)
	}
	s.reply(ctx, ev, scheme, resp)
}

func (s *Service) ignore(id, reason string) {
	s.log.Debug("ignored request", "id", id, "reason", reason)
	if s.ignored != nil {
		s.ignored(id, reason)
	}
}

func (s *Service) firstSight(id string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.seen[id]; dup {
		return false
	}
	if len(s.seen) > 10_000 {
		for k, t := range s.seen {
			if now.Sub(t) > time.Hour {
				delete(s.seen, k)
			}
		}
	}
	s.seen[id] = now
	return true
}

func (s *Service) dispatch(ctx context.Context, req request) (any, error) {
	params := req.Params
	if len(params) == 0 || string(params) == "null" {
		params = json.RawMessage("{}")
	}
	switch req.Method {
	case MethodGetInfo:
		return infoResult{Alias: "openagents nwc", Pubkey: s.pk, Network: s.w.Network(), Methods: Capabilities, Notifications: []string{}}, nil
	case MethodGetBalance:
		b, err := s.w.Balance(ctx)
		return balanceResult{Balance: b}, err
	case MethodMakeInvoice:
		var p makeInvoiceParams
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, &Error{Code: CodeOther, Message: "bad params: " + err.Error()}
		}
		inv, err := s.w.MakeInvoice(ctx, p.Amount, p.Description, time.Duration(p.Expiry)*time.Second)
		if errors.Is(err, lightning.ErrInvalidInvoice) {
			return nil, &Error{Code: CodeOther, Message: err.Error()}
		}
		if err != nil {
			return nil, err
		}
		return incoming(inv, time.Now()), nil
	case MethodPayInvoice:
		var p payInvoiceParams
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, &Error{Code: CodeOther, Message: "bad params: " + err.Error()}
		}
		if p.Amount > 0 {
			// The Wallet interface pays the invoice's own amount; an override that differs is
			// a request this service can not honour exactly, so it refuses before paying.
			if d, err := invoice.Decode(p.Invoice); err != nil || d.AmountMsat != p.Amount {
				return nil, &Error{Code: CodeNotImplemented, Message: "amount override is not supported"}
			}
		}
		pay, err := s.w.PayInvoice(ctx, p.Invoice)
		if err != nil {
			return nil, err
		}
		if pay.Status != lightning.PaymentSucceeded {
			return nil, &Error{Code: CodePaymentFailed, Message: "payment " + string(pay.Status) + ": " + pay.FailureReason}
		}
		return payInvoiceResult{Preimage: pay.Preimage, FeesPaid: pay.FeeMsat}, nil
	case MethodLookupInvoice:
		var p lookupInvoiceParams
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, &Error{Code: CodeOther, Message: "bad params: " + err.Error()}
		}
		hash := p.PaymentHash
		if hash == "" && p.Invoice != "" {
			d, err := invoice.Decode(p.Invoice)
			if err != nil {
				return nil, &Error{Code: CodeOther, Message: "invoice does not decode"}
			}
			hash = d.PaymentHash
		}
		inv, err := s.w.LookupInvoice(ctx, hash)
		if err == nil {
			return incoming(inv, time.Now()), nil
		}
		if !errors.Is(err, lightning.ErrNotFound) {
			return nil, err
		}
		pay, err := s.w.LookupPayment(ctx, hash)
		if err != nil {
			return nil, err
		}
		return outgoing(pay), nil
	}
	return nil, &Error{Code: CodeNotImplemented, Message: "method " + req.Method + " is not supported"}
}

func incoming(inv lightning.Invoice, now time.Time) transaction {
	tx := transaction{Type: "incoming", State: "pending", Invoice: inv.Bolt11, Description: inv.Memo,
		PaymentHash: inv.PaymentHash, Amount: inv.AmountMsat, ExpiresAt: inv.ExpiresAt.Unix(), Preimage: inv.Preimage}
	if d, err := invoice.Decode(inv.Bolt11); err == nil {
		tx.CreatedAt = d.CreatedAt.Unix()
	}
	switch {
	case inv.Settled:
		tx.State = "settled"
		tx.SettledAt = inv.SettledAt.Unix()
	case !now.Before(inv.ExpiresAt):
		tx.State = "expired"
	}
	return tx
}

func outgoing(p lightning.Payment) transaction {
	tx := transaction{Type: "outgoing", PaymentHash: p.PaymentHash, Amount: p.AmountMsat, FeesPaid: p.FeeMsat, Preimage: p.Preimage}
	switch p.Status {
	case lightning.PaymentSucceeded:
		tx.State = "settled"
	case lightning.PaymentFailed:
		tx.State = "failed"
	default:
		tx.State = "pending"
	}
	return tx
}

// toError maps a wallet's refusal to a NIP-47 error code. Refusals that leave the invoice
// unpaid for good are PAYMENT_FAILED; an unknown outcome is INTERNAL, which clients must not
// read as failed.
func toError(err error) *Error {
	var ne *Error
	if errors.As(err, &ne) {
		return ne
	}
	code := CodeInternal
	switch {
	case errors.Is(err, lightning.ErrInsufficientBalance):
		code = CodeInsufficientBalance
	case errors.Is(err, lightning.ErrNotFound):
		code = CodeNotFound
	case errors.Is(err, lightning.ErrAlreadyPaid), errors.Is(err, lightning.ErrExpired),
		errors.Is(err, lightning.ErrNoRoute), errors.Is(err, lightning.ErrInvalidInvoice):
		code = CodePaymentFailed
	}
	return &Error{Code: code, Message: err.Error()}
}

func (s *Service) reply(ctx context.Context, req *nostr.Event, scheme string, resp response) {
	body, err := json.Marshal(resp)
	if err != nil {
		s.log.Error("marshal response", "err", err)
		return
	}
	content, err := s.c.encrypt(scheme, req.PubKey, string(body))
	if err != nil {
		s.log.Error("encrypt response", "err", err)
		return
	}
	ev := nostr.Event{
		Kind:      nipsa.KindWalletResponse,
		CreatedAt: nostr.Now(),
		Content:   content,
		Tags:      nostr.Tags{{"p", req.PubKey}, {"e", req.ID}},
	}
	if scheme == EncNIP44 {
		ev.Tags = append(ev.Tags, nostr.Tag{"encryption", EncNIP44})
	}
	if err := ev.Sign(s.sk); err != nil {
		s.log.Error("sign response", "err", err)
		return
	}
	// The answer must go out even if Run is stopping: the payment may already have happened.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for r := range s.pool.PublishMany(pctx, s.relays, ev) {
		if r.Error != nil {
			s.log.Warn("publish response", "relay", r.RelayURL, "err", r.Error)
		}
	}
}
