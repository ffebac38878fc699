package scheduler

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/relay"
)

// pauseTriggers makes every publish to sa.trigger.* fail (no stream listens: JetStream answers
// "no responders") until the returned func restores the stream. The stream keeps its messages
// and its dedupe window throughout.
func (e *env) pauseTriggers(t *testing.T) (resume func()) {
	t.Helper()
	ctx := context.Background()
	st, err := e.js.Stream(ctx, contracts.StreamTriggers)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	paused := cfg
	paused.Subjects = []string{"test.paused." + contracts.StreamTriggers}
	if _, err := e.js.UpdateStream(ctx, paused); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
}

func readCursor(t *testing.T, e *env, url string) int64 {
	kv, err := e.js.KeyValue(context.Background(), contracts.BucketCursors)
	if err != nil {
		t.Fatal(err)
	}
	en, err := kv.Get(context.Background(), cursorKey(url))
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseInt(string(en.Value()), 10, 64)
	return v
}

func (b *beats) lowestPending() (int64, bool) {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	if len(b.pending) == 0 {
		return 0, false
	}
	v := b.pending.below(1<<62) + 1
	return v, true
}

// While JetStream refuses trigger publishes, the heartbeats and relay events that come due are
// held for retry, and the heartbeat mark and relay cursor stay below them; once it accepts them
// again every one is stored exactly once and the mark and cursor move past them.
func TestFailedPublishesAreRetried(t *testing.T) {
	e := newEnv(t)
	rl, err := relay.Start(relay.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rl.Close() })
	url := nostr.NormalizeURL(rl.URL())
	bot := newAgent(t)
	e.register(t, bot, "bot", func(a *registry.Agent) {
		a.Triggers = []string{"mention"}
		a.Relays = []string{rl.URL()}
	})
	r := e.start(t, func(c *Config) { c.CursorOverlap = time.Second })
	await(t, 10*time.Second, "relay subscription", func() bool { return value(r.m.relayConnected.WithLabelValues(url)) == 1 })

	ctx := context.Background()
	client, err := nostr.RelayConnect(ctx, rl.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	user := nostr.GeneratePrivateKey()
	send := func(content string, createdAt nostr.Timestamp) nostr.Event {
		t.Helper()
		ev := nostr.Event{Kind: 1, CreatedAt: createdAt, Content: content, Tags: nostr.Tags{{"p", bot.pub}}}
		if err := ev.Sign(user); err != nil {
			t.Fatal(err)
		}
		if err := client.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	events := func() map[string]int {
		out := map[string]int{}
		for _, tr := range e.triggers(t, bot.pub) {
			if tr.Event != nil {
				out[tr.Event.ID]++
			}
		}
		return out
	}
	before := send("before", nostr.Now())
	await(t, 10*time.Second, "trigger and cursor of the event before the outage", func() bool {
		return events()[before.ID] == 1 && readCursor(t, e, url) >= int64(before.CreatedAt)
	})
	await(t, 10*time.Second, "a heartbeat before the outage", func() bool { return len(e.slots(t, bot.pub)) >= 1 })

	resume := e.pauseTriggers(t)
	outageFrom := time.Now().UnixMilli()
	await(t, 5*time.Second, "clock past the first event", func() bool { return nostr.Now() > before.CreatedAt })
	during := send("during", nostr.Now())
	// Two heartbeat slots and the relay event fail and wait for a retry.
	await(t, 10*time.Second, "failed publishes queued", func() bool { return r.retry.Len() >= 3 })
	firstFailed, ok := r.hb.lowestPending()
	if !ok || firstFailed < outageFrom-1000 {
		t.Fatalf("lowest pending heartbeat due %d (ok %v), outage began %d", firstFailed, ok, outageFrom)
	}
	// Let a few flushes run: none may move the mark or cursor past what is not stored.
	deadline := time.Now().Add(3 * r.cfg.FlushInterval)
	for time.Now().Before(deadline) {
		if m := readMark(t, e); m >= firstFailed {
			t.Fatalf("heartbeat mark %d written past the unpublished slot due %d", m, firstFailed)
		}
		if c := readCursor(t, e, url); c >= int64(during.CreatedAt) {
			t.Fatalf("relay cursor %d written past the unpublished event at %d", c, during.CreatedAt)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(events()); n != 1 {
		t.Fatalf("%d relay triggers stored during the outage, want only the one before", n)
	}
	resume()
	outageTo := time.Now().UnixMilli()

	await(t, 15*time.Second, "retry queue drained", func() bool { return r.retry.Len() == 0 })
	await(t, 10*time.Second, "event from the outage stored", func() bool { return events()[during.ID] >= 1 })
	await(t, 10*time.Second, "a heartbeat after the outage", func() bool {
		for s := range e.slots(t, bot.pub) {
			if SlotDue(bot.key, 1000, s) > outageTo {
				return true
			}
		}
		return false
	})
	await(t, 10*time.Second, "mark and cursor past the outage", func() bool {
		return readMark(t, e) >= outageTo && readCursor(t, e, url) >= int64(during.CreatedAt)
	})
	r.stop()

	for id, n := range events() {
		if n != 1 {
			t.Errorf("event %s stored %d times, want 1", id[:8], n)
		}
	}
	slots := e.slots(t, bot.pub)
	var keys []int64
	inOutage := 0
	for s, n := range slots {
		if n != 1 {
			t.Errorf("slot %d stored %d times, want 1", s, n)
		}
		keys = append(keys, s)
		if d := SlotDue(bot.key, 1000, s); d >= outageFrom && d <= outageTo {
			inOutage++
		}
	}
	slices.Sort(keys)
	if int64(len(keys)) != keys[len(keys)-1]-keys[0]+1 {
		t.Errorf("slots not contiguous: %v", keys)
	}
	if inOutage < 2 {
		t.Errorf("%d slots due during the outage stored, want at least 2 (slots %v, outage %d..%d)", inOutage, keys, outageFrom, outageTo)
	}
	if n := r.droppedTotal(DropPublishFailed); n != 0 {
		t.Errorf("publish_failed drops = %v with a queue that never filled", n)
	}
	if n := r.triggersTotal("mention", SourceRelay); n != 2 {
		t.Errorf("mention triggers counted %v, want 2", n)
	}
	if n := r.triggersTotal(contracts.TriggerHeartbeat, SourceHeartbeat); int(n) != len(keys) {
		t.Errorf("heartbeats counted %v, stored %d", n, len(keys))
	}
}

// A retry queue that is full drops what does not fit, counts it, and keeps the mark below it
// for the rest of the process: the next start fires the agent's current slot instead.
func TestRetryQueueOverflowIsCounted(t *testing.T) {
	e := newEnv(t)
	a := newAgent(t)
	e.register(t, a, "a", nil)
	r := e.start(t, func(c *Config) { c.RetryQueueMax = 1 })
	await(t, 10*time.Second, "a heartbeat", func() bool { return len(e.slots(t, a.pub)) >= 1 })
	resume := e.pauseTriggers(t)
	await(t, 10*time.Second, "a heartbeat dropped", func() bool { return r.droppedTotal(DropPublishFailed) >= 1 })
	resume()
	await(t, 10*time.Second, "retry queue drained", func() bool { return r.retry.Len() == 0 })
	pinned := r.hb.pinned.Load()
	if pinned <= 0 {
		t.Fatal("dropped heartbeat did not pin the mark")
	}
	await(t, 10*time.Second, "a heartbeat after the outage", func() bool {
		for s := range e.slots(t, a.pub) {
			if SlotDue(a.key, 1000, s) > pinned+2000 {
				return true
			}
		}
		return false
	})
	r.stop()
	if m := readMark(t, e); m > pinned {
		t.Errorf("heartbeat mark %d written past the dropped slot (pinned at %d)", m, pinned)
	}
}
