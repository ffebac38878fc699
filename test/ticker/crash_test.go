// Package ticker_test kills the ticker process mid-tick and checks the guarantee that every
// accepted trigger still ends in exactly one TickResult.
package ticker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/devnet"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/model"
	"github.com/openagents/runtime/pkg/nipsa"
)

// slowModel answers like the built-in model, slowly, so a kill lands inside ticks.
type slowModel struct{ d time.Duration }

func (m slowModel) Complete(ctx context.Context, r model.Request) (model.Reply, error) {
	select {
	case <-time.After(m.d):
	case <-ctx.Done():
		return model.Reply{}, ctx.Err()
	}
	return model.Builtin{}.Complete(ctx, r)
}

func tickerBinary(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("OPENAGENTS_BIN"); dir != "" {
		if p := filepath.Join(dir, "ticker"); fileExists(p) {
			return p
		}
	}
	out := filepath.Join(t.TempDir(), "ticker")
	cmd := exec.Command("go", "build", "-o", out, "github.com/openagents/runtime/services/ticker")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build ticker: %v\n%s", err, b)
	}
	return out
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestTickerKilledMidTick(t *testing.T) {
	bin := tickerBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	d, err := devnet.Start(ctx, devnet.Options{Dir: t.TempDir(), Services: true, Without: []string{"ticker"},
		Providers: []devnet.ProviderSpec{{Name: "slow", PriceSats: 10, Model: slowModel{400 * time.Millisecond}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	const agents, triggers = 4, 5
	var pubs []string
	for i := 0; i < agents; i++ {
		name := fmt.Sprintf("a%d", i)
		sp, err := d.Fleet.Spawn(ctx, fleet.SpawnOptions{Name: name, HeartbeatSeconds: 3600,
			Limits: nipsa.BudgetLimits{DailyLimitSats: 100_000, PerTickLimitSats: 100}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.FundFromFaucet(ctx, name, 10_000); err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, sp.Agent.Pubkey)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--nats", d.NATS.URL(), "--relay", d.Relay.URL(), "--kek-file", d.KEKFile,
			"--http", "127.0.0.1:0", "--tick-timeout", "4s", "--buy-timeout", "3s", "--min-tick-interval", "1ms")
		cmd.Env = append(os.Environ(), "OPENAGENTS_LOG_LEVEL=warn")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	cmd := start()
	sent := map[string]bool{}
	for round := 0; round < triggers; round++ {
		for i := 0; i < agents; i++ {
			_, trg, err := d.Fleet.Trigger(ctx, fmt.Sprintf("a%d", i), "manual", fmt.Sprintf("round %d", round))
			if err != nil {
				t.Fatal(err)
			}
			sent[trg.ID] = true
		}
		// Kill the ticker at a random point while it works, then start a fresh one.
		time.Sleep(time.Duration(100+rand.IntN(600)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		cmd = start()
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()

	// Every trigger ends in exactly one TickResult on the relay.
	pool := nostr.NewSimplePool(ctx)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		answered := map[string]int{}
		results := 0
		for re := range pool.FetchMany(ctx, []string{d.Relay.URL()}, nostr.Filter{Kinds: []int{nipsa.KindTickResult}, Authors: pubs}) {
			tr, err := nipsa.ParseTickResult(re.Event)
			if err != nil {
				t.Fatalf("bad TickResult on the relay: %v", err)
			}
			results++
			for _, id := range tr.Content.Triggers {
				answered[id]++
			}
		}
		missing, twice := 0, 0
		for id := range sent {
			switch answered[id] {
			case 0:
				missing++
			case 1:
			default:
				twice++
			}
		}
		if twice > 0 {
			t.Fatalf("%d triggers answered by more than one TickResult", twice)
		}
		if missing == 0 {
			t.Logf("%d triggers answered by %d TickResults across %d ticker kills", len(sent), results, triggers)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d triggers never got a TickResult", missing, len(sent))
		}
		time.Sleep(500 * time.Millisecond)
	}
}
