package lifecycle

import "testing"

func TestNext(t *testing.T) {
	th := Thresholds{LowRunwayDays: 7, HibernateSats: 1000}
	cases := []struct {
		prev State
		b    Balance
		burn int64
		want State
	}{
		{Active, Unknown, 100, Active},
		{Hibernating, Unknown, 100, Hibernating},
		{Active, Balance{Known: false, Sats: 0}, 100, Active},
		{Dead, Confirmed(1_000_000), 100, Dead},
		{Spawning, Confirmed(0), 0, Spawning},
		{Spawning, Confirmed(50_000), 0, Active},
		{Active, Confirmed(7000), 1000, Active},     // runway exactly 7 days
		{Active, Confirmed(6999), 1000, LowBalance}, // just under
		{Active, Confirmed(1000), 0, Active},        // no burn: unbounded runway
		{Active, Confirmed(999), 0, Hibernating},    // just under the threshold
		{LowBalance, Confirmed(1000), 1000, LowBalance},
		{Active, Confirmed(0), 100, Hibernating}, // one zero read does not kill
		{LowBalance, Confirmed(0), 100, Hibernating},
		{Hibernating, Confirmed(0), 100, Dead},
		{Hibernating, Confirmed(500), 100, Hibernating},
		{Hibernating, Confirmed(100_000), 100, Active}, // funded: back up
		{LowBalance, Confirmed(100_000), 100, Active},
		{Active, Confirmed(-5), 100, Hibernating},
	}
	for _, c := range cases {
		if got := Next(c.prev, c.b, c.burn, th); got != c.want {
			t.Errorf("Next(%s, %+v, burn %d) = %s, want %s", c.prev, c.b, c.burn, got, c.want)
		}
	}
	if got := Next(Active, Confirmed(999), 0, Thresholds{}); got != Hibernating {
		t.Errorf("defaults: %s", got)
	}
}

func TestTicksAndParse(t *testing.T) {
	if !Ticks(Active, false) || !Ticks(LowBalance, false) || Ticks(Hibernating, false) || !Ticks(Hibernating, true) || Ticks(Dead, true) || Ticks(Spawning, true) {
		t.Fatal("Ticks table wrong")
	}
	for _, s := range All {
		if p, err := Parse(string(s)); err != nil || p != s {
			t.Fatalf("parse %s: %v", s, err)
		}
	}
	if _, err := Parse("zombie"); err == nil {
		t.Fatal("parsed an unknown state")
	}
}
