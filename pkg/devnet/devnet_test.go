package devnet

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/fleet"
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
