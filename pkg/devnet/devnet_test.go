package devnet

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/model"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/ticker"
)

func TestOneTickEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	outcomes := make(chan ticker.Outcome, 16)
	d, err := Start(ctx, Options{Dir: t.TempDir(), Services: true, MinTickInterval: time.Millisecond, Log: testLog(t),
		OnTick: func(o ticker.Outcome) { mu.Lock(); defer mu.Unlock(); outcomes <- o }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sp, err := d.Fleet.Spawn(ctx, fleet.SpawnOptions{Name: "alice", HeartbeatSeconds: 3600, Goals: []string{"write a haiku"},
		Limits: nipsa.BudgetLimits{DailyLimitSats: 10_000, PerTickLimitSats: 100, ReservedSats: 0}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.FundFromFaucet(ctx, "alice", 5000); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Fleet.Trigger(ctx, "alice", "manual", "hello"); err != nil {
		t.Fatal(err)
	}
	var o ticker.Outcome
	select {
	case o = <-outcomes:
	case <-ctx.Done():
		t.Fatal("no tick")
	}
	if o.Status != nipsa.TickSuccess || o.CostSats != 10 {
		t.Fatalf("outcome %+v", o)
	}
	pool := nostr.NewSimplePool(ctx)
	re := pool.QuerySingle(ctx, []string{d.Relay.URL()}, nostr.Filter{IDs: []string{o.ResultID}})
	for i := 0; re == nil && i < 50; i++ {
		time.Sleep(100 * time.Millisecond) // publisher delivers asynchronously
		re = pool.QuerySingle(ctx, []string{d.Relay.URL()}, nostr.Filter{IDs: []string{o.ResultID}})
	}
	if re == nil {
		t.Fatal("TickResult not on the relay")
	}
	tr, err := nipsa.ParseTickResult(re.Event)
	if err != nil || tr.Status != nipsa.TickSuccess || tr.Content.CostSats != 10 {
		t.Fatalf("tick result %+v %v", tr, err)
	}
	t.Logf("agent %s tick %s: %+v", sp.Agent.Name, o.TickID, tr.Content.Actions)
}

// scripted answers every prompt with the same text.
type scripted string

func (s scripted) Complete(ctx context.Context, r model.Request) (model.Reply, error) {
	return model.Reply{Text: string(s), TokensIn: 1, TokensOut: 1}, nil
}

// An agent zaps another agent of the fleet: the target's payer issues the invoice, the
// zapper's payer pays it within budget, and both show up in the tick's cost and the ledger.
func TestZapAction(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The zap target must exist before the model's answer names it, so spawn first.
	outcomes := make(chan ticker.Outcome, 16)
	d, err := Start(ctx, Options{Dir: t.TempDir(), Services: true, MinTickInterval: time.Millisecond, Log: testLog(t),
		Providers: []ProviderSpec{}, OnTick: func(o ticker.Outcome) { outcomes <- o }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	lim := nipsa.BudgetLimits{DailyLimitSats: 10_000, PerTickLimitSats: 100}
	bob, err := d.Fleet.Spawn(ctx, fleet.SpawnOptions{Name: "bob", HeartbeatSeconds: 3600, Limits: lim, Inactive: true})
	if err != nil {
		t.Fatal(err)
	}
	answer := `{"actions":[{"type":"zap","to":"` + bob.Agent.Pubkey + `","sats":7,"comment":"thanks"},{"type":"zap","to":"` + bob.Agent.Pubkey + `","sats":500}]}`
	if err := d.AddProvider(ProviderSpec{Name: "zappy", PriceSats: 10, Model: scripted(answer)}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Fleet.Spawn(ctx, fleet.SpawnOptions{Name: "alice", HeartbeatSeconds: 3600, Limits: lim}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.FundFromFaucet(ctx, "alice", 1000); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Fleet.Trigger(ctx, "alice", "manual", "zap bob"); err != nil {
		t.Fatal(err)
	}
	var o ticker.Outcome
	for o.Status != nipsa.TickSuccess || o.CostSats == 0 {
		select {
		case o = <-outcomes:
		case <-ctx.Done():
			t.Fatal("no tick")
		}
	}
	// 10 for inference + 7 zapped; the 500-sat zap is over the per-tick limit and refused.
	if o.CostSats != 17 {
		t.Fatalf("cost %d, want 17 (outcome %+v)", o.CostSats, o)
	}
	if got, _ := d.Ledger.Account(bob.Agent.Wallet.Account).Balance(ctx); got != 7000 {
		t.Fatalf("bob received %d msat, want 7000", got)
	}
}

// Malformed triggers, unknown agents and unknown types go to the dead-letter subject with the
// reason; the consumer keeps going.
func TestDeadLetters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	outcomes := make(chan ticker.Outcome, 16)
	d, err := Start(ctx, Options{Dir: t.TempDir(), Services: true, MinTickInterval: time.Millisecond, Log: testLog(t),
		OnTick: func(o ticker.Outcome) { outcomes <- o }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sp, err := d.Fleet.Spawn(ctx, fleet.SpawnOptions{Name: "alice", HeartbeatSeconds: 3600,
		Limits: nipsa.BudgetLimits{DailyLimitSats: 10_000, PerTickLimitSats: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.FundFromFaucet(ctx, "alice", 1000); err != nil {
		t.Fatal(err)
	}
	unknown := strings.Repeat("ab", 32)
	bad := []struct{ subject, data, reason string }{
		{contracts.TriggerSubject(sp.Agent.Pubkey), `{"type":`, "malformed"},
		{contracts.TriggerSubject(sp.Agent.Pubkey), `{"type":"dance"}`, "unknown_type"},
		{contracts.TriggerSubject(unknown), `{"type":"manual"}`, "unknown_agent"},
		{contracts.TriggerSubject("not-an-agent"), `{"type":"manual"}`, "bad_subject"},
	}
	for _, b := range bad {
		if _, err := d.JS.Publish(ctx, b.subject, []byte(b.data)); err != nil {
			t.Fatal(err)
		}
	}
	// A good trigger after the bad ones still ticks: the consumer kept going.
	if _, err := d.JS.Publish(ctx, contracts.TriggerSubject(sp.Agent.Pubkey), []byte(`{"type":"manual","note":"still there?"}`)); err != nil {
		t.Fatal(err)
	}
	for o := range outcomes {
		if o.Status == nipsa.TickSuccess {
			break
		}
	}
	cons, err := d.JS.OrderedConsumer(ctx, contracts.StreamDeadLetter, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(len(bad), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for m := range batch.Messages() {
		var dl contracts.DeadLetter
		if err := json.Unmarshal(m.Data(), &dl); err != nil {
			t.Fatal(err)
		}
		seen[dl.Subject+" "+dl.Payload] = dl.Reason
	}
	for _, b := range bad {
		r, ok := seen[b.subject+" "+b.data]
		if !ok || !strings.HasPrefix(r, b.reason+": ") {
			t.Errorf("%s %s: dead letter reason %q, want %s", b.subject, b.data, r, b.reason)
		}
	}
}
