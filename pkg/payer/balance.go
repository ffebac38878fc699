package payer

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/registry"
)

// balanceTimeout bounds one wallet balance read; past it the balance is unknown.
const balanceTimeout = 10 * time.Second

func (p *Payer) handleBalance(ctx context.Context, msg *nats.Msg) any {
	return p.Balance(ctx, contracts.AgentFromSubject(msg.Subject))
}

// Balance reads agent's balance from its wallet. A confirmed read may move the lifecycle (the
// registry is updated by CAS and the change published); a failed read answers Known=false and
// changes nothing.
func (p *Payer) Balance(ctx context.Context, agent string) contracts.BalanceReply {
	a, _, err := p.reg.Get(ctx, agent)
	if err != nil {
		return contracts.BalanceReply{Error: err.Error()}
	}
	now := p.now()
	acct, _, err := p.ledger.account(ctx, agent)
	if err != nil {
		return contracts.BalanceReply{Lifecycle: a.Lifecycle, Error: err.Error()}
	}
	reply := contracts.BalanceReply{
		DailyBurnSats:  acct.DailyBurn(now),
		SpentTodaySats: acct.SpentToday(now),
		Lifecycle:      a.Lifecycle,
	}
	w, err := p.wallets.Wallet(ctx, a)
	if err != nil {
		reply.Error = err.Error()
		return reply
	}
	msat, err := p.walletBalance(ctx, w, acct)
	if err != nil {
		// Unknown is never zero: a failed read counted as 0 has killed agents elsewhere.
		reply.Error = err.Error()
		return reply
	}
	reply.Known, reply.BalanceSats = true, msat/1000
	reply.Lifecycle = p.applyLifecycle(ctx, agent, reply.BalanceSats, reply.DailyBurnSats)
	return reply
}

// refreshLifecycle re-reads the balance so the lifecycle follows the money; errors are left
// for the next read.
func (p *Payer) refreshLifecycle(ctx context.Context, agent string) {
	_ = p.Balance(ctx, agent)
}

// applyLifecycle moves the agent's lifecycle after a confirmed balance read and returns it.
// The registry write is a CAS; only the writer that changes it publishes the change.
func (p *Payer) applyLifecycle(ctx context.Context, agent string, sats, burn int64) string {
	var from, to lifecycle.State
	a, err := p.reg.Update(ctx, agent, func(a *registry.Agent) error {
		prev := lifecycle.Spawning
		if a.Lifecycle != "" {
			s, err := lifecycle.Parse(a.Lifecycle)
			if err != nil {
				return err // not ours to repair
			}
			prev = s
		}
		next := lifecycle.Next(prev, lifecycle.Confirmed(sats), burn, p.th)
		if next == prev {
			return errNoWrite
		}
		from, to = prev, next
		a.Lifecycle = string(next)
		return nil
	})
	if err != nil {
		if !errors.Is(err, errNoWrite) {
			p.log.Warn("lifecycle update", "agent", agent, "err", err)
		}
		cur, _, gerr := p.reg.Get(ctx, agent)
		if gerr != nil {
			return ""
		}
		return cur.Lifecycle
	}
	p.log.Info("lifecycle changed", "agent", agent, "name", a.Name, "from", from, "to", to, "balance_sats", sats, "daily_burn_sats", burn)
	b, _ := json.Marshal(contracts.LifecycleChange{Agent: agent, From: string(from), To: string(to), BalanceSats: sats, At: p.now().Unix()})
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := p.js.Publish(pctx, contracts.LifecycleSubject(agent), b); err != nil {
		p.log.Warn("publish lifecycle change", "agent", agent, "err", err)
	}
	return a.Lifecycle
}
