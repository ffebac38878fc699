package scheduler

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
)

// keyHeartbeatMark in sa_cursors holds "every heartbeat due at or before this unix ms has been
// published" (the highest any replica reached). A starting scheduler fires, once, each agent's
// current slot if it came due after the mark: the heartbeat missed while no replica ran, and
// never more than one per agent however long the outage.
const keyHeartbeatMark = "heartbeat.fired"

// batchMax bounds one pass of the loop, so the wheel's lock is held briefly and a publish
// batch stays under the JetStream async in-flight limit.
const batchMax = 1024

// loop drives a Wheel from a clock: it sleeps until the earliest due time (or a poke when an
// earlier one is added) and hands what came due to fire. The benchmark drives this same code
// with a scaled clock.
type loop struct {
	mu    sync.Mutex
	wheel *Wheel
	poke  chan struct{}
	now   func() time.Time
	// scale > 1 speeds the clock up for the benchmark: a wait of d on the clock sleeps d/scale.
	scale float64
	fire  func(ctx context.Context, now time.Time, due []Due)
	// passed is told that everything due at or before nowMs has been handed to fire.
	passed func(nowMs int64)
}

func newLoop(sizeHint int, now func() time.Time, fire func(context.Context, time.Time, []Due)) *loop {
	return &loop{wheel: NewWheel(sizeHint), poke: make(chan struct{}, 1), now: now, fire: fire}
}

// set (re)schedules pub; everyMs 0 unschedules it. See Wheel.Set for catchUpFromMs.
func (l *loop) set(pub [32]byte, everyMs, catchUpFromMs int64) {
	l.mu.Lock()
	before, had := l.wheel.NextDue()
	l.wheel.Set(pub, everyMs, l.now().UnixMilli(), catchUpFromMs)
	after, has := l.wheel.NextDue()
	l.mu.Unlock()
	if has && (!had || after < before) {
		select {
		case l.poke <- struct{}{}:
		default:
		}
	}
}

func (l *loop) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var buf []Due
	for ctx.Err() == nil {
		now := l.now()
		l.mu.Lock()
		buf = l.wheel.PopDue(now.UnixMilli(), batchMax, buf[:0])
		next, ok := l.wheel.NextDue()
		l.mu.Unlock()
		if len(buf) > 0 {
			l.fire(ctx, now, buf)
			if len(buf) == batchMax {
				continue
			}
		}
		if l.passed != nil {
			l.passed(now.UnixMilli())
		}
		wait := time.Hour
		if ok {
			wait = time.UnixMilli(next).Sub(l.now())
			if l.scale > 1 {
				wait = time.Duration(float64(wait) / l.scale)
			}
		}
		if wait <= 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-l.poke:
		}
	}
}

// beats is the scheduler's heartbeat side: the loop, publishing, and the mark.
type beats struct {
	s *Scheduler
	*loop
	ready        atomic.Bool
	firedThrough atomic.Int64 // unix ms; 0 until ready
	pinned       atomic.Int64 // unix ms below which a publish failed and was dropped; 0: none
	flushed      int64

	pmu     sync.Mutex
	pending pins // due times (unix ms) of heartbeats in the retry queue
}

func newBeats(s *Scheduler) *beats {
	b := &beats{s: s, pending: pins{}}
	b.loop = newLoop(0, s.cfg.Now, b.publish)
	b.passed = func(nowMs int64) {
		// Before the registry is read in full the wheel is incomplete: advancing the mark
		// then would hide slots of agents not yet loaded.
		if b.ready.Load() {
			b.firedThrough.Store(nowMs)
		}
	}
	return b
}

// setReady lets the mark advance and wakes the loop, so the first mark is taken now rather than
// at the next heartbeat (which may be a whole interval away).
func (b *beats) setReady() {
	b.ready.Store(true)
	select {
	case b.poke <- struct{}{}:
	default:
	}
}

func (b *beats) loadMark(ctx context.Context) (int64, error) {
	e, err := b.s.kv.Get(ctx, keyHeartbeatMark)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return -1, nil // first start ever: nothing was missed
	}
	if err != nil {
		return 0, fmt.Errorf("scheduler: read heartbeat mark: %w", err)
	}
	v, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err != nil {
		b.s.log.Warn("unreadable heartbeat mark ignored", "value", string(e.Value()))
		return -1, nil
	}
	return v, nil
}

func (b *beats) flushLoop(ctx context.Context) {
	t := time.NewTicker(b.s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.flushMark(ctx)
			b.s.relays.flushCursors(ctx)
		}
	}
}

func (b *beats) flushMark(ctx context.Context) {
	// firedThrough first: every heartbeat that failed at or before it is already pending.
	v := b.firedThrough.Load()
	if p := b.pinned.Load(); p > 0 && p < v {
		v = p
	}
	b.pmu.Lock()
	v = b.pending.below(v)
	b.pmu.Unlock()
	if v <= 0 || v <= b.flushed {
		return
	}
	if err := kvMax(ctx, b.s.kv, keyHeartbeatMark, v); err != nil {
		if ctx.Err() != nil {
			return // stopping: Run writes it again with a fresh context
		}
		b.s.log.Warn("write heartbeat mark", "err", err)
		return
	}
	b.flushed = v
}

// publish sends one trigger per due heartbeat, asynchronously, and waits for the acks. The
// Nats-Msg-Id (agent and slot) is what makes replicas safe: each publishes, JetStream keeps one.
// A heartbeat that is not stored goes to the retry queue, and holds the mark below its slot
// until it is.
func (b *beats) publish(ctx context.Context, now time.Time, due []Due) {
	s := b.s
	type sent struct {
		f     jetstream.PubAckFuture
		agent string
		t     contracts.Trigger
		data  []byte
		dueMs int64
	}
	futures := make([]sent, 0, len(due))
	for _, d := range due {
		agent := hex.EncodeToString(d.Pub[:])
		if a, ok := s.agent(agent); ok && a.hours != nil && !a.hours.Contains(time.UnixMilli(d.DueMs)) {
			continue // outside business hours: the slot is skipped, not deferred
		}
		t := contracts.Trigger{ID: heartbeatID(agent, d.Slot), Type: contracts.TriggerHeartbeat, At: d.DueMs / 1000}
		data, _ := json.Marshal(t)
		msg := &nats.Msg{Subject: contracts.TriggerSubject(agent), Data: data, Header: nats.Header{}}
		f, err := s.cfg.JS.PublishMsgAsync(msg, jetstream.WithMsgID(msgID(agent, t.ID)))
		if err != nil {
			b.failed(agent, t, data, d.DueMs, err)
			continue
		}
		futures = append(futures, sent{f, agent, t, data, d.DueMs})
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	expired := false
	for i, x := range futures {
		if expired {
			b.failed(x.agent, x.t, x.data, x.dueMs, errors.New("no ack within 10s"))
			continue
		}
		select {
		case <-x.f.Ok():
			// Counted once acked (a retried heartbeat is counted by the retry instead).
			s.m.triggers.WithLabelValues(contracts.TriggerHeartbeat, SourceHeartbeat).Inc()
			s.m.lag.Observe(float64(now.UnixMilli()-x.dueMs) / 1000)
		case err := <-x.f.Err():
			b.failed(x.agent, x.t, x.data, x.dueMs, err)
		case <-timeout.C:
			expired = true
			b.failed(x.agent, x.t, x.data, x.dueMs, errors.New("no ack within 10s"))
		case <-ctx.Done():
			// Stopping: whatever is unconfirmed is pinned, so the last mark stays below it and
			// the next start fires the slot again (the dedupe absorbs it if it did go out).
			for _, y := range futures[i:] {
				b.failed(y.agent, y.t, y.data, y.dueMs, ctx.Err())
			}
			return
		}
	}
}

// failed pins the mark below a heartbeat that was not stored and queues it for retry; the pin
// is released once the retry stores it. If the queue is full the pin stays for the rest of the
// process, so the next start fires that agent's current slot instead of assuming it went out.
func (b *beats) failed(agent string, t contracts.Trigger, data []byte, dueMs int64, err error) {
	b.s.log.Warn("heartbeat not published; will retry", "agent", agent, "due", dueMs, "err", err)
	b.pmu.Lock()
	b.pending.add(dueMs)
	b.pmu.Unlock()
	it := newRetryItem(agent, t, SourceHeartbeat, data, func() {
		b.pmu.Lock()
		b.pending.release(dueMs)
		b.pmu.Unlock()
	})
	it.dueMs = dueMs
	if b.s.retry.add(it) {
		return
	}
	b.pmu.Lock()
	b.pending.release(dueMs)
	b.pmu.Unlock()
	for {
		p := b.pinned.Load()
		if p > 0 && p <= dueMs-1 {
			break
		}
		if b.pinned.CompareAndSwap(p, dueMs-1) {
			break
		}
	}
}

// kvMax raises key to v unless it already holds a larger value; replicas share the key, and a
// lagging replica must not move it back.
func kvMax(ctx context.Context, kv jetstream.KeyValue, key string, v int64) error {
	for range 5 {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			if _, err := kv.Create(ctx, key, []byte(strconv.FormatInt(v, 10))); err == nil {
				return nil
			} else if !errors.Is(err, jetstream.ErrKeyExists) {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if cur, err := strconv.ParseInt(string(e.Value()), 10, 64); err == nil && cur >= v {
			return nil
		}
		if _, err := kv.Update(ctx, key, []byte(strconv.FormatInt(v, 10)), e.Revision()); err == nil {
			return nil
		} else if !isConflict(err) {
			return err
		}
	}
	return fmt.Errorf("scheduler: %s: too many concurrent updates", key)
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		errors.Is(err, jetstream.ErrKeyExists)
}
