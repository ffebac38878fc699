package contracts

import (
	"github.com/nbd-wtf/go-nostr"
)

// Trigger types. custom:<kind> is also accepted (see trigger parsing in pkg/trigger).
const (
	TriggerHeartbeat = "heartbeat"
	TriggerMention   = "mention"
	TriggerDM        = "dm"
	TriggerZap       = "zap"
	TriggerManual    = "manual"
	TriggerChannel   = "custom:42"
	TriggerFunded    = "funded"
)

// Trigger wakes an agent. Anyone may publish one on sa.trigger.<agent> (the nats CLI
// included); a missing id or at is filled in by the consumer.
type Trigger struct {
	ID    string       `json:"id,omitempty"`
	Type  string       `json:"type"`
	At    int64        `json:"at,omitempty"` // unix seconds
	Event *nostr.Event `json:"event,omitempty"`
	Note  string       `json:"note,omitempty"`
}

// DeadLetter is what lands on SubjectDeadLetter.
type DeadLetter struct {
	Subject string `json:"subject"`
	Reason  string `json:"reason"`
	Payload string `json:"payload"`
	At      int64  `json:"at"`
}

// Pay purposes.
const (
	PurposeCompute = "compute"
	PurposeZap     = "zap"
)

// PayRequest asks the payer to pay a BOLT11 invoice for an agent. IdempotencyKey makes a repeat
// return the recorded result instead of paying again.
type PayRequest struct {
	IdempotencyKey string `json:"idempotency_key"`
	Bolt11         string `json:"bolt11"`
	MaxSats        int64  `json:"max_sats"`
	TickID         string `json:"tick_id"`
	Purpose        string `json:"purpose"` // compute|zap
}

// Pay statuses. InFlight means the outcome is unknown: never retry it as if it failed.
const (
	PayStatusSucceeded = "succeeded"
	PayStatusFailed    = "failed"
	PayStatusInFlight  = "in_flight"
	PayStatusRefused   = "refused" // budget, invoice check or lifecycle: nothing was sent
)

// PayResult is the payer's answer. Code is a stable machine-readable reason for refusals and
// failures (see payer error codes).
type PayResult struct {
	Status      string `json:"status"`
	PaymentHash string `json:"payment_hash,omitempty"`
	Preimage    string `json:"preimage,omitempty"`
	AmountSats  int64  `json:"amount_sats,omitempty"`
	FeeSats     int64  `json:"fee_sats,omitempty"`
	Code        string `json:"code,omitempty"`
	Error       string `json:"error,omitempty"`
}

// BalanceRequest asks for an agent's confirmed balance and lifecycle.
type BalanceRequest struct{}

// BalanceReply. Known=false means the wallet could not be read: never treat it as zero.
type BalanceReply struct {
	Known          bool   `json:"known"`
	BalanceSats    int64  `json:"balance_sats"`
	DailyBurnSats  int64  `json:"daily_burn_sats"`
	SpentTodaySats int64  `json:"spent_today_sats"`
	Lifecycle      string `json:"lifecycle"`
	Error          string `json:"error,omitempty"`
}

// InvoiceRequest asks the payer for an invoice that funds the agent.
type InvoiceRequest struct {
	AmountSats int64  `json:"amount_sats"`
	Memo       string `json:"memo,omitempty"`
}

type InvoiceReply struct {
	Bolt11      string `json:"bolt11,omitempty"`
	PaymentHash string `json:"payment_hash,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Funded is published when an agent receives funds.
type Funded struct {
	Agent       string `json:"agent"`
	AmountSats  int64  `json:"amount_sats"`
	PaymentHash string `json:"payment_hash"`
	At          int64  `json:"at"`
}

// LifecycleChange is published when the payer moves an agent's lifecycle.
type LifecycleChange struct {
	Agent       string `json:"agent"`
	From        string `json:"from"`
	To          string `json:"to"`
	BalanceSats int64  `json:"balance_sats"`
	At          int64  `json:"at"`
}

// PublishRequest carries a signed event and where it must go.
type PublishRequest struct {
	Event  nostr.Event `json:"event"`
	Relays []string    `json:"relays,omitempty"` // empty: the publisher's defaults
	MinOK  int         `json:"min_ok,omitempty"` // write confirmations required; 0: publisher default
}

// Delivery records what happened to a PublishRequest.
type Delivery struct {
	EventID  string   `json:"event_id"`
	Kind     int      `json:"kind"`
	OK       []string `json:"ok,omitempty"`
	Failed   []string `json:"failed,omitempty"`
	Reasons  []string `json:"reasons,omitempty"`
	Durable  bool     `json:"durable"`
	Attempts int      `json:"attempts"`
}
