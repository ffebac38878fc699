package payer

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/openagents/runtime/pkg/custody"
	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/registry"
)

// WalletSource gives the wallet that holds an agent's money.
type WalletSource interface {
	Wallet(ctx context.Context, a registry.Agent) (lightning.Wallet, error)
}

// ErrNoWallet: the agent has no wallet this payer can reach (wrong kind, no credentials).
var ErrNoWallet = errors.New("payer: no wallet for agent")

// settleWaiter is implemented by wallets that can block until an invoice settles (devln's
// Account and Client); others are polled with LookupInvoice.
type settleWaiter interface {
	WaitSettled(ctx context.Context, paymentHash string) (lightning.Invoice, error)
}

// DevnetAccount names an agent's devnet account: its wallet binding, else its name.
func DevnetAccount(a registry.Agent) string {
	if a.Wallet.Account != "" {
		return a.Wallet.Account
	}
	return a.Name
}

// DevnetLedger serves every agent from an in-process devnet ledger, one account per agent.
type DevnetLedger struct{ Ledger *devln.Ledger }

func (d DevnetLedger) Wallet(_ context.Context, a registry.Agent) (lightning.Wallet, error) {
	if err := devnetKind(a); err != nil {
		return nil, err
	}
	return d.Ledger.Account(DevnetAccount(a)), nil
}

// DevnetHTTP serves every agent from a devnet ledger reached over its HTTP API (the services
// run as separate processes).
type DevnetHTTP struct {
	URL     string
	mu      sync.Mutex
	clients map[string]*devln.Client
}

func (d *DevnetHTTP) Wallet(_ context.Context, a registry.Agent) (lightning.Wallet, error) {
	if err := devnetKind(a); err != nil {
		return nil, err
	}
	name := DevnetAccount(a)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.clients == nil {
		d.clients = map[string]*devln.Client{}
	}
	c := d.clients[name]
	if c == nil {
		c = devln.NewClient(d.URL, name)
		d.clients[name] = c
	}
	return c, nil
}

func devnetKind(a registry.Agent) error {
	if a.Wallet.Kind != "" && a.Wallet.Kind != registry.WalletDevnet {
		return fmt.Errorf("%w: agent %s has a %s wallet, this payer serves devnet", ErrNoWallet, a.Name, a.Wallet.Kind)
	}
	return nil
}

// NWC serves each agent from its own Nostr Wallet Connect connection, whose URI is sealed in
// custody. Dial builds a wallet from a URI (pkg/nwc's client); connections are cached per agent.
// The URI carries the wallet's secret: it is never logged.
type NWC struct {
	Vault *custody.Vault
	Dial  func(ctx context.Context, uri string) (lightning.Wallet, error)

	mu      sync.Mutex
	wallets map[string]lightning.Wallet
}

func (n *NWC) Wallet(ctx context.Context, a registry.Agent) (lightning.Wallet, error) {
	if a.Wallet.Kind != registry.WalletNWC {
		return nil, fmt.Errorf("%w: agent %s has a %q wallet, this payer serves nwc", ErrNoWallet, a.Name, a.Wallet.Kind)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if w := n.wallets[a.Pubkey]; w != nil {
		return w, nil
	}
	s, err := n.Vault.Get(ctx, a.Pubkey)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoWallet, a.Name, err)
	}
	if s.NWC == "" {
		return nil, fmt.Errorf("%w: %s has no NWC connection in custody", ErrNoWallet, a.Name)
	}
	w, err := n.Dial(ctx, s.NWC)
	if err != nil {
		// The dial error may quote the URI; do not wrap it.
		return nil, fmt.Errorf("%w: %s: NWC connection failed", ErrNoWallet, a.Name)
	}
	if n.wallets == nil {
		n.wallets = map[string]lightning.Wallet{}
	}
	n.wallets[a.Pubkey] = w
	return w, nil
}

// SubAccounts serves the whole fleet from one node (LND): every agent pays and is paid through
// Node, and the payer keeps each agent's balance in its ledger (acct.<agent>), credited by the
// agent's funding invoices (inv.<hash> tags each with its agent) and debited by its payments.
// Money sent to the node any other way belongs to no agent.
type SubAccounts struct{ Node lightning.Wallet }

func (s SubAccounts) Wallet(context.Context, registry.Agent) (lightning.Wallet, error) {
	return s.Node, nil
}

// ledgerBalances marks a source whose per-agent balances live in the payer's ledger.
func (SubAccounts) ledgerBalances() bool { return true }
