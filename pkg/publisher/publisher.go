// Package publisher delivers signed events from the SA_PUBLISH stream to relays, with retries
// and a minimum number of write confirmations (relay OK), and records every outcome on
// sa.delivered.<agent> instead of dropping it. It holds no secrets: events arrive signed.
package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openagents/runtime/pkg/contracts"
)

// Config of a publisher.
type Config struct {
	NC            *nats.Conn
	JS            jetstream.JetStream
	DefaultRelays []string
	MinOK         int           // default 1
	WriteTimeout  time.Duration // per attempt; default 5s
	MaxAttempts   int           // then the failure is recorded and the message terminated; default 8
	Workers       int           // concurrent deliveries; default 32
	Log           *slog.Logger
	Metrics       prometheus.Registerer
}

// Publisher is the service.
type Publisher struct {
	cfg  Config
	pool *nostr.SimplePool
	m    metrics
}

type metrics struct {
	events   *prometheus.CounterVec
	writes   *prometheus.CounterVec
	duration prometheus.Histogram
	pending  prometheus.Gauge
}

// New builds a publisher.
func New(cfg Config) *Publisher {
	if cfg.MinOK <= 0 {
		cfg.MinOK = 1
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	p := &Publisher{cfg: cfg, m: metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sa_publisher_events_total",
			Help: "Events handled, by result (delivered, retried, failed, invalid)."}, []string{"result"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sa_publisher_relay_writes_total",
			Help: "Writes to relays, by result (ok, rejected, error)."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sa_publisher_delivery_duration_seconds",
			Help: "Time to reach the required write confirmations.", Buckets: prometheus.DefBuckets}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sa_publisher_consumer_pending",
			Help: "Messages waiting in the publisher's consumer."}),
	}}
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(p.m.events, p.m.writes, p.m.duration, p.m.pending)
	}
	return p
}

// Consumer returns the durable consumer config shared by every publisher replica.
func ConsumerConfig(maxAttempts int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       contracts.ConsumerPublisher,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    maxAttempts,
		MaxAckPending: 4096,
		BackOff:       nil,
	}
}

// Run consumes SA_PUBLISH until ctx ends, then drains in-flight deliveries.
func (p *Publisher) Run(ctx context.Context) error {
	p.pool = nostr.NewSimplePool(ctx)
	defer p.pool.Close("publisher stopping")
	cons, err := p.cfg.JS.CreateOrUpdateConsumer(ctx, contracts.StreamPublish, ConsumerConfig(p.cfg.MaxAttempts))
	if err != nil {
		return fmt.Errorf("publisher: consumer: %w", err)
	}
	sem := make(chan struct{}, p.cfg.Workers)
	var wg sync.WaitGroup
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			p.handle(ctx, msg)
		}()
	}, jetstream.PullMaxMessages(p.cfg.Workers))
	if err != nil {
		return fmt.Errorf("publisher: consume: %w", err)
	}
	go p.watchPending(ctx, cons)
	<-ctx.Done()
	cc.Drain()
	wg.Wait()
	return nil
}

func (p *Publisher) watchPending(ctx context.Context, cons jetstream.Consumer) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if info, err := cons.Info(ctx); err == nil {
			p.m.pending.Set(float64(info.NumPending))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Publisher) handle(ctx context.Context, msg jetstream.Msg) {
	var req contracts.PublishRequest
	if err := json.Unmarshal(msg.Data(), &req); err != nil {
		p.m.events.WithLabelValues("invalid").Inc()
		p.cfg.Log.Warn("undecodable publish request", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	ev := req.Event
	// Only the id is checked here (a sha256 of the serialized event: it catches any tampering of
	// content, tags, kind, author or time). The Schnorr signature is not verified again: every
	// relay verifies it before storing, so a bad signature is refused by each relay and, after
	// the retries, recorded as a failed delivery like any refusal. Verifying here as well cost a
	// full signature verification per event (about a tenth of a tick's CPU) for no extra guarantee.
	if !ev.CheckID() {
		p.m.events.WithLabelValues("invalid").Inc()
		p.record(ctx, msg.Subject(), contracts.Delivery{EventID: ev.ID, Kind: ev.Kind, Reasons: []string{"invalid signature or id"}})
		_ = msg.Term()
		return
	}
	relays := req.Relays
	if len(relays) == 0 {
		relays = p.cfg.DefaultRelays
	}
	minOK := req.MinOK
	if minOK <= 0 {
		minOK = p.cfg.MinOK
	}
	minOK = min(minOK, len(relays))
	meta, _ := msg.Metadata()
	attempt := 1
	if meta != nil {
		attempt = int(meta.NumDelivered)
	}
	start := time.Now()
	d := p.Deliver(ctx, ev, relays)
	d.Attempts = attempt
	if len(d.OK) >= minOK && minOK > 0 {
		d.Durable = true
		p.m.duration.Observe(time.Since(start).Seconds())
		p.m.events.WithLabelValues("delivered").Inc()
		p.record(ctx, msg.Subject(), d)
		_ = msg.Ack()
		return
	}
	if attempt >= p.cfg.MaxAttempts || ctx.Err() == nil && len(relays) == 0 {
		p.m.events.WithLabelValues("failed").Inc()
		p.cfg.Log.Error("delivery failed for good", "event", ev.ID, "kind", ev.Kind, "attempts", attempt, "reasons", d.Reasons)
		p.record(ctx, msg.Subject(), d)
		_ = msg.Term()
		return
	}
	p.m.events.WithLabelValues("retried").Inc()
	_ = msg.NakWithDelay(backoff(attempt))
}

func backoff(attempt int) time.Duration {
	d := 250 * time.Millisecond << min(attempt, 7)
	return min(d, 30*time.Second)
}

// Deliver writes ev to every relay and waits for their OKs (or the write timeout).
func (p *Publisher) Deliver(ctx context.Context, ev nostr.Event, relays []string) contracts.Delivery {
	d := contracts.Delivery{EventID: ev.ID, Kind: ev.Kind}
	wctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	defer cancel()
	seen := map[string]bool{}
	for res := range p.pool.PublishMany(wctx, relays, ev) {
		seen[res.RelayURL] = true
		switch {
		case res.Error == nil:
			d.OK = append(d.OK, res.RelayURL)
			p.m.writes.WithLabelValues("ok").Inc()
		case isDuplicate(res.Error):
			// A relay that already has the event has it durably: that is a confirmation.
			d.OK = append(d.OK, res.RelayURL)
			p.m.writes.WithLabelValues("ok").Inc()
		default:
			d.Failed = append(d.Failed, res.RelayURL)
			d.Reasons = append(d.Reasons, res.RelayURL+": "+res.Error.Error())
			label := "error"
			if errors.Is(res.Error, context.DeadlineExceeded) {
				label = "timeout"
			}
			p.m.writes.WithLabelValues(label).Inc()
		}
	}
	for _, r := range relays {
		if !seen[nostr.NormalizeURL(r)] && !seen[r] {
			d.Failed = append(d.Failed, r)
			d.Reasons = append(d.Reasons, r+": no answer")
		}
	}
	return d
}

func isDuplicate(err error) bool {
	s := err.Error()
	return strings.Contains(s, "duplicate:") || strings.Contains(s, "already have")
}

func (p *Publisher) record(ctx context.Context, subject string, d contracts.Delivery) {
	agent := contracts.AgentFromSubject(subject)
	b, _ := json.Marshal(d)
	if _, err := p.cfg.JS.Publish(ctx, contracts.DeliveredSubject(agent), b); err != nil {
		p.cfg.Log.Warn("record delivery", "event", d.EventID, "err", err)
	}
}

// Enqueue hands signed events to the publisher and waits until every one is durable in
// SA_PUBLISH (see Submit).
func Enqueue(ctx context.Context, js jetstream.JetStream, agent string, relays []string, events ...nostr.Event) error {
	futures, err := Submit(js, agent, relays, events...)
	if err != nil {
		return err
	}
	return Await(ctx, futures...)
}

// Submit hands signed events to the publisher: one async JetStream publish each, with
// Nats-Msg-Id = event id so a re-run of a tick does not deliver twice. The caller checks the
// acks later with Await, so a tick pays one wait for all its events, not one per event.
func Submit(js jetstream.JetStream, agent string, relays []string, events ...nostr.Event) ([]jetstream.PubAckFuture, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(events))
	for _, ev := range events {
		b, err := json.Marshal(contracts.PublishRequest{Event: ev, Relays: relays})
		if err != nil {
			return futures, err
		}
		f, err := js.PublishAsync(contracts.PublishSubject(agent), b, jetstream.WithMsgID(ev.ID))
		if err != nil {
			return futures, fmt.Errorf("publisher: enqueue %s: %w", ev.ID, err)
		}
		futures = append(futures, f)
	}
	return futures, nil
}

// Await waits for every publish ack; the first error wins.
func Await(ctx context.Context, futures ...jetstream.PubAckFuture) error {
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publisher: not stored: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
