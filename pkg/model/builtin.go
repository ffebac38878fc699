package model

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Builtin is a deterministic offline model for the demo and tests: it reads the sections of a
// tick prompt (see ParsePrompt) and answers with valid action JSON. Same prompt, same answer.
type Builtin struct{}

// Action is one entry of the {"actions":[...]} reply, in the ticker's action schema.
type Action struct {
	Type        string   `json:"type"`
	To          string   `json:"to,omitempty"`
	Channel     string   `json:"channel,omitempty"`
	Content     string   `json:"content,omitempty"`
	Sats        int64    `json:"sats,omitempty"`
	Description string   `json:"description,omitempty"`
	ID          string   `json:"id,omitempty"`
	Progress    *float64 `json:"progress,omitempty"`
}

// Prompt is what the builtin model understands of a tick prompt.
type Prompt struct {
	Name         string
	Pubkey       string
	Goals        []PromptGoal
	Observations []Observation
	Channel      string
	BalanceSats  int64
	HasBalance   bool
}

// PromptGoal is a "## Goals" line: "- [<id>] (<status>, <progress>) <description>".
type PromptGoal struct {
	ID, Status, Description string
	Progress                float64
}

// Observation is a "## Observations" line: "- <type> from <hex pubkey>: <text>".
type Observation struct {
	Type, From, Text string
}

// maxReplies bounds the dms and the channel replies of one tick.
const maxReplies = 3

// Complete answers every prompt; a prompt without the sections gets {"actions":[]}.
func (Builtin) Complete(ctx context.Context, r Request) (Reply, error) {
	if err := ctx.Err(); err != nil {
		return Reply{}, err
	}
	if strings.TrimSpace(r.Prompt) == "" {
		return Reply{}, ErrEmptyPrompt
	}
	text := Decide(ParsePrompt(r.Prompt))
	return Reply{Text: text, TokensIn: words(r.Prompt), TokensOut: words(text)}, nil
}

// ParsePrompt reads the sections of a tick prompt leniently: unknown sections and lines that do
// not match are skipped, never an error, because the prompt is text another program wrote.
func ParsePrompt(s string) Prompt {
	var p Prompt
	section := ""
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if h, ok := strings.CutPrefix(line, "## "); ok {
			section = strings.ToLower(strings.TrimSpace(h))
			continue
		}
		if line == "" {
			continue
		}
		switch section {
		case "agent":
			if v, ok := cutField(line, "name:"); ok && p.Name == "" {
				p.Name = v
			} else if v, ok := cutField(line, "pubkey:"); ok && p.Pubkey == "" && isHex64(v) {
				p.Pubkey = strings.ToLower(v)
			}
		case "goals":
			if g, ok := parseGoal(line); ok {
				p.Goals = append(p.Goals, g)
			}
		case "observations":
			if o, ok := parseObservation(line); ok {
				p.Observations = append(p.Observations, o)
			}
		case "channel":
			if p.Channel == "" && isHex64(line) {
				p.Channel = strings.ToLower(line)
			}
		case "balance":
			if f := strings.Fields(line); !p.HasBalance && len(f) >= 1 {
				if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && n >= 0 {
					p.BalanceSats, p.HasBalance = n, true
				}
			}
		}
	}
	return p
}

func cutField(line, key string) (string, bool) {
	if len(line) < len(key) || !strings.EqualFold(line[:len(key)], key) {
		return "", false
	}
	return strings.TrimSpace(line[len(key):]), true
}

func parseGoal(line string) (PromptGoal, bool) {
	rest, ok := strings.CutPrefix(line, "- [")
	if !ok {
		return PromptGoal{}, false
	}
	id, rest, ok := strings.Cut(rest, "]")
	id = strings.TrimSpace(id)
	if !ok || id == "" {
		return PromptGoal{}, false
	}
	rest, ok = strings.CutPrefix(strings.TrimSpace(rest), "(")
	if !ok {
		return PromptGoal{}, false
	}
	meta, desc, ok := strings.Cut(rest, ")")
	if !ok {
		return PromptGoal{}, false
	}
	status, prog, ok := strings.Cut(meta, ",")
	if !ok {
		return PromptGoal{}, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(prog), 64)
	if err != nil || math.IsNaN(f) {
		return PromptGoal{}, false
	}
	return PromptGoal{
		ID:          id,
		Status:      strings.ToLower(strings.TrimSpace(status)),
		Progress:    min(max(f, 0), 1),
		Description: strings.TrimSpace(desc),
	}, true
}

func parseObservation(line string) (Observation, bool) {
	rest, ok := strings.CutPrefix(line, "- ")
	if !ok {
		return Observation{}, false
	}
	typ, rest, ok := strings.Cut(rest, " from ")
	if !ok {
		return Observation{}, false
	}
	from, text, ok := strings.Cut(rest, ":")
	from = strings.TrimSpace(from)
	typ = strings.ToLower(strings.TrimSpace(typ))
	if !ok || typ == "" || strings.ContainsAny(typ, " \t") || !isHex64(from) {
		return Observation{}, false
	}
	return Observation{Type: typ, From: strings.ToLower(from), Text: strings.TrimSpace(text)}, true
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// replyPrefix starts every channel reply; the builtin never replies to a message starting with
// it, so two builtin agents sharing a channel do not answer each other forever.
const replyPrefix = "Re "

// Decide turns a parsed prompt into the action JSON. It is a pure function of p.
func Decide(p Prompt) string {
	actions := []Action{}
	name := p.Name
	if name == "" {
		name = "agent"
	}
	say := func(content string) {
		if p.Channel != "" {
			actions = append(actions, Action{Type: "channel", Channel: p.Channel, Content: content})
		} else {
			actions = append(actions, Action{Type: "post", Content: content})
		}
	}

	// Work on the first active goal; with no goal at all, give the agent one.
	var goal *PromptGoal
	for i := range p.Goals {
		if p.Goals[i].Status == "active" {
			goal = &p.Goals[i]
			break
		}
	}
	switch {
	case goal != nil:
		next := math.Round((goal.Progress+0.25)*100) / 100
		if next >= 1 {
			actions = append(actions, Action{Type: "goal_complete", ID: goal.ID})
			say(fmt.Sprintf("%s completed a goal: %s", name, goal.Description))
		} else {
			actions = append(actions, Action{Type: "goal_update", ID: goal.ID, Progress: &next})
			say(fmt.Sprintf("%s is working on %q: %d%% done", name, goal.Description, int(math.Round(next*100))))
		}
	case len(p.Goals) == 0:
		actions = append(actions, Action{Type: "goal_add", Description: "Introduce myself to the network"})
	}

	dms, replies := 0, 0
	for _, o := range p.Observations {
		if o.From == p.Pubkey {
			continue
		}
		switch o.Type {
		case "dm", "mention":
			if dms == maxReplies {
				continue
			}
			dms++
			content := fmt.Sprintf("Hello from %s. You said: %q.", name, firstWords(o.Text, 8))
			if goal != nil {
				content += fmt.Sprintf(" I am working on %q.", goal.Description)
			}
			actions = append(actions, Action{Type: "dm", To: o.From, Content: content})
		case "channel":
			if p.Channel == "" || replies == maxReplies || strings.HasPrefix(o.Text, replyPrefix) {
				continue
			}
			replies++
			actions = append(actions, Action{Type: "channel", Channel: p.Channel,
				Content: fmt.Sprintf("%s%s: %q, noted by %s.", replyPrefix, o.From[:8], firstWords(o.Text, 5), name)})
		}
	}
	b, err := json.Marshal(struct {
		Actions []Action `json:"actions"`
	}{actions})
	if err != nil { // unreachable: every field is a plain string or number
		return `{"actions":[]}`
	}
	return string(b)
}

// firstWords keeps the first n words, so replies quote without echoing whole messages.
func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		return strings.Join(f[:n], " ") + "..."
	}
	return strings.Join(f, " ")
}
