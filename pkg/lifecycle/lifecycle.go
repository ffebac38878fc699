// Package lifecycle is the agent state machine of SPEC.md as a pure function:
// Spawning -> Active -> LowBalance -> Hibernating -> Dead, Dead terminal, and an unknown
// balance never changing anything (a failed read counted as zero killed agents elsewhere).
package lifecycle

import "fmt"

type State string

const (
	Spawning    State = "spawning"
	Active      State = "active"
	LowBalance  State = "low_balance"
	Hibernating State = "hibernating"
	Dead        State = "dead"
)

// All states, in order of decline.
var All = []State{Spawning, Active, LowBalance, Hibernating, Dead}

// Parse validates a state name.
func Parse(s string) (State, error) {
	for _, st := range All {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("lifecycle: unknown state %q", s)
}

// Thresholds; zero values take the defaults seen upstream.
type Thresholds struct {
	LowRunwayDays float64 // LowBalance when runway (balance / daily burn) is below this: 7
	HibernateSats int64   // Hibernating below this balance: 1000
}

func (t Thresholds) withDefaults() Thresholds {
	if t.LowRunwayDays <= 0 {
		t.LowRunwayDays = 7
	}
	if t.HibernateSats <= 0 {
		t.HibernateSats = 1000
	}
	return t
}

// Balance is a balance read. Known=false means the read failed or timed out.
type Balance struct {
	Known bool
	Sats  int64
}

// Confirmed is a successful balance read.
func Confirmed(sats int64) Balance { return Balance{Known: true, Sats: sats} }

// Unknown is a failed balance read.
var Unknown = Balance{}

// RunwayDays is balance / daily burn; with no burn the runway is unbounded (-1).
func RunwayDays(balanceSats, dailyBurnSats int64) float64 {
	if dailyBurnSats <= 0 {
		return -1
	}
	return float64(balanceSats) / float64(dailyBurnSats)
}

// Next is the state after a balance read. Dead is terminal. A Spawning agent stays Spawning
// until it is first funded. Dead is only reached from Hibernating on a confirmed zero, so one
// bad zero read cannot kill an Active agent.
func Next(prev State, b Balance, dailyBurnSats int64, th Thresholds) State {
	if prev == Dead || !b.Known {
		return prev
	}
	th = th.withDefaults()
	switch {
	case b.Sats <= 0:
		switch prev {
		case Spawning:
			return Spawning
		case Hibernating:
			return Dead
		default:
			return Hibernating
		}
	case b.Sats < th.HibernateSats:
		return Hibernating
	}
	if r := RunwayDays(b.Sats, dailyBurnSats); r >= 0 && r < th.LowRunwayDays {
		return LowBalance
	}
	return Active
}

// Ticks reports whether an agent in s runs ticks for a trigger of the given kind: Active and
// LowBalance tick; Hibernating wakes only for incoming funds; Spawning and Dead never tick.
func Ticks(s State, fundsArrived bool) bool {
	switch s {
	case Active, LowBalance:
		return true
	case Hibernating:
		return fundsArrived
	}
	return false
}
