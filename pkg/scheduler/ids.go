package scheduler

import "strconv"

// Trigger ids. pkg/trigger is to own these (HeartbeatID, EventTriggerID); until it lands they
// are spelled here in the agreed form, and these two functions are the only place to switch.
func heartbeatID(agent string, slot int64) string {
	return "hb:" + agent + ":" + strconv.FormatInt(slot, 10)
}

func eventTriggerID(eventID string) string { return "ev:" + eventID }

func fundedID(paymentHash string) string { return "funded:" + paymentHash }

// msgID is the Nats-Msg-Id of a trigger for agent. JetStream dedupes by id per stream, not per
// subject, so an id that does not already name the agent (one event that mentions two agents,
// one payment hash) gets the agent appended; otherwise the second agent's trigger would be
// dropped as a duplicate of the first's. Every replica computes the same id.
func msgID(agent, triggerID string) string {
	return triggerID + "@" + agent
}
