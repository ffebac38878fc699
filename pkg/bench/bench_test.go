package bench

import (
	"context"
	"testing"
	"time"
)

// A short load run: both runs make progress, every pipeline tick succeeds, and the figures
// are consistent with each other.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Options{Agents: 4, Duration: 1500 * time.Millisecond, Warmup: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Pipeline
	if p.Ticks == 0 || p.Statuses["success"] != p.Ticks {
		t.Fatalf("pipeline: %d ticks, statuses %v", p.Ticks, p.Statuses)
	}
	if p.P50Ms <= 0 || p.P99Ms < p.P50Ms || p.CPUSecPerTick <= 0 {
		t.Fatalf("pipeline figures: %+v", p)
	}
	// A tick publishes at least its request, state, session, one trajectory step and result.
	if rep.EventsPerTick < 5 {
		t.Fatalf("%.1f events per tick", rep.EventsPerTick)
	}
	if rep.Floor == nil || rep.Floor.Ticks == 0 || rep.FloorOps.Signs != int(rep.EventsPerTick+0.5)+3 {
		t.Fatalf("floor: %+v ops %+v (events per tick %.1f)", rep.Floor, rep.FloorOps, rep.EventsPerTick)
	}
	t.Logf("pipeline %+v\nfloor %+v\nops %+v", p, *rep.Floor, rep.FloorOps)
}
