// Package actions turns a model's answer into the actions an agent takes. Models are sloppy, so
// parsing is lenient (JSON in prose or a fence, or the OpenAgents line format) and validation is
// strict: every invalid item becomes a Problem the next prompt can show, and the valid ones are
// kept.
package actions

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/openagents/runtime/pkg/identity"
)

// Action types.
const (
	Post         = "post"
	DM           = "dm"
	Channel      = "channel"
	Zap          = "zap"
	GoalAdd      = "goal_add"
	GoalUpdate   = "goal_update"
	GoalComplete = "goal_complete"
)

// Bounds. Budgets are enforced by the payer; MaxZapSats only rejects absurd answers early.
const (
	MaxContent     = 4000 // characters of a post, DM or channel message
	MaxComment     = 280  // characters of a zap comment
	MaxDescription = 1000 // characters of a goal description
	MaxGoalID      = 64
	MaxPriority    = 100
	MaxZapSats     = 1_000_000
	MaxActions     = 20       // per answer; the rest become problems
	MaxAnswer      = 64 << 10 // bytes of an answer that are parsed
	maxRaw         = 200      // bytes of an item echoed in a Problem
)

var (
	// ErrNoActions: the answer held no valid action (Parse still returns the problems).
	ErrNoActions = errors.New("actions: no actions in answer")
	// ErrInvalid: an action failed validation; the message names the field.
	ErrInvalid = errors.New("actions: invalid action")
)

// Action is one thing the agent decided to do. Which fields count depends on Type (see Details).
type Action struct {
	Type        string
	Content     string  // post, dm, channel
	To          string  // dm, zap: hex pubkey after validation
	Channel     string  // channel: optional NIP-28 channel id (hex)
	Sats        int64   // zap
	Comment     string  // zap, optional
	Description string  // goal_add
	Priority    int     // goal_add, optional (0: unset)
	ID          string  // goal_update, goal_complete
	Progress    float64 // goal_update, in [0,1]
}

// Problem is an item that was skipped. Index is its position among the items found (0-based;
// -1 for a problem with the answer as a whole);
// Line is its line in the answer (1-based) for the line format, 0 for JSON items.
type Problem struct {
	Index  int    `json:"index"`
	Line   int    `json:"line,omitempty"`
	Raw    string `json:"raw"`
	Reason string `json:"reason"`
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s", p.Line, p.Reason)
	}
	return fmt.Sprintf("action %d: %s", p.Index, p.Reason)
}

// Details returns the action's fields for a trajectory event or a TickResult action, without
// the type.
func (a Action) Details() map[string]any {
	switch a.Type {
	case Post:
		return map[string]any{"content": a.Content}
	case DM:
		return map[string]any{"to": a.To, "content": a.Content}
	case Channel:
		d := map[string]any{"content": a.Content}
		if a.Channel != "" {
			d["channel"] = a.Channel
		}
		return d
	case Zap:
		d := map[string]any{"to": a.To, "sats": a.Sats}
		if a.Comment != "" {
			d["comment"] = a.Comment
		}
		return d
	case GoalAdd:
		d := map[string]any{"description": a.Description}
		if a.Priority != 0 {
			d["priority"] = a.Priority
		}
		return d
	case GoalUpdate:
		return map[string]any{"id": a.ID, "progress": a.Progress}
	case GoalComplete:
		return map[string]any{"id": a.ID}
	}
	return map[string]any{}
}

// MarshalJSON writes the JSON item form Parse accepts: {"type":..., <details>}.
func (a Action) MarshalJSON() ([]byte, error) {
	d := a.Details()
	d["type"] = a.Type
	return json.Marshal(d)
}

// Validate checks a against its type's rules and returns it normalised: text trimmed, pubkeys
// as lowercase hex, other fields cleared.
func Validate(a Action) (Action, error) {
	out := Action{Type: a.Type}
	var err error
	switch a.Type {
	case Post:
		out.Content, err = text("content", a.Content, MaxContent)
	case DM:
		if out.To, err = pubkey("to", a.To); err == nil {
			out.Content, err = text("content", a.Content, MaxContent)
		}
	case Channel:
		if a.Channel != "" {
			if out.Channel, err = hexID("channel", a.Channel); err != nil {
				break
			}
		}
		out.Content, err = text("content", a.Content, MaxContent)
	case Zap:
		if out.To, err = pubkey("to", a.To); err != nil {
			break
		}
		if a.Sats <= 0 || a.Sats > MaxZapSats {
			err = fmt.Errorf("%w: zap: sats: %d is not in 1..%d", ErrInvalid, a.Sats, MaxZapSats)
			break
		}
		out.Sats = a.Sats
		if strings.TrimSpace(a.Comment) != "" {
			out.Comment, err = text("comment", a.Comment, MaxComment)
		}
	case GoalAdd:
		if out.Description, err = text("description", a.Description, MaxDescription); err != nil {
			break
		}
		if a.Priority < 0 || a.Priority > MaxPriority {
			err = fmt.Errorf("%w: goal_add: priority: %d is not in 0..%d", ErrInvalid, a.Priority, MaxPriority)
		}
		out.Priority = a.Priority
	case GoalUpdate:
		if out.ID, err = goalID(a.ID); err != nil {
			break
		}
		if math.IsNaN(a.Progress) || a.Progress < 0 || a.Progress > 1 {
			err = fmt.Errorf("%w: goal_update: progress: %v is not in [0,1]", ErrInvalid, a.Progress)
		}
		out.Progress = a.Progress
	case GoalComplete:
		out.ID, err = goalID(a.ID)
	default:
		return Action{}, fmt.Errorf("%w: type: %q is not one of post, dm, channel, zap, goal_add, goal_update, goal_complete",
			ErrInvalid, clip(a.Type, 40))
	}
	if err != nil {
		if !errors.Is(err, ErrInvalid) {
			err = fmt.Errorf("%w: %s: %w", ErrInvalid, a.Type, err)
		}
		return Action{}, err
	}
	return out, nil
}

func text(field, s string, limit int) (string, error) {
	s = strings.TrimSpace(strings.ToValidUTF8(s, "\uFFFD"))
	if s == "" {
		return "", fmt.Errorf("%s: empty", field)
	}
	if n := utf8.RuneCountInString(s); n > limit {
		return "", fmt.Errorf("%s: %d characters, at most %d", field, n, limit)
	}
	return s, nil
}

func pubkey(field, s string) (string, error) {
	pk, err := identity.ParseAgentRef(cleanRef(s))
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	return pk, nil
}

// cleanRef strips what models put around a key: <...>, @, nostr:.
func cleanRef(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	s = strings.TrimPrefix(s, "@")
	s = strings.TrimPrefix(s, "nostr:")
	return s
}

func hexID(field, s string) (string, error) {
	s = strings.ToLower(cleanRef(s))
	if len(s) != 64 {
		return "", fmt.Errorf("%s: want 64 hex characters, got %d", field, len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("%s: not hex", field)
	}
	return s, nil
}

func goalID(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", errors.New("id: empty")
	case len(s) > MaxGoalID:
		return "", fmt.Errorf("id: %d bytes, at most %d", len(s), MaxGoalID)
	case !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return "", errors.New("id: contains spaces or control characters")
	}
	return s, nil
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
