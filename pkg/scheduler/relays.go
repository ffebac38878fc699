package scheduler

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/lifecycle"
)

const (
	// pubkeysPerFilter batches agents into one filter's #p (and channels into one #e): a
	// fleet of thousands costs a handful of subscriptions per relay, not one per agent.
	pubkeysPerFilter = 500
	// filtersPerREQ keeps each REQ within what public relays accept (many cap filters per
	// subscription around 10).
	filtersPerREQ = 8
	maxBackoff    = time.Minute
)

// assumeValid makes go-nostr hand over events without checking signatures, because it would
// drop bad ones silently; the scheduler checks them itself so they are counted.
type assumeValid struct{}

func (assumeValid) ApplyRelayOption(r *nostr.Relay) { r.AssumeValid = true }

type relayManager struct {
	s     *Scheduler
	pool  *nostr.SimplePool
	dirty chan struct{}

	mu      sync.Mutex
	cursors map[string]*cursor // by relay URL
	running map[string]*relayRun
}

// cursor is a relay's since-cursor: created_at (unix s) of the newest event processed.
type cursor struct {
	at      int64
	pending pins  // created_at of events whose triggers wait in the retry queue
	pinned  int64 // an event at pinned+1 failed to publish and was dropped: do not persist past it
	flushed int64
	loaded  bool
}

type relayRun struct {
	key    string
	cancel context.CancelFunc
	done   chan struct{}
}

func newRelayManager(s *Scheduler) *relayManager {
	return &relayManager{s: s, dirty: make(chan struct{}, 1), cursors: map[string]*cursor{}, running: map[string]*relayRun{}}
}

// changed asks for a resubscription; bursts collapse into one.
func (m *relayManager) changed() {
	select {
	case m.dirty <- struct{}{}:
	default:
	}
}

func (m *relayManager) run(ctx context.Context) {
	m.pool = nostr.NewSimplePool(ctx, nostr.WithRelayOptions(assumeValid{}))
	defer m.apply(ctx, nil)
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.dirty:
		}
		// Debounce: spawning a hundred agents resubscribes once, not a hundred times.
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return
		}
		select {
		case <-m.dirty:
		default:
		}
		m.apply(ctx, m.s.plan())
	}
}

// plan returns the filters (without since) each relay needs for the agents now registered.
func (s *Scheduler) plan() map[string]nostr.Filters {
	type acc struct {
		pubs  []string
		kinds []int
		chans []string
	}
	per := map[string]*acc{}
	s.mu.Lock()
	for _, a := range s.agents {
		if !a.active || !lifecycle.Ticks(a.lifecycle, true) {
			continue
		}
		var kinds []int
		wantChan := false
		for _, t := range a.triggers {
			// Hibernating agents wake on incoming funds only: zaps.
			if a.lifecycle == lifecycle.Hibernating && t != contracts.TriggerZap {
				continue
			}
			if t == channelTrigger {
				wantChan = len(a.channels) > 0
				continue
			}
			kinds = append(kinds, kindsFor(t)...)
		}
		if len(kinds) == 0 && !wantChan {
			continue
		}
		relays := a.relays
		if len(relays) == 0 {
			relays = s.cfg.DefaultRelays
		}
		for _, u := range relays {
			u = nostr.NormalizeURL(u)
			r := per[u]
			if r == nil {
				r = &acc{}
				per[u] = r
			}
			if len(kinds) > 0 {
				r.pubs = append(r.pubs, a.pub)
				r.kinds = append(r.kinds, kinds...)
			}
			if wantChan {
				r.chans = append(r.chans, a.channels...)
			}
		}
	}
	s.mu.Unlock()
	out := map[string]nostr.Filters{}
	for u, r := range per {
		var fs nostr.Filters
		slices.Sort(r.kinds)
		kinds := slices.Compact(r.kinds)
		slices.Sort(r.pubs)
		for c := range slices.Chunk(slices.Compact(r.pubs), pubkeysPerFilter) {
			fs = append(fs, nostr.Filter{Kinds: kinds, Tags: nostr.TagMap{"p": c}})
		}
		slices.Sort(r.chans)
		for c := range slices.Chunk(slices.Compact(r.chans), pubkeysPerFilter) {
			fs = append(fs, nostr.Filter{Kinds: []int{kindChannelMsg}, Tags: nostr.TagMap{"e": c}})
		}
		out[u] = fs
	}
	return out
}

// apply stops subscriptions whose filters changed or whose relay is gone and starts the new
// ones. A nil plan stops everything.
func (m *relayManager) apply(ctx context.Context, plan map[string]nostr.Filters) {
	keys := map[string]string{}
	for u, fs := range plan {
		b, _ := json.Marshal(fs)
		keys[u] = string(b)
	}
	m.mu.Lock()
	var stop []*relayRun
	for u, r := range m.running {
		if k, ok := keys[u]; !ok || k != r.key {
			stop = append(stop, r)
			delete(m.running, u)
			if !ok {
				m.s.m.relayConnected.DeleteLabelValues(u)
			}
		}
	}
	m.mu.Unlock()
	for _, r := range stop {
		r.cancel()
		<-r.done
	}
	if ctx.Err() != nil || plan == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for u, fs := range plan {
		if _, ok := m.running[u]; ok {
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		r := &relayRun{key: keys[u], cancel: cancel, done: make(chan struct{})}
		m.running[u] = r
		go func() {
			defer close(r.done)
			m.runRelay(rctx, u, fs)
		}()
	}
}

// runRelay holds the subscriptions on one relay, reconnecting with backoff; a dead relay only
// stops its own goroutine from doing work, never the others.
func (m *relayManager) runRelay(ctx context.Context, url string, filters nostr.Filters) {
	log := m.s.log.With("relay", url)
	gauge := m.s.m.relayConnected.WithLabelValues(url)
	gauge.Set(0)
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := m.subscribeOnce(ctx, url, filters, gauge)
		gauge.Set(0)
		if ctx.Err() != nil {
			return
		}
		log.Warn("relay subscription ended; reconnecting", "err", err, "in", backoff)
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

var errRelayClosed = errors.New("relay connection closed")

func (m *relayManager) subscribeOnce(ctx context.Context, url string, filters nostr.Filters, gauge interface{ Set(float64) }) error {
	r, err := m.pool.EnsureRelay(url)
	if err != nil {
		return err
	}
	since := nostr.Timestamp(m.since(ctx, url))
	fs := make(nostr.Filters, len(filters))
	for i, f := range filters {
		f.Since = &since
		fs[i] = f
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	for group := range slices.Chunk(fs, filtersPerREQ) {
		sub, err := r.Subscribe(sctx, group)
		if err != nil {
			cancel(err)
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case ev, ok := <-sub.Events:
					if !ok {
						cancel(errRelayClosed)
						return
					}
					m.handle(ctx, url, ev)
				case reason := <-sub.ClosedReason:
					cancel(errors.New("CLOSED: " + reason))
				}
			}
		}()
	}
	gauge.Set(1)
	select {
	case <-sctx.Done():
	case <-r.Context().Done():
		cancel(errRelayClosed)
	}
	return context.Cause(sctx)
}

// handle turns one relay event into the triggers it raises.
func (m *relayManager) handle(ctx context.Context, url string, ev *nostr.Event) {
	s := m.s
	if ok, _ := ev.CheckSignature(); !ok {
		s.m.dropped.WithLabelValues(DropBadSignature).Inc()
		return
	}
	for _, r := range s.route(ev) {
		if r.drop != "" {
			s.m.dropped.WithLabelValues(r.drop).Inc()
			continue
		}
		t := contracts.Trigger{ID: eventTriggerID(ev.ID), Type: r.typ, At: s.cfg.Now().Unix(), Event: ev}
		if err := s.publish(ctx, r.agent, t, SourceRelay); err != nil {
			s.log.Warn("relay trigger not published; will retry", "agent", r.agent, "event", ev.ID, "err", err)
			m.retry(url, int64(ev.CreatedAt), r.agent, t)
		}
	}
	m.advance(url, int64(ev.CreatedAt))
}

// retry pins the relay's cursor below an event whose trigger was not stored and queues the
// trigger for retry; the pin is released once the retry stores it. If the queue is full the pin
// stays for the rest of the process, so the next start reads the event again.
func (m *relayManager) retry(url string, createdAt int64, agent string, t contracts.Trigger) {
	createdAt = min(createdAt, m.s.cfg.Now().Unix())
	m.mu.Lock()
	c := m.cursor(url)
	c.pending.add(createdAt)
	m.mu.Unlock()
	if m.s.retry.add(newRetryItem(agent, t, SourceRelay, nil, func() {
		m.mu.Lock()
		c.pending.release(createdAt)
		m.mu.Unlock()
	})) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c.pending.release(createdAt)
	if c.pinned == 0 || createdAt-1 < c.pinned {
		c.pinned = createdAt - 1
	}
}

func (m *relayManager) cursor(url string) *cursor {
	c := m.cursors[url]
	if c == nil {
		c = &cursor{pending: pins{}}
		m.cursors[url] = c
	}
	return c
}

type routed struct {
	agent, typ, drop string
}

// route lists, for every registered agent ev concerns, the trigger it raises or why not.
func (s *Scheduler) route(ev *nostr.Event) []routed {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []routed
	consider := func(pub, typ string) {
		for _, r := range out {
			if r.agent == pub {
				return
			}
		}
		a, ok := s.agents[pub]
		if !ok {
			return
		}
		r := routed{agent: pub, typ: typ}
		switch {
		case ev.PubKey == pub:
			r.drop = DropSelf
		case !a.has(typ) || !a.active || !lifecycle.Ticks(a.lifecycle, typ == contracts.TriggerZap):
			r.drop = DropNotSubscribed
		case typ == contracts.TriggerZap:
			if err := ValidateZap(ev, pub); err != nil {
				s.log.Debug("zap receipt dropped", "event", ev.ID, "err", err)
				r.drop = DropInvalidZap
			}
		}
		out = append(out, r)
	}
	if ev.Kind == kindChannelMsg {
		for _, ch := range tagValues(ev.Tags, "e") {
			for _, pub := range s.chans[ch] {
				consider(pub, channelTrigger)
			}
		}
	} else {
		typ := triggerType(ev.Kind)
		for _, p := range tagValues(ev.Tags, "p") {
			consider(p, typ)
		}
	}
	if len(out) == 0 {
		out = append(out, routed{drop: DropNotSubscribed})
	}
	return out
}

// publish sends a trigger with its deterministic Nats-Msg-Id and counts it.
func (s *Scheduler) publish(ctx context.Context, agent string, t contracts.Trigger, source string) error {
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: contracts.TriggerSubject(agent), Data: data, Header: nats.Header{}}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.cfg.JS.PublishMsg(pctx, msg, jetstream.WithMsgID(msgID(agent, t.ID))); err != nil {
		return err
	}
	s.m.triggers.WithLabelValues(t.Type, source).Inc()
	return nil
}

func cursorKey(url string) string {
	return "relay." + base64.RawURLEncoding.EncodeToString([]byte(url))
}

// since is where a (re)subscription starts: the cursor minus the overlap, or, for a relay never
// seen, now minus the overlap (a new scheduler does not replay a relay's whole history).
func (m *relayManager) since(ctx context.Context, url string) int64 {
	m.mu.Lock()
	c := m.cursor(url)
	loaded := c.loaded
	m.mu.Unlock()
	if !loaded {
		var at int64
		e, err := m.s.kv.Get(ctx, cursorKey(url))
		if err == nil {
			at, _ = strconv.ParseInt(string(e.Value()), 10, 64)
		} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
			m.s.log.Warn("read relay cursor", "relay", url, "err", err)
		}
		m.mu.Lock()
		c.loaded, c.flushed = true, at
		c.at = max(c.at, at)
		m.mu.Unlock()
	}
	overlap := int64(m.s.cfg.CursorOverlap / time.Second)
	m.mu.Lock()
	defer m.mu.Unlock()
	if c.at > 0 {
		return c.at - overlap
	}
	return m.s.cfg.Now().Unix() - overlap
}

// advance moves the cursor to an event just processed. created_at is the author's claim:
// clamped to now, or one event dated next year would make every restart skip a year.
func (m *relayManager) advance(url string, createdAt int64) {
	createdAt = min(createdAt, m.s.cfg.Now().Unix())
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.cursor(url)
	c.at = max(c.at, createdAt)
}

func (m *relayManager) flushCursors(ctx context.Context) {
	type w struct {
		url string
		v   int64
	}
	var todo []w
	m.mu.Lock()
	for u, c := range m.cursors {
		v := c.at
		if c.pinned > 0 && c.pinned < v {
			v = c.pinned
		}
		v = c.pending.below(v)
		if v > c.flushed {
			todo = append(todo, w{u, v})
		}
	}
	m.mu.Unlock()
	for _, x := range todo {
		if err := kvMax(ctx, m.s.kv, cursorKey(x.url), x.v); err != nil {
			if ctx.Err() != nil {
				return // stopping: Run writes it again with a fresh context
			}
			m.s.log.Warn("write relay cursor", "relay", x.url, "err", err)
			continue
		}
		m.mu.Lock()
		m.cursors[x.url].flushed = x.v
		m.mu.Unlock()
	}
}
