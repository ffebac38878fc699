package service

import (
	"context"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/natsx"
)

// Connect dials NATS with the common flags (and NATS_USER/NATS_PASSWORD from the environment)
// and provisions the streams and buckets.
func (f *Flags) Connect(ctx context.Context, name string) (*nats.Conn, jetstream.JetStream, error) {
	return natsx.ConnectAndProvision(ctx, natsx.ConnectOptions{
		URL: f.NATSURL, Name: name, Creds: f.NATSCreds,
		User: os.Getenv("NATS_USER"), Password: os.Getenv("NATS_PASSWORD"),
	}, contracts.ProvisionOptions{Replicas: f.JSReplicas})
}

// RelayList is --relay flags, or RELAYS (comma-separated) when none were given.
func (f *Flags) RelayList() []string {
	if len(f.Relays) > 0 {
		return f.Relays
	}
	var out []string
	for _, r := range strings.Split(os.Getenv("RELAYS"), ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}
