package lnd_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/regtest"
)

// Temporary: holds a network up for recording fixtures.
func TestHoldNetwork(t *testing.T) {
	if os.Getenv("HOLD_NETWORK") == "" {
		t.Skip()
	}
	n, err := regtest.Start(context.Background(), regtest.Options{Dir: "/tmp/rt/net"})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	for _, node := range []*regtest.Node{n.Alice, n.Bob} {
		fmt.Printf("%s %s %s %s %s\n", node.Name, node.RESTURL, node.MacaroonPath, node.TLSCertPath, node.PubKey)
	}
	os.WriteFile("/tmp/rt/ready", nil, 0o644)
	for {
		if _, err := os.Stat("/tmp/rt/stop"); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
