// Package payer is the only service that moves money. It answers pay, balance and invoice
// requests for agents over NATS (queue group "payer", so replicas share the load) and keeps a
// ledger in the sa_ledger KV bucket that makes the guarantees hold across replicas and crashes:
//
//   - No invoice is paid twice: a record keyed by payment hash (and an index by idempotency key)
//     is written before the wallet is called; a repeat gets the recorded result.
//   - Budgets hold under concurrency: the amount is reserved on acct.<agent> by compare-and-swap
//     before paying; that CAS is the one serialisation point across replicas.
//   - An unknown outcome (timeout, crash, lost connection) stays in flight and is reconciled
//     with the wallet (LookupPayment), never retried and never taken as failed.
//   - Lifecycle changes only on a confirmed balance read.
package payer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/registry"
)

// Config wires a Payer. NC, JS, Registry and Wallets are required.
type Config struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Registry *registry.Registry
	Wallets  WalletSource
	Log      *slog.Logger
	Metrics  prometheus.Registerer
	Now      func() time.Time
	// Network invoices must be for; empty: each agent's wallet's network.
	Network    string
	Thresholds lifecycle.Thresholds
	// PayTimeout bounds one wallet payment call; past it the outcome is unknown (in flight).
	// Default 30 s.
	PayTimeout time.Duration
	// ReconcileEvery is the period of the background reconciliation pass. Default 30 s.
	ReconcileEvery time.Duration
	// Grace is how old a stalled record must be before reconciliation may close it: an intent
	// never sent, or an in-flight payment the wallet never saw whose invoice has expired.
	// It must exceed the time a live replica needs between its ledger writes. Default 30 s.
	Grace time.Duration
	// InvoiceExpiry of funding invoices. Default 1 h.
	InvoiceExpiry time.Duration
	// MaxConcurrent requests handled at once per process. Default 64.
	MaxConcurrent int
}

// Payer serves the payer subjects. Create with New, start with Run.
type Payer struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	reg     *registry.Registry
	wallets WalletSource
	log     *slog.Logger
	m       *metrics
	now     func() time.Time
	network string
	th      lifecycle.Thresholds

	payTimeout, reconcileEvery, grace, invoiceExpiry time.Duration
	sem                                              chan struct{}

	ledger ledger
	ready  chan struct{}
	// sub: balances are kept in the ledger (SubAccounts), not read from the wallet.
	sub bool

	wg         sync.WaitGroup  // request handlers and invoice watchers
	stopCtx    context.Context // ends invoice watchers when Run returns
	stop       context.CancelFunc
	watching   sync.Map // invoice hash -> struct{}: one watcher per invoice per process
	agentLocks sync.Map // agent -> *sync.Mutex, see reserve
}

// New checks cfg and binds to the ledger bucket (which must be provisioned).
func New(ctx context.Context, cfg Config) (*Payer, error) {
	if cfg.NC == nil || cfg.JS == nil || cfg.Registry == nil || cfg.Wallets == nil {
		return nil, errors.New("payer: Config needs NC, JS, Registry and Wallets")
	}
	kv, err := cfg.JS.KeyValue(ctx, contracts.BucketLedger)
	if err != nil {
		return nil, fmt.Errorf("payer: open ledger bucket: %w", err)
	}
	p := &Payer{
		nc: cfg.NC, js: cfg.JS, reg: cfg.Registry, wallets: cfg.Wallets,
		log: cfg.Log, m: newMetrics(cfg.Metrics), now: cfg.Now, network: cfg.Network,
		th: cfg.Thresholds, payTimeout: cfg.PayTimeout, reconcileEvery: cfg.ReconcileEvery,
		grace: cfg.Grace, invoiceExpiry: cfg.InvoiceExpiry,
		ledger: ledger{kv: kv}, ready: make(chan struct{}),
	}
	if lb, ok := cfg.Wallets.(interface{ ledgerBalances() bool }); ok {
		p.sub = lb.ledgerBalances()
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.payTimeout <= 0 {
		p.payTimeout = 30 * time.Second
	}
	if p.reconcileEvery <= 0 {
		p.reconcileEvery = 30 * time.Second
	}
	if p.grace <= 0 {
		p.grace = 30 * time.Second
	}
	if p.invoiceExpiry <= 0 {
		p.invoiceExpiry = time.Hour
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 64
	}
	p.sem = make(chan struct{}, cfg.MaxConcurrent)
	p.stopCtx, p.stop = context.WithCancel(context.Background())
	return p, nil
}

// Ready is closed once Run has reconciled the ledger and subscribed.
func (p *Payer) Ready() <-chan struct{} { return p.ready }

// Run reconciles every non-final payment with its wallet, resumes watching open funding
// invoices, then serves pay, balance and invoice requests until ctx ends. Requests being
// handled when ctx ends are finished (a payment is never cut off mid-call by shutdown).
func (p *Payer) Run(ctx context.Context) error {
	defer p.stop()
	// Reconcile first: a replica that crashed mid-payment left in-flight records whose
	// reservations must be settled before new requests are judged against the budget.
	if err := p.ReconcileAll(ctx); err != nil {
		return fmt.Errorf("payer: initial reconcile: %w", err)
	}
	if err := p.resumeInvoices(ctx); err != nil {
		return fmt.Errorf("payer: resume funding invoices: %w", err)
	}
	var subs []*nats.Subscription
	for _, s := range []struct {
		prefix string
		h      func(context.Context, *nats.Msg) any
	}{
		{contracts.SubjectPayPrefix, p.handlePay},
		{contracts.SubjectBalancePrefix, p.handleBalance},
		{contracts.SubjectInvoicePrefix, p.handleInvoice},
	} {
		sub, err := p.nc.QueueSubscribe(s.prefix+"*", contracts.QueuePayer, p.serve(ctx, s.h))
		if err != nil {
			for _, s := range subs {
				_ = s.Unsubscribe()
			}
			return fmt.Errorf("payer: subscribe %s*: %w", s.prefix, err)
		}
		subs = append(subs, sub)
	}
	if err := p.nc.Flush(); err != nil {
		return fmt.Errorf("payer: flush subscriptions: %w", err)
	}
	close(p.ready)
	p.log.Info("payer serving", "queue", contracts.QueuePayer)

	t := time.NewTicker(p.reconcileEvery)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
			if err := p.ReconcileAll(ctx); err != nil && ctx.Err() == nil {
				p.log.Warn("reconcile pass", "err", err)
			}
			p.sweepLifecycles(ctx)
		}
	}
	// Drain lets callbacks already queued hand their requests to handlers; wait for that before
	// waiting for the handlers themselves.
	for _, s := range subs {
		_ = s.Drain()
	}
	deadline := time.Now().Add(p.payTimeout + 5*time.Second)
	for _, s := range subs {
		for s.IsValid() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	p.stop()
	p.wg.Wait()
	return nil
}

// serve runs h for each message in its own goroutine (bounded by MaxConcurrent) and replies
// with its JSON result. Handlers get a context that outlives shutdown, so a payment started is
// finished and recorded; they bound their own waits.
func (p *Payer) serve(ctx context.Context, h func(context.Context, *nats.Msg) any) nats.MsgHandler {
	hctx := context.WithoutCancel(ctx)
	return func(msg *nats.Msg) {
		p.sem <- struct{}{}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer func() { <-p.sem }()
			out := h(hctx, msg)
			if msg.Reply == "" {
				return
			}
			b, _ := json.Marshal(out)
			if err := msg.Respond(b); err != nil {
				p.log.Warn("reply", "subject", msg.Subject, "err", err)
			}
		}()
	}
}
