package ticker

import (
	"fmt"
	"strings"

	"github.com/openagents/runtime/pkg/actions"
	"github.com/openagents/runtime/pkg/nipsa"
	"github.com/openagents/runtime/pkg/registry"
)

// observation is one thing the agent saw since its last tick.
type observation struct {
	Type    string
	From    string // hex pubkey, if any
	Text    string
	EventID string
}

const maxObsText = 500

// buildPrompt lays out what the model needs in fixed sections (the built-in model and tests
// parse them): who the agent is, its goals, what it observed, where it talks, its money, and
// the answer format.
func buildPrompt(a registry.Agent, st nipsa.AgentState, obs []observation, channel string, balanceSats int64, problems []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Agent\nname: %s\npubkey: %s\n", a.Name, a.Pubkey)
	if a.About != "" {
		fmt.Fprintf(&b, "about: %s\n", oneLine(a.About))
	}
	b.WriteString("## Goals\n")
	for _, g := range st.Goals {
		fmt.Fprintf(&b, "- [%s] (%s, %.2f) %s\n", g.ID, g.Status, g.Progress, oneLine(g.Description))
	}
	b.WriteString("## Observations\n")
	for _, o := range obs {
		from := o.From
		if from == "" {
			from = "operator"
		}
		fmt.Fprintf(&b, "- %s from %s: %s\n", o.Type, from, clip(oneLine(o.Text), maxObsText))
	}
	if n := len(st.Memory); n > 0 {
		b.WriteString("## Memory\n")
		for _, m := range st.Memory[max(0, n-5):] {
			fmt.Fprintf(&b, "- %s\n", clip(oneLine(m.Content), 200))
		}
	}
	if len(problems) > 0 {
		b.WriteString("## Problems\n")
		for _, p := range problems {
			fmt.Fprintf(&b, "- %s\n", clip(oneLine(p), 200))
		}
	}
	if channel != "" {
		fmt.Fprintf(&b, "## Channel\n%s\n", channel)
	}
	fmt.Fprintf(&b, "## Balance\n%d sats\n", balanceSats)
	b.WriteString("## Respond\n")
	b.WriteString(actions.Instructions)
	return b.String()
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
