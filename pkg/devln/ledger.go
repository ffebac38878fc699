// Package devln is devnet Lightning: an in-process ledger of named accounts, like LNbits'
// FakeWallet, for development and tests ONLY. It issues real BOLT11 invoices (regtest by
// default, signed by a devnet node key) and settles them with real preimages, but no money
// exists behind it and its HTTP API has no authentication. Never point it at mainnet funds.
//
// Every balance change happens under one mutex, so money is conserved: Total never changes.
package devln

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/zpay32"

	"github.com/openagents/runtime/pkg/invoice"
	"github.com/openagents/runtime/pkg/lightning"
)

// FaucetAccount holds the whole supply at start; Faucet moves money out of it.
const FaucetAccount = "faucet"

// DefaultSupply is 21e6 sats, in msat.
const DefaultSupply int64 = 21_000_000 * 1000

// DefaultExpiry applies when MakeInvoice is given expiry 0 (BOLT11's own default).
const DefaultExpiry = time.Hour

// Options for a Ledger.
type Options struct {
	Network string            // default "regtest"
	NodeKey *btcec.PrivateKey // signs invoices; nil: a random key
	Supply  int64             // msat in the faucet account at start; default DefaultSupply
	Now     func() time.Time  // default time.Now; tests pass a fake clock to expire invoices
}

// Transfer is one settled movement of money.
type Transfer struct {
	From        string    `json:"from"`
	To          string    `json:"to"`
	AmountMsat  int64     `json:"amount_msat"`
	PaymentHash string    `json:"payment_hash,omitempty"` // empty for faucet drips
	At          time.Time `json:"at"`
}

// Ledger is the devnet. Safe for concurrent use.
type Ledger struct {
	network string
	params  *chaincfg.Params
	key     *btcec.PrivateKey
	now     func() time.Time

	mu        sync.Mutex
	accounts  map[string]*Account
	invoices  map[string]*issued // by payment hash
	transfers []Transfer
}

// Account is a named wallet on the ledger. It implements lightning.Wallet.
type Account struct {
	l    *Ledger
	name string
	// guarded by l.mu
	balance  int64
	payments map[string]lightning.Payment // outgoing, by payment hash
}

// issued is an invoice the ledger made; settled is closed when it is paid.
type issued struct {
	owner    *Account
	inv      lightning.Invoice
	bolt11   string // normalized, to compare with what a payer presents
	preimage string
	settled  chan struct{}
}

var _ lightning.Wallet = (*Account)(nil)

// New makes a ledger whose faucet account holds the supply.
func New(o Options) *Ledger {
	if o.Network == "" {
		o.Network = invoice.Regtest
	}
	params, ok := invoice.Params(o.Network)
	if !ok {
		// A typo here would silently issue invoices nobody expects; fail loudly at startup.
		panic(fmt.Sprintf("devln: unknown network %q", o.Network))
	}
	if o.NodeKey == nil {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			panic(fmt.Sprintf("devln: node key: %v", err))
		}
		o.NodeKey = k
	}
	if o.Supply <= 0 {
		o.Supply = DefaultSupply
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Ledger{
		network:  o.Network,
		params:   params,
		key:      o.NodeKey,
		now:      o.Now,
		accounts: map[string]*Account{},
		invoices: map[string]*issued{},
	}
	l.account(FaucetAccount).balance = o.Supply
	return l
}

// Network is the ledger's BOLT11 network.
func (l *Ledger) Network() string { return l.network }

// NodePubkey is the hex compressed pubkey that signs the ledger's invoices (their payee).
func (l *Ledger) NodePubkey() string {
	return hex.EncodeToString(l.key.PubKey().SerializeCompressed())
}

// Account returns the named account, creating it empty on first use.
func (l *Ledger) Account(name string) *Account {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.account(name)
}

func (l *Ledger) account(name string) *Account {
	a := l.accounts[name]
	if a == nil {
		a = &Account{l: l, name: name, payments: map[string]lightning.Payment{}}
		l.accounts[name] = a
	}
	return a
}

// Faucet moves msat from the faucet account to the named account, without an invoice.
func (l *Ledger) Faucet(ctx context.Context, to string, msat int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if msat <= 0 {
		return fmt.Errorf("devln: faucet amount must be > 0, got %d", msat)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f, dst := l.account(FaucetAccount), l.account(to)
	if f.balance < msat {
		return fmt.Errorf("%w: faucet has %d msat, asked %d", lightning.ErrInsufficientBalance, f.balance, msat)
	}
	f.balance -= msat
	dst.balance += msat
	l.transfers = append(l.transfers, Transfer{From: FaucetAccount, To: to, AmountMsat: msat, At: l.now()})
	return nil
}

// Total is the sum of every balance, faucet included. It equals the supply at all times.
func (l *Ledger) Total() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t int64
	for _, a := range l.accounts {
		t += a.balance
	}
	return t
}

// Balances is a snapshot of every account's balance.
func (l *Ledger) Balances() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := make(map[string]int64, len(l.accounts))
	for n, a := range l.accounts {
		m[n] = a.balance
	}
	return m
}

// Transfers is every settled movement so far, oldest first.
func (l *Ledger) Transfers() []Transfer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Transfer(nil), l.transfers...)
}

// Accounts lists account names, sorted.
func (l *Ledger) Accounts() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, 0, len(l.accounts))
	for n := range l.accounts {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Name of the account.
func (a *Account) Name() string { return a.name }

// Network implements lightning.Wallet.
func (a *Account) Network() string { return a.l.network }

// Balance implements lightning.Wallet.
func (a *Account) Balance(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	return a.balance, nil
}

// MakeInvoice implements lightning.Wallet: a signed BOLT11 invoice with a fresh preimage.
func (a *Account) MakeInvoice(ctx context.Context, amountMsat int64, memo string, expiry time.Duration) (lightning.Invoice, error) {
	if err := ctx.Err(); err != nil {
		return lightning.Invoice{}, err
	}
	if amountMsat <= 0 {
		return lightning.Invoice{}, fmt.Errorf("%w: amount must be > 0 msat, got %d", lightning.ErrInvalidInvoice, amountMsat)
	}
	if expiry < 0 {
		return lightning.Invoice{}, fmt.Errorf("%w: negative expiry %s", lightning.ErrInvalidInvoice, expiry)
	}
	if expiry == 0 {
		expiry = DefaultExpiry
	}
	// BOLT11 carries whole seconds; round up so the invoice never expires before asked.
	if r := expiry % time.Second; r != 0 {
		expiry += time.Second - r
	}
	var preimage, paddr [32]byte
	if _, err := rand.Read(preimage[:]); err != nil {
		return lightning.Invoice{}, err
	}
	if _, err := rand.Read(paddr[:]); err != nil {
		return lightning.Invoice{}, err
	}
	hash := sha256.Sum256(preimage[:])
	created := time.Unix(a.l.now().Unix(), 0)
	features := lnwire.NewFeatureVector(lnwire.NewRawFeatureVector(
		lnwire.TLVOnionPayloadRequired, lnwire.PaymentAddrRequired), lnwire.Features)
	zi, err := zpay32.NewInvoice(a.l.params, hash, created,
		zpay32.Amount(lnwire.MilliSatoshi(amountMsat)),
		zpay32.Description(memo),
		zpay32.Expiry(expiry),
		zpay32.PaymentAddr(paddr),
		zpay32.Features(features),
	)
	if err != nil {
		return lightning.Invoice{}, fmt.Errorf("%w: %v", lightning.ErrInvalidInvoice, err)
	}
	bolt11, err := zi.Encode(zpay32.MessageSigner{SignCompact: func(msg []byte) ([]byte, error) {
		return ecdsa.SignCompact(a.l.key, chainhash.HashB(msg), true), nil
	}})
	if err != nil {
		return lightning.Invoice{}, fmt.Errorf("devln: sign invoice: %w", err)
	}
	inv := lightning.Invoice{
		Bolt11:      bolt11,
		PaymentHash: hex.EncodeToString(hash[:]),
		AmountMsat:  amountMsat,
		Memo:        memo,
		ExpiresAt:   created.Add(expiry),
	}
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	a.l.invoices[inv.PaymentHash] = &issued{
		owner:    a,
		inv:      inv,
		bolt11:   invoice.Normalize(bolt11),
		preimage: hex.EncodeToString(preimage[:]),
		settled:  make(chan struct{}),
	}
	return inv, nil
}

// PayInvoice implements lightning.Wallet. Refusals happen before any money moves and return
// one of the lightning sentinels; a nil error means the payment succeeded.
func (a *Account) PayInvoice(ctx context.Context, bolt11 string) (lightning.Payment, error) {
	if err := ctx.Err(); err != nil {
		return lightning.Payment{}, err
	}
	d, err := invoice.Decode(bolt11)
	if err != nil {
		return lightning.Payment{}, fmt.Errorf("%w: %v", lightning.ErrInvalidInvoice, err)
	}
	if d.Network != a.l.network {
		return lightning.Payment{}, fmt.Errorf("%w: invoice for %s, wallet on %s", lightning.ErrInvalidInvoice, d.Network, a.l.network)
	}
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	is := l.invoices[d.PaymentHash]
	// The whole string must match: another node's invoice reusing a known hash is not ours.
	if is == nil || is.bolt11 != invoice.Normalize(bolt11) {
		return lightning.Payment{}, fmt.Errorf("%w: invoice %s was not issued on this devnet", lightning.ErrNoRoute, d.PaymentHash)
	}
	if is.inv.Settled {
		return lightning.Payment{}, fmt.Errorf("%w: %s", lightning.ErrAlreadyPaid, d.PaymentHash)
	}
	now := l.now()
	if !now.Before(is.inv.ExpiresAt) {
		return lightning.Payment{}, fmt.Errorf("%w: %s expired at %s", lightning.ErrExpired, d.PaymentHash, is.inv.ExpiresAt.UTC().Format(time.RFC3339))
	}
	amt := is.inv.AmountMsat
	if a.balance < amt {
		return lightning.Payment{}, fmt.Errorf("%w: balance %d msat, invoice %d msat", lightning.ErrInsufficientBalance, a.balance, amt)
	}
	a.balance -= amt
	is.owner.balance += amt
	is.inv.Settled = true
	is.inv.SettledAt = now
	is.inv.Preimage = is.preimage
	close(is.settled)
	p := lightning.Payment{
		PaymentHash: d.PaymentHash,
		Preimage:    is.preimage,
		Status:      lightning.PaymentSucceeded,
		AmountMsat:  amt,
	}
	a.payments[d.PaymentHash] = p
	l.transfers = append(l.transfers, Transfer{From: a.name, To: is.owner.name, AmountMsat: amt, PaymentHash: d.PaymentHash, At: now})
	return p, nil
}

// LookupPayment implements lightning.Wallet: this account's outgoing payment by hash.
func (a *Account) LookupPayment(ctx context.Context, paymentHash string) (lightning.Payment, error) {
	if err := ctx.Err(); err != nil {
		return lightning.Payment{}, err
	}
	h, err := normHash(paymentHash)
	if err != nil {
		return lightning.Payment{}, err
	}
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	p, ok := a.payments[h]
	if !ok {
		return lightning.Payment{}, fmt.Errorf("%w: payment %s", lightning.ErrNotFound, h)
	}
	return p, nil
}

// LookupInvoice implements lightning.Wallet: an invoice this account issued.
func (a *Account) LookupInvoice(ctx context.Context, paymentHash string) (lightning.Invoice, error) {
	if err := ctx.Err(); err != nil {
		return lightning.Invoice{}, err
	}
	h, err := normHash(paymentHash)
	if err != nil {
		return lightning.Invoice{}, err
	}
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	is := a.l.invoices[h]
	if is == nil || is.owner != a {
		return lightning.Invoice{}, fmt.Errorf("%w: invoice %s", lightning.ErrNotFound, h)
	}
	return is.inv, nil
}

// WaitSettled blocks until the account's invoice is paid or ctx ends. It wakes on the payment
// itself, not by polling.
func (a *Account) WaitSettled(ctx context.Context, paymentHash string) (lightning.Invoice, error) {
	h, err := normHash(paymentHash)
	if err != nil {
		return lightning.Invoice{}, err
	}
	a.l.mu.Lock()
	is := a.l.invoices[h]
	if is == nil || is.owner != a {
		a.l.mu.Unlock()
		return lightning.Invoice{}, fmt.Errorf("%w: invoice %s", lightning.ErrNotFound, h)
	}
	ch := is.settled
	a.l.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return lightning.Invoice{}, ctx.Err()
	}
	a.l.mu.Lock()
	defer a.l.mu.Unlock()
	return is.inv, nil
}

var errBadHash = errors.New("payment hash must be 64 hex characters")

// normHash lowercases a payment hash; a malformed one can not name anything, so it is not found.
func normHash(h string) (string, error) {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return "", fmt.Errorf("%w: %v", lightning.ErrNotFound, errBadHash)
	}
	return hex.EncodeToString(b), nil
}
