// Package contracts owns every NATS subject, stream and KV bucket name this project uses, the
// JSON messages that travel on them, and the one function that provisions them. Services, the
// CLI, devnet and tests import names from here and nowhere else.
package contracts

import "strings"

// Subjects. <agent> is always the agent's lowercase hex pubkey.
const (
	// SubjectTriggerPrefix + <agent>: a tick trigger (Trigger). Stored in StreamTriggers;
	// Nats-Msg-Id = Trigger.ID so duplicates (two scheduler replicas) collapse.
	SubjectTriggerPrefix = "sa.trigger."
	// SubjectPublishPrefix + <agent>: a signed Nostr event to deliver (PublishRequest).
	// Stored in StreamPublish; Nats-Msg-Id = event id.
	SubjectPublishPrefix = "sa.publish."
	// SubjectDeliveredPrefix + <agent>: delivery records (Delivery) from the publisher.
	SubjectDeliveredPrefix = "sa.delivered."
	// SubjectDeadLetter: triggers that could not be accepted (DeadLetter), with the reason.
	SubjectDeadLetter = "sa.dlq.trigger"
	// Request/reply subjects served by the payer (queue group QueuePayer). The payer's KV
	// ledger, not a stream, is what makes payments durable and idempotent.
	SubjectPayPrefix     = "sa.pay."     // + <agent>: PayRequest -> PayResult
	SubjectBalancePrefix = "sa.balance." // + <agent>: BalanceRequest -> BalanceReply
	SubjectInvoicePrefix = "sa.invoice." // + <agent>: InvoiceRequest -> InvoiceReply
	// SubjectFundedPrefix + <agent>: published by the payer when funds arrive (Funded); the
	// scheduler wakes Hibernating agents on it.
	SubjectFundedPrefix = "sa.funded."
	// SubjectLifecyclePrefix + <agent>: lifecycle changes (LifecycleChange) from the payer.
	SubjectLifecyclePrefix = "sa.lifecycle."
)

// Queue groups.
const (
	QueuePayer = "payer"
)

// Streams and their durable consumers.
const (
	StreamTriggers   = "SA_TRIGGERS"
	StreamPublish    = "SA_PUBLISH"
	StreamDeadLetter = "SA_DLQ"
	StreamEvents     = "SA_EVENTS" // delivered records, funded and lifecycle notices

	ConsumerTicker    = "ticker"
	ConsumerPublisher = "publisher"
)

// KV buckets.
const (
	BucketRegistry = "sa_registry" // key <agent>: registry.Agent JSON
	BucketKeys     = "sa_keys"     // key <agent>: sealed key material (custody)
	BucketState    = "sa_state"    // key <agent>: sealed AgentState event JSON (CAS on revision)
	BucketLedger   = "sa_ledger"   // payer ledger: payments by hash and idempotency key, accounts
	BucketLeases   = "sa_leases"   // key <agent>: tick lease (TTL)
	BucketInbox    = "sa_inbox"    // key <agent>: triggers coalesced while a tick is in flight
	BucketCursors  = "sa_cursors"  // scheduler relay since-cursors
	BucketTicks    = "sa_ticks"    // key <agent>.<tick id>: tick outcome (idempotent re-runs)
)

func TriggerSubject(agent string) string   { return SubjectTriggerPrefix + agent }
func PublishSubject(agent string) string   { return SubjectPublishPrefix + agent }
func DeliveredSubject(agent string) string { return SubjectDeliveredPrefix + agent }
func PaySubject(agent string) string       { return SubjectPayPrefix + agent }
func BalanceSubject(agent string) string   { return SubjectBalancePrefix + agent }
func InvoiceSubject(agent string) string   { return SubjectInvoicePrefix + agent }
func FundedSubject(agent string) string    { return SubjectFundedPrefix + agent }
func LifecycleSubject(agent string) string { return SubjectLifecyclePrefix + agent }

// AgentFromSubject returns the last token of a per-agent subject.
func AgentFromSubject(subject string) string {
	if i := strings.LastIndexByte(subject, '.'); i >= 0 {
		return subject[i+1:]
	}
	return subject
}
