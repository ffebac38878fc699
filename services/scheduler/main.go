// Command scheduler is the scheduler service of the OpenAgents runtime (see README.md): it
// publishes a tick trigger on sa.trigger.<agent> for every heartbeat slot, every relay event
// an agent subscribes to (mention, DM, zap, channel message, custom kind) and every funding
// notice of a hibernating agent. Run any number of replicas: trigger ids are deterministic and
// JetStream dedupes them.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/scheduler"
	"github.com/openagents/runtime/pkg/service"
)

func main() {
	var f service.Flags
	fs := flag.NewFlagSet("scheduler", flag.ExitOnError)
	f.Register(fs)
	factor := fs.Float64("low-balance-factor", envFloat("LOW_BALANCE_FACTOR", scheduler.DefaultLowBalanceFactor),
		"LowBalance agents beat every heartbeat*factor (env LOW_BALANCE_FACTOR)")
	_ = fs.Parse(os.Args[1:])
	relays := f.RelayList()

	os.Exit(service.Main("scheduler", f.HTTPAddr, func(ctx context.Context, sh *service.Shell) error {
		nc, js, err := f.Connect(ctx, "scheduler")
		if err != nil {
			return err
		}
		defer nc.Close()
		reg, err := registry.Open(ctx, js)
		if err != nil {
			return err
		}
		s, err := scheduler.New(scheduler.Config{
			NC: nc, JS: js, Registry: reg,
			DefaultRelays:    relays,
			LowBalanceFactor: *factor,
			Log:              sh.Log,
			Metrics:          sh.Registry,
		})
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		select {
		case <-s.Ready():
			sh.SetReady(true)
			sh.Log.Info("scheduling", "relays", relays, "low_balance_factor", *factor)
		case err := <-done:
			if err != nil {
				return fmt.Errorf("scheduler: %w", err)
			}
			return nil
		}
		err = <-done
		sh.SetReady(false)
		return err
	}))
}

func envFloat(k string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(k), 64); err == nil {
		return v
	}
	return def
}
