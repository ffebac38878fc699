package nipsa

import (
	"strings"

	"github.com/nbd-wtf/go-nostr"
)

// TickRequestEvent builds the unsigned kind 38010 for t. Tags in SPEC order: d (the tick id,
// so every request survives on an addressable-aware relay), runner, trigger, p, e.
func TickRequestEvent(t TickRequest) (nostr.Event, error) {
	if err := t.validate(); err != nil {
		return nostr.Event{}, err
	}
	tags := nostr.Tags{{"d", t.TickID}, {"runner", t.Runner}, {"trigger", t.Trigger}, {"p", t.Agent}}
	if t.EventID != "" {
		tags = append(tags, nostr.Tag{"e", t.EventID})
	}
	return nostr.Event{Kind: KindTickRequest, CreatedAt: nostr.Now(), Tags: tags, Content: ""}, nil
}

// ParseTickRequest verifies ev and returns its request.
func ParseTickRequest(ev *nostr.Event) (TickRequest, error) {
	if err := verify(ev, KindTickRequest); err != nil {
		return TickRequest{}, err
	}
	return decodeTickRequest(ev.Tags, ev.Content)
}

func decodeTickRequest(tags nostr.Tags, content string) (TickRequest, error) {
	const k = KindTickRequest
	if content != "" {
		return TickRequest{}, fieldErr(k, "content", "must be empty")
	}
	r := tagReader{k, tags}
	var t TickRequest
	var err error
	if t.TickID, err = r.d(""); err != nil {
		return TickRequest{}, err
	}
	if t.Runner, err = r.pubkey("runner"); err != nil {
		return TickRequest{}, err
	}
	v, err := r.one("trigger", 1)
	if err != nil {
		return TickRequest{}, err
	}
	t.Trigger = v[0]
	if t.Agent, err = r.pubkey("p"); err != nil {
		return TickRequest{}, err
	}
	if v, ok, err := r.opt("e", 1); err != nil {
		return TickRequest{}, err
	} else if ok {
		t.EventID = v[0]
	}
	return t, t.validate()
}

func (t TickRequest) validate() error {
	const k = KindTickRequest
	if err := checkID(k, "d", t.TickID); err != nil {
		return err
	}
	if err := checkPubkey(k, "runner", t.Runner); err != nil {
		return err
	}
	if err := checkTrigger(k, t.Trigger, true); err != nil {
		return err
	}
	if err := checkPubkey(k, "p", t.Agent); err != nil {
		return err
	}
	if t.EventID != "" {
		return checkHex64(k, "e", t.EventID)
	}
	return nil
}

// TickResultEvent builds the unsigned kind 38011 for t. Tags in SPEC order: d, request,
// runner, status, duration_ms, actions, trajectory_hash (when set).
func TickResultEvent(t TickResult) (nostr.Event, error) {
	if t.Content.Actions == nil {
		t.Content.Actions = []TickAction{}
	}
	if err := t.validate(); err != nil {
		return nostr.Event{}, err
	}
	tags := nostr.Tags{
		{"d", t.TickID},
		{"request", t.RequestID},
		{"runner", t.Runner},
		{"status", t.Status},
		{"duration_ms", itoa(t.DurationMS)},
		{"actions", itoa(int64(t.ActionCount))},
	}
	if t.TrajectoryHash != "" {
		tags = append(tags, nostr.Tag{"trajectory_hash", t.TrajectoryHash})
	}
	content, err := marshal(t.Content)
	if err != nil {
		return nostr.Event{}, err
	}
	return nostr.Event{Kind: KindTickResult, CreatedAt: nostr.Now(), Tags: tags, Content: content}, nil
}

// ParseTickResult verifies ev and returns its result.
func ParseTickResult(ev *nostr.Event) (TickResult, error) {
	if err := verify(ev, KindTickResult); err != nil {
		return TickResult{}, err
	}
	return decodeTickResult(ev.Tags, ev.Content)
}

func decodeTickResult(tags nostr.Tags, content string) (TickResult, error) {
	const k = KindTickResult
	r := tagReader{k, tags}
	var t TickResult
	var err error
	if t.TickID, err = r.d(""); err != nil {
		return TickResult{}, err
	}
	v, err := r.one("request", 1)
	if err != nil {
		return TickResult{}, err
	}
	t.RequestID = v[0]
	if t.Runner, err = r.pubkey("runner"); err != nil {
		return TickResult{}, err
	}
	if v, err = r.one("status", 1); err != nil {
		return TickResult{}, err
	}
	t.Status = v[0]
	if v, err = r.one("duration_ms", 1); err != nil {
		return TickResult{}, err
	}
	if t.DurationMS, err = parseInt(k, "duration_ms", v[0], 0, 1<<53); err != nil {
		return TickResult{}, err
	}
	if v, err = r.one("actions", 1); err != nil {
		return TickResult{}, err
	}
	n, err := parseInt(k, "actions", v[0], 0, 1<<20)
	if err != nil {
		return TickResult{}, err
	}
	t.ActionCount = int(n)
	if v, ok, err := r.opt("trajectory_hash", 1); err != nil {
		return TickResult{}, err
	} else if ok {
		t.TrajectoryHash = v[0]
	}
	if err := decodeJSON(k, content, &t.Content); err != nil {
		return TickResult{}, err
	}
	if t.Content.Actions == nil {
		t.Content.Actions = []TickAction{}
	}
	return t, t.validate()
}

func (t TickResult) validate() error {
	const k = KindTickResult
	if err := checkID(k, "d", t.TickID); err != nil {
		return err
	}
	if err := checkHex64(k, "request", t.RequestID); err != nil {
		return err
	}
	if err := checkPubkey(k, "runner", t.Runner); err != nil {
		return err
	}
	switch t.Status {
	case TickSuccess, TickFailure, TickTimeout, TickSkipped:
	default:
		return fieldErr(k, "status", "want success|failure|timeout|skipped, got %q", t.Status)
	}
	if t.DurationMS < 0 {
		return fieldErr(k, "duration_ms", "must not be negative")
	}
	// The tag is a count of the content's actions; two numbers that disagree would make
	// dashboards and audits disagree too.
	if t.ActionCount != len(t.Content.Actions) {
		return fieldErr(k, "actions", "tag says %d, content lists %d", t.ActionCount, len(t.Content.Actions))
	}
	if t.TrajectoryHash != "" {
		if err := checkHex64(k, "trajectory_hash", t.TrajectoryHash); err != nil {
			return err
		}
	}
	c := t.Content
	switch {
	case c.TokensIn < 0:
		return fieldErr(k, "tokens_in", "must not be negative")
	case c.TokensOut < 0:
		return fieldErr(k, "tokens_out", "must not be negative")
	case c.CostSats < 0:
		return fieldErr(k, "cost_sats", "must not be negative")
	case c.GoalsUpdated < 0:
		return fieldErr(k, "goals_updated", "must not be negative")
	}
	for i, a := range c.Actions {
		if strings.TrimSpace(a.Type) == "" {
			return fieldErr(k, "actions["+itoa(int64(i))+"].type", "must not be empty")
		}
	}
	return nil
}
