// Command publisher delivers signed events from the SA_PUBLISH stream to relays, with retries
// and write confirmations, and records every outcome on sa.delivered.<agent>.
package main

import (
	"context"
	"flag"
	"os"

	"github.com/openagents/runtime/pkg/publisher"
	"github.com/openagents/runtime/pkg/service"
)

func main() {
	var f service.Flags
	fs := flag.NewFlagSet("publisher", flag.ExitOnError)
	f.Register(fs)
	minOK := fs.Int("min-ok", 1, "relay write confirmations (OK) required per event")
	attempts := fs.Int("max-attempts", 8, "delivery attempts before an event is recorded as failed")
	_ = fs.Parse(os.Args[1:])
	os.Exit(service.Main("publisher", f.HTTPAddr, func(ctx context.Context, sh *service.Shell) error {
		nc, js, err := f.Connect(ctx, "publisher")
		if err != nil {
			return err
		}
		defer nc.Close()
		p := publisher.New(publisher.Config{NC: nc, JS: js, DefaultRelays: f.RelayList(), MinOK: *minOK,
			MaxAttempts: *attempts, Log: sh.Log, Metrics: sh.Registry})
		sh.SetReady(true)
		return p.Run(ctx)
	}))
}
