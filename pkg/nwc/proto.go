package nwc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip04"
	"github.com/nbd-wtf/go-nostr/nip44"
)

// Methods (NIP-47) this package speaks.
const (
	MethodPayInvoice    = "pay_invoice"
	MethodGetBalance    = "get_balance"
	MethodMakeInvoice   = "make_invoice"
	MethodLookupInvoice = "lookup_invoice"
	MethodGetInfo       = "get_info"
)

// Error codes (NIP-47).
const (
	CodeRateLimited           = "RATE_LIMITED"
	CodeNotImplemented        = "NOT_IMPLEMENTED"
	CodeInsufficientBalance   = "INSUFFICIENT_BALANCE"
	CodeQuotaExceeded         = "QUOTA_EXCEEDED"
	CodeRestricted            = "RESTRICTED"
	CodeUnauthorized          = "UNAUTHORIZED"
	CodeInternal              = "INTERNAL"
	CodeUnsupportedEncryption = "UNSUPPORTED_ENCRYPTION"
	CodeOther                 = "OTHER"
	CodePaymentFailed         = "PAYMENT_FAILED"
	CodeNotFound              = "NOT_FOUND"
)

// Encryption schemes as named in the 13194 "encryption" tag.
const (
	EncNIP44 = "nip44_v2"
	EncNIP04 = "nip04"
)

// Error is an error a wallet service returned. Codes the lightning package has a sentinel for
// are mapped to it as well (errors.Is works for both).
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return "nwc: " + e.Code + ": " + e.Message }

// ErrTimeout: no response arrived in time. For pay_invoice the client returns
// lightning.ErrOutcomeUnknown instead, since the payment may be in flight.
var ErrTimeout = errors.New("nwc: no response from the wallet service")

// ErrNotDelivered: no relay took the request (unreachable, or refused it, as relays do for an
// ephemeral event nobody listens to). The wallet service never saw it: nothing was paid.
var ErrNotDelivered = errors.New("nwc: request not delivered to any relay")

type request struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

type response struct {
	ResultType string          `json:"result_type"`
	Error      *Error          `json:"error,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
}

type payInvoiceParams struct {
	Invoice string `json:"invoice"`
	Amount  int64  `json:"amount,omitempty"`
}

type payInvoiceResult struct {
	Preimage string `json:"preimage"`
	FeesPaid int64  `json:"fees_paid,omitempty"`
}

type makeInvoiceParams struct {
	Amount      int64  `json:"amount"`
	Description string `json:"description,omitempty"`
	Expiry      int64  `json:"expiry,omitempty"` // seconds
}

type lookupInvoiceParams struct {
	PaymentHash string `json:"payment_hash,omitempty"`
	Invoice     string `json:"invoice,omitempty"`
}

type balanceResult struct {
	Balance int64 `json:"balance"`
}

type infoResult struct {
	Alias         string   `json:"alias,omitempty"`
	Pubkey        string   `json:"pubkey,omitempty"`
	Network       string   `json:"network"`
	Methods       []string `json:"methods"`
	Notifications []string `json:"notifications"`
}

// transaction is NIP-47's shape for make_invoice and lookup_invoice results.
type transaction struct {
	Type        string `json:"type"`            // incoming | outgoing
	State       string `json:"state,omitempty"` // pending | settled | expired | failed
	Invoice     string `json:"invoice,omitempty"`
	Description string `json:"description,omitempty"`
	Preimage    string `json:"preimage,omitempty"`
	PaymentHash string `json:"payment_hash"`
	Amount      int64  `json:"amount"`
	FeesPaid    int64  `json:"fees_paid"`
	CreatedAt   int64  `json:"created_at"`
	ExpiresAt   int64  `json:"expires_at,omitempty"`
	SettledAt   int64  `json:"settled_at,omitempty"`
}

// cipher encrypts and decrypts for one local key, caching conversation keys per peer: ECDH
// dominates NIP-44's cost and a service talks to the same few clients all day.
type cipher struct {
	sk    string
	mu    sync.Mutex
	keys  map[string][32]byte
	nip04 map[string][]byte
}

func newCipher(sk string) *cipher {
	return &cipher{sk: sk, keys: map[string][32]byte{}, nip04: map[string][]byte{}}
}

func (c *cipher) encrypt(scheme, peer, plaintext string) (string, error) {
	if scheme == EncNIP04 {
		k, err := c.key04(peer)
		if err != nil {
			return "", err
		}
		return nip04.Encrypt(plaintext, k)
	}
	k, err := c.key44(peer)
	if err != nil {
		return "", err
	}
	return nip44.Encrypt(plaintext, k)
}

// decrypt opens content from peer; NIP-04 payloads are recognisable by their "?iv=" suffix.
func (c *cipher) decrypt(peer, content string) (plaintext, scheme string, err error) {
	if strings.Contains(content, "?iv=") {
		k, err := c.key04(peer)
		if err != nil {
			return "", "", err
		}
		pt, err := nip04.Decrypt(content, k)
		return pt, EncNIP04, err
	}
	k, err := c.key44(peer)
	if err != nil {
		return "", "", err
	}
	pt, err := nip44.Decrypt(content, k)
	return pt, EncNIP44, err
}

func (c *cipher) key44(peer string) ([32]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.keys[peer]; ok {
		return k, nil
	}
	k, err := nip44.GenerateConversationKey(peer, c.sk)
	if err != nil {
		return k, fmt.Errorf("nwc: conversation key: %w", err)
	}
	c.keys[peer] = k
	return k, nil
}

func (c *cipher) key04(peer string) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.nip04[peer]; ok {
		return k, nil
	}
	k, err := nip04.ComputeSharedSecret(peer, c.sk)
	if err != nil {
		return nil, fmt.Errorf("nwc: shared secret: %w", err)
	}
	c.nip04[peer] = k
	return k, nil
}

// expired reports whether evt carries an expiration tag at or before now (unix seconds).
func expired(evt *nostr.Event, now int64) bool {
	t := evt.Tags.Find("expiration")
	if len(t) < 2 {
		return false
	}
	var exp int64
	if _, err := fmt.Sscan(t[1], &exp); err != nil {
		return true // unreadable expiration: do not act on it
	}
	return exp <= now
}
