package main

import (
	"context"
	"fmt"
	"time"

	"github.com/openagents/runtime/pkg/custody"
	"github.com/openagents/runtime/pkg/identity"
)

func cmdKeys(env *cliEnv, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: openagents keys <derive|rotate>", errUsage)
	}
	switch args[0] {
	case "derive":
		return keysDerive(env, args[1:])
	case "rotate":
		return keysRotate(env, args[1:])
	}
	return fmt.Errorf("%w: unknown keys command %q", errUsage, args[0])
}

// keysDerive prints the public identity of a mnemonic without storing anything, to check a
// backup.
func keysDerive(env *cliEnv, args []string) error {
	fs := newFlagSet(env, "keys derive", "keys derive [--mnemonic-stdin | --mnemonic-file F] [--network regtest] [--json]")
	file := fs.String("mnemonic-file", "", "read the 12 words from this file")
	stdin := fs.Bool("mnemonic-stdin", false, "read the 12 words from standard input (the default)")
	network := fs.String("network", identity.Mainnet, "bitcoin network of the wallet address")
	asJSON := fs.Bool("json", false, "machine-readable output")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" {
		*stdin = true
	}
	words, err := readMnemonic(env, *file, *stdin)
	if err != nil {
		return err
	}
	id, err := identity.FromMnemonic(words, identity.WithNetwork(*network))
	if err != nil {
		return err
	}
	out := map[string]string{"npub": id.Npub, "pubkey": id.PublicKey, "wallet_address": id.Wallet.Address, "wallet_path": id.Wallet.Path, "network": *network}
	if *asJSON {
		return printJSON(env.stdout, out)
	}
	fmt.Fprintf(env.stdout, "npub:    %s\npubkey:  %s\nwallet:  %s (%s, %s)\n", id.Npub, id.PublicKey, id.Wallet.Address, id.Wallet.Path, *network)
	return nil
}

// keysRotate re-seals every secret under a new KEK. Run it again with the old KEK if it is
// interrupted: records already under the new KEK are skipped.
func keysRotate(env *cliEnv, args []string) error {
	fs := newFlagSet(env, "keys rotate", "keys rotate --new-kek-file F [--kek-file OLD]")
	var c connFlags
	c.register(fs)
	newFile := fs.String("new-kek-file", "", "the new key-encryption key (64 hex characters)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *newFile == "" {
		return fmt.Errorf("%w: keys rotate needs --new-kek-file (make one with: openssl rand -hex 32)", errUsage)
	}
	next, err := custody.LoadKEK(*newFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := c.open(ctx, true)
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := s.fleet.Vault.Rotate(ctx, next)
	if err != nil {
		return fmt.Errorf("rotation stopped after %d records: %w", n, err)
	}
	if c.json {
		return printJSON(env.stdout, map[string]any{"resealed": n, "kek_id": next.ID})
	}
	fmt.Fprintf(env.stdout, "re-sealed %d records under key %s; point OPENAGENTS_KEK_FILE at the new key\n", n, next.ID)
	return nil
}
