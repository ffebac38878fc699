// Command openagents is the operator CLI and single-machine runner of the OpenAgents runtime:
//
//	openagents devnet                 everything on embedded parts, with a live view
//	openagents agent spawn|list|status|start|stop|fund|kill|trigger
//	openagents keys derive|rotate
//	openagents run                    agents with all four services in one process
//	openagents bench                  load run of the whole pipeline
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

const usage = `openagents: sovereign AI agents on Nostr and Bitcoin

Usage:
  openagents devnet [--for DURATION] [--json]      run the devnet demo (embedded NATS, relay,
                                                   devnet Lightning, provider, four services)
  openagents agent spawn --name N [flags]          create an agent (12-word mnemonic, NIP-06 key)
  openagents agent list                            table of agents
  openagents agent status <agent>                  everything about one agent
  openagents agent start|stop <agent>              resume or pause its ticks
  openagents agent fund <agent> <sats> [--from-faucet]
  openagents agent kill <agent> [--yes] [--sweep-to BOLT11]
  openagents agent trigger <agent> [--type manual] [--note TEXT]
  openagents keys derive [--mnemonic-stdin] [--json]
  openagents keys rotate --new-kek-file F
  openagents run (--agent A | --mnemonic-file F | --mnemonic-stdin) [--single-tick]
                 (--wallet nostr+walletconnect://... | --lnd-rest URL --lnd-macaroon F) [flags]
  openagents bench [--agents 1000] [--for 45s]

<agent> is a name, npub or hex pubkey. Every command takes --json, --nats URL (or NATS_URL, or
the nats CLI's selected context), and --kek-file F (or OPENAGENTS_KEK_FILE). Without a NATS
server the CLI uses a local home (~/.openagents, or OPENAGENTS_HOME) with an embedded server.
Run 'openagents <command> --help' for the flags of one command.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// errUsage marks a usage error (exit code 2).
var errUsage = errors.New("usage")

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var err error
	env := &cliEnv{stdin: stdin, stdout: stdout, stderr: stderr}
	switch args[0] {
	case "devnet":
		err = cmdDevnet(env, args[1:])
	case "agent":
		err = cmdAgent(env, args[1:])
	case "keys":
		err = cmdKeys(env, args[1:])
	case "run":
		err = cmdRun(env, args[1:])
	case "bench":
		err = cmdBench(env, args[1:])
	default:
		fmt.Fprintf(stderr, "openagents: unknown command %q (see openagents --help)\n", args[0])
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, errUsage) {
		fmt.Fprintln(stderr, "openagents:", err)
		return 2
	}
	var ex exitError
	if errors.As(err, &ex) {
		if ex.msg != "" {
			fmt.Fprintln(stderr, "openagents:", ex.msg)
		}
		return ex.code
	}
	fmt.Fprintln(stderr, "openagents:", err)
	return 1
}

// exitError ends the process with a code (run --single-tick's failed tick).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

type cliEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}
