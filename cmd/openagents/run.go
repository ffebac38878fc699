package main

import "fmt"

// cmdRun is replaced by the single-machine runner (issue 8).
func cmdRun(env *cliEnv, args []string) error {
	return fmt.Errorf("%w: openagents run is being written", errUsage)
}
