package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/identity"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/lnd"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/nwc"
	"github.com/openagents/runtime/pkg/payer"
	"github.com/openagents/runtime/pkg/publisher"
	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/scheduler"
	"github.com/openagents/runtime/pkg/ticker"
)

const runSynopsis = `run (--agent A ... | --mnemonic-file F | --mnemonic-stdin [--name N])
       (--wallet nostr+walletconnect://... | --lnd-rest URL --lnd-macaroon F [--lnd-cert F])
       [--single-tick] [--relay URL ...] [--provider PUBKEY] [--heartbeat 900] [--json]`

// errNoWallet is the refusal when no wallet flag is given: outside devnet nothing is faked.
var errNoWallet = errors.New("openagents run needs a real wallet: --wallet nostr+walletconnect://... (NIP-47, or env OPENAGENTS_NWC_URI) " +
	"or --lnd-rest URL --lnd-macaroon F [--lnd-cert F] (LND REST); for play money use 'openagents devnet'")

type runOptions struct {
	conn          connFlags
	agents        strList
	mnemonicFile  string
	mnemonicStdin bool
	name          string
	singleTick    bool
	relays        strList
	nwcURI        string
	lndREST       string
	lndMacaroon   string
	lndCert       string
	network       string
	provider      string
	heartbeat     int64
	heartbeatSet  bool
	relaysSet     bool
	tickTimeout   time.Duration
	buyTimeout    time.Duration
	minTick       time.Duration
	verbose       bool
}

// cmdRun runs agents with scheduler, ticker, payer and publisher in this process: the same
// packages the four services run, against real relays and a real wallet.
func cmdRun(env *cliEnv, args []string) error {
	fs := newFlagSet(env, "run", runSynopsis)
	var o runOptions
	o.conn.register(fs)
	fs.Var(&o.agents, "agent", "a registered agent to run: name, npub or hex pubkey (repeatable; its key comes from the vault)")
	fs.StringVar(&o.mnemonicFile, "mnemonic-file", "", "run the agent of the 12 words in this file (registered, its key sealed in the vault, if new)")
	fs.BoolVar(&o.mnemonicStdin, "mnemonic-stdin", false, "run the agent of 12 words on standard input")
	fs.StringVar(&o.name, "name", "", "name to register a new mnemonic agent under (default agent-<first 8 hex of its pubkey>)")
	fs.BoolVar(&o.singleTick, "single-tick", false, "publish one manual trigger, run exactly one tick, print its result and exit (non-zero unless success)")
	fs.Var(&o.relays, "relay", "relay URL (repeatable; default: the agent's relays, or OPENAGENTS_RELAYS)")
	fs.StringVar(&o.nwcURI, "wallet", os.Getenv("OPENAGENTS_NWC_URI"), "Nostr Wallet Connect URI nostr+walletconnect://... (env OPENAGENTS_NWC_URI; a secret: prefer the env)")
	fs.StringVar(&o.lndREST, "lnd-rest", "", "LND REST URL, e.g. https://127.0.0.1:8080")
	fs.StringVar(&o.lndMacaroon, "lnd-macaroon", "", "LND macaroon file (needs offchain write to pay)")
	fs.StringVar(&o.lndCert, "lnd-cert", "", "LND tls.cert to pin (default: system roots)")
	fs.StringVar(&o.network, "network", "", "bitcoin network: mainnet, testnet, signet or regtest (default: the NWC wallet's, mainnet for LND)")
	fs.StringVar(&o.provider, "provider", "", "buy inference only from this provider (hex pubkey or npub)")
	fs.Int64Var(&o.heartbeat, "heartbeat", 900, "seconds between heartbeat ticks (applied to the agents run)")
	fs.DurationVar(&o.tickTimeout, "tick-timeout", 90*time.Second, "bound on one tick")
	fs.DurationVar(&o.buyTimeout, "buy-timeout", 30*time.Second, "bound on one purchase from one provider")
	fs.DurationVar(&o.minTick, "min-tick-interval", 10*time.Second, "least time between two ticks of one agent (not with --single-tick)")
	fs.BoolVar(&o.verbose, "verbose", false, "log what the services do (stderr)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "heartbeat":
			o.heartbeatSet = true
		case "relay":
			o.relaysSet = true
		}
	})
	// Refusals come before anything is opened, so they change nothing.
	useMnemonic := o.mnemonicFile != "" || o.mnemonicStdin
	switch {
	case len(o.agents) == 0 && !useMnemonic:
		return fmt.Errorf("%w: openagents run needs --agent A, --mnemonic-file F or --mnemonic-stdin", errUsage)
	case len(o.agents) > 0 && useMnemonic:
		return fmt.Errorf("%w: use --agent or a mnemonic, not both", errUsage)
	case o.nwcURI == "" && o.lndREST == "":
		return errNoWallet
	case o.nwcURI != "" && o.lndREST != "":
		return fmt.Errorf("%w: use --wallet (NWC) or --lnd-rest, not both", errUsage)
	case o.lndREST != "" && o.lndMacaroon == "":
		return fmt.Errorf("%w: --lnd-rest needs --lnd-macaroon F", errUsage)
	case o.heartbeat <= 0:
		return fmt.Errorf("%w: --heartbeat must be a positive number of seconds", errUsage)
	}
	if o.provider != "" {
		pk, err := identity.ParseAgentRef(o.provider)
		if err != nil {
			return fmt.Errorf("%w: --provider: %v", errUsage, err)
		}
		o.provider = pk
	}
	words, err := readMnemonic(env, o.mnemonicFile, o.mnemonicStdin)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))

	wallet, kind, closeWallet, err := o.dialWallet(log)
	if err != nil {
		return err
	}
	defer closeWallet()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	network := o.network
	if network == "" {
		network = wallet.Network()
	}
	balMsat, berr := wallet.Balance(wctx)
	wcancel()
	if berr != nil {
		return fmt.Errorf("wallet unreachable (%s): %v", kind, berr)
	}
	if network == "" {
		return fmt.Errorf("the %s wallet did not say its network (get_info); pass --network", kind)
	}

	octx, ocancel := context.WithTimeout(ctx, 30*time.Second)
	defer ocancel()
	s, err := o.conn.open(octx, false)
	if err != nil {
		return err
	}
	defer s.Close()
	s.fleet.Network = network
	s.fleet.Wallet = kind
	served, keys, err := o.agentsToRun(octx, s, words)
	if err != nil {
		return err
	}
	if err := refuseOthers(octx, s, served); err != nil {
		return err
	}
	var relays []string
	pubs := map[string]bool{}
	for _, a := range served {
		pubs[a.Pubkey] = true
		relays = appendNew(relays, a.Relays...)
	}

	r := &runner{o: o, env: env, s: s, log: log, relays: relays, network: network, keys: keys,
		wallets: runWallets{w: wallet, agents: pubs}, outcomes: make(chan ticker.Outcome, 64)}
	if err := r.start(ctx); err != nil {
		r.stop()
		return err
	}
	defer r.stop()
	for _, a := range served {
		// A confirmed balance read through the payer moves the lifecycle (a newly registered
		// agent is Spawning, and gets heartbeats only once it is Active).
		lc := a.Lifecycle
		if bal, err := s.fleet.Pay.Balance(ctx, a.Pubkey); err == nil && bal.Known {
			lc = bal.Lifecycle
		}
		fmt.Fprintf(env.stderr, "openagents run: %s (%s, %s) with a %s wallet on %s (%d sats), relays %s\n",
			a.Name, a.Npub, lc, kind, network, balMsat/1000, strings.Join(a.Relays, " "))
	}
	if o.singleTick {
		return r.singleTick(ctx, served[0])
	}
	return r.serve(ctx, served)
}

func (o *runOptions) dialWallet(log *slog.Logger) (lightning.Wallet, string, func(), error) {
	if o.nwcURI != "" {
		uri, err := nwc.ParseURI(o.nwcURI)
		if err != nil {
			return nil, "", nil, err // never quotes the URI
		}
		c, err := nwc.NewClient(uri, nwc.ClientOptions{Network: o.network, Timeout: 20 * time.Second})
		if err != nil {
			return nil, "", nil, err
		}
		return c, registry.WalletNWC, c.Close, nil
	}
	network := o.network
	if network == "" {
		network = identity.Mainnet
	}
	w, err := lnd.New(lnd.Config{URL: o.lndREST, MacaroonPath: o.lndMacaroon, TLSCertPath: o.lndCert, Network: network, Logger: log})
	if err != nil {
		return nil, "", nil, err
	}
	return w, registry.WalletLND, func() {}, nil
}

// agentsToRun resolves the agents this process runs, registers a mnemonic's agent if it is
// new, binds them to the wallet given, and loads their keys into memory.
func (o *runOptions) agentsToRun(ctx context.Context, s *session, words string) ([]registry.Agent, ticker.StaticKeys, error) {
	keys := ticker.StaticKeys{}
	var out []registry.Agent
	if words != "" {
		id, err := identity.FromMnemonic(words)
		if err != nil {
			return nil, nil, err
		}
		a, _, err := s.fleet.Registry.Get(ctx, id.PublicKey)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			relays := o.relays
			if len(relays) == 0 {
				relays = s.fleet.Relays
			}
			if len(relays) == 0 {
				return nil, nil, fmt.Errorf("%w: a new agent needs --relay URL (or OPENAGENTS_RELAYS)", errUsage)
			}
			name := o.name
			if name == "" {
				name = "agent-" + id.PublicKey[:8]
			}
			sp, err := s.fleet.Spawn(ctx, fleet.SpawnOptions{Name: name, Mnemonic: words, HeartbeatSeconds: o.heartbeat,
				Relays: relays, Provider: o.provider})
			if err != nil {
				return nil, nil, fmt.Errorf("register %s: %w", name, err)
			}
			a = sp.Agent
		case err != nil:
			return nil, nil, err
		}
		keys[id.PublicKey] = id.SecretKey
		out = append(out, a)
	} else {
		if s.fleet.Vault == nil {
			return nil, nil, fmt.Errorf("%w (--agent takes the agent's key from the vault)", fleet.ErrNoVault)
		}
		for _, ref := range o.agents {
			a, err := s.fleet.Registry.Resolve(ctx, ref)
			if err != nil {
				return nil, nil, err
			}
			sk, err := ticker.VaultKeys{Vault: s.fleet.Vault}.SecretKey(ctx, a.Pubkey)
			if err != nil {
				return nil, nil, fmt.Errorf("key of %s: %w", a.Name, err)
			}
			keys[a.Pubkey] = sk
			out = append(out, a)
		}
	}
	for i, a := range out {
		if a.Lifecycle == string(lifecycle.Dead) {
			return nil, nil, fmt.Errorf("%w: %s", fleet.ErrDead, a.Name)
		}
		if !a.Active {
			return nil, nil, fmt.Errorf("%s is stopped; start it first: openagents agent start %s", a.Name, a.Name)
		}
		na, err := s.fleet.Registry.Update(ctx, a.Pubkey, func(x *registry.Agent) error {
			x.Wallet = registry.WalletBinding{Kind: s.fleet.Wallet}
			if o.relaysSet {
				x.Relays = o.relays
			}
			if o.heartbeatSet {
				x.HeartbeatSeconds = o.heartbeat
			}
			if o.provider != "" {
				x.Provider = o.provider
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		if len(na.Relays) == 0 {
			return nil, nil, fmt.Errorf("%w: %s has no relays; pass --relay URL", errUsage, na.Name)
		}
		out[i] = na
	}
	return out, keys, nil
}

// refuseOthers: the ticker and scheduler serve every agent of the registry, so other active
// agents would be ticked without a key or a wallet. They must be stopped, or live elsewhere.
func refuseOthers(ctx context.Context, s *session, served []registry.Agent) error {
	all, err := s.fleet.Registry.List(ctx)
	if err != nil {
		return err
	}
	mine := map[string]bool{}
	for _, a := range served {
		mine[a.Pubkey] = true
	}
	var others []string
	for _, a := range all {
		if a.Active && a.Lifecycle != string(lifecycle.Dead) && !mine[a.Pubkey] {
			others = append(others, a.Name)
		}
	}
	if len(others) > 0 {
		return fmt.Errorf("the registry has other active agents (%s) this run would tick without their wallet; "+
			"run them too (--agent), stop them (openagents agent stop), or use another home (OPENAGENTS_HOME)", strings.Join(others, ", "))
	}
	return nil
}

func appendNew(list []string, vs ...string) []string {
	for _, v := range vs {
		found := false
		for _, have := range list {
			found = found || have == v
		}
		if !found {
			list = append(list, v)
		}
	}
	return list
}

// runWallets serves the one wallet given to the agents this process runs, and no other.
type runWallets struct {
	w      lightning.Wallet
	agents map[string]bool
}

func (r runWallets) Wallet(_ context.Context, a registry.Agent) (lightning.Wallet, error) {
	if !r.agents[a.Pubkey] {
		return nil, fmt.Errorf("%w: %s is not run by this process", payer.ErrNoWallet, a.Name)
	}
	return r.w, nil
}

// runner holds the four services of one `openagents run`.
type runner struct {
	o        runOptions
	env      *cliEnv
	s        *session
	log      *slog.Logger
	relays   []string
	network  string
	keys     ticker.StaticKeys
	wallets  runWallets
	outcomes chan ticker.Outcome

	// front (scheduler, ticker) stops before back (payer, publisher), so a tick in flight at
	// shutdown can still pay and publish.
	cancelFront, cancelBack context.CancelFunc
	front, back             sync.WaitGroup
	errs                    chan error
}

func (r *runner) goRun(wg *sync.WaitGroup, name string, fn func() error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
			select {
			case r.errs <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
}

func (r *runner) start(ctx context.Context) error {
	r.errs = make(chan error, 8)
	s := r.s
	backCtx, cancelBack := context.WithCancel(context.Background())
	frontCtx, cancelFront := context.WithCancel(context.Background())
	r.cancelBack, r.cancelFront = cancelBack, cancelFront

	pub := publisher.New(publisher.Config{NC: s.nc, JS: s.js, DefaultRelays: r.relays, Log: r.log.With("service", "publisher")})
	r.goRun(&r.back, "publisher", func() error { return pub.Run(backCtx) })
	pay, err := payer.New(ctx, payer.Config{NC: s.nc, JS: s.js, Registry: s.fleet.Registry, Wallets: r.wallets,
		Network: r.network, Log: r.log.With("service", "payer")})
	if err != nil {
		return err
	}
	r.goRun(&r.back, "payer", func() error { return pay.Run(backCtx) })
	select {
	case <-pay.Ready():
	case err := <-r.errs:
		return err
	case <-time.After(30 * time.Second):
		return errors.New("payer not ready after 30s")
	case <-ctx.Done():
		return ctx.Err()
	}
	if !r.o.singleTick {
		sched, err := scheduler.New(scheduler.Config{NC: s.nc, JS: s.js, Registry: s.fleet.Registry, DefaultRelays: r.relays,
			Log: r.log.With("service", "scheduler")})
		if err != nil {
			return err
		}
		r.goRun(&r.front, "scheduler", func() error { return sched.Run(frontCtx) })
	}
	minTick := r.o.minTick
	if r.o.singleTick {
		minTick = 0
	}
	tk := ticker.New(ticker.Config{NC: s.nc, JS: s.js, Registry: s.fleet.Registry, Keys: r.keys, Relays: r.relays,
		Network: r.network, Provider: r.o.provider, TickTimeout: r.o.tickTimeout, BuyTimeout: r.o.buyTimeout,
		MinTickInterval: minTick, Log: r.log.With("service", "ticker"),
		OnTick: func(out ticker.Outcome) {
			select {
			case r.outcomes <- out:
			default:
			}
		}})
	r.goRun(&r.front, "ticker", func() error { return tk.Run(frontCtx) })
	return nil
}

func (r *runner) stop() {
	if r.cancelFront != nil {
		r.cancelFront()
	}
	r.front.Wait()
	r.awaitDelivery(15 * time.Second)
	if r.cancelBack != nil {
		r.cancelBack()
	}
	r.back.Wait()
}

// awaitDelivery gives the publisher up to wait to deliver what the ticks queued, so a run that
// ends (a --single-tick in cron above all) leaves its trajectory on the relays, not in the
// local stream until the next run.
func (r *runner) awaitDelivery(wait time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cons, err := r.s.js.Consumer(ctx, contracts.StreamPublish, contracts.ConsumerPublisher)
	if err != nil {
		return
	}
	for {
		info, err := cons.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			return
		}
		select {
		case <-ctx.Done():
			r.log.Warn("events still queued for the relays; the next run delivers them")
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tickReport is what --single-tick prints (and each tick of a long run with --json).
type tickReport struct {
	Agent          string             `json:"agent"`
	Pubkey         string             `json:"pubkey"`
	Status         string             `json:"status"`
	TickID         string             `json:"tick_id"`
	CostSats       int64              `json:"cost_sats"`
	Actions        []nipsa.TickAction `json:"actions"`
	Error          string             `json:"error"`
	TrajectoryHash string             `json:"trajectory_hash"`
	EventID        string             `json:"event_id"`
	DurationMS     int64              `json:"duration_ms"`
	OnRelays       bool               `json:"on_relays"`
}

func (r *runner) singleTick(ctx context.Context, a registry.Agent) error {
	_, trg, err := r.s.fleet.Trigger(ctx, a.Pubkey, contracts.TriggerManual, "a single tick from openagents run")
	if err != nil {
		return err
	}
	wait := r.o.tickTimeout + 30*time.Second
	deadline := time.After(wait)
	var out ticker.Outcome
	for found := false; !found; {
		select {
		case out = <-r.outcomes:
			found = out.Agent == a.Pubkey
		case err := <-r.errs:
			return err
		case <-deadline:
			return exitError{code: 1, msg: fmt.Sprintf("no tick result for %s within %s (trigger %s)", a.Name, wait, trg.ID)}
		case <-ctx.Done():
			return exitError{code: 130, msg: "interrupted before the tick finished"}
		}
	}
	rep := tickReport{Agent: a.Name, Pubkey: a.Pubkey, Status: out.Status, TickID: out.TickID, CostSats: out.CostSats,
		Error: out.Error, EventID: out.ResultID, Actions: []nipsa.TickAction{}}
	for _, t := range out.Actions {
		rep.Actions = append(rep.Actions, nipsa.TickAction{Type: t})
	}
	// The result is durable in JetStream; wait for the publisher to deliver it, then report
	// what the relays hold.
	if tr, ok := fetchResult(ctx, a.Relays, out.ResultID, 20*time.Second); ok {
		rep.OnRelays = true
		rep.Status, rep.TickID, rep.TrajectoryHash, rep.DurationMS = tr.Status, tr.TickID, tr.TrajectoryHash, tr.DurationMS
		rep.CostSats, rep.Error = tr.Content.CostSats, tr.Content.Error
		if tr.Content.Actions != nil {
			rep.Actions = tr.Content.Actions
		}
	}
	if r.o.conn.json {
		if err := printJSON(r.env.stdout, rep); err != nil {
			return err
		}
	} else {
		printReport(r.env, rep)
	}
	if rep.Status != nipsa.TickSuccess {
		return exitError{code: 1, msg: fmt.Sprintf("tick %s ended %s", rep.TickID, rep.Status)}
	}
	if !rep.OnRelays {
		return exitError{code: 1, msg: fmt.Sprintf("tick %s succeeded but its TickResult %s is not on the relays yet", rep.TickID, rep.EventID)}
	}
	return nil
}

func printReport(env *cliEnv, rep tickReport) {
	w := env.stdout
	fmt.Fprintf(w, "tick %s: %s (%s)\n", rep.TickID, rep.Status, rep.Agent)
	fmt.Fprintf(w, "  cost:       %d sats\n", rep.CostSats)
	var acts []string
	for _, a := range rep.Actions {
		s := a.Type
		if a.Error != "" {
			s += " (failed: " + clipText(a.Error, 60) + ")"
		}
		acts = append(acts, s)
	}
	if len(acts) == 0 {
		acts = []string{"none"}
	}
	fmt.Fprintf(w, "  actions:    %s\n", strings.Join(acts, ", "))
	if rep.Error != "" {
		fmt.Fprintf(w, "  error:      %s\n", rep.Error)
	}
	if rep.TrajectoryHash != "" {
		fmt.Fprintf(w, "  trajectory: %s\n", rep.TrajectoryHash)
	}
	where := "on the relays"
	if !rep.OnRelays {
		where = "not on the relays yet"
	}
	fmt.Fprintf(w, "  result:     %s (%s)\n", rep.EventID, where)
}

// fetchResult polls the relays for the TickResult event until it is there or wait ends.
func fetchResult(ctx context.Context, relays []string, id string, wait time.Duration) (nipsa.TickResult, bool) {
	if id == "" || len(relays) == 0 {
		return nipsa.TickResult{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	pool := nostr.NewSimplePool(ctx)
	defer pool.Close("done")
	for {
		qctx, qcancel := context.WithTimeout(ctx, 3*time.Second)
		for re := range pool.FetchMany(qctx, relays, nostr.Filter{IDs: []string{id}, Kinds: []int{nipsa.KindTickResult}}) {
			if tr, err := nipsa.ParseTickResult(re.Event); err == nil {
				qcancel()
				return tr, true
			}
		}
		qcancel()
		select {
		case <-ctx.Done():
			return nipsa.TickResult{}, false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// serve runs until interrupted, printing each tick.
func (r *runner) serve(ctx context.Context, served []registry.Agent) error {
	names := map[string]string{}
	for _, a := range served {
		names[a.Pubkey] = a.Name
	}
	fmt.Fprintf(r.env.stderr, "openagents run: serving %d agent(s); Ctrl-C stops\n", len(served))
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-r.errs:
			return err
		case out := <-r.outcomes:
			rep := tickReport{Agent: names[out.Agent], Pubkey: out.Agent, Status: out.Status, TickID: out.TickID,
				CostSats: out.CostSats, Error: out.Error, EventID: out.ResultID, Actions: []nipsa.TickAction{}}
			for _, t := range out.Actions {
				rep.Actions = append(rep.Actions, nipsa.TickAction{Type: t})
			}
			if r.o.conn.json {
				if err := printJSONLine(r.env.stdout, rep); err != nil {
					return err
				}
				continue
			}
			var acts []string
			for _, a := range rep.Actions {
				acts = append(acts, a.Type)
			}
			line := fmt.Sprintf("%s %s %s %s %d sats [%s]", out.FinishedAt.UTC().Format(time.TimeOnly), rep.Agent, rep.TickID[:min(8, len(rep.TickID))],
				rep.Status, rep.CostSats, strings.Join(acts, ","))
			if rep.Error != "" {
				line += " " + clipText(rep.Error, 80)
			}
			fmt.Fprintln(r.env.stdout, line)
		}
	}
}

func printJSONLine(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }
