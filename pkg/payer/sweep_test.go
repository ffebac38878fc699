package payer_test

import (
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/payer"
)

// A Hibernating agent never ticks, so nothing asks for its balance: the payer's sweep must
// move it to Dead once its confirmed balance is zero, and leave a funded one alone.
func TestSweepMovesHibernatingToDead(t *testing.T) {
	e := newEnv(t, func(_ *env, c *payer.Config) { c.ReconcileEvery = 50 * time.Millisecond })
	lim := nipsa.BudgetLimits{DailyLimitSats: 1000, PerTickLimitSats: 100}
	broke := e.agent("broke", 0, lim, lifecycle.Hibernating)
	saver := e.agent("saver", 500, lim, lifecycle.Hibernating)
	dead := e.agent("ghost", 0, lim, lifecycle.Dead)
	deadline := time.Now().Add(10 * time.Second)
	for e.lifecycleOf(broke) != string(lifecycle.Dead) {
		if time.Now().After(deadline) {
			t.Fatalf("hibernating agent with 0 sats is %s, want dead", e.lifecycleOf(broke))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := e.lifecycleOf(saver); got != string(lifecycle.Hibernating) {
		t.Fatalf("hibernating agent with 500 sats moved to %s", got)
	}
	if got := e.lifecycleOf(dead); got != string(lifecycle.Dead) {
		t.Fatalf("dead agent moved to %s", got)
	}
}
