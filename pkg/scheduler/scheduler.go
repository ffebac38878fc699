// Package scheduler decides when agents wake: heartbeats for the whole fleet from one timing
// structure, relay events (mentions, DMs, zaps, channel messages, custom kinds) and funding
// notices, each published as a contracts.Trigger on sa.trigger.<agent>. Trigger ids are
// deterministic and used as Nats-Msg-Id, so any number of replicas run side by side and
// JetStream keeps one trigger per heartbeat slot or event: high availability without leader
// election. Runs as services/scheduler and in-process (devnet, `openagents run`).
package scheduler

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/registry"
)

// DefaultLowBalanceFactor stretches a LowBalance agent's heartbeat: it ticks every
// HeartbeatSeconds*4, so an agent with a short runway spends a quarter as fast while it waits
// for funds (SPEC: "LowBalance ticks less often").
const DefaultLowBalanceFactor = 4

// Errors.
var (
	ErrConfig = errors.New("scheduler: bad config")
)

// Config wires a Scheduler. NC, JS and Registry are required.
type Config struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	Registry *registry.Registry
	// DefaultRelays serve agents whose registry record lists no relays.
	DefaultRelays []string
	// LowBalanceFactor multiplies the heartbeat interval of LowBalance agents; <= 0 means
	// DefaultLowBalanceFactor.
	LowBalanceFactor float64
	Now              func() time.Time
	Log              *slog.Logger
	// Metrics receives the sa_scheduler_* collectors; nil keeps them in a private registry.
	Metrics prometheus.Registerer

	// FlushInterval is how often the heartbeat mark and relay cursors are written to KV
	// (also on stop); default 5s.
	FlushInterval time.Duration
	// CursorOverlap is subtracted from a relay cursor when subscribing, so events that
	// reached a relay late are not missed; the Nats-Msg-Id dedupe makes the repeats harmless.
	// Default 60s.
	CursorOverlap time.Duration
	// RetryQueueMax bounds the triggers held for retry after a failed publish (NATS or
	// JetStream unavailable); one that does not fit is counted in
	// sa_scheduler_events_dropped_total{reason="publish_failed"}. Default DefaultRetryQueueMax.
	RetryQueueMax int
}

// Scheduler is one replica. Start any number against one NATS.
type Scheduler struct {
	cfg    Config
	log    *slog.Logger
	m      *metrics
	kv     jetstream.KeyValue // sa_cursors
	factor float64

	mu     sync.Mutex
	agents map[string]*agentInfo // by hex pubkey; relay routing and the lifecycle gauge
	chans  map[string][]string   // NIP-28 channel id -> agents listening (custom:42)
	counts map[string]int        // agents per lifecycle

	hb     *beats
	relays *relayManager
	retry  *retryQueue

	ready     chan struct{}
	readyOnce sync.Once
}

// agentInfo is what the scheduler keeps of a registry record.
type agentInfo struct {
	pub       string
	key       [32]byte
	lifecycle lifecycle.State
	active    bool
	triggers  []string
	hours     *nipsa.BusinessHours
	relays    []string
	channels  []string
}

func (a *agentInfo) has(trigger string) bool { return slices.Contains(a.triggers, trigger) }

// New checks cfg and builds a Scheduler; Run starts it.
func New(cfg Config) (*Scheduler, error) {
	if cfg.NC == nil || cfg.JS == nil || cfg.Registry == nil {
		return nil, fmt.Errorf("%w: NC, JS and Registry are required", ErrConfig)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.LowBalanceFactor <= 0 {
		cfg.LowBalanceFactor = DefaultLowBalanceFactor
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 5 * time.Second
	}
	if cfg.CursorOverlap <= 0 {
		cfg.CursorOverlap = time.Minute
	}
	if cfg.RetryQueueMax <= 0 {
		cfg.RetryQueueMax = DefaultRetryQueueMax
	}
	s := &Scheduler{
		cfg:    cfg,
		log:    cfg.Log.With("component", "scheduler"),
		m:      newMetrics(cfg.Metrics),
		factor: cfg.LowBalanceFactor,
		agents: map[string]*agentInfo{},
		chans:  map[string][]string{},
		counts: map[string]int{},
		ready:  make(chan struct{}),
	}
	s.retry = newRetryQueue(s, cfg.RetryQueueMax)
	s.hb = newBeats(s)
	s.relays = newRelayManager(s)
	return s, nil
}

// Ready is closed once the registry has been read in full and heartbeats are running.
func (s *Scheduler) Ready() <-chan struct{} { return s.ready }

// Run schedules until ctx ends, then writes its heartbeat mark and relay cursors and returns
// nil. It returns an error only if it cannot start (KV bucket missing).
func (s *Scheduler) Run(ctx context.Context) error {
	kv, err := s.cfg.JS.KeyValue(ctx, contracts.BucketCursors)
	if err != nil {
		return fmt.Errorf("scheduler: open cursors bucket: %w", err)
	}
	s.kv = kv
	mark, err := s.hb.loadMark(ctx)
	if err != nil {
		return err
	}
	funded, err := s.fundedConsumer(ctx)
	if err != nil {
		return fmt.Errorf("scheduler: funded consumer: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	start(s.hb.run)
	start(s.retry.run)
	start(s.hb.flushLoop)
	start(s.relays.run)
	start(func(ctx context.Context) { s.watch(ctx, mark) })
	start(func(ctx context.Context) { s.consumeFunded(ctx, funded) })
	<-ctx.Done()
	wg.Wait()
	// Written with a fresh context: the caller's is already cancelled, and a stop that loses
	// its mark would re-fire (or, worse, skip) slots on the next start.
	fctx, fcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer fcancel()
	s.hb.flushMark(fctx)
	s.relays.flushCursors(fctx)
	return nil
}

// watch follows the registry, re-watching with backoff if the watcher dies, and keeps the
// wheel and the relay subscriptions in step with it.
func (s *Scheduler) watch(ctx context.Context, mark int64) {
	backoff := 200 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		ch, err := s.cfg.Registry.Watch(ctx)
		if err != nil {
			s.log.Warn("registry watch", "err", err)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		backoff = 200 * time.Millisecond
		seen := map[string]bool{}
		initial := true
		for c := range ch {
			if c.InitialDone {
				// Agents deleted while the watcher was down never announce themselves.
				s.mu.Lock()
				var gone []string
				for pub := range s.agents {
					if !seen[pub] {
						gone = append(gone, pub)
					}
				}
				s.mu.Unlock()
				for _, pub := range gone {
					s.remove(pub)
				}
				initial, seen = false, nil
				if first {
					first = false
					s.hb.setReady()
					s.readyOnce.Do(func() { close(s.ready) })
					s.log.Info("watching registry", "agents", len(s.agents))
				}
				s.relays.changed()
				continue
			}
			if c.Deleted {
				s.remove(c.Agent.Pubkey)
			} else {
				catchUp := int64(-1)
				if initial && first {
					catchUp = mark
				}
				s.upsert(c.Agent, catchUp)
			}
			if initial {
				seen[c.Agent.Pubkey] = true
			} else {
				s.relays.changed()
			}
		}
		if ctx.Err() == nil {
			s.log.Warn("registry watch ended; re-watching")
		}
	}
}

// intervalMs is the agent's heartbeat interval, 0 for none: only Active and LowBalance agents
// with the schedule's active flag set have heartbeats (Hibernating wakes on funds only).
func (s *Scheduler) intervalMs(a *agentInfo, heartbeatSeconds int64) int64 {
	if !a.active || heartbeatSeconds <= 0 {
		return 0
	}
	switch a.lifecycle {
	case lifecycle.Active:
		return heartbeatSeconds * 1000
	case lifecycle.LowBalance:
		return int64(float64(heartbeatSeconds*1000) * s.factor)
	}
	return 0
}

func (s *Scheduler) upsert(a registry.Agent, catchUp int64) {
	pub := strings.ToLower(a.Pubkey)
	raw, err := hex.DecodeString(pub)
	if err != nil || len(raw) != 32 {
		s.log.Warn("registry record with a bad pubkey skipped", "pubkey", a.Pubkey)
		return
	}
	info := &agentInfo{
		pub:       pub,
		lifecycle: lifecycle.State(a.Lifecycle),
		active:    a.Active,
		triggers:  a.Triggers,
		relays:    a.Relays,
		channels:  a.Channels,
	}
	copy(info.key[:], raw)
	if a.BusinessHours != "" {
		bh, err := nipsa.ParseBusinessHours(a.BusinessHours)
		if err != nil {
			// A schedule that cannot be read is not taken as "never open": the agent keeps
			// its heartbeat and the operator sees the warning.
			s.log.Warn("bad business_hours ignored", "agent", pub, "err", err)
		} else {
			info.hours = &bh
		}
	}
	s.mu.Lock()
	if old, ok := s.agents[pub]; ok {
		s.counts[string(old.lifecycle)]--
		s.unlinkChannels(old)
	}
	s.agents[pub] = info
	s.counts[string(info.lifecycle)]++
	s.linkChannels(info)
	s.setAgentGauges()
	s.mu.Unlock()
	s.hb.set(info.key, s.intervalMs(info, a.HeartbeatSeconds), catchUp)
}

func (s *Scheduler) remove(pub string) {
	pub = strings.ToLower(pub)
	s.mu.Lock()
	old, ok := s.agents[pub]
	if ok {
		delete(s.agents, pub)
		s.counts[string(old.lifecycle)]--
		s.unlinkChannels(old)
		s.setAgentGauges()
	}
	s.mu.Unlock()
	if ok {
		s.hb.set(old.key, 0, -1)
	}
}

func (s *Scheduler) linkChannels(a *agentInfo) {
	if !a.has("custom:42") {
		return
	}
	for _, c := range a.channels {
		s.chans[c] = append(s.chans[c], a.pub)
	}
}

func (s *Scheduler) unlinkChannels(a *agentInfo) {
	for _, c := range a.channels {
		l := slices.DeleteFunc(s.chans[c], func(p string) bool { return p == a.pub })
		if len(l) == 0 {
			delete(s.chans, c)
		} else {
			s.chans[c] = l
		}
	}
}

func (s *Scheduler) setAgentGauges() {
	for st, n := range s.counts {
		s.m.agents.WithLabelValues(st).Set(float64(n))
	}
}

func (s *Scheduler) agent(pub string) (*agentInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.agents[pub]
	return a, ok
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
