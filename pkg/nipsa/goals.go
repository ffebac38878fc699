package nipsa

import (
	"math"
	"strings"

	"github.com/nbd-wtf/go-nostr"
)

// NormalizeGoal applies the SPEC rule every writer keeps: progress is clamped to [0,1] and a
// goal at 1 is completed. NaN (which JSON cannot carry, but Go can) counts as 0.
func NormalizeGoal(g Goal) Goal {
	switch {
	case math.IsNaN(g.Progress) || g.Progress < 0:
		g.Progress = 0
	case g.Progress >= 1:
		g.Progress = 1
		g.Status = GoalCompleted
	}
	return g
}

// checkGoals validates goals after normalization; field names carry the index
// ("goals[1].status") so the operator finds the bad entry.
func checkGoals(kind int, goals []Goal) error {
	seen := make(map[string]bool, len(goals))
	for i, g := range goals {
		at := "goals[" + itoa(int64(i)) + "]"
		if strings.TrimSpace(g.ID) == "" {
			return fieldErr(kind, at+".id", "must not be empty")
		}
		if seen[g.ID] {
			return fieldErr(kind, at+".id", "duplicate goal id %q", g.ID)
		}
		seen[g.ID] = true
		if strings.TrimSpace(g.Description) == "" {
			return fieldErr(kind, at+".description", "must not be empty")
		}
		switch g.Status {
		case GoalActive, GoalPaused, GoalCompleted, GoalCancelled:
		default:
			return fieldErr(kind, at+".status", "want active|paused|completed|cancelled, got %q", g.Status)
		}
		if g.CreatedAt < 0 {
			return fieldErr(kind, at+".created_at", "must not be negative")
		}
	}
	return nil
}

func normalizeGoals(goals []Goal) []Goal {
	out := make([]Goal, len(goals))
	for i, g := range goals {
		out[i] = NormalizeGoal(g)
	}
	return out
}

// GoalsEvent builds the unsigned kind 38003 for g, goals normalized.
func GoalsEvent(g PublicGoals) (nostr.Event, error) {
	g.Goals = normalizeGoals(g.Goals)
	if err := checkGoals(KindPublicGoals, g.Goals); err != nil {
		return nostr.Event{}, err
	}
	content, err := marshal(g)
	if err != nil {
		return nostr.Event{}, err
	}
	return nostr.Event{Kind: KindPublicGoals, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"d", "goals"}}, Content: content}, nil
}

// ParseGoals verifies ev and returns its goals, normalized.
func ParseGoals(ev *nostr.Event) (PublicGoals, error) {
	if err := verify(ev, KindPublicGoals); err != nil {
		return PublicGoals{}, err
	}
	return decodeGoals(ev.Tags, ev.Content)
}

func decodeGoals(tags nostr.Tags, content string) (PublicGoals, error) {
	const k = KindPublicGoals
	if _, err := (tagReader{k, tags}).d("goals"); err != nil {
		return PublicGoals{}, err
	}
	var g PublicGoals
	if err := decodeJSON(k, content, &g); err != nil {
		return PublicGoals{}, err
	}
	if g.Goals == nil {
		return PublicGoals{}, fieldErr(k, "goals", "missing")
	}
	g.Goals = normalizeGoals(g.Goals)
	return g, checkGoals(k, g.Goals)
}
