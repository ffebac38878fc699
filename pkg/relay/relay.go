// Package relay runs a real Nostr relay (khatru) with a badger store, for devnet and tests.
// It listens on 127.0.0.1 and speaks the relay protocol over WebSocket like any public relay.
package relay

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	eventbadger "github.com/fiatjaf/eventstore/badger"
	"github.com/fiatjaf/khatru"
	"github.com/nbd-wtf/go-nostr"
)

// Options for an embedded relay.
type Options struct {
	Dir  string // badger directory; required
	Host string // default 127.0.0.1
	Port int    // 0: any free port
	Name string // NIP-11 name
}

// Relay is a running embedded relay.
type Relay struct {
	*khatru.Relay
	store   *eventbadger.BadgerBackend
	addr    string
	srv     *http.Server
	replace sync.Mutex
}

// Start opens the store and starts serving. Stop it with Close.
func Start(o Options) (*Relay, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("relay: Options.Dir is required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Name == "" {
		o.Name = "openagents devnet relay"
	}
	store := &eventbadger.BadgerBackend{
		Path:     o.Dir,
		MaxLimit: 5000,
		BadgerOptionsModifier: func(bo badger.Options) badger.Options {
			return bo.WithLogger(nil)
		},
	}
	if err := store.Init(); err != nil {
		return nil, fmt.Errorf("relay: open store %s: %w", o.Dir, err)
	}
	r := &Relay{Relay: khatru.NewRelay(), store: store}
	r.Info.Name = o.Name
	r.Info.Description = "embedded relay (khatru + badger)"
	r.StoreEvent = append(r.StoreEvent, store.SaveEvent)
	r.DeleteEvent = append(r.DeleteEvent, store.DeleteEvent)
	r.ReplaceEvent = append(r.ReplaceEvent, r.replaceExact)
	r.QueryEvents = append(r.QueryEvents, r.queryExact)
	r.CountEvents = append(r.CountEvents, store.CountEvents)

	ln, err := net.Listen("tcp", net.JoinHostPort(o.Host, strconv.Itoa(o.Port)))
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("relay: listen: %w", err)
	}
	r.addr = ln.Addr().String()
	r.srv = &http.Server{Handler: r.Relay, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
	go r.srv.Serve(ln)
	return r, nil
}

// URL is the relay's ws:// address.
func (r *Relay) URL() string { return "ws://" + r.addr }

// Addr is host:port.
func (r *Relay) Addr() string { return r.addr }

// Close stops serving and closes the store.
func (r *Relay) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = r.srv.Shutdown(ctx)
	r.store.Close()
	return nil
}

// queryExact re-checks every stored result against the filter: badger's tag index matches by
// prefix, so #d=["s:10"] would otherwise also return "s:100".
func (r *Relay) queryExact(ctx context.Context, f nostr.Filter) (chan *nostr.Event, error) {
	in, err := r.store.QueryEvents(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make(chan *nostr.Event)
	go func() {
		defer close(out)
		for ev := range in {
			if !f.Matches(ev) {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				for range in {
				}
				return
			}
		}
	}()
	return out, nil
}

// replaceExact replaces replaceable and addressable events matching (kind, pubkey, d) exactly.
// The store's own ReplaceEvent queries the d tag by prefix, so storing trajectory step "s:10"
// would delete "s:100" (or be dropped as older than it).
func (r *Relay) replaceExact(ctx context.Context, ev *nostr.Event) error {
	r.replace.Lock()
	defer r.replace.Unlock()
	f := nostr.Filter{Kinds: []int{ev.Kind}, Authors: []string{ev.PubKey}}
	if nostr.IsAddressableKind(ev.Kind) {
		f.Tags = nostr.TagMap{"d": []string{ev.Tags.GetD()}}
	}
	ch, err := r.queryExact(ctx, f)
	if err != nil {
		return err
	}
	store := true
	var older []*nostr.Event
	for prev := range ch {
		if prev.CreatedAt < ev.CreatedAt || prev.CreatedAt == ev.CreatedAt && prev.ID > ev.ID {
			older = append(older, prev)
		} else {
			store = false
		}
	}
	if !store {
		return nil
	}
	for _, prev := range older {
		if err := r.store.DeleteEvent(ctx, prev); err != nil {
			return err
		}
	}
	return r.store.SaveEvent(ctx, ev)
}
