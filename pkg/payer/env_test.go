package payer_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/devln"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/natsx"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/payer"
	"github.com/openagents/runtime/pkg/registry"
)

// clock is the payer's time, movable by tests (expiry, grace) while the devnet keeps real time.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// env is one payer on a real embedded NATS with a devnet Lightning ledger.
type env struct {
	t      *testing.T
	nc     *nats.Conn
	js     jetstream.JetStream
	reg    *registry.Registry
	ln     *devln.Ledger
	kv     jetstream.KeyValue
	p      *payer.Payer
	prom   *prometheus.Registry
	clock  *clock
	faults *faults
}

// faults wraps devnet accounts to inject the failures a real wallet has: a lost reply after
// paying, a request lost before paying, a balance that can not be read.
type faults struct {
	mu            sync.Mutex
	payUnknown    bool // pay, then report the outcome unknown
	payLost       bool // report unknown without paying
	balanceErr    bool
	lookupUnknown bool
}

func (f *faults) get() faults {
	f.mu.Lock()
	defer f.mu.Unlock()
	return faults{payUnknown: f.payUnknown, payLost: f.payLost, balanceErr: f.balanceErr, lookupUnknown: f.lookupUnknown}
}

func (f *faults) set(fn func(*faults)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

type faultyWallet struct {
	*devln.Account
	f *faults
}

func (w faultyWallet) PayInvoice(ctx context.Context, bolt11 string) (lightning.Payment, error) {
	f := w.f.get()
	if f.payLost {
		return lightning.Payment{}, lightning.ErrOutcomeUnknown
	}
	p, err := w.Account.PayInvoice(ctx, bolt11)
	if f.payUnknown && err == nil {
		return lightning.Payment{}, lightning.ErrOutcomeUnknown
	}
	return p, err
}

func (w faultyWallet) Balance(ctx context.Context) (int64, error) {
	if w.f.get().balanceErr {
		return 0, errors.New("wallet unreachable")
	}
	return w.Account.Balance(ctx)
}

func (w faultyWallet) LookupPayment(ctx context.Context, hash string) (lightning.Payment, error) {
	if w.f.get().lookupUnknown {
		return lightning.Payment{}, errors.New("wallet unreachable")
	}
	return w.Account.LookupPayment(ctx, hash)
}

type faultySource struct {
	ln *devln.Ledger
	f  *faults
}

func (s faultySource) Wallet(_ context.Context, a registry.Agent) (lightning.Wallet, error) {
	return faultyWallet{Account: s.ln.Account(payer.DevnetAccount(a)), f: s.f}, nil
}

func newEnv(t *testing.T, tune ...func(*env, *payer.Config)) *env {
	t.Helper()
	ctx := context.Background()
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Close)
	nc, js, err := natsx.ConnectAndProvision(ctx, natsx.ConnectOptions{URL: ns.URL(), Name: "test"},
		contracts.ProvisionOptions{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	reg, err := registry.Open(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, contracts.BucketLedger)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, nc: nc, js: js, reg: reg, ln: devln.New(devln.Options{}), kv: kv,
		prom: prometheus.NewRegistry(), clock: &clock{}, faults: &faults{}}
	cfg := payer.Config{NC: nc, JS: js, Registry: reg, Wallets: faultySource{e.ln, e.faults},
		Metrics: e.prom, Now: e.clock.Now, Network: "regtest", PayTimeout: 5 * time.Second,
		ReconcileEvery: time.Hour, Grace: time.Second}
	for _, fn := range tune {
		fn(e, &cfg)
	}
	e.p, err = payer.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.p.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-e.p.Ready():
	case err := <-done:
		t.Fatalf("Run ended before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("payer not ready")
	}
	return e
}

// agent registers an agent funded with sats on its devnet account and returns its pubkey.
func (e *env) agent(name string, sats int64, lim nipsa.BudgetLimits, lc lifecycle.State) string {
	e.t.Helper()
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	pub := hex.EncodeToString(b)
	a := registry.Agent{Pubkey: pub, Npub: "npub-" + name, Name: name, Lifecycle: string(lc), Active: true,
		Wallet: registry.WalletBinding{Kind: registry.WalletDevnet, Account: "agent-" + name}, Limits: lim}
	if err := e.reg.Create(context.Background(), a); err != nil {
		e.t.Fatal(err)
	}
	if sats > 0 {
		if err := e.ln.Faucet(context.Background(), "agent-"+name, sats*1000); err != nil {
			e.t.Fatal(err)
		}
	}
	return pub
}

func (e *env) balance(name string) int64 {
	b, _ := e.ln.Account("agent-" + name).Balance(context.Background())
	return b / 1000
}

// invoice is a provider invoice for sats.
func (e *env) invoice(sats int64) lightning.Invoice {
	e.t.Helper()
	inv, err := e.ln.Account("provider").MakeInvoice(context.Background(), sats*1000, "compute", time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return inv
}

func (e *env) request(subject string, in, out any) {
	e.t.Helper()
	b, _ := json.Marshal(in)
	msg, err := e.nc.Request(subject, b, 30*time.Second)
	if err != nil {
		e.t.Fatalf("request %s: %v", subject, err)
	}
	if err := json.Unmarshal(msg.Data, out); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) pay(agent string, req contracts.PayRequest) contracts.PayResult {
	e.t.Helper()
	if req.MaxSats == 0 {
		req.MaxSats = 1_000_000
	}
	if req.Purpose == "" {
		req.Purpose = contracts.PurposeCompute
	}
	var res contracts.PayResult
	e.request(contracts.PaySubject(agent), req, &res)
	return res
}

func (e *env) balanceReply(agent string) contracts.BalanceReply {
	e.t.Helper()
	var r contracts.BalanceReply
	e.request(contracts.BalanceSubject(agent), contracts.BalanceRequest{}, &r)
	return r
}

func (e *env) record(hash string) payer.Payment {
	e.t.Helper()
	ent, err := e.kv.Get(context.Background(), "pay."+hash)
	if err != nil {
		e.t.Fatalf("ledger record %s: %v", hash, err)
	}
	var p payer.Payment
	if err := json.Unmarshal(ent.Value(), &p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) lifecycleOf(agent string) string {
	e.t.Helper()
	a, _, err := e.reg.Get(context.Background(), agent)
	if err != nil {
		e.t.Fatal(err)
	}
	return a.Lifecycle
}

// transfersOf counts settled devnet transfers for a payment hash.
func (e *env) transfersOf(hash string) int {
	n := 0
	for _, tr := range e.ln.Transfers() {
		if tr.PaymentHash == hash {
			n++
		}
	}
	return n
}

// metric reads a counter or gauge value from the payer's registry.
func (e *env) metric(name string, labels map[string]string) float64 {
	e.t.Helper()
	mfs, err := e.prom.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

var bigLimits = nipsa.BudgetLimits{DailyLimitSats: 1_000_000, PerTickLimitSats: 1_000_000, ReservedSats: 0}
