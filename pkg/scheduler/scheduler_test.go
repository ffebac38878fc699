package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/registry"
)

// Three replicas fire every slot of every agent; JetStream keeps exactly one trigger per
// (agent, slot), and no slot in the run is skipped.
func TestReplicasPublishOneTriggerPerSlot(t *testing.T) {
	e := newEnv(t)
	var agents []testAgent
	for i := range 3 {
		a := newAgent(t)
		e.register(t, a, fmt.Sprintf("ha%d", i), nil)
		agents = append(agents, a)
	}
	var reps []*replica
	for range 3 {
		reps = append(reps, e.start(t, nil))
	}
	for _, a := range agents {
		await(t, 15*time.Second, "3 slots per agent", func() bool { return len(e.slots(t, a.pub)) >= 3 })
	}
	for _, r := range reps {
		r.stop()
	}
	stored := 0
	for _, a := range agents {
		slots := e.slots(t, a.pub)
		var keys []int64
		for s, n := range slots {
			if n != 1 {
				t.Errorf("agent %s slot %d stored %d times, want 1", a.pub[:8], s, n)
			}
			keys = append(keys, s)
		}
		slices.Sort(keys)
		if int64(len(keys)) != keys[len(keys)-1]-keys[0]+1 {
			t.Errorf("agent %s: slots not contiguous: %v", a.pub[:8], keys)
		}
		stored += len(keys)
	}
	var published float64
	for _, r := range reps {
		published += r.triggersTotal(contracts.TriggerHeartbeat, SourceHeartbeat)
	}
	// Every replica published: dedupe, not luck, is what kept one per slot.
	if published < float64(2*stored) {
		t.Errorf("replicas published %v heartbeats for %d stored; expected each slot from several replicas", published, stored)
	}
}

// Registry changes take effect live: a stopped agent and a hibernating one get no more
// heartbeats, a low-balance one gets them less often, dead and spawning ones never, and a
// restarted agent resumes.
func TestRegistryChangesTakeEffect(t *testing.T) {
	e := newEnv(t)
	act, stop, hib, low, dead, spawn := newAgent(t), newAgent(t), newAgent(t), newAgent(t), newAgent(t), newAgent(t)
	e.register(t, act, "act", nil)
	e.register(t, stop, "stop", nil)
	e.register(t, hib, "hib", nil)
	e.register(t, low, "low", func(a *registry.Agent) { a.Lifecycle = "low_balance" })
	e.register(t, dead, "dead", func(a *registry.Agent) { a.Lifecycle = "dead" })
	e.register(t, spawn, "spawn", func(a *registry.Agent) { a.Lifecycle = "spawning" })
	// Business hours: one agent always open, one open only on a day three days away (never
	// during this test, even across midnight UTC).
	open, closed := newAgent(t), newAgent(t)
	e.register(t, open, "open", func(a *registry.Agent) { a.BusinessHours = "mon,tue,wed,thu,fri,sat,sun 00:00-24:00" })
	far := strings.ToLower(time.Now().UTC().AddDate(0, 0, 3).Weekday().String()[:3])
	e.register(t, closed, "closed", func(a *registry.Agent) { a.BusinessHours = far + " 00:00-24:00" })
	r := e.start(t, func(c *Config) { c.LowBalanceFactor = 3 })
	began := time.Now()

	await(t, 10*time.Second, "first heartbeats", func() bool {
		return len(e.slots(t, stop.pub)) >= 1 && len(e.slots(t, hib.pub)) >= 1
	})
	e.update(t, stop, func(a *registry.Agent) { a.Active = false })
	e.update(t, hib, func(a *registry.Agent) { a.Lifecycle = "hibernating" })
	// A heartbeat popped just before the change may still go out; anything due later may not.
	cut := time.Now().Add(500 * time.Millisecond).UnixMilli()
	after := func(ag testAgent, every int64) int {
		n := 0
		for s := range e.slots(t, ag.pub) {
			if SlotDue(ag.key, every, s) > cut {
				n++
			}
		}
		return n
	}
	await(t, 15*time.Second, "4 more heartbeats of the active agent", func() bool { return after(act, 1000) >= 4 })
	if n := after(stop, 1000); n != 0 {
		t.Errorf("stopped agent got %d heartbeats after the stop", n)
	}
	if n := after(hib, 1000); n != 0 {
		t.Errorf("hibernating agent got %d heartbeats", n)
	}
	if n := len(e.slots(t, dead.pub)) + len(e.slots(t, spawn.pub)); n != 0 {
		t.Errorf("dead and spawning agents got %d heartbeats", n)
	}
	if n := len(e.slots(t, closed.pub)); n != 0 {
		t.Errorf("agent outside business hours got %d heartbeats", n)
	}
	if n := len(e.slots(t, open.pub)); n < 4 {
		t.Errorf("agent inside business hours got %d heartbeats", n)
	}
	elapsed := time.Since(began)
	nLow, nAct := len(e.slots(t, low.pub)), len(e.slots(t, act.pub))
	if maxLow := int(elapsed/(3*time.Second)) + 1; nLow < 1 || nLow > maxLow {
		t.Errorf("low-balance agent: %d heartbeats in %v, want 1..%d (every 3s)", nLow, elapsed, maxLow)
	}
	if nLow*2 > nAct {
		t.Errorf("low-balance agent ticked %d times, active %d: not slower", nLow, nAct)
	}
	if g := value(r.m.agents.WithLabelValues("hibernating")); g != 1 {
		t.Errorf("sa_scheduler_agents{lifecycle=hibernating} = %v, want 1", g)
	}

	// Start again: heartbeats resume without restarting the scheduler.
	e.update(t, stop, func(a *registry.Agent) { a.Active = true })
	e.update(t, hib, func(a *registry.Agent) { a.Lifecycle = "active" })
	resumed := time.Now().UnixMilli()
	for _, ag := range []testAgent{stop, hib} {
		await(t, 10*time.Second, "heartbeats resume", func() bool {
			for s := range e.slots(t, ag.pub) {
				if SlotDue(ag.key, 1000, s) > resumed {
					return true
				}
			}
			return false
		})
	}
}

// A scheduler stopped across several due slots fires, on start, the latest one once: no
// heartbeat lost, no burst; and a second restart with nothing missed fires nothing.
func TestRestartFiresMissedSlotOnce(t *testing.T) {
	e := newEnv(t)
	var clock atomic.Int64
	clock.Store(time.Now().UnixMilli())
	now := func() time.Time { return time.UnixMilli(clock.Load()) }
	ag := newAgent(t)
	e.register(t, ag, "sleeper", func(a *registry.Agent) { a.HeartbeatSeconds = 10 })

	a := e.start(t, func(c *Config) { c.Now = now })
	down := clock.Load()
	await(t, 5*time.Second, "heartbeat mark written", func() bool { return readMark(t, e) >= down })
	a.stop()
	if n := len(e.slots(t, ag.pub)); n != 0 {
		t.Fatalf("%d heartbeats before any slot came due", n)
	}

	clock.Add(35_000) // three or four slots come due while no scheduler runs
	b := e.start(t, func(c *Config) { c.Now = now })
	await(t, 10*time.Second, "the missed heartbeat", func() bool { return len(e.slots(t, ag.pub)) >= 1 })
	b.stop()
	slots := e.slots(t, ag.pub)
	want := SlotAt(ag.key, 10_000, clock.Load())
	if len(slots) != 1 || slots[want] != 1 {
		t.Fatalf("after restart: slots %v, want only the latest missed slot %d once", slots, want)
	}
	if got := b.triggersTotal(contracts.TriggerHeartbeat, SourceHeartbeat); got != 1 {
		t.Errorf("restarted scheduler published %v heartbeats, want 1", got)
	}

	c := e.start(t, func(c *Config) { c.Now = now })
	c.stop()
	if got := c.triggersTotal(contracts.TriggerHeartbeat, SourceHeartbeat); got != 0 {
		t.Errorf("restart with nothing missed published %v heartbeats", got)
	}
}

func readMark(t *testing.T, e *env) int64 {
	kv, err := e.js.KeyValue(context.Background(), contracts.BucketCursors)
	if err != nil {
		t.Fatal(err)
	}
	en, err := kv.Get(context.Background(), keyHeartbeatMark)
	if err != nil {
		return 0
	}
	var v int64
	fmt.Sscan(string(en.Value()), &v)
	return v
}

// A funding notice wakes a hibernating agent once (a repeated notice included), and wakes no
// dead or stopped one.
func TestFundedWakesHibernatingAgent(t *testing.T) {
	e := newEnv(t)
	hib, dead, stopped := newAgent(t), newAgent(t), newAgent(t)
	for name, ag := range map[string]testAgent{"hib": hib, "dead": dead, "stopped": stopped} {
		e.register(t, ag, name, func(a *registry.Agent) {
			a.HeartbeatSeconds = 3600
			a.Lifecycle = map[string]string{"hib": "hibernating", "dead": "dead", "stopped": "active"}[name]
			a.Active = name != "stopped"
		})
	}
	r := e.start(t, nil)
	ctx := context.Background()
	notify := func(ag testAgent, hash string) {
		b, _ := json.Marshal(contracts.Funded{Agent: ag.pub, AmountSats: 5000, PaymentHash: hash, At: time.Now().Unix()})
		if _, err := e.js.Publish(ctx, contracts.FundedSubject(ag.pub), b); err != nil {
			t.Fatal(err)
		}
	}
	notify(dead, "aa01")
	notify(stopped, "aa02")
	notify(hib, "aa03")
	notify(hib, "aa03") // the payer may repeat a notice
	await(t, 10*time.Second, "funded trigger", func() bool { return len(e.triggers(t, hib.pub)) >= 1 })
	await(t, 10*time.Second, "both notices handled", func() bool { return r.triggersTotal(contracts.TriggerFunded, SourceFunded) >= 2 })
	got := e.triggers(t, hib.pub)
	if len(got) != 1 || got[0].Type != contracts.TriggerFunded || got[0].ID != "funded:aa03" {
		t.Fatalf("hibernating agent triggers: %+v, want one funded:aa03", got)
	}
	if n := len(e.triggers(t, dead.pub)) + len(e.triggers(t, stopped.pub)); n != 0 {
		t.Errorf("dead or stopped agent woken %d times", n)
	}
}
