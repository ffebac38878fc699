// Package budget holds the spending rules of SPEC.md: four checks in a fixed order, each its
// own error, on UTC calendar days. It does no I/O; the payer is the single authority that
// applies it (serialised per agent) so limits hold under concurrency.
package budget

import (
	"errors"
	"fmt"
	"time"

	"github.com/openagents/runtime/pkg/nipsa"
)

// The four refusals, in the order they are checked.
var (
	ErrOverBalance = errors.New("budget: amount exceeds balance")
	ErrReserve     = errors.New("budget: amount would dip into the reserve")
	ErrDailyLimit  = errors.New("budget: daily limit exceeded")
	ErrTickLimit   = errors.New("budget: per-tick limit exceeded")
	ErrAmount      = errors.New("budget: amount must be positive")
)

// Defaults seen upstream (SPEC.md).
var Defaults = nipsa.BudgetLimits{DailyLimitSats: 10_000, PerTickLimitSats: 1_000, ReservedSats: 5_000}

// Reason is a short, bounded label for a refusal (metrics, PayResult.Code).
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrOverBalance):
		return "balance"
	case errors.Is(err, ErrReserve):
		return "reserve"
	case errors.Is(err, ErrDailyLimit):
		return "daily"
	case errors.Is(err, ErrTickLimit):
		return "per_tick"
	case errors.Is(err, ErrAmount):
		return "amount"
	}
	return "other"
}

// Counters are an agent's spend so far: per UTC day and per tick.
type Counters struct {
	Date       string `json:"date"` // YYYY-MM-DD, UTC
	DailySpent int64  `json:"daily_spent_sats"`
	TickID     string `json:"tick_id,omitempty"`
	TickSpent  int64  `json:"tick_spent_sats"`
}

// Day is the UTC calendar day of t.
func Day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// Roll returns c as seen at now for tickID: a new UTC day resets the daily counter, a new tick
// resets the tick counter.
func (c Counters) Roll(now time.Time, tickID string) Counters {
	if d := Day(now); c.Date != d {
		c.Date, c.DailySpent = d, 0
	}
	if c.TickID != tickID {
		c.TickID, c.TickSpent = tickID, 0
	}
	return c
}

// Check applies the four checks of SPEC.md in order to spending amount at now within tickID.
func Check(balance, amount int64, l nipsa.BudgetLimits, c Counters, now time.Time, tickID string) error {
	if amount <= 0 {
		return fmt.Errorf("%w: %d", ErrAmount, amount)
	}
	c = c.Roll(now, tickID)
	if amount > balance {
		return fmt.Errorf("%w: %d > %d", ErrOverBalance, amount, balance)
	}
	if amount > balance-l.ReservedSats {
		return fmt.Errorf("%w: %d > %d - %d reserved", ErrReserve, amount, balance, l.ReservedSats)
	}
	if c.DailySpent+amount > l.DailyLimitSats {
		return fmt.Errorf("%w: %d + %d > %d", ErrDailyLimit, c.DailySpent, amount, l.DailyLimitSats)
	}
	if c.TickSpent+amount > l.PerTickLimitSats {
		return fmt.Errorf("%w: %d + %d > %d", ErrTickLimit, c.TickSpent, amount, l.PerTickLimitSats)
	}
	return nil
}

// Spend records amount against the counters (after Check passed).
func (c Counters) Spend(amount int64, now time.Time, tickID string) Counters {
	c = c.Roll(now, tickID)
	c.DailySpent += amount
	c.TickSpent += amount
	return c
}

// Refund gives back a reservation whose payment failed for certain.
func (c Counters) Refund(amount int64, now time.Time, tickID string) Counters {
	if c.Date == Day(now) {
		c.DailySpent = max(0, c.DailySpent-amount)
	}
	if c.TickID == tickID {
		c.TickSpent = max(0, c.TickSpent-amount)
	}
	return c
}
