package ticker

import (
	"context"
	"fmt"
	"sync"

	"github.com/openagents/runtime/pkg/custody"
	"github.com/openagents/runtime/pkg/identity"
	"github.com/openagents/runtime/pkg/nipsa"
)

// KeySource gives the ticker an agent's Nostr secret key (hex).
type KeySource interface {
	SecretKey(ctx context.Context, agent string) (string, error)
}

// VaultKeys opens agents' mnemonics from custody (sealed under the KEK).
type VaultKeys struct{ Vault *custody.Vault }

func (v VaultKeys) SecretKey(ctx context.Context, agent string) (string, error) {
	s, err := v.Vault.Get(ctx, agent)
	if err != nil {
		return "", err
	}
	id, err := identity.FromMnemonic(s.Mnemonic)
	if err != nil {
		return "", err
	}
	if id.PublicKey != agent {
		return "", fmt.Errorf("ticker: custody record of %s holds another key", agent)
	}
	return id.SecretKey, nil
}

// StaticKeys serves keys held in memory (`openagents run` with a mnemonic).
type StaticKeys map[string]string

func (s StaticKeys) SecretKey(_ context.Context, agent string) (string, error) {
	if sk, ok := s[agent]; ok {
		return sk, nil
	}
	return "", fmt.Errorf("ticker: no key for agent %s", agent)
}

// agentKeys are derived once per agent: deriving the key from the mnemonic and the NIP-44
// conversation key (ECDH) are the costly parts of sealing.
type agentKeys struct {
	sk     string
	sealer *nipsa.Sealer
}

type keyCache struct {
	src KeySource
	mu  sync.Mutex
	m   map[string]*agentKeys
}

func newKeyCache(src KeySource) *keyCache { return &keyCache{src: src, m: map[string]*agentKeys{}} }

func (c *keyCache) get(ctx context.Context, agent string) (*agentKeys, error) {
	c.mu.Lock()
	k := c.m[agent]
	c.mu.Unlock()
	if k != nil {
		return k, nil
	}
	sk, err := c.src.SecretKey(ctx, agent)
	if err != nil {
		return nil, err
	}
	sealer, err := nipsa.NewSealer(sk)
	if err != nil {
		return nil, err
	}
	k = &agentKeys{sk: sk, sealer: sealer}
	c.mu.Lock()
	c.m[agent] = k
	c.mu.Unlock()
	return k, nil
}
