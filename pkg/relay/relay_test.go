package relay

import (
	"context"
	"testing"
	"time"

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
