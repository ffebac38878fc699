package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/openagents/runtime/pkg/bench"
)

// cmdBench is the load run: the whole pipeline in this process with every agent kept busy,
// then the floor (only the signatures, NIP-44 and JetStream operations a tick needs).
func cmdBench(env *cliEnv, args []string) error {
	fs := newFlagSet(env, "bench", "bench [--agents 1000] [--for 45s] [--json] [flags]")
	agents := fs.Int("agents", 1000, "agents kept busy")
	dur := fs.Duration("for", 45*time.Second, "measured window of each run")
	warmup := fs.Duration("warmup", 5*time.Second, "time before the window, not measured")
	floorFor := fs.Duration("floor-for", 0, "measured window of the floor run (0: --for)")
	noFloor := fs.Bool("no-floor", false, "run the pipeline only")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the pipeline's window to this file")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *agents <= 0 || *dur <= 0 {
		return fmt.Errorf("%w: --agents and --for must be positive", errUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := env.stderr
	if *asJSON {
		progress = io.Discard
	}
	rep, err := bench.Run(ctx, bench.Options{Agents: *agents, Duration: *dur, Warmup: *warmup, FloorDuration: *floorFor,
		SkipFloor: *noFloor, CPUProfile: *cpuProfile, Progress: progress})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, rep)
	}
	w := env.stdout
	fmt.Fprintf(w, "\nspawn: %d agents in %.1fs (%.0f/s); funding %.2fs\n", rep.Pipeline.Agents, rep.SpawnSeconds,
		float64(rep.Pipeline.Agents)/max(rep.SpawnSeconds, 1e-9), rep.FundSeconds)
	fmt.Fprintf(w, "%-9s %8s %9s %10s %10s %12s\n", "run", "ticks", "ticks/s", "p50", "p99", "CPU s/tick")
	row := func(name string, f bench.Figures) {
		fmt.Fprintf(w, "%-9s %8d %9.1f %9.0fms %9.0fms %12.5f\n", name, f.Ticks, f.TicksPerSec, f.P50Ms, f.P99Ms, f.CPUSecPerTick)
	}
	row("pipeline", rep.Pipeline)
	if rep.Floor != nil {
		row("floor", *rep.Floor)
		fmt.Fprintf(w, "pipeline/floor CPU per tick: %.1fx; floor/pipeline ticks/s: %.1fx (%d CPUs)\n", rep.CPURatio, rep.ThroughputRatio, rep.CPUs)
		o := rep.FloorOps
		fmt.Fprintf(w, "floor tick: %d signs, %d verifies, %d NIP-44, %d KV ops, %d async publishes (pipeline: %.1f events per tick)\n",
			o.Signs, o.Verifies, o.NIP44, o.KV, o.AsyncPublishes, rep.EventsPerTick)
	}
	if len(rep.Pipeline.Statuses) > 0 {
		fmt.Fprintf(w, "pipeline tick statuses: %v\n", rep.Pipeline.Statuses)
	}
	if *cpuProfile != "" {
		fmt.Fprintf(w, "CPU profile: go tool pprof -top %s\n", *cpuProfile)
	}
	return nil
}
