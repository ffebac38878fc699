package scheduler

import "github.com/openagents/runtime/pkg/trigger"

// Trigger ids come from pkg/trigger, so the ticker and the scheduler agree on them.
func heartbeatID(agent string, slot int64) string { return trigger.HeartbeatID(agent, slot) }

func eventTriggerID(eventID string) string { return trigger.EventTriggerID(eventID) }

func fundedID(paymentHash string) string { return "funded:" + paymentHash }

// msgID is the Nats-Msg-Id of a trigger for agent. JetStream dedupes by id per stream, not per
// subject, so the agent is appended: otherwise one event that mentions two agents (or one
// payment hash) would reach only the first, the second dropped as a duplicate. Every replica
// computes the same id, which is all the dedupe needs.
func msgID(agent, triggerID string) string {
	return triggerID + "@" + agent
}
