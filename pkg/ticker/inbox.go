package ticker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/registry"
)

// inboxRecord holds the triggers an agent has not had a tick for yet. They stay here until the
// tick that answers them is durable, so a crash mid-tick loses none.
type inboxRecord struct {
	Triggers []contracts.Trigger `json:"triggers"`
	Dropped  int                 `json:"dropped,omitempty"`
}

func hashKey(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:12])
}

func (t *Ticker) readInbox(ctx context.Context, agent string) (inboxRecord, uint64, error) {
	e, err := t.inbox.Get(ctx, agent)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return inboxRecord{}, 0, nil
	}
	if err != nil {
		return inboxRecord{}, 0, err
	}
	var r inboxRecord
	if len(e.Value()) > 0 {
		_ = json.Unmarshal(e.Value(), &r)
	}
	return r, e.Revision(), nil
}

func (t *Ticker) inboxLen(ctx context.Context, agent string) (int, error) {
	r, _, err := t.readInbox(ctx, agent)
	return len(r.Triggers), err
}

// updateInbox applies fn with compare-and-swap, retrying lost races.
func (t *Ticker) updateInbox(ctx context.Context, agent string, fn func(*inboxRecord)) error {
	for {
		r, rev, err := t.readInbox(ctx, agent)
		if err != nil {
			return err
		}
		fn(&r)
		b, _ := json.Marshal(r)
		if rev == 0 {
			_, err = t.inbox.Create(ctx, agent, b)
		} else {
			_, err = t.inbox.Update(ctx, agent, b, rev)
		}
		if err == nil {
			return nil
		}
		if !registry.IsConflict(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func (t *Ticker) appendInbox(ctx context.Context, agent string, trg contracts.Trigger) error {
	return t.updateInbox(ctx, agent, func(r *inboxRecord) {
		for _, have := range r.Triggers {
			if have.ID == trg.ID {
				return
			}
		}
		if len(r.Triggers) >= t.cfg.MaxInbox {
			r.Dropped++
			return
		}
		r.Triggers = append(r.Triggers, trg)
	})
}

// removeInbox drops the triggers a durable tick answered.
func (t *Ticker) removeInbox(ctx context.Context, agent string, answered []contracts.Trigger, dropped int) error {
	gone := make(map[string]bool, len(answered))
	for _, a := range answered {
		gone[a.ID] = true
	}
	return t.updateInbox(ctx, agent, func(r *inboxRecord) {
		kept := r.Triggers[:0]
		for _, trg := range r.Triggers {
			if !gone[trg.ID] {
				kept = append(kept, trg)
			}
		}
		r.Triggers = kept
		r.Dropped = max(0, r.Dropped-dropped)
	})
}

func lastKey(agent string) string { return agent + ".last" }

// runInbox runs one tick for the agent's pending triggers while holding its lease. It reports
// whether the inbox held triggers and whether their tick is durable; a tick that is not (the
// agent's key is unavailable, NATS refused the events) leaves them for the sweeper to retry.
func (t *Ticker) runInbox(ctx context.Context, agent string) (ran, durable bool) {
	a, _, err := t.cfg.Registry.Get(ctx, agent)
	if err != nil {
		return false, false
	}
	// Rate limit paid ticks per agent; triggers arriving meanwhile keep coalescing.
	minGap := t.cfg.MinTickInterval
	if a.MinTickSeconds > 0 {
		minGap = time.Duration(a.MinTickSeconds) * time.Second
	}
	if e, err := t.ticks.Get(ctx, lastKey(agent)); err == nil && minGap > 0 {
		last, _ := strconv.ParseInt(string(e.Value()), 10, 64)
		if wait := time.UnixMilli(last).Add(minGap).Sub(t.cfg.Now()); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return false, false
			}
		}
	}
	r, _, err := t.readInbox(ctx, agent)
	if err != nil || len(r.Triggers) == 0 {
		return false, false
	}
	out := t.tick(ctx, a, r.Triggers, r.Dropped)
	if out.durable {
		for _, trg := range r.Triggers {
			_, _ = t.ticks.Put(ctx, doneKey(agent, trg.ID), []byte(out.TickID))
		}
		_, _ = t.ticks.Put(ctx, lastKey(agent), []byte(strconv.FormatInt(t.cfg.Now().UnixMilli(), 10)))
		if err := t.removeInbox(ctx, agent, r.Triggers, r.Dropped); err != nil {
			t.cfg.Log.Warn("inbox cleanup", "agent", a.Name, "err", err)
		}
		if t.cfg.OnTick != nil {
			t.cfg.OnTick(out.Outcome)
		}
	}
	return true, out.durable
}
