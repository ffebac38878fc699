// Package devnet runs the whole system on one machine with embedded parts: NATS JetStream, a
// khatru relay, devnet Lightning (clearly not real money), a reference compute provider and,
// optionally, the four services in-process. `openagents devnet`, `make run` and the tests use
// it; nothing outside devnet mode ever defaults to the devnet wallet.
package devnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/custody"
	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/fleet"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/model"
	"github.com/openagents/runtime/pkg/natsx"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/payer"
	"github.com/openagents/runtime/pkg/provider"
	"github.com/openagents/runtime/pkg/publisher"
	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/relay"
	"github.com/openagents/runtime/pkg/scheduler"
	"github.com/openagents/runtime/pkg/service"
	"github.com/openagents/runtime/pkg/ticker"
)

// ProviderSpec describes one reference provider.
type ProviderSpec struct {
	Name           string
	PriceSats      int64
	Model          model.Model // nil: the built-in deterministic model
	ModelName      string
	OverchargeMsat int64
	Silent         bool
	// Wallet the provider is paid into; nil: an account on devnet Lightning.
	Wallet lightning.Wallet
}

// Options for a devnet.
type Options struct {
	Dir       string // state directory; empty: a temp dir removed on Close
	NATSPort  int    // 0: any free port
	RelayPort int
	HTTPPort  int // wallet API and /metrics
	Providers []ProviderSpec
	// Services runs scheduler, ticker, payer and publisher in this process, except those named
	// in Without (tests run those as separate processes).
	Services bool
	Without  []string
	// Ticker settings used when Services is set.
	TickTimeout     time.Duration
	BuyTimeout      time.Duration
	MinTickInterval time.Duration
	// LowBalanceFactor slows LowBalance heartbeats (scheduler).
	LowBalanceFactor float64
	// Thresholds of the payer's lifecycle (devnet demos use small ones).
	Thresholds lifecycle.Thresholds
	// PayerSweep is how often the payer re-reads balances; 0: its default.
	PayerSweep time.Duration
	Log        *slog.Logger
	OnTick     func(ticker.Outcome)
}

// Devnet is a running devnet.
type Devnet struct {
	Dir       string
	NATS      *natsx.Embedded
	Relay     *relay.Relay
	Ledger    *devln.Ledger
	WalletURL string // devnet Lightning HTTP API (for services in other processes)
	HTTPAddr  string // wallet API and /metrics
	KEKFile   string
	NC        *nats.Conn
	JS        jetstream.JetStream
	Fleet     *fleet.Fleet
	Providers []*provider.Provider
	Metrics   *prometheus.Registry

	log     *slog.Logger
	ownDir  bool
	httpSrv *http.Server
	// front (scheduler, ticker) stops before back (payer, publisher, providers), so a tick in
	// flight at shutdown can still pay, buy and publish.
	runCtx              context.Context
	cancelFront, cancel context.CancelFunc
	front, wg           sync.WaitGroup
	errs                chan error
}

// Start brings the devnet up. Close stops it.
func Start(ctx context.Context, o Options) (d *Devnet, err error) {
	d = &Devnet{Dir: o.Dir, log: o.Log, errs: make(chan error, 16)}
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if d.Dir == "" {
		if d.Dir, err = os.MkdirTemp("", "openagents-devnet-*"); err != nil {
			return d, err
		}
		d.ownDir = true
	}
	if d.NATS, err = natsx.StartEmbedded(natsx.EmbeddedOptions{Dir: filepath.Join(d.Dir, "jetstream"), Port: o.NATSPort}); err != nil {
		return d, err
	}
	if d.Relay, err = relay.Start(relay.Options{Dir: filepath.Join(d.Dir, "relay"), Port: o.RelayPort}); err != nil {
		return d, err
	}
	d.Ledger = devln.New(devln.Options{})
	d.Metrics = service.NewShell("devnet", d.log).Registry
	if err = d.serveHTTP(o.HTTPPort); err != nil {
		return d, err
	}
	if d.NC, d.JS, err = natsx.ConnectAndProvision(ctx, natsx.ConnectOptions{URL: d.NATS.URL(), Name: "devnet"}, contracts.ProvisionOptions{}); err != nil {
		return d, err
	}
	kek, kekHex := custody.NewKEK()
	d.KEKFile = filepath.Join(d.Dir, "kek")
	if err = os.WriteFile(d.KEKFile, []byte(kekHex+"\n"), 0o600); err != nil {
		return d, err
	}
	vault, err := custody.OpenVault(ctx, d.JS, kek)
	if err != nil {
		return d, err
	}
	if d.Fleet, err = fleet.Open(ctx, d.NC, d.JS, vault); err != nil {
		return d, err
	}
	d.Fleet.Relays = []string{d.Relay.URL()}

	runCtx, cancel := context.WithCancel(context.Background())
	d.runCtx, d.cancel = runCtx, cancel
	specs := o.Providers
	if specs == nil {
		specs = []ProviderSpec{{Name: "reference", PriceSats: 10}}
	}
	for _, s := range specs {
		if err = d.startProvider(runCtx, s); err != nil {
			return d, err
		}
	}
	if o.Services {
		if err = d.startServices(runCtx, o, vault); err != nil {
			return d, err
		}
	}
	return d, nil
}

func (d *Devnet) goRun(name string, fn func() error) { d.run(&d.wg, name, fn) }

func (d *Devnet) run(wg *sync.WaitGroup, name string, fn func() error) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := fn(); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Error("devnet part stopped", "part", name, "err", err)
			select {
			case d.errs <- fmt.Errorf("%s: %w", name, err):
			default:
			}
		}
	}()
}

// Errors reports parts that stopped with an error.
func (d *Devnet) Errors() <-chan error { return d.errs }

func (d *Devnet) serveHTTP(port int) error {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("devnet: listen: %w", err)
	}
	d.HTTPAddr = ln.Addr().String()
	d.WalletURL = "http://" + d.HTTPAddr + "/wallet"
	sh := &service.Shell{Name: "devnet", Registry: d.Metrics}
	sh.SetReady(true)
	mux := http.NewServeMux()
	mux.Handle("/wallet/", http.StripPrefix("/wallet", d.Ledger.Handler()))
	mux.Handle("/", sh.Handler())
	d.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go d.httpSrv.Serve(ln)
	return nil
}

// AddProvider starts one more reference provider and waits for its announcement.
func (d *Devnet) AddProvider(s ProviderSpec) error { return d.startProvider(d.runCtx, s) }

func (d *Devnet) startProvider(ctx context.Context, s ProviderSpec) error {
	if s.Model == nil {
		s.Model = model.Builtin{}
		if s.ModelName == "" {
			s.ModelName = "builtin-deterministic"
		}
	}
	if s.PriceSats <= 0 {
		s.PriceSats = 10
	}
	var w lightning.Wallet = d.Ledger.Account("provider-" + s.Name)
	if s.Wallet != nil {
		w = s.Wallet
	}
	p, err := provider.New(provider.Config{SecretKey: nostr.GeneratePrivateKey(), Relays: []string{d.Relay.URL()},
		Wallet: w, PriceMsat: s.PriceSats * 1000, Model: s.Model, ModelName: s.ModelName,
		Name: s.Name, OverchargeMsat: s.OverchargeMsat, Silent: s.Silent, Log: d.log.With("provider", s.Name)})
	if err != nil {
		return err
	}
	d.Providers = append(d.Providers, p)
	d.goRun("provider "+s.Name, func() error { return p.Run(ctx) })
	select {
	case <-p.Ready():
	case <-time.After(15 * time.Second):
		return fmt.Errorf("devnet: provider %s did not announce itself", s.Name)
	}
	return nil
}

func (d *Devnet) startServices(ctx context.Context, o Options, vault *custody.Vault) error {
	reg := d.Fleet.Registry
	relays := []string{d.Relay.URL()}
	skip := map[string]bool{}
	for _, w := range o.Without {
		skip[w] = true
	}
	pub := publisher.New(publisher.Config{NC: d.NC, JS: d.JS, DefaultRelays: relays, Log: d.log.With("service", "publisher"), Metrics: d.Metrics})
	if !skip["publisher"] {
		d.goRun("publisher", func() error { return pub.Run(ctx) })
	}

	pay, err := payer.New(ctx, payer.Config{NC: d.NC, JS: d.JS, Registry: reg, Wallets: payer.DevnetLedger{Ledger: d.Ledger},
		Log: d.log.With("service", "payer"), Metrics: d.Metrics, Network: "regtest", Thresholds: o.Thresholds,
		ReconcileEvery: o.PayerSweep})
	if err != nil {
		return err
	}
	if !skip["payer"] {
		d.goRun("payer", func() error { return pay.Run(ctx) })
		select {
		case <-pay.Ready():
		case <-time.After(15 * time.Second):
			return errors.New("devnet: payer not ready")
		}
	}

	sched, err := scheduler.New(scheduler.Config{NC: d.NC, JS: d.JS, Registry: reg, DefaultRelays: relays,
		LowBalanceFactor: o.LowBalanceFactor, Log: d.log.With("service", "scheduler"), Metrics: d.Metrics})
	if err != nil {
		return err
	}
	frontCtx, cancel := context.WithCancel(ctx)
	d.cancelFront = cancel
	if !skip["scheduler"] {
		d.run(&d.front, "scheduler", func() error { return sched.Run(frontCtx) })
	}

	tk := ticker.New(ticker.Config{NC: d.NC, JS: d.JS, Registry: reg, Keys: ticker.VaultKeys{Vault: vault}, Relays: relays,
		Network: "regtest", TickTimeout: o.TickTimeout, BuyTimeout: o.BuyTimeout, MinTickInterval: o.MinTickInterval,
		Log: d.log.With("service", "ticker"), Metrics: d.Metrics, OnTick: o.OnTick})
	if !skip["ticker"] {
		d.run(&d.front, "ticker", func() error { return tk.Run(frontCtx) })
	}
	return nil
}

// FundFromFaucet funds an agent the way a user would: the payer issues an invoice and the
// devnet faucet account pays it.
func (d *Devnet) FundFromFaucet(ctx context.Context, ref string, sats int64) (registry.Agent, error) {
	a, bolt11, err := d.Fleet.Fund(ctx, ref, sats)
	if err != nil {
		return a, err
	}
	if _, err := d.Ledger.Account(devln.FaucetAccount).PayInvoice(ctx, bolt11); err != nil {
		return a, fmt.Errorf("devnet faucet: %w", err)
	}
	return a, nil
}

// CreateChannel creates a NIP-28 channel (kind 40) on the devnet relay and returns its id.
func (d *Devnet) CreateChannel(ctx context.Context, name, about string) (string, error) {
	meta, _ := json.Marshal(map[string]string{"name": name, "about": about})
	ev := nostr.Event{Kind: nipsa.KindChannelCreate, CreatedAt: nostr.Now(), Content: string(meta), Tags: nostr.Tags{}}
	if err := ev.Sign(nostr.GeneratePrivateKey()); err != nil {
		return "", err
	}
	r, err := nostr.RelayConnect(ctx, d.Relay.URL())
	if err != nil {
		return "", err
	}
	defer r.Close()
	if err := r.Publish(ctx, ev); err != nil {
		return "", fmt.Errorf("devnet: create channel: %w", err)
	}
	return ev.ID, nil
}

// Close stops every part and removes a temp dir.
func (d *Devnet) Close() {
	if d.cancelFront != nil {
		d.cancelFront()
	}
	d.front.Wait()
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	if d.NC != nil {
		d.NC.Close()
	}
	if d.httpSrv != nil {
		_ = d.httpSrv.Close()
	}
	if d.Relay != nil {
		_ = d.Relay.Close()
	}
	if d.NATS != nil {
		d.NATS.Close()
	}
	if d.ownDir {
		_ = os.RemoveAll(d.Dir)
	}
}
