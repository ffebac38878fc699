// Command openagents is the operator CLI and the single-machine runner of the OpenAgents runtime.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "usage: openagents <devnet|agent|keys|run> ...")
	os.Exit(2)
}
