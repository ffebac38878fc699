package registry

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/natsx"
)

func openTest(t *testing.T) *Registry {
	t.Helper()
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	ctx := context.Background()
	nc, js, err := natsx.ConnectAndProvision(ctx, natsx.ConnectOptions{URL: ns.URL()}, contracts.ProvisionOptions{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	r, err := Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newAgent(name string) Agent {
	pk, _ := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	npub, _ := nip19.EncodePublicKey(pk)
	return Agent{Pubkey: pk, Npub: npub, Name: name, Lifecycle: "spawning", Active: true}
}

func TestCreateResolveUpdateList(t *testing.T) {
	r := openTest(t)
	ctx := context.Background()
	a := newAgent("alice")
	if err := r.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := r.Create(ctx, newAgent("alice")); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("duplicate name: %v", err)
	}
	dup := a
	dup.Name = "alice2"
	if err := r.Create(ctx, dup); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate pubkey: %v", err)
	}
	// The failed create must not keep alice2's name reserved.
	if _, err := r.ByName(ctx, "alice2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("name of a failed create still reserved: %v", err)
	}
	for _, ref := range []string{"alice", a.Npub, a.Pubkey} {
		got, err := r.Resolve(ctx, ref)
		if err != nil || got.Pubkey != a.Pubkey {
			t.Fatalf("resolve %q: %v %v", ref, got.Pubkey, err)
		}
	}
	for _, ref := range []string{"bob", "npub1bogus", "Not A Name", ""} {
		if _, err := r.Resolve(ctx, ref); !errors.Is(err, ErrNotFound) {
			t.Fatalf("resolve %q: %v", ref, err)
		}
	}
	if err := r.Create(ctx, newAgent("Bad Name")); !errors.Is(err, ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
	// Concurrent CAS updates: none is lost.
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Update(ctx, a.Pubkey, func(x *Agent) error { x.HeartbeatSeconds++; return nil }); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, _, _ := r.Get(ctx, a.Pubkey)
	if got.HeartbeatSeconds != 20 {
		t.Fatalf("lost updates: %d", got.HeartbeatSeconds)
	}
	if err := r.Create(ctx, newAgent("bob")); err != nil {
		t.Fatal(err)
	}
	list, err := r.List(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bob" {
		t.Fatalf("list: %+v %v", list, err)
	}
}

func TestWatchReplaysThenFollows(t *testing.T) {
	r := openTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := newAgent("alice")
	if err := r.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	ch, err := r.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := <-ch; c.Agent.Pubkey != a.Pubkey {
		t.Fatalf("first change %+v", c)
	}
	if c := <-ch; !c.InitialDone {
		t.Fatalf("want end of replay, got %+v", c)
	}
	if _, err := r.Update(ctx, a.Pubkey, func(x *Agent) error { x.Active = false; return nil }); err != nil {
		t.Fatal(err)
	}
	if c := <-ch; c.Agent.Active {
		t.Fatalf("update not seen: %+v", c)
	}
}
