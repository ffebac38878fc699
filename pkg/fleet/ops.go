package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/identity"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/publisher"
	"github.com/openagents/runtime/pkg/registry"
)

var (
	ErrDead   = errors.New("fleet: agent is dead")
	ErrAmount = errors.New("fleet: amount must be a positive number of sats")
)

func (f *Fleet) secretKey(ctx context.Context, pub string) (string, error) {
	if f.Vault == nil {
		return "", ErrNoVault
	}
	s, err := f.Vault.Get(ctx, pub)
	if err != nil {
		return "", err
	}
	id, err := identity.FromMnemonic(s.Mnemonic)
	if err != nil {
		return "", err
	}
	return id.SecretKey, nil
}

// SetActive starts or stops an agent: the registry flips at once (the scheduler watches it)
// and a new AgentSchedule is published.
func (f *Fleet) SetActive(ctx context.Context, ref string, active bool) (registry.Agent, error) {
	a, err := f.Registry.Resolve(ctx, ref)
	if err != nil {
		return a, err
	}
	if a.Lifecycle == string(lifecycle.Dead) && active {
		return a, fmt.Errorf("%w: %s cannot be started", ErrDead, a.Name)
	}
	sk, err := f.secretKey(ctx, a.Pubkey)
	if err != nil {
		return a, err
	}
	a, err = f.Registry.Update(ctx, a.Pubkey, func(x *registry.Agent) error { x.Active = active; return nil })
	if err != nil {
		return a, err
	}
	ev, err := nipsa.ScheduleEvent(scheduleOf(a))
	if err != nil {
		return a, err
	}
	return a, f.signAndPublish(ctx, sk, a, ev)
}

func (f *Fleet) signAndPublish(ctx context.Context, sk string, a registry.Agent, evs ...nostr.Event) error {
	signed := make([]nostr.Event, 0, len(evs))
	for _, ev := range evs {
		ev.CreatedAt = nostr.Now()
		if ev.Tags == nil {
			ev.Tags = nostr.Tags{}
		}
		if err := ev.Sign(sk); err != nil {
			return err
		}
		signed = append(signed, ev)
	}
	return publisher.Enqueue(ctx, f.JS, a.Pubkey, a.Relays, signed...)
}

// Fund asks the payer for an invoice that funds the agent.
func (f *Fleet) Fund(ctx context.Context, ref string, sats int64) (registry.Agent, string, error) {
	if sats <= 0 {
		return registry.Agent{}, "", fmt.Errorf("%w: %d", ErrAmount, sats)
	}
	a, err := f.Registry.Resolve(ctx, ref)
	if err != nil {
		return a, "", err
	}
	inv, err := f.Pay.Invoice(ctx, a.Pubkey, sats, "fund "+a.Name)
	if err != nil {
		return a, "", err
	}
	return a, inv.Bolt11, nil
}

// Trigger publishes an operator trigger, exactly as `nats pub sa.trigger.<agent>` would.
func (f *Fleet) Trigger(ctx context.Context, ref, typ, note string) (registry.Agent, contracts.Trigger, error) {
	a, err := f.Registry.Resolve(ctx, ref)
	if err != nil {
		return a, contracts.Trigger{}, err
	}
	if typ == "" {
		typ = contracts.TriggerManual
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	trg := contracts.Trigger{ID: "manual:" + hex.EncodeToString(b), Type: typ, At: time.Now().Unix(), Note: note}
	data, _ := json.Marshal(trg)
	if _, err := f.JS.Publish(ctx, contracts.TriggerSubject(a.Pubkey), data, jetstream.WithMsgID(trg.ID)); err != nil {
		return a, trg, fmt.Errorf("publish trigger: %w", err)
	}
	return a, trg, nil
}

// Killed reports what kill did.
type Killed struct {
	Agent        registry.Agent `json:"agent"`
	BalanceSats  int64          `json:"balance_sats"`
	BalanceKnown bool           `json:"balance_known"`
	SweptSats    int64          `json:"swept_sats,omitempty"`
	SweepStatus  string         `json:"sweep_status,omitempty"`
}

// Kill makes an agent Dead and stopped, publishes its final state and schedule, and reports
// (and, given a destination invoice, sweeps) its remaining funds. Nothing is deleted: the
// registry record, sealed keys and ledger stay for audit.
func (f *Fleet) Kill(ctx context.Context, ref, sweepTo string) (Killed, error) {
	a, err := f.Registry.Resolve(ctx, ref)
	if err != nil {
		return Killed{}, err
	}
	sk, err := f.secretKey(ctx, a.Pubkey)
	if err != nil {
		return Killed{}, err
	}
	out := Killed{}
	if sweepTo != "" {
		res, err := f.Pay.Pay(ctx, a.Pubkey, contracts.PayRequest{IdempotencyKey: "sweep:" + a.Pubkey, Bolt11: sweepTo,
			MaxSats: 1 << 50, TickID: "sweep", Purpose: "sweep"})
		if err != nil {
			return out, fmt.Errorf("sweep: outcome unknown, agent not killed: %w", err)
		}
		out.SweepStatus = res.Status
		if res.Status == contracts.PayStatusSucceeded {
			out.SweptSats = res.AmountSats
		}
	}
	a, err = f.Registry.Update(ctx, a.Pubkey, func(x *registry.Agent) error {
		x.Active = false
		x.Lifecycle = string(lifecycle.Dead)
		return nil
	})
	if err != nil {
		return out, err
	}
	out.Agent = a
	if bal, err := f.Pay.Balance(ctx, a.Pubkey); err == nil && bal.Known {
		out.BalanceSats, out.BalanceKnown = bal.BalanceSats, true
	}
	evs := []nostr.Event{}
	if sched, err := nipsa.ScheduleEvent(scheduleOf(a)); err == nil {
		evs = append(evs, sched)
	}
	if st, ok := f.finalState(ctx, sk, a); ok {
		evs = append(evs, st)
	}
	return out, f.signAndPublish(ctx, sk, a, evs...)
}

// finalState re-seals the last stored state with a memory of the death.
func (f *Fleet) finalState(ctx context.Context, sk string, a registry.Agent) (nostr.Event, bool) {
	kv, err := f.JS.KeyValue(ctx, contracts.BucketState)
	if err != nil {
		return nostr.Event{}, false
	}
	e, err := kv.Get(ctx, a.Pubkey)
	if err != nil {
		return nostr.Event{}, false
	}
	var ev nostr.Event
	if json.Unmarshal(e.Value(), &ev) != nil {
		return nostr.Event{}, false
	}
	st, err := nipsa.Open(sk, &ev)
	if err != nil {
		return nostr.Event{}, false
	}
	st.Memory = append(st.Memory, nipsa.Memory{Type: "death", Content: "killed by the operator", Timestamp: time.Now().Unix()})
	sealed, _, err := nipsa.Seal(sk, st)
	if err != nil {
		return nostr.Event{}, false
	}
	return sealed, true
}
