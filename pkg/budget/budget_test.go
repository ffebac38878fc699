package budget

import (
	"errors"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/nipsa"
)

func TestCheckOrderAndEdges(t *testing.T) {
	l := nipsa.BudgetLimits{DailyLimitSats: 100, PerTickLimitSats: 40, ReservedSats: 50}
	now := time.Date(2026, 12, 7, 23, 59, 59, 0, time.UTC)
	today := Counters{Date: "2026-12-07", DailySpent: 70, TickID: "t1", TickSpent: 10}
	cases := []struct {
		name    string
		balance int64
		amount  int64
		c       Counters
		at      time.Time
		tick    string
		want    error
	}{
		{"zero amount", 1000, 0, Counters{}, now, "t1", ErrAmount},
		{"negative amount", 1000, -5, Counters{}, now, "t1", ErrAmount},
		{"over balance beats everything", 10, 11, today, now, "t1", ErrOverBalance},
		{"exactly balance but reserve", 60, 60, Counters{}, now, "t1", ErrReserve},
		{"exactly balance minus reserve", 80, 30, Counters{}, now, "t1", nil},
		{"one over reserve line", 80, 31, Counters{}, now, "t1", ErrReserve},
		{"daily exactly at limit", 1000, 30, today, now, "t2", nil},
		{"daily one over", 1000, 31, today, now, "t2", ErrDailyLimit},
		{"tick exactly at limit", 1000, 30, Counters{Date: "2026-12-07", TickID: "t1", TickSpent: 10}, now, "t1", nil},
		{"tick one over", 1000, 31, Counters{Date: "2026-12-07", TickID: "t1", TickSpent: 10}, now, "t1", ErrTickLimit},
		{"daily checked before tick", 1000, 35, today, now, "t1", ErrDailyLimit},
		{"new UTC day resets daily", 1000, 40, Counters{Date: "2026-12-06", DailySpent: 100}, now, "t9", nil},
		{"rollover at midnight exactly", 1000, 40, today, time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC), "t2", nil},
		{"non-UTC clock uses UTC day", 1000, 31, today, time.Date(2026, 12, 8, 1, 0, 0, 0, time.FixedZone("x", 3*3600)), "t2", ErrDailyLimit},
		{"zero balance", 0, 1, Counters{}, now, "t1", ErrOverBalance},
	}
	for _, tc := range cases {
		err := Check(tc.balance, tc.amount, l, tc.c, tc.at, tc.tick)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestSpendRefund(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	c := Counters{}.Spend(30, now, "a").Spend(20, now, "a")
	if c.DailySpent != 50 || c.TickSpent != 50 {
		t.Fatalf("spend: %+v", c)
	}
	c = c.Spend(5, now, "b")
	if c.DailySpent != 55 || c.TickSpent != 5 {
		t.Fatalf("new tick: %+v", c)
	}
	c = c.Refund(5, now, "b")
	if c.DailySpent != 50 || c.TickSpent != 0 {
		t.Fatalf("refund: %+v", c)
	}
	if r := Reason(Check(1, 2, Defaults, c, now, "b")); r != "balance" {
		t.Fatalf("reason %q", r)
	}
}
