// Command ticker runs agents' ticks: it consumes triggers from SA_TRIGGERS, buys inference,
// acts, seals state and publishes the tick's trajectory and result.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/openagents/runtime/pkg/custody"
	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/service"
	"github.com/openagents/runtime/pkg/ticker"
)

func main() {
	var f service.Flags
	fs := flag.NewFlagSet("ticker", flag.ExitOnError)
	f.Register(fs)
	kekFile := fs.String("kek-file", os.Getenv("OPENAGENTS_KEK_FILE"), "key-encryption key file (env OPENAGENTS_KEK_FILE)")
	network := fs.String("network", service.EnvOr("OPENAGENTS_NETWORK", "regtest"), "Bitcoin network invoices must be for (env OPENAGENTS_NETWORK)")
	provider := fs.String("provider", os.Getenv("OPENAGENTS_PROVIDER"), "use only this compute provider (hex pubkey)")
	tickTimeout := fs.Duration("tick-timeout", 90*time.Second, "longest a tick may run")
	buyTimeout := fs.Duration("buy-timeout", 30*time.Second, "longest a provider may take to invoice and answer")
	minGap := fs.Duration("min-tick-interval", 5*time.Second, "least time between two ticks of one agent")
	workers := fs.Int("workers", 64, "ticks run concurrently by this replica")
	_ = fs.Parse(os.Args[1:])
	os.Exit(service.Main("ticker", f.HTTPAddr, func(ctx context.Context, sh *service.Shell) error {
		if *kekFile == "" {
			return fmt.Errorf("ticker: --kek-file (or OPENAGENTS_KEK_FILE) is required to open agents' keys")
		}
		kek, err := custody.LoadKEK(*kekFile)
		if err != nil {
			return err
		}
		nc, js, err := f.Connect(ctx, "ticker")
		if err != nil {
			return err
		}
		defer nc.Close()
		reg, err := registry.Open(ctx, js)
		if err != nil {
			return err
		}
		vault, err := custody.OpenVault(ctx, js, kek)
		if err != nil {
			return err
		}
		t := ticker.New(ticker.Config{NC: nc, JS: js, Registry: reg, Keys: ticker.VaultKeys{Vault: vault},
			Relays: f.RelayList(), Network: *network, Provider: *provider, TickTimeout: *tickTimeout,
			BuyTimeout: *buyTimeout, MinTickInterval: *minGap, Workers: *workers, Log: sh.Log, Metrics: sh.Registry})
		sh.SetReady(true)
		return t.Run(ctx)
	}))
}
