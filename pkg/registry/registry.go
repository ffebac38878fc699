// Package registry is the agent registry in JetStream KV, so every service and operator sees
// the same agents. It holds only public configuration; secrets live sealed in pkg/custody.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/nipsa"
)

var (
	ErrNotFound  = errors.New("registry: unknown agent")
	ErrNameTaken = errors.New("registry: name already taken")
	ErrBadName   = errors.New("registry: bad name")
	ErrExists    = errors.New("registry: agent already registered")
)

// Wallet kinds.
const (
	WalletDevnet = "devnet"
	WalletLND    = "lnd"
	WalletNWC    = "nwc"
)

// WalletBinding says where an agent's money is. With LND one node serves the fleet and the
// payer keeps each agent's balance in its ledger; with NWC each agent has its own connection
// (sealed in custody); with devnet each agent has a devnet Lightning account.
type WalletBinding struct {
	Kind    string `json:"kind"`
	Account string `json:"account,omitempty"` // devnet account name
}

// Agent is one registered agent.
type Agent struct {
	Pubkey           string             `json:"pubkey"` // hex
	Npub             string             `json:"npub"`
	Name             string             `json:"name"`
	About            string             `json:"about,omitempty"`
	Capabilities     []string           `json:"capabilities,omitempty"`
	Lifecycle        string             `json:"lifecycle"`
	Active           bool               `json:"active"` // schedule's active tag: stopped agents get no ticks
	HeartbeatSeconds int64              `json:"heartbeat_seconds"`
	Triggers         []string           `json:"triggers,omitempty"`
	BusinessHours    string             `json:"business_hours,omitempty"`
	Relays           []string           `json:"relays,omitempty"`
	Channels         []string           `json:"channels,omitempty"` // NIP-28 channels it listens to
	Wallet           WalletBinding      `json:"wallet"`
	Limits           nipsa.BudgetLimits `json:"limits"`
	Provider         string             `json:"provider,omitempty"` // preferred provider pubkey
	MinTickSeconds   int64              `json:"min_tick_seconds,omitempty"`
	CreatedAt        int64              `json:"created_at"`
	UpdatedAt        int64              `json:"updated_at"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidName reports whether n can be an agent name (it is also a KV key).
func ValidName(n string) error {
	if !nameRE.MatchString(n) {
		return fmt.Errorf("%w %q: use 1-63 lowercase letters, digits, - or _", ErrBadName, n)
	}
	return nil
}

// Registry wraps the registry bucket.
type Registry struct {
	KV jetstream.KeyValue
}

// Open binds to the (provisioned) registry bucket.
func Open(ctx context.Context, js jetstream.JetStream) (*Registry, error) {
	kv, err := js.KeyValue(ctx, contracts.BucketRegistry)
	if err != nil {
		return nil, fmt.Errorf("registry: open bucket: %w", err)
	}
	return &Registry{KV: kv}, nil
}

func agentKey(pub string) string { return "agent." + pub }
func nameKey(n string) string    { return "name." + n }

// Create registers a new agent; the name is reserved first so two operators cannot take it.
func (r *Registry) Create(ctx context.Context, a Agent) error {
	if err := ValidName(a.Name); err != nil {
		return err
	}
	if _, err := r.KV.Create(ctx, nameKey(a.Name), []byte(a.Pubkey)); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: %s", ErrNameTaken, a.Name)
		}
		return fmt.Errorf("registry: reserve name: %w", err)
	}
	now := time.Now().Unix()
	if a.CreatedAt == 0 {
		a.CreatedAt = now
	}
	a.UpdatedAt = now
	b, _ := json.Marshal(a)
	if _, err := r.KV.Create(ctx, agentKey(a.Pubkey), b); err != nil {
		_ = r.KV.Delete(ctx, nameKey(a.Name))
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: %s", ErrExists, a.Npub)
		}
		return fmt.Errorf("registry: create: %w", err)
	}
	return nil
}

// Get returns the agent with hex pubkey pub and its KV revision.
func (r *Registry) Get(ctx context.Context, pub string) (Agent, uint64, error) {
	e, err := r.KV.Get(ctx, agentKey(pub))
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return Agent{}, 0, fmt.Errorf("%w: %s", ErrNotFound, pub)
		}
		return Agent{}, 0, fmt.Errorf("registry: get: %w", err)
	}
	var a Agent
	if err := json.Unmarshal(e.Value(), &a); err != nil {
		return Agent{}, 0, fmt.Errorf("registry: corrupt record %s: %w", pub, err)
	}
	return a, e.Revision(), nil
}

// ByName resolves a name to an agent.
func (r *Registry) ByName(ctx context.Context, name string) (Agent, error) {
	e, err := r.KV.Get(ctx, nameKey(name))
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			return Agent{}, fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return Agent{}, fmt.Errorf("registry: get name: %w", err)
	}
	a, _, err := r.Get(ctx, string(e.Value()))
	return a, err
}

// Update applies fn with compare-and-swap, retrying on conflicts, and returns the stored agent.
func (r *Registry) Update(ctx context.Context, pub string, fn func(*Agent) error) (Agent, error) {
	for {
		a, rev, err := r.Get(ctx, pub)
		if err != nil {
			return Agent{}, err
		}
		if err := fn(&a); err != nil {
			return Agent{}, err
		}
		a.UpdatedAt = time.Now().Unix()
		b, _ := json.Marshal(a)
		if _, err := r.KV.Update(ctx, agentKey(pub), b, rev); err != nil {
			if IsConflict(err) {
				continue
			}
			return Agent{}, fmt.Errorf("registry: update: %w", err)
		}
		return a, nil
	}
}

// IsConflict reports a lost compare-and-swap (KV wrong last sequence, error 10071).
func IsConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		errors.Is(err, jetstream.ErrKeyExists)
}

// List returns every agent sorted by name.
func (r *Registry) List(ctx context.Context) ([]Agent, error) {
	lister, err := r.KV.ListKeysFiltered(ctx, "agent.*")
	if err != nil {
		return nil, fmt.Errorf("registry: list: %w", err)
	}
	var out []Agent
	for k := range lister.Keys() {
		a, _, err := r.Get(ctx, k[len("agent."):])
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Watch streams every agent now registered and then every change, until ctx ends. Deleted
// agents arrive with Deleted=true.
func (r *Registry) Watch(ctx context.Context) (<-chan Change, error) {
	w, err := r.KV.Watch(ctx, "agent.*")
	if err != nil {
		return nil, fmt.Errorf("registry: watch: %w", err)
	}
	out := make(chan Change, 64)
	go func() {
		defer close(out)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				var c Change
				if e == nil {
					c.InitialDone = true
				} else if e.Operation() != jetstream.KeyValuePut {
					c.Deleted = true
					c.Agent.Pubkey = e.Key()[len("agent."):]
				} else if err := json.Unmarshal(e.Value(), &c.Agent); err != nil {
					continue
				}
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// Change is one registry update. InitialDone marks the end of the initial replay.
type Change struct {
	Agent       Agent
	Deleted     bool
	InitialDone bool
}

// Resolve finds an agent by name, npub or hex pubkey.
func (r *Registry) Resolve(ctx context.Context, ref string) (Agent, error) {
	if pub, ok := pubkeyOf(ref); ok {
		a, _, err := r.Get(ctx, pub)
		return a, err
	}
	if ValidName(ref) != nil {
		return Agent{}, fmt.Errorf("%w: %q is not a name, npub or hex pubkey", ErrNotFound, ref)
	}
	return r.ByName(ctx, ref)
}

func pubkeyOf(ref string) (string, bool) {
	if strings.HasPrefix(ref, "npub1") {
		if prefix, v, err := nip19.Decode(ref); err == nil && prefix == "npub" {
			return v.(string), true
		}
		return "", false
	}
	if len(ref) == 64 && nostr.IsValid32ByteHex(ref) {
		return strings.ToLower(ref), true
	}
	return "", false
}
