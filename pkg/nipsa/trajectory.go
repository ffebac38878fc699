package nipsa

import (
	"strings"

	"github.com/nbd-wtf/go-nostr"
)

// Visibility of a 38030 session.
const (
	VisibilityPublic  = "public"
	VisibilityPrivate = "private"
)

// Redacted is what a Thinking step carries instead of the model's reasoning; only its hash
// is published.
const Redacted = "<redacted>"

// SessionEvent builds the unsigned kind 38030 for s. Tags in SPEC order: d, tick,
// started_at, model, visibility, ended_at (when set).
func SessionEvent(s TrajectorySession) (nostr.Event, error) {
	if err := s.validate(); err != nil {
		return nostr.Event{}, err
	}
	tags := nostr.Tags{
		{"d", s.SessionID},
		{"tick", s.TickID},
		{"started_at", itoa(s.StartedAt)},
		{"model", s.Model},
		{"visibility", s.Visibility},
	}
	if s.EndedAt != 0 {
		tags = append(tags, nostr.Tag{"ended_at", itoa(s.EndedAt)})
	}
	content, err := marshal(s)
	if err != nil {
		return nostr.Event{}, err
	}
	return nostr.Event{Kind: KindTrajectorySession, CreatedAt: nostr.Now(), Tags: tags, Content: content}, nil
}

// ParseSession verifies ev and returns its session; tags and content must agree.
func ParseSession(ev *nostr.Event) (TrajectorySession, error) {
	if err := verify(ev, KindTrajectorySession); err != nil {
		return TrajectorySession{}, err
	}
	return decodeSession(ev.Tags, ev.Content)
}

func decodeSession(tags nostr.Tags, content string) (TrajectorySession, error) {
	const k = KindTrajectorySession
	r := tagReader{k, tags}
	d, err := r.d("")
	if err != nil {
		return TrajectorySession{}, err
	}
	var s TrajectorySession
	if err := decodeJSON(k, content, &s); err != nil {
		return TrajectorySession{}, err
	}
	if s.SessionID != d {
		return TrajectorySession{}, fieldErr(k, "session_id", "content says %q, d tag says %q", s.SessionID, d)
	}
	v, err := r.one("tick", 1)
	if err != nil {
		return TrajectorySession{}, err
	}
	s.TickID = v[0]
	if v, err = r.one("started_at", 1); err != nil {
		return TrajectorySession{}, err
	}
	started, err := parseInt(k, "started_at", v[0], 0, 1<<40)
	if err != nil {
		return TrajectorySession{}, err
	}
	if started != s.StartedAt {
		return TrajectorySession{}, fieldErr(k, "started_at", "tag says %d, content says %d", started, s.StartedAt)
	}
	if v, err = r.one("model", 1); err != nil {
		return TrajectorySession{}, err
	}
	if v[0] != s.Model {
		return TrajectorySession{}, fieldErr(k, "model", "tag says %q, content says %q", v[0], s.Model)
	}
	if v, err = r.one("visibility", 1); err != nil {
		return TrajectorySession{}, err
	}
	s.Visibility = v[0]
	var ended int64
	if v, ok, err := r.opt("ended_at", 1); err != nil {
		return TrajectorySession{}, err
	} else if ok {
		if ended, err = parseInt(k, "ended_at", v[0], 1, 1<<40); err != nil {
			return TrajectorySession{}, err
		}
	}
	if ended != s.EndedAt {
		return TrajectorySession{}, fieldErr(k, "ended_at", "tag says %d, content says %d", ended, s.EndedAt)
	}
	return s, s.validate()
}

func (s TrajectorySession) validate() error {
	const k = KindTrajectorySession
	if err := checkID(k, "d", s.SessionID); err != nil {
		return err
	}
	if strings.Contains(s.SessionID, ":") {
		// 38031 d tags are "<session>:<seq>"; a colon in the session id makes them ambiguous.
		return fieldErr(k, "d", "session id must not contain ':'")
	}
	if err := checkID(k, "tick", s.TickID); err != nil {
		return err
	}
	if s.StartedAt <= 0 {
		return fieldErr(k, "started_at", "must be a unix time > 0")
	}
	if s.EndedAt != 0 && s.EndedAt < s.StartedAt {
		return fieldErr(k, "ended_at", "before started_at")
	}
	if strings.TrimSpace(s.Model) == "" {
		return fieldErr(k, "model", "must not be empty")
	}
	switch s.Visibility {
	case VisibilityPublic, VisibilityPrivate:
	default:
		return fieldErr(k, "visibility", "want public|private, got %q", s.Visibility)
	}
	if s.TotalEvents < 0 {
		return fieldErr(k, "total_events", "must not be negative")
	}
	if s.TrajectoryHash != "" {
		return checkHex64(k, "trajectory_hash", s.TrajectoryHash)
	}
	return nil
}

// TrajectoryEventEvent builds the unsigned kind 38031 for e. Content is published verbatim
// (the trajectory hash is over these exact strings). Tags in SPEC order: d, session, tick,
// seq, step.
func TrajectoryEventEvent(e TrajectoryEvent) (nostr.Event, error) {
	if err := e.validate(); err != nil {
		return nostr.Event{}, err
	}
	seq := itoa(int64(e.Seq))
	tags := nostr.Tags{
		{"d", e.SessionID + ":" + seq},
		{"session", e.SessionID},
		{"tick", e.TickID},
		{"seq", seq},
		{"step", e.Step},
	}
	return nostr.Event{Kind: KindTrajectoryEvent, CreatedAt: nostr.Now(), Tags: tags, Content: e.Content}, nil
}

// ParseTrajectoryEvent verifies ev and returns its step.
func ParseTrajectoryEvent(ev *nostr.Event) (TrajectoryEvent, error) {
	if err := verify(ev, KindTrajectoryEvent); err != nil {
		return TrajectoryEvent{}, err
	}
	return decodeTrajectoryEvent(ev.Tags, ev.Content)
}

func decodeTrajectoryEvent(tags nostr.Tags, content string) (TrajectoryEvent, error) {
	const k = KindTrajectoryEvent
	r := tagReader{k, tags}
	d, err := r.d("")
	if err != nil {
		return TrajectoryEvent{}, err
	}
	e := TrajectoryEvent{Content: content}
	v, err := r.one("session", 1)
	if err != nil {
		return TrajectoryEvent{}, err
	}
	e.SessionID = v[0]
	if v, err = r.one("tick", 1); err != nil {
		return TrajectoryEvent{}, err
	}
	e.TickID = v[0]
	if v, err = r.one("seq", 1); err != nil {
		return TrajectoryEvent{}, err
	}
	seq, err := parseInt(k, "seq", v[0], 1, 1<<31-1)
	if err != nil {
		return TrajectoryEvent{}, err
	}
	e.Seq = int(seq)
	if v, err = r.one("step", 1); err != nil {
		return TrajectoryEvent{}, err
	}
	e.Step = v[0]
	if want := e.SessionID + ":" + itoa(seq); d != want {
		return TrajectoryEvent{}, fieldErr(k, "d", "want %q (session:seq), got %q", want, d)
	}
	return e, e.validate()
}

func (e TrajectoryEvent) validate() error {
	const k = KindTrajectoryEvent
	if err := checkID(k, "session", e.SessionID); err != nil {
		return err
	}
	if strings.Contains(e.SessionID, ":") {
		return fieldErr(k, "session", "session id must not contain ':'")
	}
	if err := checkID(k, "tick", e.TickID); err != nil {
		return err
	}
	if e.Seq < 1 {
		return fieldErr(k, "seq", "must be >= 1, got %d", e.Seq)
	}
	switch e.Step {
	case StepToolUse, StepToolResult, StepMessage, StepThinking:
	default:
		return fieldErr(k, "step", "want ToolUse|ToolResult|Message|Thinking, got %q", e.Step)
	}
	var c struct {
		Type    *string `json:"type"`
		Content *string `json:"content"`
		Hash    string  `json:"hash"`
	}
	if err := decodeJSON(k, e.Content, &c); err != nil {
		return err
	}
	if c.Type == nil {
		return fieldErr(k, "type", "content has no type")
	}
	if *c.Type != e.Step {
		return fieldErr(k, "type", "content type %q differs from step tag %q", *c.Type, e.Step)
	}
	if e.Step == StepThinking {
		// Reasoning is never published, only its hash: refuse a Thinking step that leaks it.
		if c.Content == nil || *c.Content != Redacted {
			return fieldErr(k, "content", "a Thinking step must carry %q, not the reasoning", Redacted)
		}
		if err := checkHex64(k, "hash", c.Hash); err != nil {
			return err
		}
	}
	return nil
}
