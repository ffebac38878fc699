// Package natsx starts an embedded NATS server with JetStream (devnet, tests, the CLI's local
// home) and connects clients to any NATS deployment the same way.
package natsx

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
)

// EmbeddedOptions for an in-process server.
type EmbeddedOptions struct {
	Dir  string // JetStream store directory; required
	Host string // default 127.0.0.1
	Port int    // 0: any free port
}

// Embedded is an in-process nats-server with JetStream.
type Embedded struct {
	Server *server.Server
}

// StartEmbedded starts a server and waits until it accepts connections.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	if o.Dir == "" {
		return nil, fmt.Errorf("natsx: EmbeddedOptions.Dir is required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		port = -1
	}
	ns, err := server.NewServer(&server.Options{
		ServerName: "openagents-embedded",
		Host:       o.Host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.Dir,
		NoSigs:     true,
		MaxPayload: 8 * 1024 * 1024,
	})
	if err != nil {
		return nil, fmt.Errorf("natsx: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("natsx: embedded server not ready after 10s")
	}
	return &Embedded{Server: ns}, nil
}

// URL is the client URL.
func (e *Embedded) URL() string { return e.Server.ClientURL() }

// Close shuts the server down and waits for it.
func (e *Embedded) Close() {
	e.Server.Shutdown()
	e.Server.WaitForShutdown()
}

// ConnectOptions for clients.
type ConnectOptions struct {
	URL      string
	Name     string
	Creds    string // credentials file
	User     string
	Password string
}

// Connect dials NATS with reconnects forever (services outlive NATS restarts) and returns the
// connection and its JetStream context.
func Connect(o ConnectOptions) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", o.URL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// ConnectAndProvision connects and provisions every stream and bucket (idempotent).
func ConnectAndProvision(ctx context.Context, o ConnectOptions, po contracts.ProvisionOptions) (*nats.Conn, jetstream.JetStream, error) {
	nc, js, err := Connect(o)
	if err != nil {
		return nil, nil, err
	}
	if err := contracts.Provision(ctx, js, po); err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}
