package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/natsx"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/ticker"
)

// FloorOps is what one floor tick does: the work a tick cannot avoid, counted from
// pkg/ticker/tick.go and ticker.go, with no relay, provider, payer or model.
type FloorOps struct {
	// Signs: every event the tick publishes (TickRequest, actions, sealed state, trajectory
	// session and events, TickResult), plus the NIP-90 job request and the provider's invoice
	// and result.
	Signs int `json:"signs"`
	// Verifies: each of those events checked once by whoever receives it.
	Verifies int `json:"verifies"`
	// NIP44: the state opened once and sealed once.
	NIP44 int `json:"nip44"`
	// KV: registry get x2, done-marker get, inbox get x3 + create/update x2, lease create and
	// delete, last-tick get, state get + CAS update, done and last puts, and the payer
	// ledger's account get, intent create and intent update.
	KV int `json:"kv"`
	// AsyncPublishes: the tick's events into SA_PUBLISH, acks awaited; plus the trigger
	// itself, published and consumed with an explicit ack.
	AsyncPublishes int `json:"async_publishes"`
}

func floorOps(eventsPerTick float64) FloorOps {
	e := int(math.Round(eventsPerTick))
	if e < 3 {
		e = 12 // no pipeline figure: a typical tick (request, post, state, session, 7 steps, result)
	}
	return FloorOps{Signs: e + 3, Verifies: e + 3, NIP44: 2, KV: 18, AsyncPublishes: e}
}

type floorAgent struct {
	pub, sk string
	sealer  *nipsa.Sealer
}

// runFloor drives the floor tick with the same busy-agents loop as the pipeline.
func runFloor(ctx context.Context, o Options, ops FloorOps) (Figures, error) {
	dir, err := os.MkdirTemp("", "openagents-bench-floor-*")
	if err != nil {
		return Figures{}, err
	}
	defer os.RemoveAll(dir)
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{Dir: filepath.Join(dir, "jetstream")})
	if err != nil {
		return Figures{}, err
	}
	defer ns.Close()
	nc, js, err := natsx.ConnectAndProvision(ctx, natsx.ConnectOptions{URL: ns.URL(), Name: "bench-floor"}, contracts.ProvisionOptions{})
	if err != nil {
		return Figures{}, err
	}
	defer nc.Close()
	kv := map[string]jetstream.KeyValue{}
	for _, b := range []string{contracts.BucketRegistry, contracts.BucketTicks, contracts.BucketInbox, contracts.BucketLeases,
		contracts.BucketState, contracts.BucketLedger} {
		if kv[b], err = js.KeyValue(ctx, b); err != nil {
			return Figures{}, err
		}
	}

	agents := make([]floorAgent, o.Agents)
	pubkeys := make([]string, o.Agents)
	if err := parallel(ctx, o.Agents, 16, func(i int) error {
		sk := nostr.GeneratePrivateKey()
		s, err := nipsa.NewSealer(sk)
		if err != nil {
			return err
		}
		a := floorAgent{pub: s.PubKey(), sk: sk, sealer: s}
		ev, _, err := s.Seal(nipsa.AgentState{Beliefs: map[string]any{}, Goals: []nipsa.Goal{{ID: "g1",
			Description: "keep the benchmark busy", Priority: 1, Status: nipsa.GoalActive}}})
		if err != nil {
			return err
		}
		if err := ev.Sign(sk); err != nil {
			return err
		}
		b, _ := json.Marshal(ev)
		if _, err := kv[contracts.BucketState].Put(ctx, a.pub, b); err != nil {
			return err
		}
		reg, _ := json.Marshal(map[string]any{"pubkey": a.pub, "name": "floor-" + strconv.Itoa(i), "active": true})
		if _, err := kv[contracts.BucketRegistry].Put(ctx, a.pub, reg); err != nil {
			return err
		}
		agents[i], pubkeys[i] = a, a.pub
		return nil
	}); err != nil {
		return Figures{}, err
	}

	dv := newDriver(pubkeys)
	index := dv.index
	cons, err := js.CreateOrUpdateConsumer(ctx, contracts.StreamTriggers, ticker.ConsumerConfig(90*time.Second))
	if err != nil {
		return Figures{}, err
	}
	work, cancelWork := context.WithCancel(ctx)
	defer cancelWork()
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		tickErr error
	)
	sem := make(chan struct{}, 64) // the ticker's default workers
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			agent := strings.TrimPrefix(msg.Subject(), contracts.SubjectTriggerPrefix)
			i, ok := index[agent]
			if !ok {
				_ = msg.Term()
				return
			}
			if err := floorTick(work, js, kv, &agents[i], msg, ops); err != nil && work.Err() == nil {
				errMu.Lock()
				tickErr = err
				errMu.Unlock()
			}
			dv.done(agent, nipsa.TickSuccess)
		}()
	}, jetstream.PullMaxMessages(64))
	if err != nil {
		return Figures{}, err
	}
	send := func(ctx context.Context, i, seq int) error {
		trg := contracts.Trigger{ID: "floor-" + pubkeys[i][:16] + "-" + strconv.Itoa(seq), Type: contracts.TriggerManual,
			At: time.Now().Unix(), Note: "load"}
		b, _ := json.Marshal(trg)
		_, err := js.Publish(ctx, contracts.TriggerSubject(pubkeys[i]), b, jetstream.WithMsgID(trg.ID))
		return err
	}
	fmt.Fprintf(o.Progress, "floor: %d agents busy for %s after a %s warm-up (%d signs, %d verifies, %d NIP-44, %d KV, %d async publishes per tick)\n",
		o.Agents, o.FloorDuration, o.Warmup, ops.Signs, ops.Verifies, ops.NIP44, ops.KV, ops.AsyncPublishes)
	fig, err := dv.window(ctx, o, o.FloorDuration, o.Agents, send, func(bool) {})
	cc.Stop()
	cancelWork()
	wg.Wait()
	if err != nil {
		return fig, err
	}
	errMu.Lock()
	defer errMu.Unlock()
	return fig, tickErr
}

type floorInbox struct {
	Triggers []contracts.Trigger `json:"triggers"`
}

// floorTick does, in the ticker's order, the operations of one tick that cannot be avoided.
func floorTick(ctx context.Context, js jetstream.JetStream, kv map[string]jetstream.KeyValue, a *floorAgent, msg jetstream.Msg, ops FloorOps) error {
	reg, ticks, inbox, leases, states, ledger := kv[contracts.BucketRegistry], kv[contracts.BucketTicks], kv[contracts.BucketInbox],
		kv[contracts.BucketLeases], kv[contracts.BucketState], kv[contracts.BucketLedger]
	var trg contracts.Trigger
	if err := json.Unmarshal(msg.Data(), &trg); err != nil {
		return err
	}
	// handle: registry, done marker, inbox append, ack.
	if _, err := reg.Get(ctx, a.pub); err != nil {
		return err
	}
	done := a.pub + "." + strings.ReplaceAll(trg.ID, ":", "_")
	if _, err := ticks.Get(ctx, done); err == nil || !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("done marker: %v", err)
	}
	updateInbox := func(fn func(*floorInbox)) error {
		var in floorInbox
		e, err := inbox.Get(ctx, a.pub)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return err
		}
		var rev uint64
		if err == nil {
			rev = e.Revision()
			_ = json.Unmarshal(e.Value(), &in)
		}
		fn(&in)
		b, _ := json.Marshal(in)
		if rev == 0 {
			_, err = inbox.Create(ctx, a.pub, b)
		} else {
			_, err = inbox.Update(ctx, a.pub, b, rev)
		}
		return err
	}
	if err := updateInbox(func(in *floorInbox) { in.Triggers = append(in.Triggers, trg) }); err != nil {
		return err
	}
	_ = msg.Ack()
	// drain: lease, registry, last tick, inbox.
	leaseRev, err := leases.Create(ctx, a.pub, []byte(`{"holder":"floor"}`))
	if err != nil {
		return err
	}
	if _, err := reg.Get(ctx, a.pub); err != nil {
		return err
	}
	_, _ = ticks.Get(ctx, a.pub+".last")
	if _, err := inbox.Get(ctx, a.pub); err != nil {
		return err
	}
	// state: get and open.
	e, err := states.Get(ctx, a.pub)
	if err != nil {
		return err
	}
	var stEv nostr.Event
	if err := json.Unmarshal(e.Value(), &stEv); err != nil {
		return err
	}
	st, err := a.sealer.Open(&stEv)
	if err != nil {
		return err
	}
	// events: signed, and each verified once by its receiver; the sealed state is one of them.
	st.TickCount++
	st.LastTick = time.Now().Unix()
	st.Memory = append(st.Memory, nipsa.Memory{Type: "tick", Content: "tick " + trg.ID + ": success (post)", Timestamp: st.LastTick})
	if n := len(st.Memory); n > 50 {
		st.Memory = st.Memory[n-50:]
	}
	sealed, _, err := a.sealer.Seal(st)
	if err != nil {
		return err
	}
	evs := make([]nostr.Event, 0, ops.Signs)
	evs = append(evs, sealed)
	filler := strings.Repeat("x", 200)
	for len(evs) < ops.Signs {
		evs = append(evs, nostr.Event{Kind: nipsa.KindTrajectoryEvent, Content: `{"type":"Message","subtype":"observation","content":"` + filler + `"}`,
			Tags: nostr.Tags{{"d", trg.ID + ":" + strconv.Itoa(len(evs))}, {"tick", trg.ID}}})
	}
	for i := range evs {
		evs[i].CreatedAt = nostr.Now()
		if err := evs[i].Sign(a.sk); err != nil {
			return err
		}
	}
	for i := range min(ops.Verifies, len(evs)) {
		if ok, err := evs[i].CheckSignature(); !ok {
			return fmt.Errorf("signature: %v", err)
		}
	}
	b, _ := json.Marshal(evs[0])
	if _, err := states.Update(ctx, a.pub, b, e.Revision()); err != nil {
		return err
	}
	// the payer's ledger: account, intent recorded before paying, outcome after.
	_, _ = ledger.Get(ctx, "acct."+a.pub)
	intent := "pay." + strings.ReplaceAll(trg.ID, ":", "_")
	irev, err := ledger.Create(ctx, intent, []byte(`{"status":"in_flight"}`))
	if err != nil {
		return err
	}
	if _, err := ledger.Update(ctx, intent, []byte(`{"status":"succeeded"}`), irev); err != nil {
		return err
	}
	// durable: the tick's events into SA_PUBLISH, acks awaited.
	futures := make([]jetstream.PubAckFuture, 0, ops.AsyncPublishes)
	for i := range ops.AsyncPublishes {
		ev := evs[i%len(evs)]
		pb, _ := json.Marshal(contracts.PublishRequest{Event: ev})
		f, err := js.PublishAsync(contracts.PublishSubject(a.pub), pb, jetstream.WithMsgID(ev.ID))
		if err != nil {
			return err
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// after: done and last markers, inbox cleanup, lease release.
	if _, err := ticks.Put(ctx, done, []byte("floor")); err != nil {
		return err
	}
	if _, err := ticks.Put(ctx, a.pub+".last", []byte(strconv.FormatInt(time.Now().UnixMilli(), 10))); err != nil {
		return err
	}
	if err := updateInbox(func(in *floorInbox) { in.Triggers = in.Triggers[:0] }); err != nil {
		return err
	}
	return leases.Delete(ctx, a.pub, jetstream.LastRevision(leaseRev))
}

func runtimeCPUs() int { return runtime.NumCPU() }
