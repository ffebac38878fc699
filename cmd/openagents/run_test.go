package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/devnet"
	"github.com/openagents/runtime/pkg/identity"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/nwc"
)

// nwcWallet exposes a funded devnet account as a NIP-47 wallet service on the devnet relay
// and returns its connection URI: a real wallet as `openagents run` sees one.
func nwcWallet(t *testing.T, d *devnet.Devnet, account string, sats int64) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Ledger.Faucet(ctx, account, sats*1000); err != nil {
		t.Fatal(err)
	}
	svc, err := nwc.NewService(nostr.GeneratePrivateKey(), d.Ledger.Account(account), []string{d.Relay.URL()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-svc.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("NWC service not ready")
	}
	uri, err := svc.NewConnection()
	if err != nil {
		t.Fatal(err)
	}
	return uri.Encode()
}

type runReport struct {
	Agent          string             `json:"agent"`
	Pubkey         string             `json:"pubkey"`
	Status         string             `json:"status"`
	TickID         string             `json:"tick_id"`
	CostSats       int64              `json:"cost_sats"`
	Actions        []nipsa.TickAction `json:"actions"`
	Error          string             `json:"error"`
	TrajectoryHash string             `json:"trajectory_hash"`
	EventID        string             `json:"event_id"`
	OnRelays       bool               `json:"on_relays"`
}

func TestRunSingleTickNWC(t *testing.T) {
	d := testDevnet(t, devnet.Options{})
	uri := nwcWallet(t, d, "runner", 20_000)
	isolate(t)
	provider := d.Ledger.Account("provider-reference")
	before, _ := provider.Balance(context.Background())

	r := cli(t, nip06Words+"\n", "run", "--single-tick", "--json", "--wallet", uri, "--relay", d.Relay.URL(),
		"--mnemonic-stdin", "--name", "solo", "--tick-timeout", "15s", "--buy-timeout", "10s")
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var rep runReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
	}
	assertKeys(t, r.stdout, "agent", "pubkey", "status", "tick_id", "cost_sats", "actions", "error", "trajectory_hash", "event_id", "duration_ms", "on_relays")
	id, _ := identity.FromMnemonic(nip06Words)
	if rep.Status != nipsa.TickSuccess || rep.Pubkey != id.PublicKey || rep.Agent != "solo" || !rep.OnRelays || rep.CostSats != 10 {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.TrajectoryHash) != 64 || len(rep.Actions) == 0 {
		t.Fatalf("report lacks trajectory hash or actions: %+v", rep)
	}
	evs := relayEvents(t, d.Relay.URL(), nostr.Filter{IDs: []string{rep.EventID}})
	if len(evs) != 1 {
		t.Fatalf("TickResult %s: %d events on the relay", rep.EventID, len(evs))
	}
	tr, err := nipsa.ParseTickResult(evs[0])
	if err != nil || tr.Status != nipsa.TickSuccess || tr.TickID != rep.TickID || evs[0].PubKey != id.PublicKey || tr.TrajectoryHash != rep.TrajectoryHash {
		t.Fatalf("TickResult on the relay %+v, err %v", tr, err)
	}
	// The run waited for delivery: the whole trajectory is on the relay, not only the result.
	traj := relayEvents(t, d.Relay.URL(), nostr.Filter{Kinds: []int{nipsa.KindTrajectoryEvent}, Authors: []string{id.PublicKey},
		Tags: nostr.TagMap{"tick": {rep.TickID}}})
	if len(traj) == 0 {
		t.Fatal("no trajectory events of the tick on the relay")
	}
	after, _ := provider.Balance(context.Background())
	if after-before != 10_000 {
		t.Fatalf("provider got %d msat, want 10000", after-before)
	}
	if bal, _ := d.Ledger.Account("runner").Balance(context.Background()); bal != 20_000_000-10_000 {
		t.Fatalf("runner wallet has %d msat", bal)
	}
	if strings.Contains(r.stdout+r.stderr, uri) || strings.Contains(r.stdout+r.stderr, nip06Secret) {
		t.Fatal("a secret was printed")
	}

	// A second run of the same mnemonic finds the agent registered: no second spawn.
	r = cli(t, nip06Words, "run", "--single-tick", "--wallet", uri, "--mnemonic-stdin", "--tick-timeout", "15s")
	if r.code != 0 || !strings.Contains(r.stdout, "success (solo)") || !strings.Contains(r.stdout, "on the relays") {
		t.Fatalf("second run: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	t.Logf("second run:\n%s%s", r.stderr, r.stdout)
}

func TestRunSingleTickNoProvider(t *testing.T) {
	d := testDevnet(t, devnet.Options{})
	uri := nwcWallet(t, d, "runner", 20_000)
	isolate(t)
	transfers := len(d.Ledger.Transfers())
	unknown, _ := nostr.GetPublicKey(nostr.GeneratePrivateKey())

	r := cli(t, nip06Words, "run", "--single-tick", "--json", "--wallet", uri, "--relay", d.Relay.URL(),
		"--mnemonic-stdin", "--provider", unknown, "--tick-timeout", "10s", "--buy-timeout", "5s")
	if r.code == 0 {
		t.Fatalf("exit 0 for a tick without a provider\n%s", r.stdout)
	}
	var rep runReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s\n%s", err, r.stdout, r.stderr)
	}
	if rep.Status != nipsa.TickFailure && rep.Status != nipsa.TickTimeout || rep.Error == "" || !rep.OnRelays {
		t.Fatalf("report %+v", rep)
	}
	if !strings.Contains(r.stderr, "ended "+rep.Status) {
		t.Fatalf("stderr does not say how the tick ended: %s", r.stderr)
	}
	evs := relayEvents(t, d.Relay.URL(), nostr.Filter{IDs: []string{rep.EventID}})
	if len(evs) != 1 {
		t.Fatalf("no TickResult on the relay")
	}
	if tr, err := nipsa.ParseTickResult(evs[0]); err != nil || tr.Status != rep.Status {
		t.Fatalf("TickResult %+v %v", tr, err)
	}
	if n := len(d.Ledger.Transfers()); n != transfers {
		t.Fatalf("%d transfers happened: %+v", n-transfers, d.Ledger.Transfers()[transfers:])
	}

	// Another active agent in the home would be ticked without its wallet: refused.
	must(t, "", "agent", "spawn", "--name", "other", "--relay", d.Relay.URL())
	r = cli(t, nip06Words, "run", "--single-tick", "--wallet", uri, "--mnemonic-stdin")
	if r.code == 0 || !strings.Contains(r.stderr, "other active agents (other)") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	must(t, "", "agent", "stop", "other")
	r = cli(t, nip06Words, "run", "--single-tick", "--wallet", uri, "--mnemonic-stdin", "--provider", unknown)
	if r.code != 1 || !strings.Contains(r.stdout, "no provider") {
		t.Fatalf("with other stopped: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestRunRefusesWithoutWallet(t *testing.T) {
	isolate(t)
	r := cli(t, nip06Words, "run", "--single-tick", "--mnemonic-stdin", "--relay", "ws://127.0.0.1:1")
	if r.code == 0 || !strings.Contains(r.stderr, "--wallet") || !strings.Contains(r.stderr, "--lnd-rest") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
		t.Fatalf("refusal is %d lines: %q", n+1, r.stderr)
	}
	// Refused before anything was opened: no agent registered.
	r = must(t, "", "agent", "list", "--json")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("registry changed: %s", r.stdout)
	}
	// A malformed NWC URI is refused without quoting it.
	r = cli(t, nip06Words, "run", "--mnemonic-stdin", "--wallet", "nostr+walletconnect://nothex?secret=topsecretvalue")
	if r.code == 0 || strings.Contains(r.stderr, "topsecretvalue") || !strings.Contains(r.stderr, "invalid connection URI") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
}

// assertKeys checks the top-level keys of a JSON object are exactly want.
func assertKeys(t *testing.T, js string, want ...string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, js)
	}
	got := map[string]bool{}
	for k := range m {
		got[k] = true
	}
	for _, k := range want {
		if !got[k] {
			t.Errorf("key %q missing in %s", k, js)
		}
		delete(got, k)
	}
	for k := range got {
		t.Errorf("unexpected key %q in %s", k, js)
	}
}
