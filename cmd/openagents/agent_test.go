package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/custody"
	"github.com/openagents/runtime/pkg/devnet"
	"github.com/openagents/runtime/pkg/nipsa"
)

// fleetDevnet is a devnet with the four services, and the CLI pointed at it.
type fleetDevnet struct {
	*devnet.Devnet
	t    *testing.T
	log  *syncBuffer
	conn []string
	out  strings.Builder // every stdout and stderr of the CLI in this test
}

func newFleetDevnet(t *testing.T) *fleetDevnet {
	isolate(t)
	f := &fleetDevnet{t: t, log: &syncBuffer{}}
	f.Devnet = testDevnet(t, devnet.Options{Services: true, Log: testLogger(f.log), MinTickInterval: 100 * time.Millisecond,
		TickTimeout: 15 * time.Second, BuyTimeout: 10 * time.Second})
	f.conn = []string{"--nats", f.NATS.URL(), "--kek-file", f.KEKFile}
	t.Setenv("OPENAGENTS_DEVNET_WALLET", f.WalletURL)
	return f
}

// cli runs `openagents <args> --nats ... --kek-file ...`.
func (f *fleetDevnet) cli(stdin string, args ...string) result {
	f.t.Helper()
	r := cli(f.t, stdin, append(args, f.conn...)...)
	f.out.WriteString(r.stdout + r.stderr)
	return r
}

func (f *fleetDevnet) must(stdin string, args ...string) result {
	f.t.Helper()
	r := f.cli(stdin, args...)
	if r.code != 0 {
		f.t.Fatalf("openagents %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// spawnFunded spawns name on the devnet relay and funds it from the faucet through the CLI.
func (f *fleetDevnet) spawnFunded(name string, heartbeat string, stdinWords string) map[string]any {
	f.t.Helper()
	args := []string{"agent", "spawn", "--name", name, "--relay", f.Relay.URL(), "--heartbeat", heartbeat, "--json", "--per-tick-limit", "100", "--reserve", "0"}
	if stdinWords != "" {
		args = append(args, "--mnemonic-stdin")
	}
	var sp map[string]any
	if err := json.Unmarshal([]byte(f.must(stdinWords, args...).stdout), &sp); err != nil {
		f.t.Fatal(err)
	}
	f.must("", "agent", "fund", name, "5000", "--from-faucet")
	return sp
}

// awaitResult waits for a TickResult of agent on the relay answering trigger id (any, if "").
func (f *fleetDevnet) awaitResult(agent, trigger string) nipsa.TickResult {
	f.t.Helper()
	var got nipsa.TickResult
	waitFor(f.t, 20*time.Second, "TickResult of trigger "+trigger, func() bool {
		for _, tr := range tickResults(f.t, f.Relay.URL(), agent) {
			if trigger == "" || slices.Contains(tr.Content.Triggers, trigger) {
				got = tr
				return true
			}
		}
		return false
	})
	return got
}

func (f *fleetDevnet) count(kind int, agent string) int {
	return len(relayEvents(f.t, f.Relay.URL(), nostr.Filter{Kinds: []int{kind}, Authors: []string{agent}}))
}

func TestAgentCommandsAgainstDevnet(t *testing.T) {
	f := newFleetDevnet(t)
	relay := f.Relay.URL()
	r := f.must("", "agent", "spawn", "--name", "alice", "--relay", relay, "--heartbeat", "1", "--json", "--per-tick-limit", "100", "--reserve", "0")
	assertKeys(t, r.stdout, "name", "npub", "pubkey", "wallet_address", "funding_invoice", "lifecycle")
	var sp struct{ Name, Npub, Pubkey, Lifecycle string }
	if err := json.Unmarshal([]byte(r.stdout), &sp); err != nil || sp.Name != "alice" || sp.Lifecycle != "spawning" {
		t.Fatalf("spawn %s %v", r.stdout, err)
	}
	pub := sp.Pubkey

	r = f.must("", "agent", "list", "--json")
	var rows []json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("list %s %v", r.stdout, err)
	}
	assertKeys(t, string(rows[0]), "name", "npub", "pubkey", "lifecycle", "active", "balance_sats", "ticks", "last_tick")

	r = f.must("", "agent", "status", "alice", "--json")
	assertKeys(t, r.stdout, "name", "npub", "pubkey", "lifecycle", "active", "balance_known", "balance_sats", "daily_burn_sats",
		"runway_days", "budget", "schedule", "relays", "channels", "recent_ticks", "last_error", "balance_error")

	r = f.must("", "agent", "fund", "alice", "5000", "--from-faucet", "--json")
	assertKeys(t, r.stdout, "name", "pubkey", "sats", "bolt11", "paid_from_faucet")
	if bal, _ := f.Ledger.Account(pub).Balance(context.Background()); bal != 5_000_000 {
		t.Fatalf("alice's devnet account holds %d msat after funding", bal)
	}
	waitFor(t, 10*time.Second, "alice active", func() bool {
		var st struct {
			Lifecycle   string `json:"lifecycle"`
			BalanceSats int64  `json:"balance_sats"`
		}
		_ = json.Unmarshal([]byte(f.must("", "agent", "status", "alice", "--json").stdout), &st)
		return st.Lifecycle == "active" && st.BalanceSats > 0
	})

	r = f.must("", "agent", "trigger", "alice", "--note", "hello", "--json")
	assertKeys(t, r.stdout, "name", "pubkey", "subject", "trigger")
	var trg struct {
		Subject string            `json:"subject"`
		Trigger contracts.Trigger `json:"trigger"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &trg); err != nil || trg.Subject != "sa.trigger."+pub {
		t.Fatalf("trigger %s %v", r.stdout, err)
	}
	if tr := f.awaitResult(pub, trg.Trigger.ID); tr.Status != nipsa.TickSuccess {
		t.Fatalf("triggered tick %+v", tr)
	}

	r = f.must("", "agent", "stop", "alice", "--json")
	assertKeys(t, r.stdout, "name", "pubkey", "active", "lifecycle")
	// Ticks accepted before the stop may still finish; then nothing for several heartbeats.
	n := f.count(nipsa.KindTickRequest, pub)
	waitFor(t, 10*time.Second, "ticks in flight at stop to finish", func() bool {
		time.Sleep(time.Second)
		m := f.count(nipsa.KindTickRequest, pub)
		settled := m == n
		n = m
		return settled
	})
	time.Sleep(3 * time.Second) // three heartbeats of alice
	if m := f.count(nipsa.KindTickRequest, pub); m != n {
		t.Fatalf("%d TickRequests after stop", m-n)
	}
	if out := f.must("", "agent", "list").stdout; !strings.Contains(out, "(stopped)") {
		t.Fatalf("list after stop:\n%s", out)
	}

	f.must("", "agent", "start", "alice")
	waitFor(t, 10*time.Second, "heartbeat ticks after start", func() bool { return f.count(nipsa.KindTickRequest, pub) > n })

	r = f.must("", "agent", "kill", "alice", "--yes", "--json")
	assertKeys(t, r.stdout, "agent", "balance_sats", "balance_known")
	var k struct {
		Agent struct {
			Lifecycle string `json:"lifecycle"`
			Active    bool   `json:"active"`
		} `json:"agent"`
		BalanceKnown bool `json:"balance_known"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil || k.Agent.Lifecycle != "dead" || k.Agent.Active || !k.BalanceKnown {
		t.Fatalf("kill %s %v", r.stdout, err)
	}
	if r := f.cli("", "agent", "start", "alice"); r.code == 0 || !strings.Contains(r.stderr, "dead") {
		t.Fatalf("start of a dead agent: exit %d %q", r.code, r.stderr)
	}
	// Kill asks for the name unless --yes.
	f.spawnFunded("bob", "3600", "")
	if r := f.cli("not-bob\n", "agent", "kill", "bob"); r.code == 0 || !strings.Contains(r.stderr, "not confirmed") {
		t.Fatalf("kill without confirmation: exit %d %q", r.code, r.stderr)
	}
	f.must("bob\n", "agent", "kill", "bob")
}

func TestRestoreKnownMnemonic(t *testing.T) {
	f := newFleetDevnet(t)
	wantPub, _ := nostr.GetPublicKey(nip06Secret)
	wantNpub, _ := nip19.EncodePublicKey(wantPub)
	sp := f.spawnFunded("vector", "3600", "  Leader monkey parrot ring guide accident\nbefore fence cannon height naive bean \n")
	if sp["npub"] != wantNpub || sp["pubkey"] != wantPub {
		t.Fatalf("restored %v, want %s", sp, wantNpub)
	}
	r := must(t, nip06Words, "keys", "derive", "--json")
	assertKeys(t, r.stdout, "npub", "pubkey", "wallet_address", "wallet_path", "network")
	var d map[string]string
	_ = json.Unmarshal([]byte(r.stdout), &d)
	if d["npub"] != wantNpub || d["pubkey"] != wantPub || !strings.HasPrefix(d["wallet_address"], "bc1q") || d["network"] != "mainnet" {
		t.Fatalf("keys derive %v", d)
	}
	r = must(t, nip06Words, "keys", "derive", "--network", "regtest")
	for _, s := range []string{"npub:    " + wantNpub, "pubkey:  " + wantPub, "wallet:  bcrt1q"} {
		if !strings.Contains(r.stdout, s) {
			t.Fatalf("keys derive output lacks %q:\n%s", s, r.stdout)
		}
	}
	if sp["wallet_address"] == "" || !strings.HasPrefix(sp["wallet_address"].(string), "bcrt1q") {
		t.Fatalf("spawned wallet address %v", sp["wallet_address"])
	}
}

func registrySnapshot(t *testing.T, f *fleetDevnet) string {
	t.Helper()
	agents, err := f.Fleet.Registry.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(agents)
	return string(b)
}

func TestBadInputIsOneLineAndChangesNothing(t *testing.T) {
	f := newFleetDevnet(t)
	alice := f.spawnFunded("alice", "3600", "")
	// Funding moves alice to Active through a tick; let that settle before the snapshot.
	f.awaitResult(alice["pubkey"].(string), "")
	waitFor(t, 10*time.Second, "alice active", func() bool { return strings.Contains(registrySnapshot(t, f), `"lifecycle":"active"`) })
	before := registrySnapshot(t, f)
	aliceSecrets, err := f.Fleet.Vault.Get(context.Background(), alice["pubkey"].(string))
	if err != nil {
		t.Fatal(err)
	}
	badChecksum := strings.Replace(nip06Words, "naive bean", "bean naive", 1)
	cases := []struct {
		stdin string
		args  []string
		want  string
	}{
		{badChecksum, []string{"agent", "spawn", "--name", "eve", "--mnemonic-stdin"}, "checksum"},
		{"leader monkey parrot", []string{"agent", "spawn", "--name", "eve", "--mnemonic-stdin"}, "invalid mnemonic"},
		{"", []string{"agent", "spawn", "--name", "alice"}, "name already taken"},
		{aliceSecrets.Mnemonic, []string{"agent", "spawn", "--name", "alice2", "--mnemonic-stdin"}, "already registered"},
		{"", []string{"agent", "spawn", "--name", "Not A Name"}, "bad name"},
		{"", []string{"agent", "status", "nobody"}, "unknown agent"},
		{"", []string{"agent", "fund", "nobody", "100"}, "unknown agent"},
		{"", []string{"agent", "trigger", "nobody"}, "unknown agent"},
		{"", []string{"agent", "stop", "nobody"}, "unknown agent"},
		{"", []string{"agent", "kill", "nobody", "--yes"}, "unknown agent"},
		{"", []string{"agent", "fund", "alice", "0"}, "positive"},
		{"", []string{"agent", "fund", "alice", "-5"}, "positive"},
		{"", []string{"agent", "fund", "alice", "lots"}, "positive"},
		{"", []string{"agent", "status"}, "needs <agent>"},
		{badChecksum, []string{"keys", "derive"}, "checksum"},
	}
	for _, c := range cases {
		var r result
		if c.args[0] == "keys" {
			r = cli(t, c.stdin, c.args...) // talks to no fleet
		} else {
			r = f.cli(c.stdin, c.args...)
		}
		line := strings.TrimSpace(r.stderr)
		if r.code == 0 || strings.Contains(line, "\n") || !strings.Contains(line, c.want) || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q (want one line with %q)", strings.Join(c.args, " "), r.code, r.stdout, r.stderr, c.want)
		}
		if strings.Contains(r.stderr, "leader monkey") || strings.Contains(r.stderr, aliceSecrets.Mnemonic) {
			t.Errorf("%s: the words were echoed", strings.Join(c.args, " "))
		}
	}
	if after := registrySnapshot(t, f); after != before {
		t.Fatalf("registry changed:\nbefore %s\nafter  %s", before, after)
	}
}

func TestKeysRotate(t *testing.T) {
	isolate(t)
	d := testDevnet(t, devnet.Options{Providers: []devnet.ProviderSpec{}})
	oldKEK := []string{"--nats", d.NATS.URL(), "--kek-file", d.KEKFile}
	must(t, "", append([]string{"agent", "spawn", "--name", "alice"}, oldKEK...)...)
	must(t, nip06Words, append([]string{"agent", "spawn", "--name", "bob", "--mnemonic-stdin"}, oldKEK...)...)
	_, hexKey := custody.NewKEK()
	newFile := filepath.Join(t.TempDir(), "new-kek")
	if err := os.WriteFile(newFile, []byte(hexKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := must(t, "", append([]string{"keys", "rotate", "--new-kek-file", newFile, "--json"}, oldKEK...)...)
	assertKeys(t, r.stdout, "resealed", "kek_id")
	if !strings.Contains(r.stdout, `"resealed": 2`) {
		t.Fatalf("rotate: %s", r.stdout)
	}
	// The old KEK no longer opens the vault; the error says so in one line.
	r = cli(t, "", append([]string{"agent", "stop", "alice"}, oldKEK...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "different key-encryption key") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("old KEK after rotation: exit %d %q", r.code, r.stderr)
	}
	newKEK := []string{"--nats", d.NATS.URL(), "--kek-file", newFile}
	must(t, "", append([]string{"agent", "stop", "alice"}, newKEK...)...)
	must(t, "", append([]string{"agent", "kill", "bob", "--yes"}, newKEK...)...)
	// Rotating again with the same new key is a no-op that skips what is already sealed under it.
	r = must(t, "", append([]string{"keys", "rotate", "--new-kek-file", newFile}, newKEK...)...)
	if !strings.Contains(r.stdout, "re-sealed 0 records") {
		t.Fatalf("second rotate: %s", r.stdout)
	}
}

func TestTriggerAndNatsPubBehaveTheSame(t *testing.T) {
	f := newFleetDevnet(t)
	sp := f.spawnFunded("alice", "3600", "")
	pub := sp["pubkey"].(string)
	var trg struct {
		Trigger contracts.Trigger `json:"trigger"`
	}
	if err := json.Unmarshal([]byte(f.must("", "agent", "trigger", "alice", "--note", "x", "--json").stdout), &trg); err != nil {
		t.Fatal(err)
	}
	viaCLI := f.awaitResult(pub, trg.Trigger.ID)

	// What `nats pub sa.trigger.<agent> '{"type":"manual","note":"x"}'` sends.
	nc, err := nats.Connect(f.NATS.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.Publish("sa.trigger."+pub, []byte(`{"type":"manual","note":"x"}`)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	// Its trigger id is derived from the payload; find the tick by its manual TickRequest.
	var viaNats nipsa.TickResult
	waitFor(t, 20*time.Second, "the tick of the nats pub trigger", func() bool {
		for _, tr := range tickResults(t, f.Relay.URL(), pub) {
			if tr.TickID != viaCLI.TickID && requestOf(t, f.Relay.URL(), tr).Trigger == contracts.TriggerManual {
				viaNats = tr
				return true
			}
		}
		return false
	})
	for _, tr := range []nipsa.TickResult{viaCLI, viaNats} {
		if tr.Status != nipsa.TickSuccess || len(tr.Content.Triggers) != 1 {
			t.Fatalf("tick %+v", tr)
		}
		req := requestOf(t, f.Relay.URL(), tr)
		if req.Trigger != contracts.TriggerManual || req.TickID != tr.TickID || req.Agent != pub {
			t.Fatalf("TickRequest %+v", req)
		}
	}
}

func TestNoSecretsInLogsMetricsOutputOrEvents(t *testing.T) {
	f := newFleetDevnet(t)
	alice := f.spawnFunded("alice", "3600", "")
	bob := f.spawnFunded("bob", "3600", nip06Words)
	for _, name := range []string{"alice", "bob"} {
		var trg struct {
			Pubkey  string            `json:"pubkey"`
			Trigger contracts.Trigger `json:"trigger"`
		}
		_ = json.Unmarshal([]byte(f.must("", "agent", "trigger", name, "--note", "say something", "--json").stdout), &trg)
		f.awaitResult(trg.Pubkey, trg.Trigger.ID)
		f.must("", "agent", "status", name)
	}
	f.must("", "agent", "list")
	f.must("", "agent", "stop", "alice")
	f.must("", "agent", "kill", "bob", "--yes")

	resp, err := http.Get("http://" + f.HTTPAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "sa_ticker_ticks_total") {
		t.Fatalf("metrics do not look like the devnet's:\n%.500s", metrics)
	}
	var events strings.Builder
	for _, ev := range relayEvents(t, f.Relay.URL(), nostr.Filter{Limit: 5000}) {
		b, _ := json.Marshal(ev)
		events.Write(b)
	}
	if !strings.Contains(events.String(), alice["pubkey"].(string)) {
		t.Fatal("the relay holds no events of alice")
	}
	corpus := map[string]string{"logs": f.log.String(), "cli output": f.out.String(), "metrics": string(metrics), "relay events": events.String()}
	if !strings.Contains(corpus["logs"], "tick") {
		t.Fatal("the log capture is empty")
	}
	for _, sp := range []map[string]any{alice, bob} {
		pub := sp["pubkey"].(string)
		s, err := f.Fleet.Vault.Get(context.Background(), pub)
		if err != nil {
			t.Fatal(err)
		}
		words := strings.Fields(s.Mnemonic)
		secrets := []string{s.Mnemonic}
		for i := 0; i+4 <= len(words); i++ {
			secrets = append(secrets, strings.Join(words[i:i+4], " "), strings.Join(words[i:i+4], `","`))
		}
		sk := agentSecret(t, s.Mnemonic)
		nsec, _ := nip19.EncodePrivateKey(sk)
		secrets = append(secrets, nsec, sk)
		for where, text := range corpus {
			for _, sec := range secrets {
				if strings.Contains(text, sec) {
					t.Errorf("a secret of %s (%d chars) is in the %s", sp["name"], len(sec), where)
				}
			}
		}
	}
}

// requestOf fetches and parses the TickRequest a TickResult answers.
func requestOf(t *testing.T, relay string, tr nipsa.TickResult) nipsa.TickRequest {
	t.Helper()
	reqs := relayEvents(t, relay, nostr.Filter{IDs: []string{tr.RequestID}})
	if len(reqs) != 1 {
		t.Fatalf("TickRequest %s of tick %s not on the relay", tr.RequestID, tr.TickID)
	}
	req, err := nipsa.ParseTickRequest(reqs[0])
	if err != nil {
		t.Fatal(err)
	}
	return req
}
