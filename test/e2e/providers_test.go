package e2e_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/devnet"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/identity"
	"github.com/openagents/runtime/pkg/model"
	"github.com/openagents/runtime/pkg/nipsa"
)

// proseModel answers like a chatty model that ignored the output format: no actions at all.
type proseModel struct{}

func (proseModel) Complete(ctx context.Context, r model.Request) (model.Reply, error) {
	text := "Thank you for the update. I think the best course is to reflect on my goals and write a poem later."
	return model.Reply{Text: text, TokensIn: len(strings.Fields(r.Prompt)), TokensOut: len(strings.Fields(text))}, nil
}

const (
	buyTimeout  = 2 * time.Second
	tickTimeout = 8 * time.Second
)

// TestMisbehavingProviders: an overcharging provider is refused and the next one used; a
// silent provider costs a bounded wait and nothing else; prose instead of actions fails the
// tick visibly.
func TestMisbehavingProviders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	d, err := devnet.Start(ctx, devnet.Options{Dir: t.TempDir(), Services: true, Log: testLog(t),
		BuyTimeout: buyTimeout, TickTimeout: tickTimeout, MinTickInterval: time.Millisecond,
		Providers: []devnet.ProviderSpec{
			{Name: "cheat", PriceSats: 10, OverchargeMsat: 5_000}, // quotes 10 sats, invoices 15
			{Name: "honest", PriceSats: 20},
			{Name: "prose", PriceSats: 40, Model: proseModel{}, ModelName: "chatty-1"},
			{Name: "silent", PriceSats: 50, Silent: true},
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cheat, prose, silent := d.Providers[0], d.Providers[2], d.Providers[3]
	w := watchResults(ctx, t, d.Relay.URL())

	spawn := func(name, provider string, perTick int64) *spawnedAgent {
		t.Helper()
		sp, err := d.Fleet.Spawn(ctx, fleet.SpawnOptions{Name: name, HeartbeatSeconds: 24 * 3600, Provider: provider,
			Goals: []string{"summarise the news"}, Limits: nipsa.BudgetLimits{DailyLimitSats: 10_000, PerTickLimitSats: perTick}})
		if err != nil {
			t.Fatal(err)
		}
		id, err := identity.FromMnemonic(sp.Mnemonic)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.FundFromFaucet(ctx, name, 5_000); err != nil {
			t.Fatal(err)
		}
		return &spawnedAgent{name: name, pubkey: sp.Agent.Pubkey, sk: id.SecretKey}
	}
	// The shopper's per-tick limit (30) admits cheat (10) and honest (20), cheapest first;
	// the other two are pinned to one provider each.
	shopper := spawn("shopper", "", 30)
	waiter := spawn("waiter", silent.Pubkey(), 100)
	reader := spawn("reader", prose.Pubkey(), 100)

	type sent struct {
		a   *spawnedAgent
		id  string
		at  time.Time
		res nipsa.TickResult
	}
	var all []*sent
	for _, a := range []*spawnedAgent{shopper, waiter, reader} {
		_, trg, err := d.Fleet.Trigger(ctx, a.name, "manual", "what is new?")
		if err != nil {
			t.Fatal(err)
		}
		a.triggers = append(a.triggers, trg.ID)
		all = append(all, &sent{a: a, id: trg.ID, at: time.Now()})
	}
	for _, s := range all {
		res, err := w.await(ctx, s.id)
		if err != nil {
			t.Fatal(err)
		}
		s.res = res[s.id]
		t.Logf("%s: status %s cost %d in %d ms after %s; error %q", s.a.name, s.res.Status, s.res.Content.CostSats,
			s.res.DurationMS, time.Since(s.at).Round(time.Millisecond), s.res.Content.Error)
	}

	t.Run("overcharge refused, next provider used", func(t *testing.T) {
		res := all[0].res
		if res.Status != nipsa.TickSuccess || res.Content.CostSats != 20 {
			t.Fatalf("want success at the honest provider's 20 sats, got %s cost %d: %s", res.Status, res.Content.CostSats, res.Content.Error)
		}
		if st := cheat.Stats(); st.Invoices == 0 || st.Paid != 0 {
			t.Fatalf("the overcharger should have invoiced and never been paid: %+v", st)
		}
		eventually(t, 15*time.Second, "shopper's ticks on the relay", func() error {
			r, err := nostrConnect(ctx, d.Relay.URL())
			if err != nil {
				return err
			}
			defer r.Close()
			at, err := fetchTicks(ctx, r, shopper.pubkey, shopper.sk)
			if err != nil {
				return err
			}
			if _, err := checkPaidTicks(at, d.Ledger, shopper.pubkey, "provider-honest", 20); err != nil {
				return err
			}
			return nil
		})
	})

	t.Run("silent provider times out, nothing paid", func(t *testing.T) {
		res := all[1].res
		if res.Status != nipsa.TickTimeout && res.Status != nipsa.TickFailure {
			t.Fatalf("want timeout or failure, got %s", res.Status)
		}
		dur := time.Duration(res.DurationMS) * time.Millisecond
		if dur < buyTimeout || dur > tickTimeout+time.Second {
			t.Fatalf("tick took %s; want the buy timeout (%s) and within the tick timeout (%s)", dur, buyTimeout, tickTimeout)
		}
		if res.Content.CostSats != 0 || len(payments(d.Ledger, waiter.pubkey)) != 0 {
			t.Fatalf("the waiter paid: cost %d, transfers %v", res.Content.CostSats, payments(d.Ledger, waiter.pubkey))
		}
		if st := silent.Stats(); st.Invoices != 0 || st.Paid != 0 {
			t.Fatalf("the silent provider invoiced or was paid: %+v", st)
		}
	})

	t.Run("prose instead of actions fails the tick visibly", func(t *testing.T) {
		res := all[2].res
		if res.Status != nipsa.TickFailure {
			t.Fatalf("want failure, got %s", res.Status)
		}
		if !strings.Contains(res.Content.Error, "parse") || !strings.Contains(res.Content.Error, "no actions") {
			t.Fatalf("TickResult error %q does not name the parse problem", res.Content.Error)
		}
		eventually(t, 15*time.Second, "reader's trajectory shows the parse problem", func() error {
			r, err := nostrConnect(ctx, d.Relay.URL())
			if err != nil {
				return err
			}
			defer r.Close()
			at, err := fetchTicks(ctx, r, reader.pubkey, reader.sk)
			if err != nil {
				return err
			}
			got, ok := at.results[res.TickID]
			if !ok {
				return fmt.Errorf("tick %s not fetched", res.TickID)
			}
			for _, te := range at.traj[got.Content.Session] {
				if te.Step == nipsa.StepToolResult && strings.Contains(te.Content, `"tool":"parse"`) &&
					strings.Contains(te.Content, `"is_error":true`) && strings.Contains(te.Content, "no actions") {
					return nil
				}
			}
			return fmt.Errorf("no 38031 of session %s records the parse error", got.Content.Session)
		})
		// The provider delivered after payment, so it was paid; the failure is the agent's to
		// record, not a reason to have paid twice or not at all.
		for h, tr := range payments(d.Ledger, reader.pubkey) {
			if tr.To != "provider-prose" || tr.AmountMsat != 40_000 {
				t.Fatalf("reader payment %s: %d msat to %s", h, tr.AmountMsat, tr.To)
			}
		}
	})

	for _, tr := range d.Ledger.Transfers() {
		if tr.To == "provider-cheat" || tr.To == "provider-silent" {
			t.Fatalf("%d msat paid to %s", tr.AmountMsat, tr.To)
		}
	}
}
