package relay

import (
	"context"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	eventbadger "github.com/fiatjaf/eventstore/badger"
	"github.com/nbd-wtf/go-nostr"
)

// Addressable events whose d tags share a prefix ("s:10" and "s:100") must be stored, replaced
// and queried independently: the badger store's tag index matches by prefix, which once lost
// whole trajectories.
func TestAddressableEventsWithPrefixDTags(t *testing.T) {
	r, err := Start(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := nostr.RelayConnect(ctx, r.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	publish := func(d, content string, at nostr.Timestamp) nostr.Event {
		ev := nostr.Event{Kind: 38031, CreatedAt: at, Content: content, Tags: nostr.Tags{{"d", d}}}
		if err := ev.Sign(sk); err != nil {
			t.Fatal(err)
		}
		if err := conn.Publish(ctx, ev); err != nil {
			t.Fatalf("publish %s: %v", d, err)
		}
		return ev
	}
	now := nostr.Now()
	publish("s:100", "hundred", now)
	publish("s:10", "ten", now+1)
	publish("s:1", "one", now+2)
	query := func(d string) []*nostr.Event {
		evs, err := conn.QuerySync(ctx, nostr.Filter{Kinds: []int{38031}, Authors: []string{pk}, Tags: nostr.TagMap{"d": {d}}})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	for d, want := range map[string]string{"s:100": "hundred", "s:10": "ten", "s:1": "one"} {
		got := query(d)
		if len(got) != 1 || got[0].Content != want {
			t.Fatalf("d=%s: got %d events %v", d, len(got), got)
		}
	}
	// A newer s:10 replaces only s:10; an older one is ignored.
	publish("s:10", "ten v2", now+3)
	publish("s:10", "ten stale", now)
	if got := query("s:10"); len(got) != 1 || got[0].Content != "ten v2" {
		t.Fatalf("replace: %v", got)
	}
	if got := query("s:100"); len(got) != 1 || got[0].Content != "hundred" {
		t.Fatalf("s:100 damaged by replacing s:10: %v", got)
	}
	all, err := conn.QuerySync(ctx, nostr.Filter{Kinds: []int{38031}, Authors: []string{pk}})
	if err != nil || len(all) != 3 {
		t.Fatalf("all: %d %v", len(all), err)
	}
}

// A store written before the address index existed is indexed on start, so replacement keeps
// working for its events; and an event deleted through NIP-09 no longer blocks older versions.
func TestAddressIndexMigrationAndDeletion(t *testing.T) {
	dir := t.TempDir()
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	now := nostr.Now()
	mk := func(kind int, d, content string, at nostr.Timestamp) nostr.Event {
		ev := nostr.Event{Kind: kind, CreatedAt: at, Content: content, Tags: nostr.Tags{{"d", d}}}
		if d == "" {
			ev.Tags = nil
		}
		if err := ev.Sign(sk); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	old := &eventbadger.BadgerBackend{Path: dir, BadgerOptionsModifier: func(bo badger.Options) badger.Options { return bo.WithLogger(nil) }}
	if err := old.Init(); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []nostr.Event{mk(38031, "s:1", "legacy", now), mk(10002, "", "legacy", now)} {
		if err := old.SaveEvent(context.Background(), &ev); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	r, err := Start(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := nostr.RelayConnect(ctx, r.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	publish := func(ev nostr.Event) {
		if err := conn.Publish(ctx, ev); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	query := func(kind int) []*nostr.Event {
		evs, err := conn.QuerySync(ctx, nostr.Filter{Kinds: []int{kind}, Authors: []string{pk}})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	publish(mk(38031, "s:1", "stale", now-1))
	publish(mk(10002, "", "stale", now-1))
	if got := query(38031); len(got) != 1 || got[0].Content != "legacy" {
		t.Fatalf("addressable after migration: %v", got)
	}
	if got := query(10002); len(got) != 1 || got[0].Content != "legacy" {
		t.Fatalf("replaceable after migration: %v", got)
	}
	cur := mk(38031, "s:1", "new", now+1)
	publish(cur)
	if got := query(38031); len(got) != 1 || got[0].Content != "new" {
		t.Fatalf("replace after migration: %v", got)
	}
	del := nostr.Event{Kind: 5, CreatedAt: now + 2, Tags: nostr.Tags{{"e", cur.ID}}}
	if err := del.Sign(sk); err != nil {
		t.Fatal(err)
	}
	publish(del)
	if got := query(38031); len(got) != 0 {
		t.Fatalf("after deletion: %v", got)
	}
	publish(mk(38031, "s:1", "after delete", now))
	if got := query(38031); len(got) != 1 || got[0].Content != "after delete" {
		t.Fatalf("after deletion, an older version is stored again: %v", got)
	}
}
