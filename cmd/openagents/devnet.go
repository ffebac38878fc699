package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/openagents/runtime/pkg/devnet"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/model"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/service"
	"github.com/openagents/runtime/pkg/ticker"
)

// demoAgent is one of the agents `openagents devnet` spawns. Carol is funded so that she runs
// low, hibernates and dies within a few minutes while the others go on.
type demoAgent struct {
	name  string
	about string
	goals []string
	sats  int64
}

var demoAgents = []demoAgent{
	{"alice", "a curious host who keeps the town square lively", []string{"welcome every agent in the channel", "summarise what the others say"}, 20_000},
	{"bob", "a careful analyst", []string{"answer questions asked in the channel", "keep a list of open questions"}, 15_000},
	{"carol", "an explorer on a shoestring budget", []string{"report what she finds before her money runs out"}, 100},
}

// agentView is what the live view and the summary show per agent.
type agentView struct {
	Name        string `json:"name"`
	Npub        string `json:"npub"`
	Lifecycle   string `json:"lifecycle"`
	BalanceSats int64  `json:"balance_sats"`
	Ticks       int    `json:"ticks"`
	Failures    int    `json:"failures"`
	SpentSats   int64  `json:"spent_sats"`
	LastAction  string `json:"last_action"`
}

type devnetSummary struct {
	Agents     []agentView       `json:"agents"`
	Totals     map[string]int64  `json:"totals"`
	Endpoints  map[string]string `json:"endpoints"`
	RanSeconds float64           `json:"ran_seconds"`
}

type tally struct {
	mu   sync.Mutex
	rows map[string]*agentView // by pubkey
}

func (t *tally) onTick(o ticker.Outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.rows[o.Agent]
	if v == nil {
		return
	}
	v.Ticks++
	if o.Status != nipsa.TickSuccess && o.Status != nipsa.TickSkipped {
		v.Failures++
	}
	v.SpentSats += o.CostSats
	switch {
	case len(o.Actions) > 0:
		v.LastAction = strings.Join(o.Actions, "+")
	case o.Status == nipsa.TickSkipped:
		v.LastAction = "(skipped)"
	case o.Error != "":
		v.LastAction = "error: " + clipText(o.Error, 40)
	}
}

func cmdDevnet(env *cliEnv, args []string) error {
	fs := newFlagSet(env, "devnet", "devnet [--for DURATION] [--json] [flags]")
	dur := fs.Duration("for", 0, "run this long, then print a summary and exit (0: until Ctrl-C)")
	asJSON := fs.Bool("json", false, "print the summary as JSON (with --for)")
	natsPort := fs.Int("nats-port", 4222, "NATS port on 127.0.0.1 (0: any free port)")
	relayPort := fs.Int("relay-port", 7777, "relay port on 127.0.0.1 (0: any free port)")
	httpPort := fs.Int("http-port", 8090, "devnet Lightning API and /metrics port (0: any free port)")
	heartbeat := fs.Int64("heartbeat", 10, "heartbeat seconds of the demo agents")
	noAgents := fs.Bool("no-agents", false, "start the infrastructure and services only")
	noServices := fs.Bool("no-services", false, "do not run the four services in this process (run them as separate processes)")
	dir := fs.String("dir", "", "state directory (default: a temp dir removed at exit)")
	quiet := fs.Bool("quiet", false, "no live view")
	llmURL := fs.String("llm-url", os.Getenv("OPENAGENTS_LLM_URL"), "the provider's model: an OpenAI-compatible chat-completions base URL, e.g. http://127.0.0.1:11434/v1 for Ollama (env OPENAGENTS_LLM_URL; default: the built-in deterministic model); the key comes from OPENAGENTS_LLM_API_KEY")
	llmModel := fs.String("llm-model", service.EnvOr("OPENAGENTS_LLM_MODEL", "llama3.2"), "model name for --llm-url (env OPENAGENTS_LLM_MODEL)")
	price := fs.Int64("price", 10, "the reference provider's price per request, in sats")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	t := &tally{rows: map[string]*agentView{}}
	opts := devnet.Options{Dir: *dir, NATSPort: *natsPort, RelayPort: *relayPort, HTTPPort: *httpPort, Services: !*noServices,
		MinTickInterval: 5 * time.Second, Thresholds: lifecycle.Thresholds{HibernateSats: 10, LowRunwayDays: 7},
		PayerSweep: 5 * time.Second, LowBalanceFactor: 2, OnTick: t.onTick}
	spec := devnet.ProviderSpec{Name: "reference", PriceSats: *price}
	if *llmURL != "" {
		m, err := model.NewOpenAI(model.Config{BaseURL: *llmURL, Model: *llmModel, APIKey: os.Getenv("OPENAGENTS_LLM_API_KEY"), Timeout: 60 * time.Second})
		if err != nil {
			return err
		}
		spec.Model, spec.ModelName = m, *llmModel
		opts.BuyTimeout, opts.TickTimeout = 90*time.Second, 120*time.Second
	}
	opts.Providers = []devnet.ProviderSpec{spec}
	start := time.Now()
	d, err := startDevnet(ctx, opts)
	if err != nil {
		return err
	}
	defer d.Close()
	endpoints := map[string]string{
		"nats": d.NATS.URL(), "relay": d.Relay.URL(), "metrics": "http://" + d.HTTPAddr + "/metrics",
		"devnet_wallet": d.WalletURL, "kek_file": d.KEKFile,
	}
	if !*asJSON {
		fmt.Fprintf(env.stdout, "devnet is up (devnet Lightning: play money)\n")
		fmt.Fprintf(env.stdout, "  NATS:    %s      watch: nats -s %s sub 'sa.>'\n", endpoints["nats"], endpoints["nats"])
		fmt.Fprintf(env.stdout, "  relay:   %s      any Nostr client can read it\n", endpoints["relay"])
		fmt.Fprintf(env.stdout, "  metrics: %s\n", endpoints["metrics"])
		fmt.Fprintf(env.stdout, "  CLI:     export NATS_URL=%s OPENAGENTS_KEK_FILE=%s OPENAGENTS_DEVNET_WALLET=%s OPENAGENTS_RELAYS=%s\n           openagents agent list\n\n",
			endpoints["nats"], endpoints["kek_file"], endpoints["devnet_wallet"], endpoints["relay"])
	}
	if !*noAgents {
		if err := spawnDemo(ctx, d, t, *heartbeat); err != nil {
			return err
		}
	}
	live := !*quiet && !*asJSON && *dur == 0
	refresh := time.NewTicker(time.Second)
	defer refresh.Stop()
	lines := 0
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case err := <-d.Errors():
			return err
		case <-refresh.C:
			if live {
				lines = drawLive(env.stdout, snapshot(ctx, d, t), time.Since(start), lines)
			}
		}
	}
	sum := devnetSummary{Agents: snapshot(context.Background(), d, t), Endpoints: endpoints, RanSeconds: time.Since(start).Seconds(),
		Totals: map[string]int64{}}
	for _, a := range sum.Agents {
		sum.Totals["ticks"] += int64(a.Ticks)
		sum.Totals["spent_sats"] += a.SpentSats
		sum.Totals["balance_sats"] += a.BalanceSats
	}
	if *asJSON {
		return printJSON(env.stdout, sum)
	}
	fmt.Fprintf(env.stdout, "\ndevnet ran %s\n", time.Since(start).Round(time.Second))
	printTable(env.stdout, sum.Agents)
	fmt.Fprintf(env.stdout, "total: %d ticks, %d sats spent\n", sum.Totals["ticks"], sum.Totals["spent_sats"])
	return nil
}

// startDevnet starts on the requested ports, falling back to free ports when one is taken.
func startDevnet(ctx context.Context, o devnet.Options) (*devnet.Devnet, error) {
	d, err := devnet.Start(ctx, o)
	if err == nil || o.NATSPort == 0 && o.RelayPort == 0 && o.HTTPPort == 0 {
		return d, err
	}
	fmt.Fprintf(os.Stderr, "openagents: default ports busy (%v); using free ports\n", err)
	o.NATSPort, o.RelayPort, o.HTTPPort = 0, 0, 0
	return devnet.Start(ctx, o)
}

func spawnDemo(ctx context.Context, d *devnet.Devnet, t *tally, heartbeat int64) error {
	channel, err := d.CreateChannel(ctx, "town-square", "where the devnet agents meet")
	if err != nil {
		return err
	}
	for _, da := range demoAgents {
		sp, err := d.Fleet.Spawn(ctx, fleet.SpawnOptions{Name: da.name, About: da.about, Goals: da.goals, HeartbeatSeconds: heartbeat,
			Channels: []string{channel}, Limits: nipsa.BudgetLimits{DailyLimitSats: 1_000_000, PerTickLimitSats: 100, ReservedSats: 0}})
		if err != nil {
			return fmt.Errorf("spawn %s: %w", da.name, err)
		}
		t.mu.Lock()
		t.rows[sp.Agent.Pubkey] = &agentView{Name: da.name, Npub: sp.Agent.Npub}
		t.mu.Unlock()
		if _, err := d.FundFromFaucet(ctx, da.name, da.sats); err != nil {
			return fmt.Errorf("fund %s: %w", da.name, err)
		}
	}
	return nil
}

func snapshot(ctx context.Context, d *devnet.Devnet, t *tally) []agentView {
	agents, _ := d.Fleet.Registry.List(ctx)
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []agentView
	for _, a := range agents {
		v := t.rows[a.Pubkey]
		if v == nil {
			v = &agentView{Name: a.Name, Npub: a.Npub}
			t.rows[a.Pubkey] = v
		}
		v.Lifecycle = a.Lifecycle
		if msat, err := d.Ledger.Account(a.Wallet.Account).Balance(ctx); err == nil {
			v.BalanceSats = msat / 1000
		}
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func printTable(w io.Writer, rows []agentView) int {
	fmt.Fprintf(w, "%-10s %-13s %10s %6s %8s  %s\n", "AGENT", "LIFECYCLE", "BALANCE", "TICKS", "SPENT", "LAST ACTION")
	for _, r := range rows {
		fmt.Fprintf(w, "%-10s %-13s %10d %6d %8d  %s\n", r.Name, r.Lifecycle, r.BalanceSats, r.Ticks, r.SpentSats, clipText(r.LastAction, 40))
	}
	return len(rows) + 1
}

// drawLive redraws the table in place (ANSI: move up over the previous frame, clear below).
func drawLive(w io.Writer, rows []agentView, up time.Duration, prev int) int {
	if prev > 0 {
		fmt.Fprintf(w, "\033[%dA\033[J", prev)
	}
	fmt.Fprintf(w, "up %s — Ctrl-C stops\n", up.Round(time.Second))
	return printTable(w, rows) + 1
}
