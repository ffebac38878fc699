package scheduler

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
)

// DefaultRetryQueueMax is how many failed trigger publishes a replica holds for retry.
const DefaultRetryQueueMax = 10_000

// Retry backoff per item: doubles from retryMinBackoff to retryMaxBackoff, so a NATS outage of
// a few seconds costs a few seconds of delay once it ends, not a minute.
const (
	retryMinBackoff = 200 * time.Millisecond
	retryMaxBackoff = 5 * time.Second
)

// retryItem is a trigger whose publish failed. The payload is kept as first sent: the retry is
// byte-for-byte the same message with the same Nats-Msg-Id, so JetStream stores it once
// whether the first attempt in fact got through or another replica published it.
type retryItem struct {
	agent    string
	typ      string
	source   string
	msgID    string
	data     []byte
	dueMs    int64 // heartbeats: the slot's due time, for the lag histogram; else 0
	attempts int
	next     time.Time
	stored   bool
	// done runs once the trigger is stored: it releases the heartbeat mark or relay cursor
	// the failure held back.
	done func()
}

// retryQueue holds failed publishes, bounded, and retries them with backoff until they are
// stored. Memory is bounded by max; an item that does not fit is counted as dropped
// (publish_failed) and its caller keeps the mark or cursor below it for the rest of the process
// (a restart then recovers it).
type retryQueue struct {
	s    *Scheduler
	max  int
	wake chan struct{}

	mu    sync.Mutex
	items []*retryItem
}

func newRetryQueue(s *Scheduler, max int) *retryQueue {
	return &retryQueue{s: s, max: max, wake: make(chan struct{}, 1)}
}

// add queues it for retry; false if the queue is full (the caller's pin then stays).
func (q *retryQueue) add(it *retryItem) bool {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.mu.Unlock()
		q.s.m.dropped.WithLabelValues(DropPublishFailed).Inc()
		q.s.log.Error("retry queue full: trigger dropped", "agent", it.agent, "msg_id", it.msgID, "max", q.max)
		return false
	}
	it.attempts = 1
	it.next = time.Now().Add(retryMinBackoff)
	q.items = append(q.items, it)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// Len is the number of triggers waiting for a retry.
func (q *retryQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// newRetryItem builds the item for a trigger publish to agent that failed.
func newRetryItem(agent string, t contracts.Trigger, source string, data []byte, done func()) *retryItem {
	if data == nil {
		data, _ = json.Marshal(t)
	}
	return &retryItem{agent: agent, typ: t.Type, source: source, msgID: msgID(agent, t.ID), data: data, done: done}
}

func (q *retryQueue) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var batch []*retryItem
	for ctx.Err() == nil {
		now := time.Now()
		next := now.Add(time.Hour)
		batch = batch[:0]
		q.mu.Lock()
		for _, it := range q.items {
			if !it.next.After(now) && len(batch) < batchMax {
				batch = append(batch, it)
			} else if it.next.Before(next) {
				next = it.next
			}
		}
		q.mu.Unlock()
		if len(batch) > 0 {
			q.attempt(ctx, batch)
			continue
		}
		timer.Reset(next.Sub(now))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-q.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
	}
}

// attempt publishes batch asynchronously and waits for the acks; stored items leave the queue,
// the others back off.
func (q *retryQueue) attempt(ctx context.Context, batch []*retryItem) {
	s := q.s
	futures := make([]jetstream.PubAckFuture, len(batch))
	for i, it := range batch {
		msg := &nats.Msg{Subject: contracts.TriggerSubject(it.agent), Data: it.data, Header: nats.Header{}}
		if f, err := s.cfg.JS.PublishMsgAsync(msg, jetstream.WithMsgID(it.msgID)); err == nil {
			futures[i] = f
		}
	}
	ok := make([]bool, len(batch))
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	var lastErr error
wait:
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			ok[i] = true
		case lastErr = <-f.Err():
		case <-timeout.C:
			break wait
		case <-ctx.Done():
			return // the items stay queued, their pins held: Run's last flush stays below them
		}
	}
	now := time.Now()
	stored, failed := 0, 0
	q.mu.Lock()
	for i, it := range batch {
		if !ok[i] {
			failed++
			it.next = now.Add(min(retryMinBackoff<<min(it.attempts, 16), retryMaxBackoff))
			it.attempts++
			continue
		}
		stored++
		it.stored = true
	}
	if stored > 0 {
		q.items = slices.DeleteFunc(q.items, func(it *retryItem) bool { return it.stored })
	}
	left := len(q.items)
	q.mu.Unlock()
	for i, it := range batch {
		if !ok[i] {
			continue
		}
		s.m.triggers.WithLabelValues(it.typ, it.source).Inc()
		if it.dueMs > 0 {
			s.m.lag.Observe(float64(s.cfg.Now().UnixMilli()-it.dueMs) / 1000)
		}
		if it.done != nil {
			it.done()
		}
	}
	if failed > 0 {
		s.log.Warn("trigger retry failed", "failed", failed, "stored", stored, "queued", left, "err", lastErr)
	} else {
		s.log.Info("triggers stored on retry", "stored", stored, "queued", left)
	}
}

// pins is a multiset of positions (unix ms or s) held back by publishes waiting for a retry:
// a mark or cursor is not persisted past the lowest. Guarded by its owner's mutex.
type pins map[int64]int

func (p pins) add(v int64) { p[v]++ }

func (p pins) release(v int64) {
	if p[v] <= 1 {
		delete(p, v)
		return
	}
	p[v]--
}

// below lowers v to just under the lowest pin, if any.
func (p pins) below(v int64) int64 {
	for k := range p {
		v = min(v, k-1)
	}
	return v
}
