// Package provider is the reference compute provider: it sells text generation over NIP-90
// (kind 5050 -> 7000 payment-required -> 6050) and over the OpenAgents NIP-28 channel protocol
// (JobRequest -> Invoice -> PaymentSent -> JobResult), announces itself with NIP-89 kind 31990,
// and delivers ONLY after its own wallet shows the invoice settled (SPEC.md "Buying compute").
package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/model"
	"github.com/openagents/runtime/pkg/nipsa"
)

// Config of a provider.
type Config struct {
	SecretKey string // hex Nostr key; never logged
	Relays    []string
	Wallet    lightning.Wallet
	PriceMsat int64 // per request
	Model     model.Model
	ModelName string // announced in the model tag and passed to Model when a request names none
	Network   string // BOLT11 network; default Wallet.Network(); must match it
	Name      string
	// Description goes in the 31990 content; default a sentence naming the price.
	Description string
	// InvoiceExpiry bounds how long a job waits for payment; default DefaultInvoiceExpiry.
	InvoiceExpiry time.Duration
	// PollInterval is how often settlement is polled when the wallet has no WaitSettled;
	// default 250ms.
	PollInterval time.Duration
	// MaxPending caps jobs awaiting payment, so unpaid requests cannot pile up; default 1000.
	MaxPending int
	// MaxRunning caps concurrent model calls; default 8.
	MaxRunning int

	// Test knobs. OverchargeMsat is added to every invoice (buyers must refuse it); Silent
	// providers announce themselves but never answer.
	OverchargeMsat int64
	Silent         bool

	Log *slog.Logger
}

// DefaultInvoiceExpiry applies when Config.InvoiceExpiry is zero.
const DefaultInvoiceExpiry = 10 * time.Minute

// HandlerD is the d tag of the provider's 31990 announcement.
const HandlerD = "openagents-compute"

// Errors.
var (
	ErrConfig = errors.New("provider: bad config")
	// ErrNoRelay: no relay accepted an event the provider had to publish.
	ErrNoRelay = errors.New("provider: no relay accepted the event")
)

// Stats counts what the provider did since Run started.
type Stats struct {
	Requests  int64 // job requests accepted for quoting (both protocols)
	Refused   int64 // requests answered with an error (bid below price, bad input)
	Invoices  int64
	Paid      int64 // invoices seen settled
	Unpaid    int64 // invoices that expired unpaid
	Delivered int64 // results published
	Failed    int64 // paid jobs whose model call or result publication failed
}

type stats struct {
	requests, refused, invoices, paid, unpaid, delivered, failed atomic.Int64
}

// Provider is one running provider. Create with New, then Run.
type Provider struct {
	cfg    Config
	pubkey string
	log    *slog.Logger
	pool   *nostr.SimplePool
	ready  chan struct{}
	st     stats

	channel string // set before ready closes

	running chan struct{} // semaphore around model calls

	mu      sync.Mutex
	seen    map[string]struct{}      // request event ids already handled
	jobs    map[string]chan struct{} // NIP-28 job id -> nudge on PaymentSent
	pending int
}

// New checks the config.
func New(cfg Config) (*Provider, error) {
	pk, err := nostr.GetPublicKey(cfg.SecretKey)
	if err != nil || !nostr.IsValid32ByteHex(cfg.SecretKey) {
		return nil, fmt.Errorf("%w: SecretKey must be 64 hex characters", ErrConfig)
	}
	switch {
	case len(cfg.Relays) == 0:
		return nil, fmt.Errorf("%w: no relays", ErrConfig)
	case cfg.Wallet == nil:
		return nil, fmt.Errorf("%w: no wallet", ErrConfig)
	case cfg.Model == nil:
		return nil, fmt.Errorf("%w: no model", ErrConfig)
	case cfg.PriceMsat <= 0:
		return nil, fmt.Errorf("%w: PriceMsat must be > 0, got %d", ErrConfig, cfg.PriceMsat)
	case cfg.OverchargeMsat < 0:
		return nil, fmt.Errorf("%w: OverchargeMsat must be >= 0", ErrConfig)
	}
	if cfg.Network == "" {
		cfg.Network = cfg.Wallet.Network()
	} else if wn := cfg.Wallet.Network(); wn != cfg.Network {
		return nil, fmt.Errorf("%w: Network %q but the wallet is on %q", ErrConfig, cfg.Network, wn)
	}
	if cfg.Name == "" {
		cfg.Name = "openagents provider " + pk[:8]
	}
	if cfg.Description == "" {
		cfg.Description = fmt.Sprintf("Text generation (NIP-90 kind 5050 and NIP-28), %d msats per request, paid before delivery.", cfg.PriceMsat)
	}
	if cfg.InvoiceExpiry <= 0 {
		cfg.InvoiceExpiry = DefaultInvoiceExpiry
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1000
	}
	if cfg.MaxRunning <= 0 {
		cfg.MaxRunning = 8
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Provider{
		cfg:     cfg,
		pubkey:  pk,
		log:     log.With("component", "provider", "provider", pk[:16]),
		ready:   make(chan struct{}),
		running: make(chan struct{}, cfg.MaxRunning),
		seen:    map[string]struct{}{},
		jobs:    map[string]chan struct{}{},
	}, nil
}

// Pubkey is the provider's hex public key.
func (p *Provider) Pubkey() string { return p.pubkey }

// Ready is closed once the provider listens for jobs and has announced itself.
func (p *Provider) Ready() <-chan struct{} { return p.ready }

// Channel is the id of the provider's NIP-28 channel; "" before Ready.
func (p *Provider) Channel() string {
	select {
	case <-p.ready:
		return p.channel
	default:
		return ""
	}
}

// Stats is a snapshot of the counters.
func (p *Provider) Stats() Stats {
	return Stats{
		Requests: p.st.requests.Load(), Refused: p.st.refused.Load(), Invoices: p.st.invoices.Load(),
		Paid: p.st.paid.Load(), Unpaid: p.st.unpaid.Load(), Delivered: p.st.delivered.Load(),
		Failed: p.st.failed.Load(),
	}
}

// Run creates the channel, subscribes, announces, and serves jobs until ctx ends; it then waits
// for jobs in progress and returns nil. Run once per Provider.
func (p *Provider) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.pool = nostr.NewSimplePool(ctx)
	defer p.pool.Close("provider stopped")

	ch, err := p.createChannel(ctx)
	if err != nil {
		return err
	}
	p.channel = ch

	// Subscribe before announcing: a buyer who finds the announcement must find us listening.
	since := nostr.Now()
	eose90, eose28 := make(chan struct{}), make(chan struct{})
	jobs90 := p.pool.SubscribeManyNotifyEOSE(ctx, p.relays(),
		nostr.Filter{Kinds: []int{nipsa.KindTextGeneration}, Since: &since}, eose90)
	msgs28 := p.pool.SubscribeManyNotifyEOSE(ctx, p.relays(),
		nostr.Filter{Kinds: []int{nipsa.KindChannelMessage}, Tags: nostr.TagMap{"e": {ch}}, Since: &since}, eose28)
	for _, eose := range []chan struct{}{eose90, eose28} {
		select {
		case <-eose:
		case <-ctx.Done():
			return nil
		}
	}
	if err := p.announce(ctx); err != nil {
		return err
	}
	close(p.ready)
	p.log.Info("provider ready", "channel", ch, "price_msat", p.cfg.PriceMsat, "network", p.cfg.Network,
		"model", p.cfg.ModelName, "silent", p.cfg.Silent, "overcharge_msat", p.cfg.OverchargeMsat)

	var wg sync.WaitGroup
	defer wg.Wait()
	for jobs90 != nil || msgs28 != nil {
		select {
		case <-ctx.Done():
			return nil
		case ie, ok := <-jobs90:
			if !ok {
				jobs90 = nil
				continue
			}
			if p.firstSight(ie.Event.ID) {
				wg.Go(func() { p.serveNIP90(ctx, ie.Event) })
			}
		case ie, ok := <-msgs28:
			if !ok {
				msgs28 = nil
				continue
			}
			if p.firstSight(ie.Event.ID) {
				wg.Go(func() { p.serveNIP28(ctx, ie.Event) })
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("provider: every relay subscription ended")
}

// firstSight dedupes events that arrive from several relays.
func (p *Provider) firstSight(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.seen[id]; ok {
		return false
	}
	if len(p.seen) > 100_000 { // old ids are behind the subscription's since anyway
		clear(p.seen)
	}
	p.seen[id] = struct{}{}
	return true
}

func (p *Provider) relays() []string { return append([]string(nil), p.cfg.Relays...) }

// publish signs ev and succeeds when at least one relay accepted it.
func (p *Provider) publish(ctx context.Context, ev *nostr.Event) error {
	ev.PubKey = p.pubkey
	if ev.CreatedAt == 0 {
		ev.CreatedAt = nostr.Now()
	}
	if ev.Tags == nil {
		ev.Tags = nostr.Tags{}
	}
	if err := ev.Sign(p.cfg.SecretKey); err != nil {
		return fmt.Errorf("provider: sign kind %d: %w", ev.Kind, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var errs []error
	ok := false
	for r := range p.pool.PublishMany(ctx, p.relays(), *ev) {
		if r.Error == nil {
			ok = true
		} else {
			errs = append(errs, fmt.Errorf("%s: %w", r.RelayURL, r.Error))
		}
	}
	if !ok {
		return fmt.Errorf("%w: kind %d: %w", ErrNoRelay, ev.Kind, errors.Join(errs...))
	}
	return nil
}

func (p *Provider) createChannel(ctx context.Context) (string, error) {
	content, _ := json.Marshal(map[string]any{
		"name":   p.cfg.Name,
		"about":  p.cfg.Description,
		"relays": p.cfg.Relays,
	})
	ev := &nostr.Event{Kind: nipsa.KindChannelCreate, Content: string(content)}
	if err := p.publish(ctx, ev); err != nil {
		return "", fmt.Errorf("provider: create channel: %w", err)
	}
	return ev.ID, nil
}

// announce publishes the NIP-89 handler (31990) and a ServiceAnnouncement in the channel.
func (p *Provider) announce(ctx context.Context) error {
	price := strconv.FormatInt(p.cfg.PriceMsat, 10)
	tags := nostr.Tags{
		{"d", HandlerD},
		{"k", strconv.Itoa(nipsa.KindTextGeneration)},
		{"handler", "compute_provider"},
		{"capability", "text-generation"},
		{"price", price, "per-request", "msats"},
		{"network", p.cfg.Network},
	}
	if p.cfg.ModelName != "" {
		tags = append(tags, nostr.Tag{"model", p.cfg.ModelName})
	}
	tags = append(tags, nostr.Tag{"channel", p.channel})
	for _, r := range p.cfg.Relays {
		tags = append(tags, nostr.Tag{"relay", r})
	}
	content, _ := json.Marshal(map[string]string{"name": p.cfg.Name, "description": p.cfg.Description})
	if err := p.publish(ctx, &nostr.Event{Kind: nipsa.KindHandlerInfo, Tags: tags, Content: string(content)}); err != nil {
		return fmt.Errorf("provider: announce: %w", err)
	}
	ann := map[string]any{
		"type": "ServiceAnnouncement", "kind": nipsa.KindTextGeneration, "price_msats": p.cfg.PriceMsat,
		"network": p.cfg.Network, "provider_pubkey": p.pubkey, "capabilities": []string{"text-generation"},
	}
	if p.cfg.ModelName != "" {
		ann["models"] = []string{p.cfg.ModelName}
	}
	if err := p.say(ctx, "", "", ann); err != nil {
		return fmt.Errorf("provider: channel announcement: %w", err)
	}
	return nil
}
