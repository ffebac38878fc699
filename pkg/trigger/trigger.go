// Package trigger parses and validates what arrives on sa.trigger.<agent>. Anyone may publish
// there (the nats CLI included), so nothing is trusted: every refusal is a typed error whose
// Reason is a short metric label, and the consumer dead-letters the message with the error.
package trigger

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
	"github.com/openagents/runtime/pkg/contracts"
)

var (
	ErrBadSubject  = errors.New("trigger: bad subject")
	ErrMalformed   = errors.New("trigger: malformed")
	ErrUnknownType = errors.New("trigger: unknown type")
	ErrBadEvent    = errors.New("trigger: bad event")
)

// Bounds.
const (
	MaxData    = 256 << 10 // bytes of a trigger message (an embedded event is at most this)
	MaxNote    = 1000      // characters
	MaxID      = 128       // bytes
	MaxFuture  = 24 * time.Hour
	customPref = "custom:"
)

// Reason maps an error from Parse to a bounded metric label: malformed, unknown_type,
// bad_event, bad_subject; "" for nil and "other" for anything else.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrBadSubject):
		return "bad_subject"
	case errors.Is(err, ErrUnknownType):
		return "unknown_type"
	case errors.Is(err, ErrBadEvent):
		return "bad_event"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	}
	return "other"
}

// wire is Trigger with the event kept raw, so a bad event is told apart from a bad message.
type wire struct {
	ID    string          `json:"id"`
	Type  string          `json:"type"`
	At    int64           `json:"at"`
	Event json.RawMessage `json:"event"`
	Note  string          `json:"note"`
}

// Parse validates a message received on subject and returns the trigger with ID and At filled
// in, and the agent's hex pubkey from the subject. Unknown JSON fields are ignored.
func Parse(subject string, data []byte, now time.Time) (contracts.Trigger, string, error) {
	agent, err := agentFromSubject(subject)
	if err != nil {
		return contracts.Trigger{}, "", err
	}
	if len(data) > MaxData {
		return contracts.Trigger{}, agent, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(data), MaxData)
	}
	if !isObject(data) {
		return contracts.Trigger{}, agent, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		return contracts.Trigger{}, agent, fmt.Errorf("%w: %s", ErrMalformed, jsonReason(err))
	}
	t := contracts.Trigger{ID: w.ID, Type: w.Type, At: w.At, Note: w.Note}

	customKind, err := checkType(t.Type)
	if err != nil {
		return contracts.Trigger{}, agent, err
	}
	switch {
	case t.At < 0:
		return contracts.Trigger{}, agent, fmt.Errorf("%w: at: %d is negative", ErrMalformed, t.At)
	case t.At == 0:
		t.At = now.Unix()
	case t.At > now.Add(MaxFuture).Unix():
		return contracts.Trigger{}, agent, fmt.Errorf("%w: at: %d is more than %s in the future", ErrMalformed, t.At, MaxFuture)
	}
	if t.ID == "" {
		t.ID = derivedID(subject, data)
	} else if err := checkID(t.ID); err != nil {
		return contracts.Trigger{}, agent, err
	}
	if n := utf8.RuneCountInString(t.Note); n > MaxNote {
		return contracts.Trigger{}, agent, fmt.Errorf("%w: note: %d characters, at most %d", ErrMalformed, n, MaxNote)
	}
	if len(w.Event) > 0 && string(w.Event) != "null" {
		ev, err := checkEvent(w.Event, t.Type, customKind, agent)
		if err != nil {
			return contracts.Trigger{}, agent, err
		}
		t.Event = ev
	}
	return t, agent, nil
}

func agentFromSubject(subject string) (string, error) {
	agent, ok := strings.CutPrefix(subject, contracts.SubjectTriggerPrefix)
	if !ok {
		return "", fmt.Errorf("%w: %q does not start with %s", ErrBadSubject, clip(subject, 80), contracts.SubjectTriggerPrefix)
	}
	if !isLowerHex(agent, 64) {
		return "", fmt.Errorf("%w: %q: the agent token must be 64 lowercase hex characters", ErrBadSubject, clip(subject, 80))
	}
	return agent, nil
}

// checkType returns the kind of a custom:<kind> type (-1 otherwise).
func checkType(typ string) (int, error) {
	switch typ {
	case contracts.TriggerHeartbeat, contracts.TriggerMention, contracts.TriggerDM, contracts.TriggerZap,
		contracts.TriggerManual, contracts.TriggerFunded:
		return -1, nil
	case "":
		return -1, fmt.Errorf("%w: type: missing", ErrMalformed)
	}
	if k, ok := strings.CutPrefix(typ, customPref); ok {
		// Canonical decimal only, so one kind has one spelling (it is a schedule key and a label).
		n, err := strconv.Atoi(k)
		if err != nil || n < 0 || n > 65535 || strconv.Itoa(n) != k {
			return -1, fmt.Errorf("%w: type: %q: custom kind must be a number 0..65535", ErrUnknownType, clip(typ, 40))
		}
		return n, nil
	}
	return -1, fmt.Errorf("%w: type: %q (want heartbeat, mention, dm, zap, manual, funded or custom:<kind>)",
		ErrUnknownType, clip(typ, 40))
}

// checkID keeps ids safe as a Nats-Msg-Id and inside a KV key (no '.', which splits tokens).
func checkID(id string) error {
	if len(id) > MaxID {
		return fmt.Errorf("%w: id: %d bytes, at most %d", ErrMalformed, len(id), MaxID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':') {
			return fmt.Errorf("%w: id: %q: only letters, digits, '-', '_' and ':' are allowed", ErrMalformed, clip(id, 40))
		}
	}
	return nil
}

func checkEvent(raw json.RawMessage, typ string, customKind int, agent string) (*nostr.Event, error) {
	var ev nostr.Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, fmt.Errorf("%w: does not decode: %s", ErrBadEvent, jsonReason(err))
	}
	if !isLowerHex(ev.ID, 64) || !isLowerHex(ev.PubKey, 64) || !isLowerHex(ev.Sig, 128) {
		return nil, fmt.Errorf("%w: id, pubkey and sig must be lowercase hex of 64, 64 and 128 characters", ErrBadEvent)
	}
	if !ev.CheckID() {
		return nil, fmt.Errorf("%w: id %s does not match the event's content", ErrBadEvent, ev.ID)
	}
	if ok, err := ev.CheckSignature(); !ok {
		reason := "invalid signature"
		if err != nil {
			reason = "signature: " + clip(err.Error(), 80)
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrBadEvent, ev.ID, reason)
	}
	switch typ {
	case contracts.TriggerMention, contracts.TriggerDM, contracts.TriggerZap:
		// A signed event about someone else must not wake (and bill) this agent.
		if ev.Tags.FindWithValue("p", agent) == nil {
			return nil, fmt.Errorf("%w: %s: %s event has no p tag for the agent", ErrBadEvent, ev.ID, typ)
		}
	}
	if customKind >= 0 && int(ev.Kind) != customKind {
		return nil, fmt.Errorf("%w: %s: kind %d does not match %s", ErrBadEvent, ev.ID, ev.Kind, typ)
	}
	return &ev, nil
}

// HeartbeatID is the trigger id of an agent's heartbeat in a schedule slot (unix time divided
// by the heartbeat period): every scheduler replica computes the same one, so JetStream's
// Nats-Msg-Id dedupe leaves one tick per slot.
func HeartbeatID(agent string, slot int64) string {
	return "hb-" + strings.ToLower(agent) + "-" + strconv.FormatInt(slot, 10)
}

// EventTriggerID is the trigger id for a relay event: the same event seen by several replicas
// or relays triggers once.
func EventTriggerID(eventID string) string { return "ev-" + strings.ToLower(eventID) }

// derivedID names an id-less trigger by its bytes, so a redelivery gets the same id.
func derivedID(subject string, data []byte) string {
	h := sha256.New()
	h.Write([]byte(subject))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func isObject(data []byte) bool {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// jsonReason names the field a type error is about, without echoing the payload.
func jsonReason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("%s: want %s, got %s", te.Field, te.Type, te.Value)
	}
	return clip(err.Error(), 120)
}

func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
