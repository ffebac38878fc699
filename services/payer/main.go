// Command payer is the payer service of the OpenAgents runtime (see README.md): the only
// process that moves money. It serves sa.pay.*, sa.balance.* and sa.invoice.* in queue group
// "payer"; run as many replicas as you like, the ledger in JetStream KV keeps them honest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/natsx"
	"github.com/openagents/runtime/pkg/payer"
	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/service"
)

type options struct {
	service.Flags
	wallet         string
	devnetWallet   string
	network        string
	replicas       int
	payTimeout     time.Duration
	reconcileEvery time.Duration
	grace          time.Duration
	lowRunwayDays  float64
	hibernateSats  int64
}

func main() {
	var o options
	fs := flag.NewFlagSet("payer", flag.ExitOnError)
	o.Register(fs)
	fs.StringVar(&o.wallet, "wallet", envOr("PAYER_WALLET", "devnet"), "wallet backend: devnet (env PAYER_WALLET)")
	fs.StringVar(&o.devnetWallet, "devnet-wallet", os.Getenv("DEVNET_WALLET_URL"), "devnet Lightning HTTP API base URL (env DEVNET_WALLET_URL)")
	fs.StringVar(&o.network, "network", envOr("PAYER_NETWORK", ""), "BOLT11 network invoices must be for; empty: the wallet's (env PAYER_NETWORK)")
	fs.IntVar(&o.replicas, "replicas", envInt("NATS_REPLICAS", 1), "JetStream replicas when provisioning streams and buckets (env NATS_REPLICAS)")
	fs.DurationVar(&o.payTimeout, "pay-timeout", 30*time.Second, "bound on one wallet payment call; past it the payment is in flight")
	fs.DurationVar(&o.reconcileEvery, "reconcile-every", 30*time.Second, "period of the in-flight reconciliation pass")
	fs.DurationVar(&o.grace, "grace", 30*time.Second, "age before reconciliation may close a stalled intent or a payment the wallet never saw")
	fs.Float64Var(&o.lowRunwayDays, "low-runway-days", 7, "LowBalance below this many days of runway")
	fs.Int64Var(&o.hibernateSats, "hibernate-sats", 1000, "Hibernating below this balance")
	_ = fs.Parse(os.Args[1:])

	os.Exit(service.Main("payer", o.HTTPAddr, func(ctx context.Context, sh *service.Shell) error {
		wallets, err := walletSource(o)
		if err != nil {
			return err
		}
		nc, js, err := natsx.ConnectAndProvision(ctx, natsx.ConnectOptions{URL: o.NATSURL, Creds: o.NATSCreds, Name: "payer"},
			contracts.ProvisionOptions{Replicas: o.replicas})
		if err != nil {
			return err
		}
		defer nc.Close()
		reg, err := registry.Open(ctx, js)
		if err != nil {
			return err
		}
		p, err := payer.New(ctx, payer.Config{
			NC: nc, JS: js, Registry: reg, Wallets: wallets, Log: sh.Log, Metrics: sh.Registry,
			Network: o.network, PayTimeout: o.payTimeout, ReconcileEvery: o.reconcileEvery, Grace: o.grace,
			Thresholds: lifecycle.Thresholds{LowRunwayDays: o.lowRunwayDays, HibernateSats: o.hibernateSats},
		})
		if err != nil {
			return err
		}
		go func() {
			select {
			case <-p.Ready():
				sh.SetReady(true)
			case <-ctx.Done():
			}
		}()
		err = p.Run(ctx)
		sh.SetReady(false)
		return err
	}))
}

func walletSource(o options) (payer.WalletSource, error) {
	switch o.wallet {
	case "devnet":
		if o.devnetWallet == "" {
			return nil, errors.New("--wallet devnet needs --devnet-wallet URL (the devnet Lightning HTTP API)")
		}
		return &payer.DevnetHTTP{URL: o.devnetWallet}, nil
	case "lnd", "nwc":
		return nil, fmt.Errorf("--wallet %s is not wired into this build yet; use devnet", o.wallet)
	}
	return nil, fmt.Errorf("--wallet %q: want devnet, lnd or nwc", o.wallet)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return n
	}
	return def
}
