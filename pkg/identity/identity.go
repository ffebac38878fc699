// Package identity derives an agent's keys from its one BIP39 mnemonic: the Nostr key by NIP-06
// (m/44'/1237'/0'/0/0) and a Bitcoin wallet key by BIP84 on its own path, so the two never share
// a key. An Identity prints, logs and marshals as its npub only: its secrets never leave by
// accident.
package identity

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/hdkeychain"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip06"
	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/tyler-smith/go-bip39"
)

var (
	// ErrInvalidMnemonic: the words are not a valid BIP39 English mnemonic (count, word or
	// checksum). The error text never contains the words themselves.
	ErrInvalidMnemonic = errors.New("identity: invalid mnemonic")
	// ErrInvalidAgentRef: not an npub and not a 64-character hex public key.
	ErrInvalidAgentRef = errors.New("identity: invalid agent reference")
	// ErrUnknownNetwork: a Bitcoin network other than mainnet, testnet, signet or regtest.
	ErrUnknownNetwork = errors.New("identity: unknown bitcoin network")
)

// Bitcoin networks a wallet key can be derived for.
const (
	Mainnet = "mainnet"
	Testnet = "testnet"
	Signet  = "signet"
	Regtest = "regtest"
)

// Identity is an agent's keys. SecretKey, Nsec and Wallet.SecretKey are secrets: String,
// GoString, LogValue and MarshalJSON show only the npub (and public wallet data).
type Identity struct {
	SecretKey string // hex, 32 bytes
	PublicKey string // hex, x-only, 32 bytes
	Npub      string
	Nsec      string
	Wallet    WalletKey
}

// WalletKey is the BIP84 (P2WPKH) key at m/84'/coin'/0'/0/0.
type WalletKey struct {
	Network   string
	Path      string // e.g. m/84'/0'/0'/0/0
	SecretKey string // hex, 32 bytes: a secret
	PublicKey string // hex, 33-byte compressed
	Address   string // bech32 P2WPKH
}

type options struct{ network string }

// Option tunes FromMnemonic.
type Option func(*options)

// WithNetwork selects the Bitcoin network of the wallet key (default mainnet). testnet, signet
// and regtest use coin type 1'; their addresses differ only by prefix (tb1 / bcrt1).
func WithNetwork(network string) Option { return func(o *options) { o.network = network } }

// NewMnemonic returns 12 fresh words (128 bits of entropy). nip06.GenerateSeedWords makes 24,
// and this project's agents use 12 (SPEC: Keys).
func NewMnemonic() (string, error) {
	entropy, err := bip39.NewEntropy(128)
	if err != nil {
		return "", fmt.Errorf("identity: entropy: %w", err)
	}
	return bip39.NewMnemonic(entropy)
}

// Normalize lowers case and collapses whitespace, so words pasted from anywhere derive the same keys.
func Normalize(words string) string {
	return strings.Join(strings.Fields(strings.ToLower(words)), " ")
}

// CheckMnemonic validates count, words and checksum without deriving anything.
func CheckMnemonic(words string) error {
	w := strings.Fields(Normalize(words))
	switch len(w) {
	case 12, 15, 18, 21, 24:
	default:
		return fmt.Errorf("%w: %d words, want 12, 15, 18, 21 or 24", ErrInvalidMnemonic, len(w))
	}
	for i, word := range w {
		if _, ok := bip39.GetWordIndex(word); !ok {
			// Position only: the word itself is part of a secret.
			return fmt.Errorf("%w: word %d is not in the BIP39 English list", ErrInvalidMnemonic, i+1)
		}
	}
	if _, err := bip39.EntropyFromMnemonic(strings.Join(w, " ")); err != nil {
		if errors.Is(err, bip39.ErrChecksumIncorrect) {
			return fmt.Errorf("%w: checksum does not match (a word is wrong or out of order)", ErrInvalidMnemonic)
		}
		return fmt.Errorf("%w: %v", ErrInvalidMnemonic, err)
	}
	return nil
}

// FromMnemonic derives the Nostr identity (NIP-06, empty passphrase) and the wallet key.
func FromMnemonic(words string, opts ...Option) (Identity, error) {
	o := options{network: Mainnet}
	for _, f := range opts {
		f(&o)
	}
	params, coin, err := networkParams(o.network)
	if err != nil {
		return Identity{}, err
	}
	if err := CheckMnemonic(words); err != nil {
		return Identity{}, err
	}
	seed := nip06.SeedFromWords(Normalize(words))
	sk, err := nip06.PrivateKeyFromSeed(seed)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: nip06 derivation: %w", err)
	}
	id, err := fromSecretKey(sk)
	if err != nil {
		return Identity{}, err
	}
	id.Wallet, err = walletKey(seed, params, coin, o.network)
	if err != nil {
		return Identity{}, err
	}
	return id, nil
}

func fromSecretKey(sk string) (Identity, error) {
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: public key: %w", err)
	}
	npub, err := nip19.EncodePublicKey(pk)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: npub: %w", err)
	}
	nsec, err := nip19.EncodePrivateKey(sk)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: nsec: %w", err)
	}
	return Identity{SecretKey: sk, PublicKey: pk, Npub: npub, Nsec: nsec}, nil
}

func networkParams(network string) (*chaincfg.Params, uint32, error) {
	switch network {
	case Mainnet:
		return &chaincfg.MainNetParams, 0, nil
	case Testnet:
		return &chaincfg.TestNet3Params, 1, nil
	case Signet:
		return &chaincfg.SigNetParams, 1, nil
	case Regtest:
		return &chaincfg.RegressionNetParams, 1, nil
	}
	return nil, 0, fmt.Errorf("%w: %q (want mainnet, testnet, signet or regtest)", ErrUnknownNetwork, network)
}

// walletKey derives BIP84 m/84'/coin'/0'/0/0.
func walletKey(seed []byte, params *chaincfg.Params, coin uint32, network string) (WalletKey, error) {
	k, err := hdkeychain.NewMaster(seed, params)
	if err != nil {
		return WalletKey{}, fmt.Errorf("identity: bip32 master: %w", err)
	}
	h := uint32(hdkeychain.HardenedKeyStart)
	for _, i := range []uint32{h + 84, h + coin, h + 0, 0, 0} {
		if k, err = k.Derive(i); err != nil {
			return WalletKey{}, fmt.Errorf("identity: bip84 derivation: %w", err)
		}
	}
	priv, err := k.ECPrivKey()
	if err != nil {
		return WalletKey{}, fmt.Errorf("identity: wallet private key: %w", err)
	}
	pub := priv.PubKey().SerializeCompressed()
	addr, err := btcutil.NewAddressWitnessPubKeyHash(btcutil.Hash160(pub), params)
	if err != nil {
		return WalletKey{}, fmt.Errorf("identity: p2wpkh address: %w", err)
	}
	return WalletKey{
		Network:   network,
		Path:      fmt.Sprintf("m/84'/%d'/0'/0/0", coin),
		SecretKey: hex.EncodeToString(priv.Serialize()),
		PublicKey: hex.EncodeToString(pub),
		Address:   addr.EncodeAddress(),
	}, nil
}

// ParseAgentRef accepts an npub or a 64-character hex public key and returns lowercase hex.
func ParseAgentRef(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(strings.ToLower(s), "npub1") {
		prefix, v, err := nip19.Decode(strings.ToLower(s))
		if err != nil || prefix != "npub" {
			return "", fmt.Errorf("%w: bad npub", ErrInvalidAgentRef)
		}
		pk, _ := v.(string)
		if !nostr.IsValidPublicKey(pk) {
			return "", fmt.Errorf("%w: npub is not a valid public key", ErrInvalidAgentRef)
		}
		return pk, nil
	}
	if len(s) != 64 {
		return "", fmt.Errorf("%w: want npub1... or 64 hex characters, got %d characters", ErrInvalidAgentRef, len(s))
	}
	pk := strings.ToLower(s)
	if _, err := hex.DecodeString(pk); err != nil {
		return "", fmt.Errorf("%w: not hex", ErrInvalidAgentRef)
	}
	if !nostr.IsValidPublicKey(pk) {
		return "", fmt.Errorf("%w: not a point on secp256k1", ErrInvalidAgentRef)
	}
	return pk, nil
}

// String returns the npub only.
func (id Identity) String() string { return id.Npub }

// GoString keeps %#v from dumping the secret fields.
func (id Identity) GoString() string {
	return "identity.Identity{Npub:" + fmt.Sprintf("%q", id.Npub) + "}"
}

// LogValue makes slog print the npub only.
func (id Identity) LogValue() slog.Value { return slog.StringValue(id.Npub) }

// MarshalJSON writes public data only; persist the (sealed) mnemonic, never an Identity.
func (id Identity) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		PublicKey string    `json:"pubkey"`
		Npub      string    `json:"npub"`
		Wallet    WalletKey `json:"wallet"`
	}{id.PublicKey, id.Npub, id.Wallet})
}

// String returns the address only.
func (w WalletKey) String() string { return w.Address }

// GoString keeps %#v from dumping the secret key.
func (w WalletKey) GoString() string {
	return fmt.Sprintf("identity.WalletKey{Network:%q, Path:%q, Address:%q}", w.Network, w.Path, w.Address)
}

// LogValue makes slog print the address only.
func (w WalletKey) LogValue() slog.Value { return slog.StringValue(w.Address) }

// MarshalJSON writes public data only.
func (w WalletKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Network   string `json:"network"`
		Path      string `json:"path"`
		PublicKey string `json:"pubkey"`
		Address   string `json:"address"`
	}{w.Network, w.Path, w.PublicKey, w.Address})
}
