package contracts

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ProvisionOptions are the knobs that differ between devnet and a cluster.
type ProvisionOptions struct {
	Replicas int                   // 1 for devnet, 3 in a cluster
	Storage  jetstream.StorageType // FileStorage by default
	// LeaseTTL bounds how long a crashed ticker can hold an agent's tick lease.
	LeaseTTL time.Duration
}

func (o ProvisionOptions) withDefaults() ProvisionOptions {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 2 * time.Minute
	}
	return o
}

// Streams returns the stream configs this project needs.
func Streams(o ProvisionOptions) []jetstream.StreamConfig {
	o = o.withDefaults()
	return []jetstream.StreamConfig{
		{
			Name:        StreamTriggers,
			Description: "tick triggers per agent; Nats-Msg-Id dedupes heartbeats and relay events",
			Subjects:    []string{SubjectTriggerPrefix + "*"},
			Retention:   jetstream.WorkQueuePolicy,
			Duplicates:  10 * time.Minute,
			MaxAge:      7 * 24 * time.Hour,
			Storage:     o.Storage,
			Replicas:    o.Replicas,
		},
		{
			Name:        StreamPublish,
			Description: "signed events waiting for delivery to relays",
			Subjects:    []string{SubjectPublishPrefix + "*"},
			Retention:   jetstream.WorkQueuePolicy,
			Duplicates:  10 * time.Minute,
			MaxAge:      7 * 24 * time.Hour,
			Storage:     o.Storage,
			Replicas:    o.Replicas,
		},
		{
			Name:        StreamDeadLetter,
			Description: "rejected triggers with the reason",
			Subjects:    []string{SubjectDeadLetter},
			MaxAge:      30 * 24 * time.Hour,
			MaxMsgs:     1_000_000,
			Storage:     o.Storage,
			Replicas:    o.Replicas,
		},
		{
			Name:        StreamEvents,
			Description: "delivery records, funding and lifecycle notices",
			Subjects:    []string{SubjectDeliveredPrefix + "*", SubjectFundedPrefix + "*", SubjectLifecyclePrefix + "*"},
			MaxAge:      7 * 24 * time.Hour,
			MaxMsgs:     10_000_000,
			Storage:     o.Storage,
			Replicas:    o.Replicas,
		},
	}
}

// Buckets returns the KV bucket configs this project needs.
func Buckets(o ProvisionOptions) []jetstream.KeyValueConfig {
	o = o.withDefaults()
	kv := func(name, desc string, history uint8, ttl time.Duration) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: name, Description: desc, History: history, TTL: ttl,
			Storage: jetstream.StorageType(o.Storage), Replicas: o.Replicas}
	}
	return []jetstream.KeyValueConfig{
		kv(BucketRegistry, "agent registry", 5, 0),
		kv(BucketKeys, "sealed key material", 5, 0),
		kv(BucketState, "sealed agent state (CAS)", 5, 0),
		kv(BucketLedger, "payment ledger and accounts", 1, 0),
		kv(BucketLeases, "tick leases", 1, o.LeaseTTL),
		kv(BucketInbox, "triggers coalesced while a tick runs", 1, 0),
		kv(BucketCursors, "relay since-cursors", 1, 0),
		kv(BucketTicks, "tick outcomes", 1, 24*time.Hour),
	}
}

// Provision creates or updates every stream and bucket. It is idempotent: devnet, tests and
// production all call it at start-up.
func Provision(ctx context.Context, js jetstream.JetStream, o ProvisionOptions) error {
	for _, cfg := range Streams(o) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("provision stream %s: %w", cfg.Name, err)
		}
	}
	for _, cfg := range Buckets(o) {
		if _, err := js.CreateOrUpdateKeyValue(ctx, cfg); err != nil {
			return fmt.Errorf("provision bucket %s: %w", cfg.Bucket, err)
		}
	}
	return nil
}
