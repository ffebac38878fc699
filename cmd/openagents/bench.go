package main

import "fmt"

// cmdBench is replaced by the pipeline load run.
func cmdBench(env *cliEnv, args []string) error {
	return fmt.Errorf("%w: openagents bench is being written", errUsage)
}
