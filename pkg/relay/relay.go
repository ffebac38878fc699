// Package relay runs a real Nostr relay (khatru) with a badger store, for devnet and tests.
// It listens on 127.0.0.1 and speaks the relay protocol over WebSocket like any public relay.
package relay

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
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
	store *eventbadger.BadgerBackend
	addr  string
	srv   *http.Server
	seed  maphash.Seed
	locks [64]sync.Mutex // replace locks, sharded by address key

	// Store operations in flight. Close waits for them: khatru keeps serving hijacked
	// websocket connections after the HTTP server shuts down, and a query running on a closed
	// badger store panics.
	guard    sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
}

var errClosed = errors.New("relay: closing")

// enter registers a store operation; false once the relay is closing.
func (r *Relay) enter() bool {
	r.guard.RLock()
	defer r.guard.RUnlock()
	if r.closed {
		return false
	}
	r.inflight.Add(1)
	return true
}

// guarded wraps a store hook so it runs only while the store is open.
func guarded[T any](r *Relay, fn func(context.Context, T) error) func(context.Context, T) error {
	return func(ctx context.Context, v T) error {
		if !r.enter() {
			return errClosed
		}
		defer r.inflight.Done()
		return fn(ctx, v)
	}
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
	r := &Relay{Relay: khatru.NewRelay(), store: store, seed: maphash.MakeSeed()}
	if err := r.buildAddrIndex(); err != nil {
		store.Close()
		return nil, fmt.Errorf("relay: address index %s: %w", o.Dir, err)
	}
	r.Info.Name = o.Name
	r.Info.Description = "embedded relay (khatru + badger)"
	r.StoreEvent = append(r.StoreEvent, guarded(r, store.SaveEvent))
	r.DeleteEvent = append(r.DeleteEvent, guarded(r, store.DeleteEvent))
	r.ReplaceEvent = append(r.ReplaceEvent, guarded(r, r.replaceExact))
	r.QueryEvents = append(r.QueryEvents, r.queryExact)
	r.CountEvents = append(r.CountEvents, func(ctx context.Context, f nostr.Filter) (int64, error) {
		if !r.enter() {
			return 0, errClosed
		}
		defer r.inflight.Done()
		return store.CountEvents(ctx, f)
	})

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
	r.guard.Lock()
	r.closed = true
	r.guard.Unlock()
	done := make(chan struct{})
	go func() { r.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// A client that stopped reading holds a query open; badger's own close waits for
		// running transactions, which is the best left to do.
	}
	r.store.Close()
	return nil
}

// queryExact re-checks every stored result against the filter: badger's tag index matches by
// prefix, so #d=["s:10"] would otherwise also return "s:100".
func (r *Relay) queryExact(ctx context.Context, f nostr.Filter) (chan *nostr.Event, error) {
	if !r.enter() {
		return nil, errClosed
	}
	in, err := r.store.QueryEvents(ctx, f)
	if err != nil {
		r.inflight.Done()
		return nil, err
	}
	out := make(chan *nostr.Event)
	go func() {
		// The store's query goroutine runs until in is closed: only then is it done.
		defer r.inflight.Done()
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

// The address index: one badger key per replaceable/addressable address, kept next to the
// eventstore's own keys (whose prefixes are 0-8 and 255). The key holds sha256 of the d tag, so
// lookups are exact (no prefix matching) and O(log n) however full the store is; the value is
// created_at (4 bytes, big endian) and the raw 32-byte id of the event stored for that address.
const (
	addrIndexPrefix byte = 0xA0 // + kind(2) + pubkey(32) + sha256(d)(32)
	addrIndexBuilt  byte = 0xA1 // marker: the index covers every stored event
)

func addrKey(ev *nostr.Event) ([]byte, bool) {
	pk, err := hex.DecodeString(ev.PubKey)
	if err != nil || len(pk) != 32 || ev.Kind < 0 || ev.Kind > 0xffff {
		return nil, false
	}
	k := make([]byte, 0, 1+2+32+32)
	k = append(k, addrIndexPrefix)
	k = binary.BigEndian.AppendUint16(k, uint16(ev.Kind))
	k = append(k, pk...)
	var d string
	if nostr.IsAddressableKind(ev.Kind) {
		d = ev.Tags.GetD()
	}
	h := sha256.Sum256([]byte(d))
	return append(k, h[:]...), true
}

func addrValue(ev *nostr.Event) ([]byte, bool) {
	id, err := hex.DecodeString(ev.ID)
	if err != nil || len(id) != 32 {
		return nil, false
	}
	return append(binary.BigEndian.AppendUint32(make([]byte, 0, 36), uint32(ev.CreatedAt)), id...), true
}

// isOlder reports whether a is replaced by b (NIP-01: newer created_at wins; on a tie, the
// lowest id).
func isOlder(a, b *nostr.Event) bool {
	return a.CreatedAt < b.CreatedAt || a.CreatedAt == b.CreatedAt && a.ID > b.ID
}

// buildAddrIndex indexes the events of a store written before the address index existed (once:
// a marker key records that it is complete).
func (r *Relay) buildAddrIndex() error {
	done := false
	var ids []string
	err := r.store.View(func(txn *badger.Txn) error {
		if _, err := txn.Get([]byte{addrIndexBuilt}); err == nil {
			done = true
			return nil
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: []byte{0}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := it.Item().Value(func(v []byte) error {
				if len(v) >= 134 {
					if k := int(binary.BigEndian.Uint16(v[132:134])); nostr.IsReplaceableKind(k) || nostr.IsAddressableKind(k) {
						ids = append(ids, hex.EncodeToString(v[0:32]))
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || done {
		return err
	}
	newest := map[string]*nostr.Event{}
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		ch, err := r.store.QueryEvents(context.Background(), nostr.Filter{IDs: ids[:n], Limit: n})
		if err != nil {
			return err
		}
		for ev := range ch {
			if k, ok := addrKey(ev); ok {
				if prev := newest[string(k)]; prev == nil || isOlder(prev, ev) {
					newest[string(k)] = ev
				}
			}
		}
		ids = ids[n:]
	}
	wb := r.store.NewWriteBatch()
	defer wb.Cancel()
	for k, ev := range newest {
		if v, ok := addrValue(ev); ok {
			if err := wb.Set([]byte(k), v); err != nil {
				return err
			}
		}
	}
	if err := wb.Set([]byte{addrIndexBuilt}, []byte{1}); err != nil {
		return err
	}
	return wb.Flush()
}

// stored returns the event the address index holds for key, or nil if there is none or it was
// deleted since (NIP-09 deletions go through the store directly).
func (r *Relay) stored(ctx context.Context, key []byte) (*nostr.Event, error) {
	var id string
	err := r.store.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) == 36 {
				id = hex.EncodeToString(v[4:])
			}
			return nil
		})
	})
	if err != nil || id == "" {
		return nil, err
	}
	ch, err := r.store.QueryEvents(ctx, nostr.Filter{IDs: []string{id}})
	if err != nil {
		return nil, err
	}
	var prev *nostr.Event
	for ev := range ch {
		if ev.ID == id {
			prev = ev
		}
	}
	return prev, nil
}

// replaceExact replaces replaceable and addressable events matching (kind, pubkey, d) exactly.
// The store's own ReplaceEvent queries the d tag by prefix, so storing trajectory step "s:10"
// would delete "s:100" (or be dropped as older than it); it also scans every event sharing the
// d prefix, which grows with the store. Here the previous event is found through the exact
// address index, and only writers of the same address wait for each other.
func (r *Relay) replaceExact(ctx context.Context, ev *nostr.Event) error {
	key, ok := addrKey(ev)
	val, ok2 := addrValue(ev)
	if !ok || !ok2 {
		return fmt.Errorf("invalid: malformed pubkey or id")
	}
	mu := &r.locks[maphash.Bytes(r.seed, key)%uint64(len(r.locks))]
	mu.Lock()
	defer mu.Unlock()
	prev, err := r.stored(ctx, key)
	if err != nil {
		return err
	}
	if prev != nil {
		if !isOlder(prev, ev) {
			return nil
		}
		if err := r.store.DeleteEvent(ctx, prev); err != nil {
			return err
		}
	}
	if err := r.store.SaveEvent(ctx, ev); err != nil {
		return err
	}
	return r.store.Update(func(txn *badger.Txn) error { return txn.Set(key, val) })
}
