package scheduler

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/lifecycle"
)

// consumerFunded is the durable consumer the replicas share on sa.funded.*: a notice that
// arrives while every replica is down is still delivered on start, and each notice goes to
// one replica (the Nats-Msg-Id would collapse duplicates anyway).
const consumerFunded = "scheduler_funded"

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
		MaxDeliver:    10,
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
	a, ok := s.agent(agent)
	if !ok || !a.active || !lifecycle.Ticks(a.lifecycle, true) {
		_ = msg.Ack()
		return
	}
	at := f.At
	if at == 0 {
		at = s.cfg.Now().Unix()
	}
	t := contracts.Trigger{ID: fundedID(f.PaymentHash), Type: contracts.TriggerFunded, At: at,
		Note: "funded " + itoa(f.AmountSats) + " sats"}
	if err := s.publish(ctx, agent, t, SourceFunded); err != nil {
		s.log.Warn("funded trigger not published", "agent", agent, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.Ack()
}
