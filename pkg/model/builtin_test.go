package model

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var (
	self  = strings.Repeat("a1", 32)
	alice = strings.Repeat("b2", 32)
	bob   = strings.Repeat("c3", 32)
	chanI = strings.Repeat("d4", 32)
)

const tickPrompt = `You are an autonomous agent. Answer with JSON.

## Agent
name: scout
pubkey: ` + "SELF" + `

## Goals
- [g0] (completed, 1) Old goal
- [g1] (active, 0.5) Map the relays
- [g2] (active, 0) Second goal

## Observations
- mention from ALICE: hey scout, what are you doing today?
- heartbeat from SELF: tick
- channel from BOB: the mempool is quiet this morning friends
- dm from BOB: send me a report
- zap from ALICE: 21 sats

## Channel
CHAN

## Balance
50000 sats
`

func fill(s string) string {
	return strings.NewReplacer("SELF", self, "ALICE", alice, "BOB", bob, "CHAN", chanI).Replace(s)
}

func decode(t *testing.T, text string) []Action {
	t.Helper()
	var out struct {
		Actions []Action `json:"actions"`
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("not valid action JSON: %v\n%s", err, text)
	}
	if out.Actions == nil {
		t.Fatalf("actions missing or null: %s", text)
	}
	return out.Actions
}

func TestParsePrompt(t *testing.T) {
	p := ParsePrompt(fill(tickPrompt))
	want := Prompt{
		Name: "scout", Pubkey: self, Channel: chanI, BalanceSats: 50000, HasBalance: true,
		Goals: []PromptGoal{
			{ID: "g0", Status: "completed", Progress: 1, Description: "Old goal"},
			{ID: "g1", Status: "active", Progress: 0.5, Description: "Map the relays"},
			{ID: "g2", Status: "active", Progress: 0, Description: "Second goal"},
		},
		Observations: []Observation{
			{Type: "mention", From: alice, Text: "hey scout, what are you doing today?"},
			{Type: "heartbeat", From: self, Text: "tick"},
			{Type: "channel", From: bob, Text: "the mempool is quiet this morning friends"},
			{Type: "dm", From: bob, Text: "send me a report"},
			{Type: "zap", From: alice, Text: "21 sats"},
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("parsed\n%+v\nwant\n%+v", p, want)
	}
}

func TestParsePromptSkipsJunk(t *testing.T) {
	p := ParsePrompt(fill(`## Goals
- [] (active, 0.1) no id
- [g1] (active, x) bad progress
- [g2] active, 0.1 no parens
- [g3] (active, 7) clamped
## Observations
- dm from nothex: hi
- dm from ALICE no colon
- two words from ALICE: x
## Channel
not-a-channel
## Balance
lots
`))
	if len(p.Goals) != 1 || p.Goals[0].ID != "g3" || p.Goals[0].Progress != 1 {
		t.Errorf("goals %+v", p.Goals)
	}
	if len(p.Observations) != 0 || p.Channel != "" || p.HasBalance {
		t.Errorf("junk accepted: %+v", p)
	}
}

func TestBuiltinTick(t *testing.T) {
	rep, err := Builtin{}.Complete(context.Background(), Request{Prompt: fill(tickPrompt)})
	if err != nil {
		t.Fatal(err)
	}
	acts := decode(t, rep.Text)
	p := 0.75
	want := []Action{
		{Type: "goal_update", ID: "g1", Progress: &p},
		{Type: "channel", Channel: chanI, Content: `scout is working on "Map the relays": 75% done`},
		{Type: "dm", To: alice, Content: `Hello from scout. You said: "hey scout, what are you doing today?". I am working on "Map the relays".`},
		{Type: "channel", Channel: chanI, Content: `Re ` + bob[:8] + `: "the mempool is quiet this...", noted by scout.`},
		{Type: "dm", To: bob, Content: `Hello from scout. You said: "send me a report". I am working on "Map the relays".`},
	}
	if !reflect.DeepEqual(acts, want) {
		got, _ := json.MarshalIndent(acts, "", " ")
		t.Fatalf("actions\n%s", got)
	}
	if rep.TokensIn != len(strings.Fields(fill(tickPrompt))) || rep.TokensOut != len(strings.Fields(rep.Text)) {
		t.Errorf("tokens %d/%d", rep.TokensIn, rep.TokensOut)
	}
	again, _ := Builtin{}.Complete(context.Background(), Request{Prompt: fill(tickPrompt)})
	if again != rep {
		t.Error("not deterministic")
	}
}

func TestBuiltinGoalCompletesAndPostsWithoutChannel(t *testing.T) {
	acts := decode(t, Decide(ParsePrompt(fill("## Agent\nname: z\n## Goals\n- [g7] (active, 0.75) Finish\n"))))
	want := []Action{{Type: "goal_complete", ID: "g7"}, {Type: "post", Content: "z completed a goal: Finish"}}
	if !reflect.DeepEqual(acts, want) {
		t.Fatalf("%+v", acts)
	}
}

func TestBuiltinCapsRepliesAndSkipsReplies(t *testing.T) {
	var b strings.Builder
	b.WriteString(fill("## Agent\nname: z\npubkey: SELF\n## Goals\n- [g1] (paused, 0) x\n## Channel\nCHAN\n## Observations\n"))
	for range 5 {
		b.WriteString(fill("- dm from ALICE: hi\n- channel from BOB: hello all\n"))
	}
	b.WriteString(fill("- channel from ALICE: Re bbbbbbbb: \"x\", noted by y.\n- dm from SELF: note to self\n"))
	acts := decode(t, Decide(ParsePrompt(b.String())))
	count := map[string]int{}
	for _, a := range acts {
		count[a.Type]++
		if a.Type == "dm" && a.To != alice {
			t.Errorf("dm to %s", a.To)
		}
	}
	if count["dm"] != maxReplies || count["channel"] != maxReplies || len(acts) != 2*maxReplies {
		t.Fatalf("counts %v: %+v", count, acts)
	}
}

func TestBuiltinNoGoalsAddsOne(t *testing.T) {
	acts := decode(t, Decide(ParsePrompt("What is 2+2?")))
	if len(acts) != 1 || acts[0].Type != "goal_add" || acts[0].Description == "" {
		t.Fatalf("%+v", acts)
	}
}

func FuzzBuiltin(f *testing.F) {
	f.Add(fill(tickPrompt))
	f.Add("## Goals\n- [g1] (active, NaN) x\n- [g2] (active, -Inf) y\n")
	f.Add("## Observations\n- dm from " + alice + ":\n## Channel\n" + chanI)
	f.Add("## Agent\nname:\xff\xfe\n## Balance\n-5 sats")
	f.Fuzz(func(t *testing.T, s string) {
		p := ParsePrompt(s)
		for _, g := range p.Goals {
			if g.ID == "" || g.Progress < 0 || g.Progress > 1 {
				t.Fatalf("bad goal %+v", g)
			}
		}
		for _, o := range p.Observations {
			if !isHex64(o.From) || o.Type == "" {
				t.Fatalf("bad observation %+v", o)
			}
		}
		if p.Channel != "" && !isHex64(p.Channel) {
			t.Fatalf("bad channel %q", p.Channel)
		}
		out := Decide(p)
		var v struct {
			Actions []Action `json:"actions"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil || v.Actions == nil {
			t.Fatalf("invalid JSON %v: %s", err, out)
		}
		for _, a := range v.Actions {
			if a.Type == "dm" && !isHex64(a.To) {
				t.Fatalf("dm to %q", a.To)
			}
			if a.Progress != nil && (*a.Progress <= 0 || *a.Progress >= 1) {
				t.Fatalf("progress %v", *a.Progress)
			}
		}
		if Decide(ParsePrompt(s)) != out {
			t.Fatal("not deterministic")
		}
	})
}
