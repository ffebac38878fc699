// Package trajectory records what an agent saw, thought and did during one tick as NIP-SA
// TrajectoryEvents (kind 38031), redacting secrets before any content exists, and computes and
// verifies the trajectory hash a TickResult commits to.
package trajectory

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/openagents/runtime/pkg/nipsa"
)

var (
	// ErrBadSequence: seqs are not exactly 1..n, or events from several sessions are mixed.
	ErrBadSequence = errors.New("trajectory: bad sequence")
	// ErrHashMismatch: the contents do not hash to the committed trajectory hash.
	ErrHashMismatch = errors.New("trajectory: hash mismatch")
)

// MaxText bounds each free-text field of an event (bytes), so one huge observation cannot make
// an event relays refuse. Truncation happens before hashing, so the hash covers what is published.
const MaxText = 16 << 10

// EmptyHash is the hash of a trajectory without events.
var EmptyHash = strings.Repeat("0", 64)

// Recorder builds the events of one trajectory session. Safe for concurrent use.
type Recorder struct {
	mu        sync.Mutex
	sessionID string
	tickID    string
	model     string
	startedAt int64
	events    []nipsa.TrajectoryEvent
}

// NewRecorder starts a session for tick tickID, answered by model, at now.
func NewRecorder(sessionID, tickID, model string, now time.Time) *Recorder {
	return &Recorder{sessionID: sessionID, tickID: tickID, model: model, startedAt: now.Unix()}
}

type message struct {
	Type       string `json:"type"`
	Subtype    string `json:"subtype"`
	Content    string `json:"content,omitempty"`
	ActionType string `json:"action_type,omitempty"`
	Details    any    `json:"details,omitempty"`
	Meta       any    `json:"meta,omitempty"`
}

type thinking struct {
	Type    string `json:"type"`
	Content string `json:"content"`
	Hash    string `json:"hash"`
}

type toolUse struct {
	Type  string `json:"type"`
	Tool  string `json:"tool"`
	Input any    `json:"input,omitempty"`
}

type toolResult struct {
	Type    string `json:"type"`
	Tool    string `json:"tool"`
	Output  any    `json:"output,omitempty"`
	IsError bool   `json:"is_error,omitempty"`
}

// Observation records something the agent was shown (a trigger, a mention, its balance).
func (r *Recorder) Observation(text string, meta map[string]any) nipsa.TrajectoryEvent {
	return r.add(nipsa.StepMessage, message{Type: nipsa.StepMessage, Subtype: "observation",
		Content: clip(Scrub(text)), Meta: redactOrNil(meta)})
}

// Thinking records that the model reasoned, without what: the content is "<redacted>" and the
// hash is sha256hex of the text after Scrub (identical to sha256hex(text) when the text holds no
// secret), so the reasoning can be disclosed and checked later but never leaks a secret.
func (r *Recorder) Thinking(text string) nipsa.TrajectoryEvent {
	sum := sha256.Sum256([]byte(Scrub(text)))
	return r.add(nipsa.StepThinking, thinking{Type: nipsa.StepThinking, Content: "<redacted>",
		Hash: hex.EncodeToString(sum[:])})
}

// Action records an action the agent took (or tried), e.g. Action("post", a.Details()).
func (r *Recorder) Action(actionType string, details map[string]any) nipsa.TrajectoryEvent {
	return r.add(nipsa.StepMessage, message{Type: nipsa.StepMessage, Subtype: "action",
		ActionType: actionType, Details: redactOrNil(details)})
}

// ToolUse records a call to a tool (inference, payment, lookup) with its input.
func (r *Recorder) ToolUse(tool string, input map[string]any) nipsa.TrajectoryEvent {
	return r.add(nipsa.StepToolUse, toolUse{Type: nipsa.StepToolUse, Tool: tool, Input: redactOrNil(input)})
}

// ToolResult records what a tool returned; isError marks a failure.
func (r *Recorder) ToolResult(tool string, output any, isError bool) nipsa.TrajectoryEvent {
	var out any
	if output != nil {
		out = Redact(output)
		if s, ok := out.(string); ok {
			out = clip(s)
		}
	}
	return r.add(nipsa.StepToolResult, toolResult{Type: nipsa.StepToolResult, Tool: tool, Output: out, IsError: isError})
}

func (r *Recorder) add(step string, v any) nipsa.TrajectoryEvent {
	content, err := marshal(v)
	if err != nil {
		// Redact normalised every value to JSON already, so this cannot happen; record the
		// step rather than lose the seq.
		content = `{"type":"` + step + `","error":"unencodable"}`
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := nipsa.TrajectoryEvent{SessionID: r.sessionID, TickID: r.tickID, Seq: len(r.events) + 1,
		Step: step, Content: content}
	r.events = append(r.events, ev)
	return ev
}

// Events returns a copy of the events in seq order.
func (r *Recorder) Events() []nipsa.TrajectoryEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// Hash is the trajectory hash of the events so far.
func (r *Recorder) Hash() string { return HashEvents(r.Events()) }

// Session describes the session for kind 38030: at the start pass a zero end; at the end pass
// the end time, and the count and hash are filled.
func (r *Recorder) Session(end time.Time) nipsa.TrajectorySession {
	s := nipsa.TrajectorySession{SessionID: r.sessionID, TickID: r.tickID, StartedAt: r.startedAt,
		Model: r.model, Visibility: "public"}
	if !end.IsZero() {
		evs := r.Events()
		s.EndedAt = end.Unix()
		s.TotalEvents = len(evs)
		s.TrajectoryHash = HashEvents(evs)
	}
	return s
}

// Hash is the NIP-SA trajectory hash: SHA-256 of the contents joined with "\n", lowercase hex;
// no contents hash to 64 zeros.
func Hash(contents []string) string {
	if len(contents) == 0 {
		return EmptyHash
	}
	sum := sha256.Sum256([]byte(strings.Join(contents, "\n")))
	return hex.EncodeToString(sum[:])
}

// HashEvents hashes events' contents in the order given (callers pass them in seq order).
func HashEvents(events []nipsa.TrajectoryEvent) string {
	contents := make([]string, len(events))
	for i, e := range events {
		contents[i] = e.Content
	}
	return Hash(contents)
}

// Verify checks that events (in any order, e.g. as fetched from relays) form one complete
// session with seqs 1..n and hash to wantHash.
func Verify(events []nipsa.TrajectoryEvent, wantHash string) error {
	evs := slices.Clone(events)
	slices.SortStableFunc(evs, func(a, b nipsa.TrajectoryEvent) int { return a.Seq - b.Seq })
	for i, e := range evs {
		switch {
		case e.SessionID != evs[0].SessionID:
			return fmt.Errorf("%w: seq %d is in session %q, seq %d in %q", ErrBadSequence,
				e.Seq, e.SessionID, evs[0].Seq, evs[0].SessionID)
		case i > 0 && e.Seq == evs[i-1].Seq:
			return fmt.Errorf("%w: seq %d appears twice", ErrBadSequence, e.Seq)
		case e.Seq != i+1:
			if i == 0 {
				return fmt.Errorf("%w: first seq is %d, want 1", ErrBadSequence, e.Seq)
			}
			return fmt.Errorf("%w: seq %d is missing (next is %d)", ErrBadSequence, i+1, e.Seq)
		}
	}
	if got := HashEvents(evs); got != strings.ToLower(wantHash) {
		return fmt.Errorf("%w: %d events hash to %s, want %s", ErrHashMismatch, len(evs), got, wantHash)
	}
	return nil
}

func redactOrNil(m map[string]any) any {
	if len(m) == 0 {
		return nil
	}
	return Redact(m)
}

// marshal is json.Marshal without HTML escaping ("<redacted>" stays readable) and without the
// Encoder's trailing newline: the string is hashed verbatim.
func marshal(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

func clip(s string) string {
	if len(s) <= MaxText {
		return s
	}
	const mark = "…[truncated]"
	cut := MaxText - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
