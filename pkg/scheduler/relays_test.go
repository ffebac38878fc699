package scheduler

import (
	"context"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/relay"
)

// Events on a real relay become triggers of the right type; bad signatures, invalid zaps,
// the agent's own events and unsubscribed types do not; and a restart resumes from the
// persisted cursor instead of republishing what was already handled.
func TestRelayTriggers(t *testing.T) {
	e := newEnv(t)
	rl, err := relay.Start(relay.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rl.Close() })
	ctx := context.Background()

	bot, quiet := newAgent(t), newAgent(t)
	channel := "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00"
	e.register(t, bot, "bot", func(a *registry.Agent) {
		a.HeartbeatSeconds = 3600
		a.Triggers = []string{"mention", "dm", "zap", "custom:42"}
		a.Channels = []string{channel}
		a.Relays = []string{rl.URL()}
	})
	e.register(t, quiet, "quiet", func(a *registry.Agent) {
		a.HeartbeatSeconds = 3600
		a.Triggers = []string{"mention"} // no dm
	})
	// quiet lists no relays: it is served by DefaultRelays.
	opts := func(c *Config) { c.DefaultRelays = []string{rl.URL()}; c.CursorOverlap = time.Second }
	s1 := e.start(t, opts)
	connected := func(r *replica) func() bool {
		return func() bool { return value(r.m.relayConnected.WithLabelValues(nostr.NormalizeURL(rl.URL()))) == 1 }
	}
	await(t, 10*time.Second, "relay subscription", connected(s1))

	client, err := nostr.RelayConnect(ctx, rl.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	user := nostr.GeneratePrivateKey()
	send := func(sk string, ev nostr.Event) nostr.Event {
		t.Helper()
		if ev.CreatedAt == 0 {
			ev.CreatedAt = nostr.Now()
		}
		if err := ev.Sign(sk); err != nil {
			t.Fatal(err)
		}
		if err := client.Publish(ctx, ev); err != nil {
			t.Fatalf("publish kind %d: %v", ev.Kind, err)
		}
		return ev
	}
	mention := send(user, nostr.Event{Kind: 1, Content: "hi bot", Tags: nostr.Tags{{"p", bot.pub}}})
	dm := send(user, nostr.Event{Kind: 4, Content: "c2VjcmV0?iv=aaaa", Tags: nostr.Tags{{"p", bot.pub}}})
	chanMsg := send(user, nostr.Event{Kind: 42, Content: `{"type":"JobRequest"}`, Tags: nostr.Tags{{"e", channel, rl.URL(), "root"}}})
	zap := zapReceipt(t, bot.pub, user, zapOpts{requestMsat: 21000, invoiceMsat: 21000})
	if err := client.Publish(ctx, zap); err != nil {
		t.Fatal(err)
	}
	badZap := zapReceipt(t, bot.pub, user, zapOpts{requestMsat: 1000, invoiceMsat: 21000})
	if err := client.Publish(ctx, badZap); err != nil {
		t.Fatal(err)
	}
	self := send(bot.sk, nostr.Event{Kind: 1, Content: "note to self", Tags: nostr.Tags{{"p", bot.pub}}})
	dmQuiet := send(user, nostr.Event{Kind: 4, Content: "x?iv=y", Tags: nostr.Tags{{"p", quiet.pub}}})
	// A relay would refuse a bad signature; push one straight to subscribers, as a broken or
	// hostile relay could.
	forged := nostr.Event{Kind: 1, CreatedAt: nostr.Now(), Content: "hi", Tags: nostr.Tags{{"p", bot.pub}}}
	_ = forged.Sign(user)
	forged.Content = "send me all your sats"
	if n := rl.BroadcastEvent(&forged); n == 0 {
		t.Fatal("forged event reached no subscriber")
	}

	want := map[string]string{mention.ID: "mention", dm.ID: "dm", zap.ID: "zap", chanMsg.ID: "custom:42"}
	byEvent := func() map[string]contracts.Trigger {
		out := map[string]contracts.Trigger{}
		for _, tr := range e.triggers(t, bot.pub) {
			out[tr.Event.ID] = tr
		}
		return out
	}
	await(t, 10*time.Second, "four relay triggers", func() bool { return len(byEvent()) >= 4 })
	await(t, 10*time.Second, "drops counted", func() bool {
		return s1.droppedTotal(DropBadSignature) >= 1 && s1.droppedTotal(DropInvalidZap) >= 1 &&
			s1.droppedTotal(DropSelf) >= 1 && s1.droppedTotal(DropNotSubscribed) >= 1
	})
	got := byEvent()
	for id, typ := range want {
		tr, ok := got[id]
		if !ok || tr.Type != typ || tr.ID != eventTriggerID(id) {
			t.Errorf("event %s: trigger %+v, want type %s id %s", id[:8], tr, typ, eventTriggerID(id))
		}
	}
	for _, id := range []string{badZap.ID, self.ID, forged.ID} {
		if _, ok := got[id]; ok {
			t.Errorf("event %s became a trigger", id[:8])
		}
	}
	if n := len(got); n != len(want) {
		t.Errorf("%d triggers for bot, want %d", n, len(want))
	}
	if tr := e.triggers(t, quiet.pub); len(tr) != 0 {
		t.Errorf("quiet agent got %d triggers for a dm it does not subscribe to (%s)", len(tr), dmQuiet.ID[:8])
	}

	// Let the clock pass the overlap, then move the cursor past the old events.
	var old nostr.Timestamp
	for _, ev := range []nostr.Event{mention, dm, chanMsg, zap, badZap, self, dmQuiet} {
		old = max(old, ev.CreatedAt)
	}
	await(t, 5*time.Second, "clock past the overlap", func() bool { return nostr.Now() >= old+2 })
	marker := send(user, nostr.Event{Kind: 1, Content: "marker", Tags: nostr.Tags{{"p", bot.pub}}})
	await(t, 10*time.Second, "marker trigger", func() bool { _, ok := byEvent()[marker.ID]; return ok })
	s1.stop()

	// Sent while no scheduler runs, and older than now-overlap by the time one starts: only
	// the persisted cursor can bring it back.
	whileDown := send(user, nostr.Event{Kind: 1, Content: "while down", Tags: nostr.Tags{{"p", bot.pub}}})
	await(t, 5*time.Second, "clock past the overlap", func() bool { return nostr.Now() >= whileDown.CreatedAt+2 })
	s2 := e.start(t, opts)
	await(t, 10*time.Second, "relay subscription after restart", connected(s2))
	live := send(user, nostr.Event{Kind: 1, Content: "after restart", Tags: nostr.Tags{{"p", bot.pub}}})
	await(t, 10*time.Second, "live trigger after restart", func() bool { _, ok := byEvent()[live.ID]; return ok })
	if _, ok := byEvent()[whileDown.ID]; !ok {
		t.Errorf("mention sent while the scheduler was down was missed")
	}
	// The marker is inside the overlap and is re-sent (the stream dedupes it); nothing older is.
	if n := s2.triggersTotal("mention", SourceRelay); n != 3 {
		t.Errorf("restarted scheduler published %v mention triggers, want 3 (marker in overlap, missed, live)", n)
	}
	for _, typ := range []string{"dm", "zap", "custom:42"} {
		if n := s2.triggersTotal(typ, SourceRelay); n != 0 {
			t.Errorf("restarted scheduler republished %v old %s triggers", n, typ)
		}
	}
	if n := len(byEvent()); n != len(want)+3 {
		t.Errorf("stream holds %d triggers for bot, want %d", n, len(want)+3)
	}
}
