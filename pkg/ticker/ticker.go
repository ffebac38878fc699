// Package ticker runs agents' ticks: it consumes triggers, keeps at most one tick in flight per
// agent across all replicas (a lease in KV), coalesces the triggers that arrive meanwhile into
// the next tick (an inbox in KV), and acks a trigger only once its tick's result is durable.
package ticker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/payclient"
	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/trigger"
)

// Config of a ticker.
type Config struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Registry *registry.Registry
	Keys     KeySource
	// Relays where events are published and providers discovered when an agent names none.
	Relays []string
	// Network the agents' wallets pay on (BOLT11 network check).
	Network string
	// Provider, when set, is the only provider used (pubkey hex).
	Provider string
	// TickTimeout bounds one tick (a hung provider cannot hold an agent).
	TickTimeout time.Duration
	// BuyTimeout bounds one purchase from one provider.
	BuyTimeout time.Duration
	// MinTickInterval is the least time between two paid ticks of one agent, so agents that
	// answer each other cannot make a paid loop. Registry MinTickSeconds overrides it.
	MinTickInterval time.Duration
	MaxTokens       int
	Workers         int
	MaxInbox        int // triggers kept per coalesced tick; the rest are counted as dropped
	Log             *slog.Logger
	Metrics         prometheus.Registerer
	Now             func() time.Time
	// OnTick, when set, is called after each tick's result is durable (devnet's live view).
	OnTick func(Outcome)
}

// Outcome summarises one finished tick.
type Outcome struct {
	Agent      string
	TickID     string
	Status     string
	CostSats   int64
	Actions    []string
	Error      string
	Triggers   int
	ResultID   string
	FinishedAt time.Time
}

// Ticker is the service.
type Ticker struct {
	cfg    Config
	pay    payclient.Client
	pool   *nostr.SimplePool
	m      *metrics
	leases jetstream.KeyValue
	inbox  jetstream.KeyValue
	ticks  jetstream.KeyValue
	states jetstream.KeyValue
	holder string
	keys   *keyCache
	disc   *discovery
	wg     sync.WaitGroup
}

// New builds a ticker; Run starts it.
func New(cfg Config) *Ticker {
	if cfg.TickTimeout <= 0 {
		cfg.TickTimeout = 90 * time.Second
	}
	if cfg.BuyTimeout <= 0 {
		cfg.BuyTimeout = 30 * time.Second
	}
	if cfg.MinTickInterval < 0 {
		cfg.MinTickInterval = 0
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = 512
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.MaxInbox <= 0 {
		cfg.MaxInbox = 200
	}
	if cfg.Network == "" {
		cfg.Network = "regtest"
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &Ticker{cfg: cfg, pay: payclient.Client{NC: cfg.NC}, m: newMetrics(cfg.Metrics),
		holder: hex.EncodeToString(b), keys: newKeyCache(cfg.Keys)}
}

// ConsumerConfig is the durable consumer every ticker replica shares.
func ConsumerConfig(tickTimeout time.Duration) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       contracts.ConsumerTicker,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       tickTimeout + 30*time.Second,
		MaxDeliver:    20,
		MaxAckPending: 10_000,
	}
}

// Run consumes triggers until ctx ends, then finishes the ticks in flight.
func (t *Ticker) Run(ctx context.Context) error {
	if err := t.open(ctx); err != nil {
		return err
	}
	t.pool = nostr.NewSimplePool(context.Background())
	defer t.pool.Close("ticker stopping")
	t.disc = newDiscovery(t.pool, t.cfg.Relays, t.cfg.Log)
	cons, err := t.cfg.JS.CreateOrUpdateConsumer(ctx, contracts.StreamTriggers, ConsumerConfig(t.cfg.TickTimeout))
	if err != nil {
		return fmt.Errorf("ticker: consumer: %w", err)
	}
	// Ticks outlive ctx: a SIGTERM lets the tick in flight finish (or hand it back by not
	// acking), it does not abandon a paid inference half way.
	work, cancelWork := context.WithCancel(context.Background())
	defer cancelWork()
	sem := make(chan struct{}, t.cfg.Workers)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		sem <- struct{}{}
		t.wg.Add(1)
		go func() {
			defer func() { <-sem; t.wg.Done() }()
			t.handle(work, msg)
		}()
	}, jetstream.PullMaxMessages(t.cfg.Workers))
	if err != nil {
		return fmt.Errorf("ticker: consume: %w", err)
	}
	t.wg.Add(1)
	go func() { defer t.wg.Done(); t.sweep(ctx, work, cons) }()
	<-ctx.Done()
	cc.Drain()
	done := make(chan struct{})
	go func() { t.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(t.cfg.TickTimeout + 5*time.Second):
		t.cfg.Log.Warn("ticks still running at shutdown; their triggers will be redelivered")
	}
	return nil
}

func (t *Ticker) open(ctx context.Context) error {
	var err error
	get := func(name string) jetstream.KeyValue {
		if err != nil {
			return nil
		}
		var kv jetstream.KeyValue
		kv, err = t.cfg.JS.KeyValue(ctx, name)
		return kv
	}
	t.leases, t.inbox, t.ticks, t.states = get(contracts.BucketLeases), get(contracts.BucketInbox), get(contracts.BucketTicks), get(contracts.BucketState)
	if err != nil {
		return fmt.Errorf("ticker: open buckets: %w", err)
	}
	return nil
}

// handle takes one trigger message: reject it with a reason, coalesce it into the agent's
// inbox, or run a tick with it.
func (t *Ticker) handle(ctx context.Context, msg jetstream.Msg) {
	now := t.cfg.Now()
	trg, agent, err := trigger.Parse(msg.Subject(), msg.Data(), now)
	if err != nil {
		t.deadLetter(ctx, msg, trigger.Reason(err), err.Error())
		return
	}
	t.m.triggers.WithLabelValues(metricType(trg.Type)).Inc()
	a, _, err := t.cfg.Registry.Get(ctx, agent)
	if errors.Is(err, registry.ErrNotFound) {
		t.deadLetter(ctx, msg, "unknown_agent", "no agent "+agent+" in the registry")
		return
	} else if err != nil {
		_ = msg.NakWithDelay(2 * time.Second)
		return
	}
	if !a.Active && trg.Type != contracts.TriggerFunded {
		t.deadLetter(ctx, msg, "agent_stopped", "agent "+a.Name+" is stopped")
		return
	}
	// Redelivery of a trigger whose tick already finished: ack and move on.
	if _, err := t.ticks.Get(ctx, doneKey(agent, trg.ID)); err == nil {
		_ = msg.Ack()
		return
	}
	if err := t.appendInbox(ctx, agent, trg); err != nil {
		t.cfg.Log.Warn("inbox append", "agent", a.Name, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	// The trigger is now durable in the inbox: whoever holds the lease (or the sweeper after a
	// crash) will run it, so the message itself can go.
	_ = msg.Ack()
	t.drain(ctx, agent)
}

// drain runs ticks for agent while its inbox has triggers and this replica can take the lease.
// The try-lock-then-recheck order means a trigger appended while another replica releases the
// lease is still picked up by one of the two.
func (t *Ticker) drain(ctx context.Context, agent string) {
	for idle := 0; idle < 2; {
		rev, ok := t.acquire(ctx, agent)
		if !ok {
			t.m.coalesced.Inc()
			return
		}
		ran, durable := t.runInbox(ctx, agent)
		t.release(ctx, agent, rev)
		if ran && !durable {
			return // the sweeper retries later; retrying now would spin
		}
		if !ran {
			// Nothing was run: either the inbox is empty (checked again after releasing the
			// lease, so a trigger appended meanwhile is not stranded) or the agent could not
			// be read; give up after a second idle round and leave the rest to the sweeper.
			if n, _ := t.inboxLen(ctx, agent); n == 0 {
				return
			}
			idle++
		}
	}
}

type lease struct {
	Holder string `json:"holder"`
	Since  int64  `json:"since"`
}

func (t *Ticker) acquire(ctx context.Context, agent string) (uint64, bool) {
	b, _ := json.Marshal(lease{Holder: t.holder, Since: t.cfg.Now().UnixMilli()})
	rev, err := t.leases.Create(ctx, agent, b)
	if err == nil {
		return rev, true
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, false
	}
	// A lease older than a tick can last belongs to a crashed replica: take it over with CAS.
	e, gerr := t.leases.Get(ctx, agent)
	if gerr != nil {
		return 0, false
	}
	var l lease
	_ = json.Unmarshal(e.Value(), &l)
	if t.cfg.Now().Sub(time.UnixMilli(l.Since)) < 2*t.cfg.TickTimeout {
		return 0, false
	}
	rev, err = t.leases.Update(ctx, agent, b, e.Revision())
	return rev, err == nil
}

func (t *Ticker) release(ctx context.Context, agent string, rev uint64) {
	_ = t.leases.Delete(ctx, agent, jetstream.LastRevision(rev))
}

// sweep periodically drains inboxes left behind by a crashed replica and refreshes the
// consumer-lag gauge.
func (t *Ticker) sweep(ctx, work context.Context, cons jetstream.Consumer) {
	tk := time.NewTicker(5 * time.Second)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		if info, err := cons.Info(ctx); err == nil {
			t.m.pending.Set(float64(info.NumPending))
		}
		lister, err := t.inbox.ListKeys(ctx)
		if err != nil {
			continue
		}
		for agent := range lister.Keys() {
			if n, _ := t.inboxLen(ctx, agent); n > 0 {
				t.drain(work, agent)
			}
		}
	}
}

func (t *Ticker) deadLetter(ctx context.Context, msg jetstream.Msg, reason, detail string) {
	t.m.deadLetters.WithLabelValues(reason).Inc()
	b, _ := json.Marshal(contracts.DeadLetter{Subject: msg.Subject(), Reason: reason + ": " + detail,
		Payload: string(msg.Data()), At: t.cfg.Now().Unix()})
	if _, err := t.cfg.JS.Publish(ctx, contracts.SubjectDeadLetter, b); err != nil {
		t.cfg.Log.Warn("dead letter not stored; retrying the trigger", "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	t.cfg.Log.Info("trigger dead-lettered", "subject", msg.Subject(), "reason", reason, "detail", detail)
	_ = msg.Term()
}

func metricType(typ string) string {
	switch typ {
	case contracts.TriggerHeartbeat, contracts.TriggerMention, contracts.TriggerDM, contracts.TriggerZap,
		contracts.TriggerManual, contracts.TriggerFunded, contracts.TriggerChannel:
		return typ
	}
	return "custom"
}

func doneKey(agent, triggerID string) string { return agent + "." + hashKey(triggerID) }
