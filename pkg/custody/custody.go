// Package custody seals agent secrets (mnemonics, wallet connection strings) at rest with an
// operator-provided key-encryption key (KEK): AES-256-GCM with a key id, so the KEK can be
// rotated and a wrong KEK is told apart from corruption.
package custody

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
)

var (
	ErrWrongKEK = errors.New("custody: sealed under a different key-encryption key")
	ErrCorrupt  = errors.New("custody: sealed secret does not open (corrupt or tampered)")
	ErrNotFound = errors.New("custody: no sealed secrets for agent")
	ErrBadKEK   = errors.New("custody: bad key-encryption key")
)

// KEK is a 32-byte key-encryption key with an id derived from it.
type KEK struct {
	ID  string
	key []byte
}

// String never shows the key.
func (k KEK) String() string { return "kek:" + k.ID }

// ParseKEK accepts 64 hex characters or standard base64 of 32 bytes (surrounding space ignored).
func ParseKEK(data []byte) (KEK, error) {
	s := strings.TrimSpace(string(data))
	var key []byte
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		key = b
	} else if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 32 {
		key = b
	} else {
		return KEK{}, fmt.Errorf("%w: want 32 bytes as 64 hex characters or base64", ErrBadKEK)
	}
	sum := sha256.Sum256(append([]byte("openagents-kek-id:"), key...))
	return KEK{ID: hex.EncodeToString(sum[:4]), key: key}, nil
}

// LoadKEK reads a KEK file.
func LoadKEK(path string) (KEK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return KEK{}, fmt.Errorf("%w: %v", ErrBadKEK, err)
	}
	return ParseKEK(b)
}

// NewKEK makes a random KEK and its hex encoding (to write to a file or Secret).
func NewKEK() (KEK, string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	k, _ := ParseKEK([]byte(h))
	return k, h
}

// Sealed is the at-rest form.
type Sealed struct {
	V     int    `json:"v"`
	KID   string `json:"kid"`
	Nonce []byte `json:"nonce"`
	Data  []byte `json:"data"`
}

func (k KEK) aead() cipher.AEAD {
	block, _ := aes.NewCipher(k.key)
	g, _ := cipher.NewGCM(block)
	return g
}

// Seal encrypts plain bound to aad (the agent pubkey, so records cannot be swapped).
func (k KEK) Seal(plain []byte, aad string) Sealed {
	g := k.aead()
	nonce := make([]byte, g.NonceSize())
	_, _ = rand.Read(nonce)
	return Sealed{V: 1, KID: k.ID, Nonce: nonce, Data: g.Seal(nil, nonce, plain, []byte(aad))}
}

// Open decrypts s.
func (k KEK) Open(s Sealed, aad string) ([]byte, error) {
	if s.KID != k.ID {
		return nil, fmt.Errorf("%w (sealed with %s, have %s)", ErrWrongKEK, s.KID, k.ID)
	}
	g := k.aead()
	if len(s.Nonce) != g.NonceSize() {
		return nil, ErrCorrupt
	}
	p, err := g.Open(nil, s.Nonce, s.Data, []byte(aad))
	if err != nil {
		return nil, ErrCorrupt
	}
	return p, nil
}

// Secrets are what custody keeps per agent.
type Secrets struct {
	Mnemonic string `json:"mnemonic"`
	NWC      string `json:"nwc,omitempty"` // nostr+walletconnect:// URI, when the agent's wallet is NWC
}

// Vault stores sealed Secrets in the keys bucket.
type Vault struct {
	KV  jetstream.KeyValue
	KEK KEK
}

// OpenVault binds to the keys bucket.
func OpenVault(ctx context.Context, js jetstream.JetStream, kek KEK) (*Vault, error) {
	kv, err := js.KeyValue(ctx, contracts.BucketKeys)
	if err != nil {
		return nil, fmt.Errorf("custody: open bucket: %w", err)
	}
	return &Vault{KV: kv, KEK: kek}, nil
}

func key(pub string) string { return "agent." + pub }

// Put seals and stores s for agent pub, replacing what was there.
func (v *Vault) Put(ctx context.Context, pub string, s Secrets) error {
	plain, _ := json.Marshal(s)
	b, _ := json.Marshal(v.KEK.Seal(plain, pub))
	if _, err := v.KV.Put(ctx, key(pub), b); err != nil {
		return fmt.Errorf("custody: put: %w", err)
	}
	return nil
}

// Get opens the secrets of agent pub.
func (v *Vault) Get(ctx context.Context, pub string) (Secrets, error) {
	e, err := v.KV.Get(ctx, key(pub))
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Secrets{}, fmt.Errorf("%w %s", ErrNotFound, pub)
		}
		return Secrets{}, fmt.Errorf("custody: get: %w", err)
	}
	return v.open(e.Value(), pub, v.KEK)
}

func (v *Vault) open(raw []byte, pub string, k KEK) (Secrets, error) {
	var sealed Sealed
	if err := json.Unmarshal(raw, &sealed); err != nil {
		return Secrets{}, ErrCorrupt
	}
	plain, err := k.Open(sealed, pub)
	if err != nil {
		return Secrets{}, err
	}
	var s Secrets
	if err := json.Unmarshal(plain, &s); err != nil {
		return Secrets{}, ErrCorrupt
	}
	return s, nil
}

// Rotate re-seals every record under next. Records already under next are left alone, so an
// interrupted rotation can simply be run again. It returns how many records were re-sealed.
func (v *Vault) Rotate(ctx context.Context, next KEK) (int, error) {
	lister, err := v.KV.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return 0, nil
		}
		return 0, fmt.Errorf("custody: list: %w", err)
	}
	n := 0
	for k := range lister.Keys() {
		e, err := v.KV.Get(ctx, k)
		if err != nil {
			return n, fmt.Errorf("custody: get %s: %w", k, err)
		}
		var sealed Sealed
		if err := json.Unmarshal(e.Value(), &sealed); err != nil {
			return n, fmt.Errorf("custody: %s: %w", k, ErrCorrupt)
		}
		if sealed.KID == next.ID {
			continue
		}
		pub := strings.TrimPrefix(k, "agent.")
		s, err := v.open(e.Value(), pub, v.KEK)
		if err != nil {
			return n, fmt.Errorf("custody: %s: %w", k, err)
		}
		plain, _ := json.Marshal(s)
		b, _ := json.Marshal(next.Seal(plain, pub))
		if _, err := v.KV.Update(ctx, k, b, e.Revision()); err != nil {
			return n, fmt.Errorf("custody: re-seal %s: %w", k, err)
		}
		n++
	}
	v.KEK = next
	return n, nil
}
