package actions

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Parse reads the actions in a model's answer: a JSON object {"actions":[...]} (bare, in prose
// or in a ``` fence) or, failing that, the line format of Instructions. Invalid items become
// Problems and are skipped; the error is ErrNoActions when no valid action remains, except
// for an explicit {"actions":[]}, which is the model choosing to do nothing.
func Parse(answer string) ([]Action, []Problem, error) {
	var problems []Problem
	if len(answer) > MaxAnswer {
		problems = append(problems, Problem{Index: -1, Raw: clip(answer[MaxAnswer:], maxRaw),
			Reason: fmt.Sprintf("answer longer than %d bytes; the rest is ignored", MaxAnswer)})
		answer = answer[:MaxAnswer]
	}
	var items []item
	explicitEmpty := false
	if raw, ok, why := findJSON(answer); ok {
		items, why = jsonItems(raw)
		if why != "" {
			problems = append(problems, Problem{Index: -1, Raw: clip(string(raw), maxRaw), Reason: why})
		}
		explicitEmpty = why == "" && len(items) == 0
	} else {
		if why != "" {
			problems = append(problems, Problem{Index: -1, Raw: "", Reason: why})
		}
		items = lineItems(answer)
	}

	var out []Action
	for i, it := range items {
		if it.err == nil && len(out) >= MaxActions {
			it.err = fmt.Errorf("more than %d actions in one answer", MaxActions)
		}
		if it.err == nil {
			var a Action
			if a, it.err = Validate(it.action); it.err == nil {
				out = append(out, a)
				continue
			}
		}
		problems = append(problems, Problem{Index: i, Line: it.line, Raw: clip(it.raw, maxRaw),
			Reason: reason(it.err)})
	}
	if len(out) == 0 && !explicitEmpty {
		return nil, problems, ErrNoActions
	}
	return out, problems, nil
}

// item is a candidate action before validation.
type item struct {
	action Action
	line   int
	raw    string
	err    error
}

var fence = regexp.MustCompile("(?s)```[A-Za-z]*[ \t]*\n?(.*?)```")

// maxJSONStarts bounds the '{' positions tried, so an answer full of braces stays cheap.
const maxJSONStarts = 64

// findJSON returns the first JSON object holding an "actions" key: first inside fences, then
// anywhere in the text. why explains a near miss (an object that mentions actions but does not
// decode), so the model can be told.
func findJSON(answer string) (json.RawMessage, bool, string) {
	var candidates []string
	for _, m := range fence.FindAllStringSubmatch(answer, 8) {
		candidates = append(candidates, m[1])
	}
	candidates = append(candidates, answer)
	var why string
	for _, c := range candidates {
		starts := 0
		for i := 0; i < len(c) && starts < maxJSONStarts; i++ {
			if c[i] != '{' {
				continue
			}
			starts++
			var obj map[string]json.RawMessage
			dec := json.NewDecoder(strings.NewReader(c[i:]))
			if err := dec.Decode(&obj); err != nil {
				if why == "" && strings.Contains(c[i:], `"actions"`) {
					why = "JSON with \"actions\" does not decode: " + clip(err.Error(), 120)
				}
				continue
			}
			if raw, ok := obj["actions"]; ok {
				return raw, true, ""
			}
		}
	}
	return nil, false, why
}

func jsonItems(raw json.RawMessage) ([]item, string) {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, "\"actions\" is not an array"
	}
	items := make([]item, len(list))
	for i, r := range list {
		items[i] = item{raw: string(r)}
		items[i].action, items[i].err = jsonAction(r)
	}
	return items, ""
}

// Aliases models use for the same field.
var (
	contentKeys = []string{"content", "text", "message"}
	toKeys      = []string{"to", "pubkey", "recipient", "npub"}
	satsKeys    = []string{"sats", "amount", "amount_sats"}
	idKeys      = []string{"id", "goal_id", "goal"}
	descKeys    = []string{"description", "goal", "text", "content"}
)

func jsonAction(r json.RawMessage) (Action, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(r, &obj); err != nil {
		return Action{}, errors.New("not a JSON object")
	}
	typ, err := str(obj, "type")
	if err != nil || typ == "" {
		return Action{}, errors.New("type: missing")
	}
	a := Action{Type: normType(typ)}
	var errs []error
	get := func(keys ...string) string {
		s, err := str(obj, keys...)
		errs = append(errs, err)
		return s
	}
	switch a.Type {
	case Post:
		a.Content = get(contentKeys...)
	case DM:
		a.To, a.Content = get(toKeys...), get(contentKeys...)
	case Channel:
		a.Channel, a.Content = get("channel", "channel_id"), get(contentKeys...)
	case Zap:
		a.To, a.Comment = get(toKeys...), get("comment")
		var n float64
		if n, err = num(obj, satsKeys...); err == nil && n != float64(int64(n)) {
			err = fmt.Errorf("sats: %v is not a whole number", n)
		}
		errs = append(errs, err)
		a.Sats = int64(n)
	case GoalAdd:
		a.Description = get(descKeys...)
		var p float64
		if p, err = num(obj, "priority"); err == nil && p != float64(int(p)) {
			err = fmt.Errorf("priority: %v is not a whole number", p)
		}
		errs = append(errs, err)
		a.Priority = int(p)
	case GoalUpdate:
		a.ID = get(idKeys...)
		a.Progress, err = num(obj, "progress")
		errs = append(errs, err)
		if _, ok := obj["progress"]; !ok {
			errs = append(errs, errors.New("progress: missing"))
		}
	case GoalComplete:
		a.ID = get(idKeys...)
	}
	return a, errors.Join(errs...)
}

// str returns the first of keys present; it must be a string (or a number, for ids).
func str(obj map[string]json.RawMessage, keys ...string) (string, error) {
	for _, k := range keys {
		r, ok := obj[k]
		if !ok || string(r) == "null" {
			continue
		}
		var s string
		if err := json.Unmarshal(r, &s); err == nil {
			return s, nil
		}
		var n json.Number
		if err := json.Unmarshal(r, &n); err == nil {
			return n.String(), nil
		}
		return "", fmt.Errorf("%s: not a string", k)
	}
	return "", nil
}

// num returns the first of keys present as a number; numeric strings and "50%" are accepted.
func num(obj map[string]json.RawMessage, keys ...string) (float64, error) {
	for _, k := range keys {
		r, ok := obj[k]
		if !ok || string(r) == "null" {
			continue
		}
		var f float64
		if err := json.Unmarshal(r, &f); err == nil {
			return f, nil
		}
		var s string
		if err := json.Unmarshal(r, &s); err == nil {
			if f, err := parseNumber(s); err == nil {
				return f, nil
			}
		}
		return 0, fmt.Errorf("%s: not a number", k)
	}
	return 0, nil
}

func parseNumber(s string) (float64, error) {
	s = strings.TrimSpace(s)
	pct := strings.HasSuffix(s, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return 0, err
	}
	if pct {
		f /= 100
	}
	return f, nil
}

func normType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	t = strings.NewReplacer("-", "_", " ", "_").Replace(t)
	switch t {
	case "note", "tweet", "publish":
		return Post
	case "direct_message", "message":
		return DM
	case "channel_message":
		return Channel
	case "add_goal":
		return GoalAdd
	case "update_goal":
		return GoalUpdate
	case "complete_goal":
		return GoalComplete
	}
	return t
}

var bullet = regexp.MustCompile(`^(?:[-*•>]+|\d{1,3}[.)])\s*`)

// lineItems reads the line format. Lines that do not start with a keyword are prose and are
// ignored; a keyword line that does not parse becomes a problem.
func lineItems(answer string) []item {
	var items []item
	for n, line := range strings.Split(answer, "\n") {
		line = strings.TrimSpace(line)
		line = bullet.ReplaceAllString(line, "")
		// **POST:** ... and `POST: ...`
		if strings.HasPrefix(line, "`") {
			line = strings.TrimSuffix(line, "`")
		}
		line = strings.TrimLeft(line, "*`")
		kw, rest, ok := strings.Cut(line, ":")
		if !ok || len(kw) > 8 {
			continue
		}
		kw = strings.ToUpper(strings.TrimSpace(strings.Trim(kw, "*")))
		rest = strings.TrimSpace(strings.TrimPrefix(rest, "**"))
		it := item{line: n + 1, raw: line}
		switch kw {
		case "POST":
			it.action = Action{Type: Post, Content: rest}
		case "DM":
			to, content := word(rest)
			it.action = Action{Type: DM, To: to, Content: content}
		case "CHANNEL":
			it.action = Action{Type: Channel, Content: rest}
			if id, content := word(rest); looksHex64(cleanRef(id)) {
				it.action.Channel, it.action.Content = id, content
			}
		case "ZAP":
			it.action, it.err = zapLine(rest)
		case "GOAL":
			it.action, it.err = goalLine(rest)
		default:
			continue
		}
		items = append(items, it)
	}
	return items
}

func zapLine(rest string) (Action, error) {
	to, rest := word(rest)
	amount, comment := word(rest)
	if amount == "" {
		return Action{}, errors.New("zap: want ZAP: <npub|hex> <sats> [comment]")
	}
	amount = strings.TrimSuffix(strings.ToLower(amount), "sats")
	if w, after := word(comment); strings.EqualFold(w, "sats") || strings.EqualFold(w, "sat") {
		comment = after
	}
	sats, err := strconv.ParseInt(strings.ReplaceAll(amount, ",", ""), 10, 64)
	if err != nil {
		return Action{}, fmt.Errorf("zap: sats: %q is not a whole number", clip(amount, 30))
	}
	return Action{Type: Zap, To: to, Sats: sats, Comment: comment}, nil
}

func goalLine(rest string) (Action, error) {
	verb, rest := word(rest)
	switch strings.ToLower(verb) {
	case "add":
		return Action{Type: GoalAdd, Description: rest}, nil
	case "update":
		id, rest := word(rest)
		p, extra := word(rest)
		if p == "" {
			return Action{}, errors.New("goal_update: want GOAL: update <id> <progress 0..1>")
		}
		if extra != "" {
			return Action{}, fmt.Errorf("goal_update: unexpected text after progress: %q", clip(extra, 30))
		}
		f, err := parseNumber(p)
		if err != nil {
			return Action{}, fmt.Errorf("goal_update: progress: %q is not a number", clip(p, 30))
		}
		return Action{Type: GoalUpdate, ID: id, Progress: f}, nil
	case "complete", "done":
		id, extra := word(rest)
		if extra != "" {
			return Action{}, fmt.Errorf("goal_complete: unexpected text after id: %q", clip(extra, 30))
		}
		return Action{Type: GoalComplete, ID: id}, nil
	}
	return Action{}, fmt.Errorf("goal: %q is not add, update or complete", clip(verb, 20))
}

// word splits off the first whitespace-separated word.
func word(s string) (string, string) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i+1:])
}

func looksHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	return bytes.IndexFunc([]byte(strings.ToLower(s)), func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f')
	}) < 0
}

// reason is an error as one bounded line for a Problem.
func reason(err error) string {
	s := strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")
	return clip(strings.ReplaceAll(s, "\n", "; "), 300)
}
