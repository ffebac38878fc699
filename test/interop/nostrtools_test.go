// Package interop checks the runtime's wire formats against independent implementations.
package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/openagents/runtime/pkg/nipsa"
)

// needNode returns the node binary with nostr-tools installed in js/, installing it with the
// repository's own script when npm is reachable. Without node or npm the test fails under
// CI=true and skips loudly elsewhere.
func needNode(t *testing.T) string {
	t.Helper()
	unavailable := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("interop with nostr-tools cannot run in CI: "+format, args...)
		}
		t.Skipf("SKIPPING interop with nostr-tools: "+format+" (run scripts/deps.d/10-npm.sh)", args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable("node not found")
	}
	if _, err := os.Stat(filepath.Join("js", "node_modules", "nostr-tools", "package.json")); err != nil {
		if _, err := exec.LookPath("npm"); err != nil {
			unavailable("nostr-tools is not installed in test/interop/js and npm is not found")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "bash", filepath.Join("..", "..", "scripts", "deps.d", "10-npm.sh")).CombinedOutput()
		if err != nil {
			unavailable("installing nostr-tools failed: %v\n%s", err, out)
		}
	}
	return node
}

type jsResult struct {
	Verified   int             `json:"verified"`
	Rejected   int             `json:"rejected"`
	Failures   []string        `json:"failures"`
	Opened     json.RawMessage `json:"opened"`
	SealedByJS nostr.Event     `json:"sealed_by_js"`
}

func TestNostrToolsInterop(t *testing.T) {
	node := needNode(t)

	agentSK := nostr.GeneratePrivateKey()
	runnerSK := nostr.GeneratePrivateKey()
	agentPK, _ := nostr.GetPublicKey(agentSK)
	runnerPK, _ := nostr.GetPublicKey(runnerSK)

	state := nipsa.AgentState{
		Goals: []nipsa.Goal{{ID: "g1", Description: "earn sats", Priority: 1, CreatedAt: 1703000000,
			Status: nipsa.GoalActive, Progress: 0.3}},
		Memory:            []nipsa.Memory{{Type: "tick", Content: "héllo ⚡ world", Timestamp: 1703001000}},
		PendingTasks:      []string{"reply"},
		Beliefs:           map[string]any{"market": "up"},
		WalletBalanceSats: 50000, LastTick: 1703002000, TickCount: 42,
		Budget: nipsa.BudgetState{Limits: nipsa.BudgetLimits{DailyLimitSats: 10000, PerTickLimitSats: 1000,
			ReservedSats: 5000}, CurrentDate: "2025-12-28"},
	}
	sealer, err := nipsa.NewSealer(agentSK)
	if err != nil {
		t.Fatal(err)
	}
	sealed, _, err := sealer.Seal(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := sealed.Sign(agentSK); err != nil {
		t.Fatal(err)
	}

	// One event of every NIP-SA kind, built by our codecs and signed by go-nostr.
	thinking := `{"type":"Thinking","content":"<redacted>","hash":"` + strings.Repeat("a", 64) + `"}`
	builds := []struct {
		sk string
		b  built
	}{
		{agentSK, b(nipsa.ProfileEvent(nipsa.AgentProfile{Name: "ada", About: "agent", Capabilities: []string{"post"},
			AutonomyLevel: nipsa.AutonomyBounded, Version: "1", Threshold: 1, Signers: 1, Signer: agentPK, Operator: agentPK}))},
		{agentSK, b(nipsa.ScheduleEvent(nipsa.AgentSchedule{Active: true, HeartbeatSeconds: 900,
			Triggers: []string{"mention", "custom:42"}, BusinessHours: "mon,fri 09:00-17:00"}))},
		{agentSK, b(nipsa.GoalsEvent(nipsa.PublicGoals{Goals: state.Goals}))},
		{runnerSK, b(nipsa.TickRequestEvent(nipsa.TickRequest{TickID: "t1", Runner: runnerPK, Trigger: "heartbeat", Agent: agentPK}))},
		{runnerSK, b(nipsa.TickResultEvent(nipsa.TickResult{TickID: "t1", RequestID: strings.Repeat("b", 64), Runner: runnerPK,
			Status: nipsa.TickSuccess, DurationMS: 10, ActionCount: 1,
			Content: nipsa.TickResultContent{Actions: []nipsa.TickAction{{Type: "post"}}}}))},
		{agentSK, b(nipsa.SessionEvent(nipsa.TrajectorySession{SessionID: "s1", TickID: "t1", StartedAt: 1703000000,
			Model: "m", Visibility: nipsa.VisibilityPublic, TotalEvents: 1}))},
		{agentSK, b(nipsa.TrajectoryEventEvent(nipsa.TrajectoryEvent{SessionID: "s1", TickID: "t1", Seq: 1,
			Step: nipsa.StepThinking, Content: thinking}))},
	}
	events := []nostr.Event{sealed}
	var tampered []nostr.Event
	kinds := map[int]bool{sealed.Kind: true}
	for _, x := range builds {
		if x.b.err != nil {
			t.Fatal(x.b.err)
		}
		ev := x.b.ev
		if err := ev.Sign(x.sk); err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
		kinds[ev.Kind] = true

		c := ev // content or tag changed, id and signature kept
		c.Tags = append(nostr.Tags{}, ev.Tags...)
		c.Tags[0] = nostr.Tag{"d", c.Tags[0][1] + "x"}
		tampered = append(tampered, c)
		f := ev // body changed and id recomputed: only the signature can catch it
		f.Content += " "
		f.ID = f.GetID()
		tampered = append(tampered, f)
	}
	for _, k := range []int{nipsa.KindAgentProfile, nipsa.KindAgentState, nipsa.KindAgentSchedule, nipsa.KindPublicGoals,
		nipsa.KindTickRequest, nipsa.KindTickResult, nipsa.KindTrajectorySession, nipsa.KindTrajectoryEvent} {
		if !kinds[k] {
			t.Fatalf("kind %d not exercised", k)
		}
	}

	in, err := json.Marshal(map[string]any{"agent_sk": agentSK, "agent_pk": agentPK, "events": events,
		"tampered": tampered, "sealed_state": sealed})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "events.json")
	if err := os.WriteFile(file, in, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "verify.mjs", file)
	cmd.Dir = "js"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node verify.mjs: %v\n%s", err, stderr.String())
	}
	var res jsResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("verify.mjs output: %v\n%s", err, stdout.String())
	}
	for _, f := range res.Failures {
		t.Errorf("nostr-tools: %s", f)
	}
	if res.Verified != len(events) || res.Rejected != len(tampered) {
		t.Fatalf("nostr-tools verified %d of %d events and rejected %d of %d tampered ones",
			res.Verified, len(events), res.Rejected, len(tampered))
	}
	t.Logf("nostr-tools verified %d Go events (%d kinds) and rejected %d tampered ones", res.Verified, len(kinds), res.Rejected)

	// What nostr-tools opened is the state Go sealed.
	var opened nipsa.AgentState
	if err := json.Unmarshal(res.Opened, &opened); err != nil {
		t.Fatal(err)
	}
	if opened.TickCount != 42 || len(opened.Memory) != 1 || opened.Memory[0].Content != "héllo ⚡ world" ||
		opened.Goals[0].Progress != 0.3 || opened.Budget.Limits.ReservedSats != 5000 {
		t.Fatalf("nostr-tools opened %+v", opened)
	}

	// And Go opens what nostr-tools sealed, with the same checks as any state.
	got, err := sealer.Open(&res.SealedByJS)
	if err != nil {
		t.Fatalf("Go cannot open the state nostr-tools sealed: %v", err)
	}
	if got.TickCount != 43 || len(got.Memory) != 2 || got.Memory[1].Content != "sealed by nostr-tools ✓" ||
		got.Goals[0].ID != "g1" || got.WalletBalanceSats != 50000 {
		t.Fatalf("opened %+v", got)
	}
	// A nostr-tools state re-signed by another key is not this agent's.
	forged := res.SealedByJS
	if err := forged.Sign(runnerSK); err != nil {
		t.Fatal(err)
	}
	if _, err := sealer.Open(&forged); !errors.Is(err, nipsa.ErrNotOwnState) {
		t.Fatalf("foreign-signed state: %v", err)
	}
}

// built holds a codec's result so a table can list builders of different kinds.
type built struct {
	ev  nostr.Event
	err error
}

func b(ev nostr.Event, err error) built { return built{ev, err} }
