package payer

import (
	"context"

	"github.com/openagents/runtime/pkg/lifecycle"
)

// sweepLifecycles re-reads the balance of every agent that is not Dead, so the lifecycle
// follows the money even for agents that no longer tick: a Hibernating agent never asks for
// its balance, and without this it could never reach Dead (SPEC: Hibernating -(0)-> Dead).
// Each read is a confirmed read or nothing: a failed read changes nothing.
func (p *Payer) sweepLifecycles(ctx context.Context) {
	agents, err := p.reg.List(ctx)
	if err != nil {
		return
	}
	for _, a := range agents {
		if ctx.Err() != nil {
			return
		}
		if a.Lifecycle == string(lifecycle.Dead) {
			continue
		}
		_ = p.Balance(ctx, a.Pubkey)
	}
}
