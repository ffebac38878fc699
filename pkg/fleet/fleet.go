// Package fleet holds the operator's actions on agents — spawn, start, stop, fund, kill,
// trigger — on top of the registry, custody, the payer and the publisher. The CLI, devnet and
// `openagents run` all call these, so there is one spawn flow.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/budget"
	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/custody"
	"github.com/openagents/runtime/pkg/identity"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/payclient"
	"github.com/openagents/runtime/pkg/publisher"
	"github.com/openagents/runtime/pkg/registry"
)

// Fleet is an operator's handle on the agents of one NATS deployment.
type Fleet struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Registry *registry.Registry
	Vault    *custody.Vault // nil: operations that need secrets fail clearly
	Pay      payclient.Client
	Relays   []string // default relays for new agents
	Network  string   // bitcoin network of wallets
	Wallet   string   // wallet kind for new agents: devnet|lnd|nwc
}

// Open binds a fleet to a connection; vault may be nil for read-only use.
func Open(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, vault *custody.Vault) (*Fleet, error) {
	reg, err := registry.Open(ctx, js)
	if err != nil {
		return nil, err
	}
	return &Fleet{NC: nc, JS: js, Registry: reg, Vault: vault, Pay: payclient.Client{NC: nc}, Network: identity.Regtest, Wallet: registry.WalletDevnet}, nil
}

// SpawnOptions for a new agent.
type SpawnOptions struct {
	Name             string
	About            string
	Capabilities     []string
	HeartbeatSeconds int64
	Triggers         []string
	Relays           []string
	Channels         []string
	Goals            []string
	Mnemonic         string // restore from these words; empty: generate
	BootstrapSats    int64  // > 0: ask the payer for a funding invoice
	Limits           nipsa.BudgetLimits
	Operator         string // operator hex pubkey; default the agent itself
	Provider         string
	MinTickSeconds   int64
	NWC              string // the agent's own wallet connection, when Wallet is nwc
	Inactive         bool   // spawn stopped
}

// Spawned is what spawn reports. Mnemonic is set only so the caller can show it once.
type Spawned struct {
	Agent          registry.Agent `json:"agent"`
	WalletAddress  string         `json:"wallet_address"`
	FundingInvoice string         `json:"funding_invoice,omitempty"`
	Mnemonic       string         `json:"-"`
}

var ErrNoVault = errors.New("fleet: no key-encryption key: set OPENAGENTS_KEK_FILE or --kek-file")

// Spawn runs the seed's spawn flow: mnemonic, keys, registry, sealed secrets, profile, state
// and schedule events, and a funding invoice.
func (f *Fleet) Spawn(ctx context.Context, o SpawnOptions) (Spawned, error) {
	if f.Vault == nil {
		return Spawned{}, ErrNoVault
	}
	if err := registry.ValidName(o.Name); err != nil {
		return Spawned{}, err
	}
	if _, err := f.Registry.ByName(ctx, o.Name); err == nil {
		return Spawned{}, fmt.Errorf("%w: %s", registry.ErrNameTaken, o.Name)
	}
	words := o.Mnemonic
	if words == "" {
		var err error
		if words, err = identity.NewMnemonic(); err != nil {
			return Spawned{}, err
		}
	}
	id, err := identity.FromMnemonic(words, identity.WithNetwork(f.Network))
	if err != nil {
		return Spawned{}, err
	}
	// Refuse before touching custody: restoring the mnemonic of a registered agent under a new
	// name must not overwrite that agent's sealed secrets.
	if _, _, err := f.Registry.Get(ctx, id.PublicKey); err == nil {
		return Spawned{}, fmt.Errorf("%w: %s", registry.ErrExists, id.Npub)
	} else if !errors.Is(err, registry.ErrNotFound) {
		return Spawned{}, err
	}
	if o.HeartbeatSeconds <= 0 {
		o.HeartbeatSeconds = 900
	}
	if len(o.Triggers) == 0 {
		o.Triggers = []string{"mention", "dm", "zap", contracts.TriggerChannel}
	}
	if o.Limits == (nipsa.BudgetLimits{}) {
		o.Limits = budget.Defaults
	}
	relays := o.Relays
	if len(relays) == 0 {
		relays = f.Relays
	}
	if o.About == "" {
		o.About = "an OpenAgents agent"
	}
	if len(o.Capabilities) == 0 {
		o.Capabilities = []string{"post", "dm", "zap", "channel"}
	}
	a := registry.Agent{Pubkey: id.PublicKey, Npub: id.Npub, Name: o.Name, About: o.About, Capabilities: o.Capabilities,
		Lifecycle: string(lifecycle.Spawning), Active: !o.Inactive, HeartbeatSeconds: o.HeartbeatSeconds, Triggers: o.Triggers,
		Relays: relays, Channels: o.Channels, Limits: o.Limits, Provider: o.Provider, MinTickSeconds: o.MinTickSeconds,
		Wallet: registry.WalletBinding{Kind: f.Wallet, Account: id.PublicKey}}
	// Secrets first: an agent in the registry whose key is lost could never tick.
	if err := f.Vault.Put(ctx, id.PublicKey, custody.Secrets{Mnemonic: words, NWC: o.NWC}); err != nil {
		return Spawned{}, err
	}
	if err := f.Registry.Create(ctx, a); err != nil {
		return Spawned{}, err
	}
	now := time.Now()
	var goals []nipsa.Goal
	for i, g := range o.Goals {
		goals = append(goals, nipsa.Goal{ID: fmt.Sprintf("g%d", i+1), Description: g, Priority: i + 1, CreatedAt: now.Unix(), Status: nipsa.GoalActive})
	}
	st := nipsa.AgentState{Goals: goals, Memory: []nipsa.Memory{{Type: "spawn", Content: "spawned as " + o.Name, Timestamp: now.Unix()}},
		PendingTasks: []string{}, Beliefs: map[string]any{},
		Budget: nipsa.BudgetState{Limits: o.Limits, CurrentDate: budget.Day(now)}}
	if err := f.publishIdentity(ctx, id.SecretKey, a, st, o.Operator); err != nil {
		return Spawned{}, err
	}
	out := Spawned{Agent: a, WalletAddress: id.Wallet.Address, Mnemonic: words}
	if o.BootstrapSats > 0 {
		inv, err := f.Pay.Invoice(ctx, a.Pubkey, o.BootstrapSats, "fund "+o.Name)
		if err != nil {
			return out, fmt.Errorf("agent spawned, but no funding invoice: %w", err)
		}
		out.FundingInvoice = inv.Bolt11
	}
	return out, nil
}

// publishIdentity publishes AgentProfile, AgentState (sealed) and AgentSchedule and stores the
// state as the operational copy.
func (f *Fleet) publishIdentity(ctx context.Context, sk string, a registry.Agent, st nipsa.AgentState, operator string) error {
	if operator == "" {
		operator = a.Pubkey
	}
	prof, err := nipsa.ProfileEvent(nipsa.AgentProfile{Name: a.Name, About: a.About, Capabilities: a.Capabilities,
		AutonomyLevel: "autonomous", Version: "1", Threshold: 1, Signers: 1, Signer: a.Pubkey, Operator: operator})
	if err != nil {
		return err
	}
	stateEv, _, err := nipsa.Seal(sk, st)
	if err != nil {
		return err
	}
	sched, err := nipsa.ScheduleEvent(scheduleOf(a))
	if err != nil {
		return err
	}
	var evs []nostr.Event
	for _, ev := range []nostr.Event{prof, stateEv, sched} {
		ev.CreatedAt = nostr.Now()
		if err := ev.Sign(sk); err != nil {
			return err
		}
		evs = append(evs, ev)
	}
	kv, err := f.JS.KeyValue(ctx, contracts.BucketState)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(evs[1])
	if _, err := kv.Create(ctx, a.Pubkey, b); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("store initial state: %w", err)
	}
	return publisher.Enqueue(ctx, f.JS, a.Pubkey, a.Relays, evs...)
}

func scheduleOf(a registry.Agent) nipsa.AgentSchedule {
	return nipsa.AgentSchedule{Active: a.Active, HeartbeatSeconds: a.HeartbeatSeconds, Triggers: a.Triggers, BusinessHours: a.BusinessHours}
}
