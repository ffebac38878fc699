package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/devnet"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/identity"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/trigger"
)

// TestMentionsCoalesce: 100 mentions of one agent within a second become a few ticks whose
// observations hold every one of them, each tick paid once.
func TestMentionsCoalesce(t *testing.T) {
	const mentions = 100
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	d, err := devnet.Start(ctx, devnet.Options{Dir: t.TempDir(), Services: true, Log: testLog(t), MinTickInterval: time.Millisecond,
		Providers: []devnet.ProviderSpec{{Name: "reference", PriceSats: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	w := watchResults(ctx, t, d.Relay.URL())

	sp, err := d.Fleet.Spawn(ctx, fleet.SpawnOptions{Name: "popular", HeartbeatSeconds: 24 * 3600, Triggers: []string{"mention"},
		Limits: nipsa.BudgetLimits{DailyLimitSats: 10_000, PerTickLimitSats: 10}})
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.FromMnemonic(sp.Mnemonic)
	if err != nil {
		t.Fatal(err)
	}
	agent := &spawnedAgent{name: "popular", pubkey: sp.Agent.Pubkey, sk: id.SecretKey}
	if _, err := d.FundFromFaucet(ctx, agent.name, 5_000); err != nil {
		t.Fatal(err)
	}

	r, err := nostrConnect(ctx, d.Relay.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fan := nostr.GeneratePrivateKey()
	mention := func(text string) (string, error) {
		ev := nostr.Event{Kind: nipsa.KindTextNote, CreatedAt: nostr.Now(), Content: text, Tags: nostr.Tags{{"p", agent.pubkey}}}
		if err := ev.Sign(fan); err != nil {
			return "", err
		}
		return ev.ID, r.Publish(ctx, ev)
	}
	// A first mention, awaited: it shows the scheduler is subscribed for the agent before the
	// burst (a subscription made later would see the burst only as stored events).
	probe, err := mention("hello @popular")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.await(ctx, trigger.EventTriggerID(probe)); err != nil {
		t.Fatal(err)
	}

	// The burst: signed up front, published from several connections at once.
	evIDs := make([]string, mentions) // event ids
	ids := make([]string, mentions)   // their trigger ids
	evs := make([]nostr.Event, mentions)
	for i := range evs {
		evs[i] = nostr.Event{Kind: nipsa.KindTextNote, CreatedAt: nostr.Now(), Content: fmt.Sprintf("question %d for @popular", i),
			Tags: nostr.Tags{{"p", agent.pubkey}}}
		if err := evs[i].Sign(fan); err != nil {
			t.Fatal(err)
		}
		evIDs[i], ids[i] = evs[i].ID, trigger.EventTriggerID(evs[i].ID)
	}
	const conns = 10
	relays := make([]*nostr.Relay, conns)
	for i := range relays {
		if relays[i], err = nostrConnect(ctx, d.Relay.URL()); err != nil {
			t.Fatal(err)
		}
		defer relays[i].Close()
	}
	start := time.Now()
	g, gctx := newGroup(ctx, 0)
	for c, rc := range relays {
		g.Go(func() error {
			for i := c; i < mentions; i += conns {
				if err := rc.Publish(gctx, evs[i]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	published := time.Since(start)
	if published > time.Second {
		t.Fatalf("publishing %d mentions took %s, want them within one second", mentions, published)
	}
	got, err := w.await(ctx, ids...)
	if err != nil {
		t.Fatal(err)
	}
	ticks := map[string]nipsa.TickResult{}
	for _, res := range got {
		ticks[res.TickID] = res
	}
	t.Logf("%d mentions published in %s, answered by %d ticks within %s", mentions, published.Round(time.Millisecond),
		len(ticks), time.Since(start).Round(time.Millisecond))
	if len(ticks) > 5 {
		t.Fatalf("%d mentions within a second took %d ticks, want at most 5", mentions, len(ticks))
	}
	for _, res := range ticks {
		if res.Status != nipsa.TickSuccess {
			t.Fatalf("tick %s: %s: %s", res.TickID, res.Status, res.Content.Error)
		}
	}

	// On the relay: each of those ticks observed its mentions (the trajectory carries the event
	// ids) and paid the provider once.
	eventually(t, 15*time.Second, "coalesced ticks on the relay", func() error {
		at, err := fetchTicks(ctx, r, agent.pubkey, agent.sk)
		if err != nil {
			return err
		}
		observed := map[string]bool{}
		for tick := range ticks {
			res, ok := at.results[tick]
			if !ok {
				return fmt.Errorf("tick %s not fetched", tick)
			}
			for _, te := range at.traj[res.Content.Session] {
				for _, id := range evIDs {
					if !observed[id] && te.Step == nipsa.StepMessage && containsAll(te.Content, `"subtype":"observation"`, id) {
						observed[id] = true
					}
				}
			}
		}
		if len(observed) != mentions {
			return fmt.Errorf("%d of %d mentions in the ticks' observations", len(observed), mentions)
		}
		_, err = checkPaidTicks(at, d.Ledger, agent.pubkey, "provider-reference", 10)
		return err
	})
}
