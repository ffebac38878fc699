package actions

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const (
	npub = "npub1zutzeysacnf9rru6zqwmxd54mud0k44tst6l70ja5mhv8jjumytsd2x7nu"
	pk   = "17162c921dc4d2518f9a101db33695df1afb56ab82f5ff3e5da6eec3ca5cd917"
	chID = "aaaabbbbccccddddeeeeffff0000111122223333444455556666777788889999"
)

func TestParseLines(t *testing.T) {
	answer := `Let me think about this.
POST: Hello Nostr, I love *stars*!
DM: ` + npub + ` thanks for the zap
- dm: <` + pk + `> bullet and brackets
CHANNEL: general update
CHANNEL: ` + chID + ` to a channel
ZAP: ` + npub + ` 21 great post
ZAP: @` + pk + ` 1,000 sats
**GOAL:** add Learn about Lightning
GOAL: update g1 0.5
GOAL: update g2 75%
GOAL: complete g1
That's all.`
	got, problems, err := Parse(answer)
	if err != nil || len(problems) != 0 {
		t.Fatalf("err %v problems %v", err, problems)
	}
	want := []Action{
		{Type: Post, Content: "Hello Nostr, I love *stars*!"},
		{Type: DM, To: pk, Content: "thanks for the zap"},
		{Type: DM, To: pk, Content: "bullet and brackets"},
		{Type: Channel, Content: "general update"},
		{Type: Channel, Channel: chID, Content: "to a channel"},
		{Type: Zap, To: pk, Sats: 21, Comment: "great post"},
		{Type: Zap, To: pk, Sats: 1000},
		{Type: GoalAdd, Description: "Learn about Lightning"},
		{Type: GoalUpdate, ID: "g1", Progress: 0.5},
		{Type: GoalUpdate, ID: "g2", Progress: 0.75},
		{Type: GoalComplete, ID: "g1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseLineProblems(t *testing.T) {
	answer := strings.Join([]string{
		"POST: ok one",                // 1 valid
		"POST:   ",                    // 2 empty
		"DM: npub1nope hi",            // 3 bad key
		"DM: " + pk,                   // 4 no content
		"ZAP: " + pk + " lots",        // 5 sats not a number
		"ZAP: " + pk + " 0",           // 6 sats zero
		"ZAP: " + pk + " 99999999999", // 7 too many sats
		"ZAP: " + pk,                  // 8 no sats
		"GOAL: update g1 1.5",         // 9 progress range
		"GOAL: update g1",             // 10 no progress
		"GOAL: remove g1",             // 11 unknown verb
		"GOAL: complete",              // 12 no id
		"POST: " + strings.Repeat("x", MaxContent+1), // 13 too long
		"POST: ok two", // 14 valid
	}, "\n")
	got, problems, err := Parse(answer)
	if err != nil || len(got) != 2 || got[0].Content != "ok one" || got[1].Content != "ok two" {
		t.Fatalf("valid ones lost: %v %+v", err, got)
	}
	wantReasons := map[int]string{2: "content: empty", 3: "to:", 4: "content: empty", 5: "not a whole number",
		6: "sats: 0 is not in", 7: "sats: 99999999999", 8: "want ZAP:", 9: "progress: 1.5", 10: "want GOAL: update",
		11: `"remove" is not add`, 12: "id: empty", 13: "4001 characters"}
	if len(problems) != len(wantReasons) {
		t.Fatalf("%d problems: %v", len(problems), problems)
	}
	for _, p := range problems {
		if w := wantReasons[p.Line]; w == "" || !strings.Contains(p.Reason, w) {
			t.Errorf("line %d: reason %q, want it to contain %q", p.Line, p.Reason, w)
		}
		if len(p.Raw) > maxRaw+4 || strings.Contains(p.Reason, "\n") {
			t.Errorf("line %d: unbounded problem %q", p.Line, p.Raw)
		}
	}
}

func TestParseJSON(t *testing.T) {
	body := `{"actions":[
 {"type":"post","content":"from json"},
 {"type":"dm","to":"` + npub + `","content":"hi"},
 {"type":"channel","channel":"` + chID + `","content":"c"},
 {"type":"zap","to":"` + pk + `","sats":21,"comment":"gm"},
 {"type":"goal_add","description":"grow","priority":2},
 {"type":"goal_update","id":"g1","progress":0},
 {"type":"goal_complete","id":"g1"},
 {"type":"Goal-Update","goal_id":"g2","progress":"0.25"},
 {"type":"zap","to":"` + pk + `","sats":2.5},
 {"type":"fly","content":"x"},
 "not an object",
 {"type":"goal_update","id":"g3"}
], "reasoning":"ignored"}`
	want := []Action{
		{Type: Post, Content: "from json"},
		{Type: DM, To: pk, Content: "hi"},
		{Type: Channel, Channel: chID, Content: "c"},
		{Type: Zap, To: pk, Sats: 21, Comment: "gm"},
		{Type: GoalAdd, Description: "grow", Priority: 2},
		{Type: GoalUpdate, ID: "g1", Progress: 0},
		{Type: GoalComplete, ID: "g1"},
		{Type: GoalUpdate, ID: "g2", Progress: 0.25},
	}
	for name, answer := range map[string]string{
		"bare":  body,
		"prose": "Sure! Here is my plan {not json} and then:\n" + body + "\nPOST: ignored line",
		"fence": "I will act.\n```json\n" + body + "\n```\nPOST: ignored line",
	} {
		got, problems, err := Parse(answer)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got\n%+v\nwant\n%+v", name, got, want)
		}
		if len(problems) != 4 {
			t.Fatalf("%s: problems %v", name, problems)
		}
		for i, w := range []string{"sats: 2.5 is not a whole number", `type: "fly"`, "not a JSON object", "progress: missing"} {
			if !strings.Contains(problems[i].Reason, w) || problems[i].Index != 8+i || problems[i].Line != 0 {
				t.Errorf("%s: problem %d: %+v, want %q", name, i, problems[i], w)
			}
		}
	}
}

func TestParseNothing(t *testing.T) {
	for _, answer := range []string{"", "I have nothing to say.", "POST:", `{"actions":[{"type":"post"}]}`, `{"actions": 5}`} {
		got, _, err := Parse(answer)
		if !errors.Is(err, ErrNoActions) || got != nil {
			t.Errorf("%q: got %v, %v", answer, got, err)
		}
	}
	// A broken JSON answer says why.
	_, problems, err := Parse(`{"actions":[{"type":"post","content":"x"},]}`)
	if !errors.Is(err, ErrNoActions) || len(problems) != 1 || !strings.Contains(problems[0].Reason, "does not decode") {
		t.Fatalf("broken json: %v %v", err, problems)
	}
	// An explicit empty list is a decision, not a failure.
	got, problems, err := Parse("Nothing needed.\n```json\n{\"actions\": []}\n```")
	if err != nil || len(got) != 0 || len(problems) != 0 {
		t.Fatalf("explicit empty: %v %v %v", got, problems, err)
	}
}

func TestParseBounds(t *testing.T) {
	var b strings.Builder
	for i := 0; i < MaxActions+3; i++ {
		fmt.Fprintf(&b, "POST: n%d\n", i)
	}
	got, problems, err := Parse(b.String())
	if err != nil || len(got) != MaxActions || len(problems) != 3 || !strings.Contains(problems[0].Reason, "more than") {
		t.Fatalf("%d actions, problems %v, %v", len(got), problems, err)
	}
	got, problems, err = Parse("POST: first\n" + strings.Repeat("x", MaxAnswer) + "\nPOST: beyond")
	if err != nil || len(got) != 1 || len(problems) != 1 || problems[0].Index != -1 {
		t.Fatalf("long answer: %v %v %v", got, problems, err)
	}
}

func TestDetailsAndJSON(t *testing.T) {
	cases := map[string]Action{
		`{"content":"c","type":"post"}`:                      {Type: Post, Content: "c"},
		`{"content":"c","to":"` + pk + `","type":"dm"}`:      {Type: DM, To: pk, Content: "c"},
		`{"content":"c","type":"channel"}`:                   {Type: Channel, Content: "c"},
		`{"sats":5,"to":"` + pk + `","type":"zap"}`:          {Type: Zap, To: pk, Sats: 5},
		`{"description":"d","priority":3,"type":"goal_add"}`: {Type: GoalAdd, Description: "d", Priority: 3},
		`{"id":"g","progress":0,"type":"goal_update"}`:       {Type: GoalUpdate, ID: "g"},
		`{"id":"g","type":"goal_complete"}`:                  {Type: GoalComplete, ID: "g"},
	}
	for want, a := range cases {
		b, err := json.Marshal(a)
		if err != nil || string(b) != want {
			t.Errorf("got %s, want %s (%v)", b, want, err)
		}
		got, _, err := Parse(`{"actions":[` + string(b) + `]}`)
		if err != nil || len(got) != 1 || got[0] != a {
			t.Errorf("round trip %s: %+v %v", b, got, err)
		}
	}
}

func TestValidate(t *testing.T) {
	a, err := Validate(Action{Type: DM, To: " " + strings.ToUpper(pk), Content: "  hi  ", Sats: 9})
	if err != nil || a != (Action{Type: DM, To: pk, Content: "hi"}) {
		t.Fatalf("normalise: %+v %v", a, err)
	}
	for _, bad := range []Action{
		{Type: "launch"},
		{Type: GoalUpdate, ID: "g", Progress: -0.1},
		{Type: GoalAdd, Description: "d", Priority: -1},
		{Type: GoalComplete, ID: "has space"},
		{Type: GoalComplete, ID: strings.Repeat("g", MaxGoalID+1)},
		{Type: Channel, Channel: "abc", Content: "x"},
		{Type: Zap, To: pk, Sats: 1, Comment: strings.Repeat("c", MaxComment+1)},
	} {
		if _, err := Validate(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if !strings.Contains(Instructions, "ZAP:") || !strings.Contains(Instructions, `"actions"`) {
		t.Fatal("Instructions must describe both formats")
	}
}

// FuzzParse: Parse never panics, never returns an invalid action, keeps problems bounded, and
// every action it returns survives a JSON round trip unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "POST: hi", "DM: " + npub + " yo", "ZAP: " + pk + " 21 gm", "GOAL: update g 0.5",
		"CHANNEL: " + chID + " x", `{"actions":[{"type":"post","content":"x"}]}`,
		"```json\n{\"actions\":[{\"type\":\"zap\",\"to\":\"" + pk + "\",\"sats\":\"7\"}]}\n```",
		`{"actions":[{"type":"goal_update","id":"g","progress":"50%"}]}`, "{{{{", `{"actions":null}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, answer string) {
		got, problems, err := Parse(answer)
		if err != nil && !errors.Is(err, ErrNoActions) {
			t.Fatalf("unexpected error %v", err)
		}
		if err != nil && len(got) != 0 {
			t.Fatalf("error %v with actions", err)
		}
		if len(got) > MaxActions {
			t.Fatalf("%d actions", len(got))
		}
		for _, p := range problems {
			if len(p.Raw) > maxRaw+4 || len(p.Reason) > 304 {
				t.Fatalf("unbounded problem %+v", p)
			}
		}
		for _, a := range got {
			if v, err := Validate(a); err != nil || v != a {
				t.Fatalf("returned action not valid/normalised: %+v %v", a, err)
			}
			b, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			back, _, err := Parse(`{"actions":[` + string(b) + `]}`)
			if err != nil || len(back) != 1 || back[0] != a {
				t.Fatalf("round trip of %s: %+v %v", b, back, err)
			}
		}
	})
}
