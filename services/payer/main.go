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
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/custody"
	"github.com/openagents/runtime/pkg/lifecycle"
	"github.com/openagents/runtime/pkg/lightning"
	"github.com/openagents/runtime/pkg/lnd"
	"github.com/openagents/runtime/pkg/nwc"
	"github.com/openagents/runtime/pkg/payer"
	"github.com/openagents/runtime/pkg/registry"
	"github.com/openagents/runtime/pkg/service"
)

type options struct {
	service.Flags
	wallet         string
	devnetWallet   string
	network        string
	payTimeout     time.Duration
	reconcileEvery time.Duration
	grace          time.Duration
	lowRunwayDays  float64
	hibernateSats  int64
	lndURL         string
	lndMacaroon    string
	lndTLSCert     string
	kekFile        string
}

func main() {
	var o options
	fs := flag.NewFlagSet("payer", flag.ExitOnError)
	o.Register(fs)
	fs.StringVar(&o.wallet, "wallet", os.Getenv("OPENAGENTS_WALLET"), "wallet backend: lnd (one node, per-agent balances in the ledger), nwc (per-agent NWC from custody) or devnet (env OPENAGENTS_WALLET)")
	fs.StringVar(&o.devnetWallet, "devnet-wallet", os.Getenv("OPENAGENTS_DEVNET_WALLET"), "devnet Lightning HTTP API base URL (env OPENAGENTS_DEVNET_WALLET)")
	fs.StringVar(&o.lndURL, "lnd-url", os.Getenv("LND_REST_URL"), "LND REST URL, https://host:8080 (env LND_REST_URL)")
	fs.StringVar(&o.lndMacaroon, "lnd-macaroon", os.Getenv("LND_MACAROON_FILE"), "LND macaroon file (env LND_MACAROON_FILE)")
	fs.StringVar(&o.lndTLSCert, "lnd-tls-cert", os.Getenv("LND_TLS_CERT_FILE"), "LND tls.cert to pin (env LND_TLS_CERT_FILE)")
	fs.StringVar(&o.kekFile, "kek-file", os.Getenv("OPENAGENTS_KEK_FILE"), "key-encryption key file, to open agents' NWC connections (env OPENAGENTS_KEK_FILE)")
	fs.StringVar(&o.network, "network", os.Getenv("OPENAGENTS_NETWORK"), "BOLT11 network invoices must be for: mainnet, testnet, signet, regtest; empty: the wallet's (env OPENAGENTS_NETWORK)")
	fs.DurationVar(&o.payTimeout, "pay-timeout", 30*time.Second, "bound on one wallet payment call; past it the payment is in flight")
	fs.DurationVar(&o.reconcileEvery, "reconcile-every", 30*time.Second, "period of the in-flight reconciliation pass")
	fs.DurationVar(&o.grace, "grace", 30*time.Second, "age before reconciliation may close a stalled intent or a payment the wallet never saw")
	fs.Float64Var(&o.lowRunwayDays, "low-runway-days", 7, "LowBalance below this many days of runway")
	fs.Int64Var(&o.hibernateSats, "hibernate-sats", 1000, "Hibernating below this balance")
	_ = fs.Parse(os.Args[1:])

	os.Exit(service.Main("payer", o.HTTPAddr, func(ctx context.Context, sh *service.Shell) error {
		nc, js, err := o.Connect(ctx, "payer")
		if err != nil {
			return err
		}
		defer nc.Close()
		wallets, err := walletSource(ctx, o, js, sh)
		if err != nil {
			return err
		}
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

func walletSource(ctx context.Context, o options, js jetstream.JetStream, sh *service.Shell) (payer.WalletSource, error) {
	switch o.wallet {
	case "devnet":
		if o.devnetWallet == "" {
			return nil, errors.New("--wallet devnet needs --devnet-wallet URL (the devnet Lightning HTTP API)")
		}
		return &payer.DevnetHTTP{URL: o.devnetWallet}, nil
	case "":
		return nil, errors.New("--wallet (or OPENAGENTS_WALLET) is required: lnd, nwc, or devnet")
	case "lnd":
		if o.network == "" {
			return nil, errors.New("--wallet lnd needs --network")
		}
		node, err := lnd.New(lnd.Config{URL: o.lndURL, MacaroonPath: o.lndMacaroon, TLSCertPath: o.lndTLSCert,
			Network: o.network, PayTimeout: o.payTimeout, Logger: sh.Log})
		if err != nil {
			return nil, err
		}
		return payer.SubAccounts{Node: node}, nil
	case "nwc":
		if o.kekFile == "" {
			return nil, errors.New("--wallet nwc needs --kek-file to open agents' NWC connections")
		}
		kek, err := custody.LoadKEK(o.kekFile)
		if err != nil {
			return nil, err
		}
		vault, err := custody.OpenVault(ctx, js, kek)
		if err != nil {
			return nil, err
		}
		return &payer.NWC{Vault: vault, Dial: func(_ context.Context, s string) (lightning.Wallet, error) {
			uri, err := nwc.ParseURI(s)
			if err != nil {
				return nil, err
			}
			return nwc.NewClient(uri, nwc.ClientOptions{Network: o.network, Timeout: o.payTimeout})
		}}, nil
	}
	return nil, fmt.Errorf("--wallet %q: want devnet, lnd or nwc", o.wallet)
}
