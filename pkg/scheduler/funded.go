package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/registry"
)

// consumerFunded is the durable consumer the replicas share on sa.funded.*: a notice that
// arrives while every replica is down is still delivered on start, and each notice goes to
// one replica (the Nats-Msg-Id would collapse duplicates anyway).
const consumerFunded = "scheduler_funded"

// fundedMaxDeliver is the consumer's MaxDeliver: a notice whose trigger still cannot be
// published on its last delivery goes to the retry queue.
const fundedMaxDeliver = 10

// fundedConsumer creates (or finds) the durable consumer; Run does it before Ready so a notice
// published after Ready is never missed by DeliverNew.
func (s *Scheduler) fundedConsumer(ctx context.Context) (jetstream.Consumer, error) {
	return s.cfg.JS.CreateOrUpdateConsumer(ctx, contracts.StreamEvents, jetstream.ConsumerConfig{
		Durable:       consumerFunded,
		Description:   "scheduler: funding notices wake agents",
		FilterSubject: contracts.SubjectFundedPrefix + "*",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    fundedMaxDeliver,
	})
}

// consumeFunded wakes agents whose funds arrived: a Hibernating agent ticks on nothing else.
func (s *Scheduler) consumeFunded(ctx context.Context, cons jetstream.Consumer) {
	// Routing needs the registry view; a notice handled before it is loaded would be dropped.
	select {
	case <-ctx.Done():
		return
	case <-s.ready:
	}
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		cc, err := cons.Consume(func(msg jetstream.Msg) { s.onFunded(ctx, msg) })
		if err != nil {
			s.log.Warn("funded consume", "err", err)
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		<-ctx.Done()
		cc.Stop()
		return
	}
}

func (s *Scheduler) onFunded(ctx context.Context, msg jetstream.Msg) {
	var f contracts.Funded
	if err := json.Unmarshal(msg.Data(), &f); err != nil || f.PaymentHash == "" {
		s.log.Warn("malformed funded notice dropped", "subject", msg.Subject(), "err", err)
		_ = msg.Term()
		return
	}
	agent := contracts.AgentFromSubject(msg.Subject())
	if a, ok := s.agent(agent); !ok || !a.active || !lifecycle.Ticks(a.lifecycle, true) {
		// The registry watch can lag the payer, which moves a newly funded agent up from
		// Spawning before it publishes the notice: ask the registry itself before dropping it.
		fresh, _, err := s.cfg.Registry.Get(ctx, agent)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			_ = msg.NakWithDelay(time.Second)
			return
		}
		if err != nil || !fresh.Active || !lifecycle.Ticks(lifecycle.State(fresh.Lifecycle), true) {
			_ = msg.Ack()
			return
		}
	}
	at := f.At
	if at == 0 {
		at = s.cfg.Now().Unix()
	}
	t := contracts.Trigger{ID: fundedID(f.PaymentHash), Type: contracts.TriggerFunded, At: at,
		Note: "funded " + itoa(f.AmountSats) + " sats"}
	if err := s.publish(ctx, agent, t, SourceFunded); err != nil {
		// The notice stays in SA_EVENTS and is redelivered with backoff, which survives a
		// restart; on its last delivery the trigger moves to the in-memory retry queue.
		var n uint64
		if md, err := msg.Metadata(); err == nil {
			n = md.NumDelivered
		}
		if n >= fundedMaxDeliver && s.retry.add(newRetryItem(agent, t, SourceFunded, nil, nil)) {
			s.log.Warn("funded trigger not published; queued for retry", "agent", agent, "err", err)
			_ = msg.Ack()
			return
		}
		s.log.Warn("funded trigger not published; notice redelivered", "agent", agent, "delivery", n, "err", err)
		_ = msg.NakWithDelay(fundedRedeliveryDelay(n))
		return
	}
	_ = msg.Ack()
}

// fundedRedeliveryDelay doubles from 1s per delivery, up to 30s: the first nine deliveries
// span about two and a half minutes of publish failures.
func fundedRedeliveryDelay(delivered uint64) time.Duration {
	if delivered < 1 {
		delivered = 1
	}
	return min(time.Second<<min(delivered-1, 5), 30*time.Second)
}
