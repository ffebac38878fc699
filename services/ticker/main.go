// Command ticker is the ticker service of the OpenAgents runtime (see README.md).
package main

import (
	"context"
	"flag"
	"os"

	"github.com/openagents/runtime/pkg/service"
)

func main() {
	var f service.Flags
	fs := flag.NewFlagSet("ticker", flag.ExitOnError)
	f.Register(fs)
	_ = fs.Parse(os.Args[1:])
	os.Exit(service.Main("ticker", f.HTTPAddr, func(ctx context.Context, sh *service.Shell) error {
		sh.SetReady(true)
		<-ctx.Done()
		return nil
	}))
}
