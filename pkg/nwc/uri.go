// Package nwc speaks Nostr Wallet Connect (NIP-47): a Client that is a lightning.Wallet over
// relays, and a Service that exposes any lightning.Wallet to authorised clients over relays.
// Requests are NIP-44 v2 encrypted (NIP-04 only for wallets that support nothing else).
package nwc

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/nbd-wtf/go-nostr"
)

// Scheme of a connection URI.
const Scheme = "nostr+walletconnect"

// ErrInvalidURI: the connection string is malformed. The secret never appears in its text.
var ErrInvalidURI = errors.New("nwc: invalid connection URI")

// URI is a connection string: nostr+walletconnect://<wallet pubkey>?relay=...&secret=...&lud16=...
// String, GoString and LogValue redact the secret; Encode gives the full URI.
type URI struct {
	WalletPubkey string   // hex x-only pubkey of the wallet service
	Relays       []string // ws:// or wss://
	Secret       string   // hex secret key the client signs and encrypts with
	Lud16        string   // optional lightning address
}

// ParseURI parses and validates a connection string.
func ParseURI(s string) (URI, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		// url's error quotes the input, secret included: do not wrap it.
		return URI{}, fmt.Errorf("%w: not a URL", ErrInvalidURI)
	}
	if u.Scheme != Scheme {
		return URI{}, fmt.Errorf("%w: scheme must be %s", ErrInvalidURI, Scheme)
	}
	pk := u.Host
	if pk == "" {
		pk = strings.TrimPrefix(u.Opaque, "//") // nostr+walletconnect:<pubkey>?... also seen in the wild
	}
	out := URI{WalletPubkey: strings.ToLower(pk)}
	q := u.Query()
	out.Relays = q["relay"]
	out.Secret = strings.ToLower(q.Get("secret"))
	out.Lud16 = q.Get("lud16")
	return out, out.Validate()
}

// Validate reports the first problem with u.
func (u URI) Validate() error {
	if !isHexKey(u.WalletPubkey) || !nostr.IsValidPublicKey(u.WalletPubkey) {
		return fmt.Errorf("%w: wallet pubkey must be 64 hex characters", ErrInvalidURI)
	}
	if len(u.Relays) == 0 {
		return fmt.Errorf("%w: at least one relay is required", ErrInvalidURI)
	}
	for i, r := range u.Relays {
		ru, err := url.Parse(r)
		if err != nil || (ru.Scheme != "ws" && ru.Scheme != "wss") || ru.Host == "" {
			// The value is not echoed: a mangled URI can put the secret inside a relay value.
			return fmt.Errorf("%w: relay #%d must be a ws:// or wss:// URL", ErrInvalidURI, i+1)
		}
	}
	if !isHexKey(u.Secret) {
		return fmt.Errorf("%w: secret must be 64 hex characters", ErrInvalidURI)
	}
	if !validSecret(u.Secret) {
		return fmt.Errorf("%w: secret is not a valid key", ErrInvalidURI)
	}
	return nil
}

// validSecret: a secp256k1 secret key is in [1, n-1]; zero or overflow would sign garbage.
func validSecret(sk string) bool {
	b, err := hex.DecodeString(sk)
	if err != nil || len(b) != 32 {
		return false
	}
	var k btcec.ModNScalar
	return !k.SetByteSlice(b) && !k.IsZero()
}

// Encode is the full connection string, secret included. Treat it as a password.
func (u URI) Encode() string {
	q := url.Values{}
	for _, r := range u.Relays {
		q.Add("relay", r)
	}
	if u.Secret != "" {
		q.Set("secret", u.Secret)
	}
	if u.Lud16 != "" {
		q.Set("lud16", u.Lud16)
	}
	return Scheme + "://" + u.WalletPubkey + "?" + q.Encode()
}

// String is the connection string with the secret redacted, safe to log.
func (u URI) String() string {
	r := u
	if r.Secret != "" {
		r.Secret = "REDACTED"
	}
	return r.Encode()
}

// GoString keeps %#v from printing the secret.
func (u URI) GoString() string { return "nwc.URI(" + u.String() + ")" }

// LogValue keeps slog from printing the secret.
func (u URI) LogValue() slog.Value { return slog.StringValue(u.String()) }

// ClientPubkey is the pubkey derived from the secret: the one the wallet authorises.
func (u URI) ClientPubkey() (string, error) {
	pk, err := nostr.GetPublicKey(u.Secret)
	if err != nil {
		return "", fmt.Errorf("%w: secret is not a valid key", ErrInvalidURI)
	}
	return pk, nil
}

func isHexKey(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32
}
