// Package pin keeps the workspace's chosen dependency versions in go.mod while packages that
// use them are being written; go mod tidy would otherwise drop them.
package pin

import (
	_ "github.com/fiatjaf/eventstore/badger"
	_ "github.com/fiatjaf/khatru"
	_ "github.com/lightningnetwork/lnd/zpay32"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/nbd-wtf/go-nostr/nip06"
	_ "github.com/nbd-wtf/go-nostr/nip19"
	_ "github.com/nbd-wtf/go-nostr/nip44"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/tyler-smith/go-bip39"
)
