package e2e_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/devnet"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/identity"
	"github.com/openagents/runtime/pkg/nipsa"
)

const (
	pipelineAgents   = 50
	ticksPerAgent    = 3
	pipelinePrice    = 10 // sats per inference
	pipelineFundSats = 5_000
)

type spawnedAgent struct {
	name, pubkey, sk string
	triggers         []string // manual trigger ids, in the order sent
}

// TestPipelineAcrossProcesses runs scheduler, ticker, payer and publisher as separate
// processes against one devnet (NATS, relay, devnet Lightning, a reference provider) and
// checks every tick of 50 agents on the relay and in the ledger.
func TestPipelineAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the four services as processes")
	}
	begin := time.Now()
	bins := serviceBinaries(t)
	t.Logf("service binaries ready in %s", time.Since(begin).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	dir := t.TempDir()

	d, err := devnet.Start(ctx, devnet.Options{Dir: filepath.Join(dir, "devnet"), Log: testLog(t),
		Providers: []devnet.ProviderSpec{{Name: "reference", PriceSats: pipelinePrice}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	common := []string{"--nats", d.NATS.URL(), "--relay", d.Relay.URL(), "--http", "127.0.0.1:0"}
	args := map[string][]string{
		"publisher": nil,
		"payer":     {"--wallet", "devnet", "--devnet-wallet", d.WalletURL, "--hibernate-sats", "100"},
		"scheduler": nil,
		// No spacing between ticks: the relay's AgentState must still be the newest even when
		// one agent ticks twice in a second (the ticker never reuses the previous created_at).
		"ticker": {"--kek-file", d.KEKFile, "--min-tick-interval", "1ms", "--tick-timeout", "30s", "--buy-timeout", "15s"},
	}
	var procs []*proc
	for _, s := range []string{"publisher", "payer", "scheduler", "ticker"} {
		p := startProc(t, dir, filepath.Join(bins, s), append(append([]string{}, common...), args[s]...)...)
		procs = append(procs, p)
		rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
		err := p.awaitReady(rctx)
		rcancel()
		if err != nil {
			t.Fatalf("%v\n%s", err, p.tail(30))
		}
	}
	t.Logf("services up after %s", time.Since(begin).Round(time.Millisecond))
	defer func() {
		stopping := time.Now()
		defer func() { t.Logf("services stopped in %s", time.Since(stopping).Round(time.Millisecond)) }()
		// Front (scheduler, ticker) first, so nothing in flight loses its payer or publisher.
		for _, i := range []int{3, 2, 1, 0} {
			if err := procs[i].stop(); err != nil {
				t.Errorf("stop: %v", err)
			}
		}
		if t.Failed() {
			for _, p := range procs {
				t.Logf("--- %s log (tail)\n%s", p.name, p.tail(20))
			}
		}
	}()

	w := watchResults(ctx, t, d.Relay.URL())
	start := time.Now()
	agents := make([]*spawnedAgent, pipelineAgents)
	g, gctx := newGroup(ctx, 8)
	for i := range agents {
		g.Go(func() error {
			name := fmt.Sprintf("agent-%02d", i)
			sp, err := d.Fleet.Spawn(gctx, fleet.SpawnOptions{Name: name, HeartbeatSeconds: 24 * 3600, Goals: []string{"report on the weather"},
				Limits: nipsa.BudgetLimits{DailyLimitSats: 10_000, PerTickLimitSats: pipelinePrice, ReservedSats: 0}})
			if err != nil {
				return fmt.Errorf("spawn %s: %w", name, err)
			}
			id, err := identity.FromMnemonic(sp.Mnemonic)
			if err != nil || id.PublicKey != sp.Agent.Pubkey {
				return fmt.Errorf("%s: mnemonic gives %s, want %s (%v)", name, id.PublicKey, sp.Agent.Pubkey, err)
			}
			agents[i] = &spawnedAgent{name: name, pubkey: sp.Agent.Pubkey, sk: id.SecretKey}
			if _, err := d.FundFromFaucet(gctx, name, pipelineFundSats); err != nil {
				return fmt.Errorf("fund %s: %w", name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d agents spawned and funded in %s", pipelineAgents, time.Since(start).Round(time.Millisecond))

	// Each agent is triggered ticksPerAgent times, each trigger sent once the previous one has
	// its TickResult on the relay, so none is coalesced with another.
	start = time.Now()
	g, gctx = newGroup(ctx, 0)
	for _, a := range agents {
		g.Go(func() error {
			for i := range ticksPerAgent {
				_, trg, err := d.Fleet.Trigger(gctx, a.name, "manual", fmt.Sprintf("task %d", i+1))
				if err != nil {
					return err
				}
				a.triggers = append(a.triggers, trg.ID)
				res, err := w.await(gctx, trg.ID)
				if err != nil {
					return fmt.Errorf("%s: %w", a.name, err)
				}
				if r := res[trg.ID]; r.Status != nipsa.TickSuccess {
					return fmt.Errorf("%s: tick %s status %s: %s", a.name, r.TickID, r.Status, r.Content.Error)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	t.Logf("%d manual triggers answered in %s", pipelineAgents*ticksPerAgent, elapsed.Round(time.Millisecond))

	// Everything each tick published, checked on the relay and against the ledger. Events of a
	// tick reach the relay asynchronously (the publisher), so each agent is polled until its
	// record is complete.
	start = time.Now()
	var mu sync.Mutex
	totalTicks := 0
	g, gctx = newGroup(ctx, 8)
	for _, a := range agents {
		g.Go(func() error {
			var lastErr error
			deadline := time.Now().Add(30 * time.Second)
			for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
				n, err := checkPipelineAgent(gctx, d, a)
				if err == nil {
					mu.Lock()
					totalTicks += n
					mu.Unlock()
					return nil
				}
				lastErr = err
				if time.Now().After(deadline) || gctx.Err() != nil {
					return fmt.Errorf("%s: %w", a.name, lastErr)
				}
				time.Sleep(wait)
			}
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := d.Ledger.Total(); got != devln.DefaultSupply {
		t.Fatalf("ledger total %d msat, want the supply %d: money was created or destroyed", got, devln.DefaultSupply)
	}
	t.Logf("%d ticks checked on the relay and in the ledger in %s (%d manual, the rest funding notices)",
		totalTicks, time.Since(start).Round(time.Millisecond), pipelineAgents*ticksPerAgent)
}

// checkPipelineAgent checks one agent: every tick succeeded, every manual trigger was answered,
// the latest state counts every tick, each tick paid the provider exactly once, and the
// balance is what was funded less what was spent. It returns the number of ticks.
func checkPipelineAgent(ctx context.Context, d *devnet.Devnet, a *spawnedAgent) (int, error) {
	r, err := nostrConnect(ctx, d.Relay.URL())
	if err != nil {
		return 0, err
	}
	defer r.Close()
	at, err := fetchTicks(ctx, r, a.pubkey, a.sk)
	if err != nil {
		return 0, err
	}
	answered := map[string]int{}
	for _, res := range at.results {
		if res.Status != nipsa.TickSuccess {
			return 0, fmt.Errorf("tick %s: status %s: %s", res.TickID, res.Status, res.Content.Error)
		}
		for _, id := range res.Content.Triggers {
			answered[id]++
		}
	}
	for _, id := range a.triggers {
		if answered[id] != 1 {
			return 0, fmt.Errorf("trigger %s answered by %d ticks, want 1", id, answered[id])
		}
	}
	if int(at.state.TickCount) != len(at.results) {
		return 0, fmt.Errorf("latest state says tick_count %d, the relay holds %d TickResults", at.state.TickCount, len(at.results))
	}
	spent, err := checkPaidTicks(at, d.Ledger, a.pubkey, "provider-reference", pipelinePrice)
	if err != nil {
		return 0, err
	}
	if bal := d.Ledger.Balances()[a.pubkey]; bal != pipelineFundSats*1000-spent {
		return 0, fmt.Errorf("balance %d msat, want funded %d - spent %d", bal, pipelineFundSats*1000, spent)
	}
	return len(at.results), nil
}
