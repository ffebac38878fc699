package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/identity"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/registry"
)

const agentUsage = `usage: openagents agent <spawn|list|status|start|stop|fund|kill|trigger> [flags]`

func cmdAgent(env *cliEnv, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, agentUsage)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "spawn":
		return agentSpawn(env, rest)
	case "list", "ls":
		return agentList(env, rest)
	case "status":
		return agentStatus(env, rest)
	case "start", "stop":
		return agentStartStop(env, rest, sub == "start")
	case "fund":
		return agentFund(env, rest)
	case "kill":
		return agentKill(env, rest)
	case "trigger":
		return agentTrigger(env, rest)
	case "-h", "--help", "help":
		fmt.Fprintln(env.stdout, agentUsage)
		return nil
	}
	return fmt.Errorf("%w: unknown agent command %q; %s", errUsage, sub, agentUsage)
}

type strList []string

func (l *strList) String() string     { return strings.Join(*l, ",") }
func (l *strList) Set(v string) error { *l = append(*l, v); return nil }

// parse parses flags that may come before or after positional arguments. A negative number
// ("fund alice -5") is a positional argument, so it gets the amount's error, not a flag's.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		for len(args) > 0 && isNegativeNumber(args[0]) {
			pos, args = append(pos, args[0]), args[1:]
		}
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func isNegativeNumber(s string) bool {
	_, err := strconv.ParseFloat(s, 64)
	return len(s) > 1 && s[0] == '-' && err == nil
}

func newFlagSet(env *cliEnv, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: openagents %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// command is one invocation's positional arguments and open session.
type command struct {
	ctx  context.Context
	s    *session
	pos  []string
	done func()
}

// begin parses args, requires at least want positional arguments (else the usage error
// missing), and opens a session; call done when finished.
func (c *connFlags) begin(fs *flag.FlagSet, args []string, want int, missing string, needVault bool, timeout time.Duration) (*command, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) < want {
		return nil, fmt.Errorf("%w: %s", errUsage, missing)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	s, err := c.open(ctx, needVault)
	if err != nil {
		cancel()
		return nil, err
	}
	return &command{ctx: ctx, s: s, pos: pos, done: func() { s.Close(); cancel() }}, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func agentSpawn(env *cliEnv, args []string) error {
	fs := newFlagSet(env, "agent spawn", "agent spawn --name N [flags]")
	var c connFlags
	c.register(fs)
	name := fs.String("name", "", "agent name (lowercase letters, digits, - and _)")
	about := fs.String("about", "", "one line about the agent")
	caps := fs.String("capabilities", "", "comma-separated capabilities")
	heartbeat := fs.Int64("heartbeat", 900, "seconds between heartbeat ticks")
	bootstrap := fs.Int64("bootstrap-sats", 0, "ask for a funding invoice of this many sats")
	var relays, goals, channels strList
	fs.Var(&relays, "relay", "relay URL (repeatable)")
	fs.Var(&goals, "goal", "an initial goal (repeatable)")
	fs.Var(&channels, "channel", "NIP-28 channel id to listen to (repeatable)")
	mnemonicFile := fs.String("mnemonic-file", "", "restore from the 12 words in this file")
	mnemonicStdin := fs.Bool("mnemonic-stdin", false, "restore from 12 words on standard input")
	show := fs.Bool("show-mnemonic", false, "print the mnemonic (once; store it offline)")
	daily := fs.Int64("daily-limit", 0, "daily budget in sats (default 10000)")
	perTick := fs.Int64("per-tick-limit", 0, "per-tick budget in sats (default 1000)")
	reserve := fs.Int64("reserve", -1, "sats never spent (default 5000)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *name == "" && len(pos) == 1 {
		*name = pos[0]
	}
	if *name == "" {
		return fmt.Errorf("%w: agent spawn needs --name", errUsage)
	}
	words, err := readMnemonic(env, *mnemonicFile, *mnemonicStdin)
	if err != nil {
		return err
	}
	if *bootstrap < 0 {
		return fmt.Errorf("%w: --bootstrap-sats must be positive", fleet.ErrAmount)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.open(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()
	limits := nipsa.BudgetLimits{DailyLimitSats: 10_000, PerTickLimitSats: 1_000, ReservedSats: 5_000}
	if *daily > 0 {
		limits.DailyLimitSats = *daily
	}
	if *perTick > 0 {
		limits.PerTickLimitSats = *perTick
	}
	if *reserve >= 0 {
		limits.ReservedSats = *reserve
	}
	var capList []string
	if *caps != "" {
		capList = strings.Split(*caps, ",")
	}
	sp, err := s.fleet.Spawn(ctx, fleet.SpawnOptions{Name: *name, About: *about, Capabilities: capList, HeartbeatSeconds: *heartbeat,
		Relays: relays, Goals: goals, Channels: channels, Mnemonic: words, BootstrapSats: *bootstrap, Limits: limits})
	if err != nil && sp.Agent.Pubkey == "" {
		return err
	}
	if len(sp.Agent.Relays) == 0 {
		fmt.Fprintln(env.stderr, "openagents: warning: no relays (--relay or OPENAGENTS_RELAYS): the agent's events go to the publisher's default relays")
	}
	out := map[string]any{"name": sp.Agent.Name, "npub": sp.Agent.Npub, "pubkey": sp.Agent.Pubkey,
		"wallet_address": sp.WalletAddress, "funding_invoice": sp.FundingInvoice, "lifecycle": sp.Agent.Lifecycle}
	if *show {
		out["mnemonic"] = sp.Mnemonic
	}
	if c.json {
		if perr := printJSON(env.stdout, out); perr != nil {
			return perr
		}
		return err
	}
	fmt.Fprintf(env.stdout, "spawned %s\n  npub:   %s\n  pubkey: %s\n  wallet: %s\n", sp.Agent.Name, sp.Agent.Npub, sp.Agent.Pubkey, sp.WalletAddress)
	if sp.FundingInvoice != "" {
		fmt.Fprintf(env.stdout, "  fund it by paying this invoice (%d sats):\n  %s\n", *bootstrap, sp.FundingInvoice)
	} else {
		fmt.Fprintf(env.stdout, "  fund it: openagents agent fund %s <sats>\n", sp.Agent.Name)
	}
	if *show {
		fmt.Fprintf(env.stdout, "  mnemonic (shown once; write it down offline):\n  %s\n", sp.Mnemonic)
	}
	return err
}

func readMnemonic(env *cliEnv, file string, stdin bool) (string, error) {
	var raw string
	switch {
	case file != "" && stdin:
		return "", fmt.Errorf("%w: use --mnemonic-file or --mnemonic-stdin, not both", errUsage)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		raw = string(b)
	case stdin:
		b, err := io.ReadAll(bufio.NewReader(io.LimitReader(env.stdin, 4096)))
		if err != nil {
			return "", err
		}
		raw = string(b)
	default:
		return "", nil
	}
	words := identity.Normalize(raw)
	if err := identity.CheckMnemonic(words); err != nil {
		return "", err
	}
	return words, nil
}

type listRow struct {
	Name        string `json:"name"`
	Npub        string `json:"npub"`
	Pubkey      string `json:"pubkey"`
	Lifecycle   string `json:"lifecycle"`
	Active      bool   `json:"active"`
	BalanceSats *int64 `json:"balance_sats"`
	Ticks       int64  `json:"ticks"`
	LastTick    int64  `json:"last_tick"`
}

func agentList(env *cliEnv, args []string) error {
	fs := newFlagSet(env, "agent list", "agent list [--json]")
	var c connFlags
	c.register(fs)
	cmd, err := c.begin(fs, args, 0, "", false, 30*time.Second)
	if err != nil {
		return err
	}
	defer cmd.done()
	ctx, s := cmd.ctx, cmd.s
	agents, err := s.fleet.Registry.List(ctx)
	if err != nil {
		return err
	}
	rows := make([]listRow, 0, len(agents))
	for _, a := range agents {
		r := listRow{Name: a.Name, Npub: a.Npub, Pubkey: a.Pubkey, Lifecycle: a.Lifecycle, Active: a.Active}
		bctx, bcancel := context.WithTimeout(ctx, 3*time.Second)
		if bal, err := s.fleet.Pay.Balance(bctx, a.Pubkey); err == nil && bal.Known {
			v := bal.BalanceSats
			r.BalanceSats = &v
		}
		bcancel()
		if st, ok := tickStats(ctx, s, a); ok {
			r.Ticks, r.LastTick = st.count, st.last
		}
		rows = append(rows, r)
	}
	if c.json {
		return printJSON(env.stdout, rows)
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tNPUB\tLIFECYCLE\tBALANCE\tTICKS\tLAST TICK")
	for _, r := range rows {
		bal := "unknown"
		if r.BalanceSats != nil {
			bal = strconv.FormatInt(*r.BalanceSats, 10) + " sats"
		}
		lc := r.Lifecycle
		if !r.Active && lc != string(lifecycle.Dead) {
			lc += " (stopped)"
		}
		last := "-"
		if r.LastTick > 0 {
			last = time.Unix(r.LastTick, 0).UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", r.Name, shortNpub(r.Npub), lc, bal, r.Ticks, last)
	}
	return tw.Flush()
}

func shortNpub(n string) string {
	if len(n) < 20 {
		return n
	}
	return n[:12] + "…" + n[len(n)-6:]
}

type tickStat struct{ count, last int64 }

// tickStats reads the tick count and last tick from the operational state copy (sealed, so
// only with the KEK) or counts TickResults on relays otherwise.
func tickStats(ctx context.Context, s *session, a registry.Agent) (tickStat, bool) {
	results := recentResults(ctx, s, a, 500)
	if len(results) == 0 {
		return tickStat{}, false
	}
	return tickStat{count: int64(len(results)), last: results[0].At}, true
}

type resultRow struct {
	TickID   string `json:"tick_id"`
	Status   string `json:"status"`
	CostSats int64  `json:"cost_sats"`
	Actions  int    `json:"actions"`
	Error    string `json:"error,omitempty"`
	At       int64  `json:"at"`
}

// recentResults reads the agent's latest TickResults from its relays (the fleet's default
// relays for an agent registered without any).
func recentResults(ctx context.Context, s *session, a registry.Agent, limit int) []resultRow {
	relays := a.Relays
	if len(relays) == 0 {
		relays = s.fleet.Relays
	}
	if len(relays) == 0 {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pool := nostr.NewSimplePool(qctx)
	defer pool.Close("done")
	var rows []resultRow
	for re := range pool.FetchMany(qctx, relays, nostr.Filter{Kinds: []int{nipsa.KindTickResult}, Authors: []string{a.Pubkey}, Limit: limit}) {
		tr, err := nipsa.ParseTickResult(re.Event)
		if err != nil {
			continue
		}
		rows = append(rows, resultRow{TickID: tr.TickID, Status: tr.Status, CostSats: tr.Content.CostSats,
			Actions: tr.ActionCount, Error: tr.Content.Error, At: int64(re.Event.CreatedAt)})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].At > rows[j].At })
	return rows
}

func agentStatus(env *cliEnv, args []string) error {
	fs := newFlagSet(env, "agent status", "agent status <agent> [--json]")
	var c connFlags
	c.register(fs)
	cmd, err := c.begin(fs, args, 1, "agent status needs <agent> (a name, npub or hex pubkey)", false, 30*time.Second)
	if err != nil {
		return err
	}
	defer cmd.done()
	ctx, s := cmd.ctx, cmd.s
	a, err := s.fleet.Registry.Resolve(ctx, cmd.pos[0])
	if err != nil {
		return err
	}
	bal, berr := s.fleet.Pay.Balance(ctx, a.Pubkey)
	results := recentResults(ctx, s, a, 10)
	if results == nil {
		results = []resultRow{}
	}
	lastErr := ""
	for _, r := range results {
		if r.Error != "" {
			lastErr = r.Error
			break
		}
	}
	st := map[string]any{
		"name": a.Name, "npub": a.Npub, "pubkey": a.Pubkey, "lifecycle": a.Lifecycle, "active": a.Active,
		"balance_known": bal.Known, "balance_sats": bal.BalanceSats, "daily_burn_sats": bal.DailyBurnSats,
		"runway_days": lifecycle.RunwayDays(bal.BalanceSats, bal.DailyBurnSats),
		"budget":      map[string]any{"spent_today_sats": bal.SpentTodaySats, "daily_limit_sats": a.Limits.DailyLimitSats, "per_tick_limit_sats": a.Limits.PerTickLimitSats, "reserved_sats": a.Limits.ReservedSats},
		"schedule":    map[string]any{"active": a.Active, "heartbeat_seconds": a.HeartbeatSeconds, "triggers": a.Triggers, "business_hours": a.BusinessHours},
		"relays":      a.Relays, "channels": a.Channels, "recent_ticks": results, "last_error": lastErr,
		"balance_error": firstNonEmpty(bal.Error, errString(berr)),
	}
	if c.json {
		return printJSON(env.stdout, st)
	}
	w := env.stdout
	fmt.Fprintf(w, "%s  %s\n", a.Name, a.Npub)
	state := a.Lifecycle
	if !a.Active {
		state += " (stopped)"
	}
	fmt.Fprintf(w, "  lifecycle:  %s\n", state)
	if bal.Known {
		runway := "unbounded (no spend yet)"
		if r := lifecycle.RunwayDays(bal.BalanceSats, bal.DailyBurnSats); r >= 0 {
			runway = fmt.Sprintf("%.1f days at %d sats/day", r, bal.DailyBurnSats)
		}
		fmt.Fprintf(w, "  balance:    %d sats (runway %s)\n", bal.BalanceSats, runway)
	} else {
		fmt.Fprintf(w, "  balance:    unknown (%s)\n", firstNonEmpty(bal.Error, errString(berr)))
	}
	fmt.Fprintf(w, "  budget:     %d of %d sats spent today; %d per tick; %d reserved\n", bal.SpentTodaySats, a.Limits.DailyLimitSats, a.Limits.PerTickLimitSats, a.Limits.ReservedSats)
	fmt.Fprintf(w, "  schedule:   heartbeat %ds; triggers %s\n", a.HeartbeatSeconds, strings.Join(a.Triggers, ", "))
	fmt.Fprintf(w, "  relays:     %s\n", strings.Join(a.Relays, " "))
	fmt.Fprintf(w, "  recent ticks:\n")
	for _, r := range results {
		fmt.Fprintf(w, "    %s  %-8s %4d sats  %d actions  %s\n", time.Unix(r.At, 0).UTC().Format(time.TimeOnly), r.Status, r.CostSats, r.Actions, clipText(r.Error, 60))
	}
	if lastErr != "" {
		fmt.Fprintf(w, "  last error: %s\n", lastErr)
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func agentStartStop(env *cliEnv, args []string, start bool) error {
	verb := map[bool]string{true: "start", false: "stop"}[start]
	fs := newFlagSet(env, "agent "+verb, "agent "+verb+" <agent>")
	var c connFlags
	c.register(fs)
	cmd, err := c.begin(fs, args, 1, "agent "+verb+" needs <agent>", true, 30*time.Second)
	if err != nil {
		return err
	}
	defer cmd.done()
	a, err := cmd.s.fleet.SetActive(cmd.ctx, cmd.pos[0], start)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(env.stdout, map[string]any{"name": a.Name, "pubkey": a.Pubkey, "active": a.Active, "lifecycle": a.Lifecycle})
	}
	done := map[bool]string{true: "started", false: "stopped"}[start]
	fmt.Fprintf(env.stdout, "%s %s\n", a.Name, done)
	return nil
}

func agentFund(env *cliEnv, args []string) error {
	fs := newFlagSet(env, "agent fund", "agent fund <agent> <sats> [--from-faucet]")
	var c connFlags
	c.register(fs)
	faucet := fs.Bool("from-faucet", false, "devnet only: pay the invoice from the devnet faucet")
	faucetURL := fs.String("devnet-wallet", os.Getenv("OPENAGENTS_DEVNET_WALLET"), "devnet Lightning API URL (printed by openagents devnet)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return fmt.Errorf("%w: agent fund needs <agent> <sats>", errUsage)
	}
	sats, err := strconv.ParseInt(pos[1], 10, 64)
	if err != nil || sats <= 0 {
		return fmt.Errorf("%w: %q", fleet.ErrAmount, pos[1])
	}
	if *faucet && *faucetURL == "" {
		return fmt.Errorf("%w: --from-faucet needs --devnet-wallet URL (or OPENAGENTS_DEVNET_WALLET)", errUsage)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.Close()
	a, bolt11, err := s.fleet.Fund(ctx, pos[0], sats)
	if err != nil {
		return err
	}
	paid := false
	if *faucet {
		if _, err := devln.NewClient(*faucetURL, devln.FaucetAccount).PayInvoice(ctx, bolt11); err != nil {
			return fmt.Errorf("devnet faucet: %w", err)
		}
		paid = true
	}
	if c.json {
		return printJSON(env.stdout, map[string]any{"name": a.Name, "pubkey": a.Pubkey, "sats": sats, "bolt11": bolt11, "paid_from_faucet": paid})
	}
	if paid {
		fmt.Fprintf(env.stdout, "funded %s with %d sats from the devnet faucet\n", a.Name, sats)
		return nil
	}
	fmt.Fprintf(env.stdout, "pay this invoice to fund %s with %d sats:\n%s\n", a.Name, sats, bolt11)
	return nil
}

func agentKill(env *cliEnv, args []string) error {
	fs := newFlagSet(env, "agent kill", "agent kill <agent> [--yes] [--sweep-to BOLT11]")
	var c connFlags
	c.register(fs)
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	sweep := fs.String("sweep-to", "", "pay the remaining funds to this invoice before dying")
	cmd, err := c.begin(fs, args, 1, "agent kill needs <agent>", true, 60*time.Second)
	if err != nil {
		return err
	}
	defer cmd.done()
	ctx, s := cmd.ctx, cmd.s
	a, err := s.fleet.Registry.Resolve(ctx, cmd.pos[0])
	if err != nil {
		return err
	}
	if !*yes {
		fmt.Fprintf(env.stderr, "kill %s (%s)? This is final. Type the name to confirm: ", a.Name, shortNpub(a.Npub))
		line, _ := bufio.NewReader(env.stdin).ReadString('\n')
		if strings.TrimSpace(line) != a.Name {
			return fmt.Errorf("not confirmed; %s is alive", a.Name)
		}
	}
	k, err := s.fleet.Kill(ctx, a.Pubkey, *sweep)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(env.stdout, k)
	}
	fmt.Fprintf(env.stdout, "%s is dead\n", k.Agent.Name)
	if k.SweepStatus != "" {
		fmt.Fprintf(env.stdout, "  sweep: %s (%d sats)\n", k.SweepStatus, k.SweptSats)
	}
	if k.BalanceKnown {
		fmt.Fprintf(env.stdout, "  remaining funds: %d sats (kept in its wallet; nothing was deleted)\n", k.BalanceSats)
	} else {
		fmt.Fprintf(env.stdout, "  remaining funds: unknown (the payer did not answer); nothing was deleted\n")
	}
	return nil
}

func agentTrigger(env *cliEnv, args []string) error {
	fs := newFlagSet(env, "agent trigger", "agent trigger <agent> [--type manual] [--note TEXT]")
	var c connFlags
	c.register(fs)
	typ := fs.String("type", contracts.TriggerManual, "trigger type")
	note := fs.String("note", "", "a note the agent sees as an observation")
	cmd, err := c.begin(fs, args, 1, "agent trigger needs <agent>", false, 30*time.Second)
	if err != nil {
		return err
	}
	defer cmd.done()
	a, trg, err := cmd.s.fleet.Trigger(cmd.ctx, cmd.pos[0], *typ, *note)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(env.stdout, map[string]any{"name": a.Name, "pubkey": a.Pubkey, "subject": contracts.TriggerSubject(a.Pubkey), "trigger": trg})
	}
	fmt.Fprintf(env.stdout, "triggered %s (%s on %s)\n", a.Name, trg.ID, contracts.TriggerSubject(a.Pubkey))
	return nil
}
