package ticker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/compute"
)

// discovery caches the provider list: announcements change rarely, ticks are many.
type discovery struct {
	pool   *nostr.SimplePool
	relays []string
	log    *slog.Logger
	ttl    time.Duration

	mu    sync.Mutex
	at    time.Time
	cache []compute.Provider
}

func newDiscovery(pool *nostr.SimplePool, relays []string, log *slog.Logger) *discovery {
	return &discovery{pool: pool, relays: relays, log: log, ttl: 15 * time.Second}
}

func (d *discovery) get(ctx context.Context) ([]compute.Provider, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.cache) > 0 && time.Since(d.at) < d.ttl {
		return d.cache, nil
	}
	b := &compute.Buyer{Pool: d.pool, Relays: d.relays}
	ps, err := b.Discover(ctx)
	if err != nil {
		if len(d.cache) > 0 {
			d.log.Warn("provider discovery failed; using the last list", "err", err)
			return d.cache, nil
		}
		return nil, err
	}
	d.cache, d.at = ps, time.Now()
	return ps, nil
}
