package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/openagents/runtime/pkg/contracts"
)

const (
	// NIP-06 test vector keys: the agent, and another account as the sender.
	agent    = "17162c921dc4d2518f9a101db33695df1afb56ab82f5ff3e5da6eec3ca5cd917"
	senderSK = "c15d739894c81a2fcfd3a2df85a0d2c0dbc47a280d092799f144d73d7ae78add"
	other    = "d41b22899549e1f3d335a31002cfd382174006e166d3e658e3a5eecdb6463573"
)

var (
	subject = contracts.TriggerSubject(agent)
	now     = time.Unix(1_703_000_000, 0)
)

func signed(t testing.TB, kind int, p string) nostr.Event {
	t.Helper()
	ev := nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(now.Unix()), Content: "hello agent"}
	if p != "" {
		ev.Tags = nostr.Tags{{"p", p}}
	}
	if err := ev.Sign(senderSK); err != nil {
		t.Fatal(err)
	}
	return ev
}

func msg(t testing.TB, fields map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseValid(t *testing.T) {
	tr, a, err := Parse(subject, []byte(`{"type":"heartbeat"}`), now)
	if err != nil || a != agent {
		t.Fatalf("%v %s", err, a)
	}
	if tr.Type != "heartbeat" || tr.At != now.Unix() || len(tr.ID) != 32 || tr.Event != nil {
		t.Fatalf("%+v", tr)
	}
	tr2, _, _ := Parse(subject, []byte(`{"type":"heartbeat"}`), now.Add(time.Hour))
	if tr2.ID != tr.ID {
		t.Fatal("derived id must depend only on subject and data")
	}
	tr3, _, _ := Parse(subject, []byte(`{"type":"heartbeat", "x":1}`), now)
	if tr3.ID == tr.ID {
		t.Fatal("different data, same derived id")
	}

	tr, _, err = Parse(subject, []byte(`{"type":"manual","id":"op-1_A","at":1703000100,"note":"wake up","future_field":{"a":[1]}}`), now)
	if err != nil || tr.ID != "op-1_A" || tr.At != 1703000100 || tr.Note != "wake up" {
		t.Fatalf("%+v %v", tr, err)
	}
	for _, typ := range []string{"mention", "dm", "zap", "funded", "custom:0", "custom:42", "custom:65535"} {
		if _, _, err := Parse(subject, msg(t, map[string]any{"type": typ}), now); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}

	mention := signed(t, 1, agent)
	tr, _, err = Parse(subject, msg(t, map[string]any{"type": "mention", "event": mention, "id": EventTriggerID(mention.ID)}), now)
	if err != nil || tr.Event == nil || tr.Event.ID != mention.ID || tr.ID != "ev-"+mention.ID {
		t.Fatalf("mention: %+v %v", tr, err)
	}
	zap := signed(t, 9735, agent)
	if _, _, err := Parse(subject, msg(t, map[string]any{"type": "zap", "event": zap}), now); err != nil {
		t.Fatalf("zap: %v", err)
	}
	ch := signed(t, 42, "")
	if _, _, err := Parse(subject, msg(t, map[string]any{"type": "custom:42", "event": ch}), now); err != nil {
		t.Fatalf("channel: %v", err)
	}
	if _, _, err := Parse(subject, msg(t, map[string]any{"type": "manual", "event": nil}), now); err != nil {
		t.Fatalf("null event: %v", err)
	}
}

func TestParseRejects(t *testing.T) {
	mention := signed(t, 1, agent)
	badSig := mention
	badSig.Sig = strings.Repeat("0", 128)
	badID := mention
	badID.Content = "tampered"
	notForAgent := signed(t, 1, other)
	long := strings.Repeat("é", MaxNote+1)

	cases := []struct {
		name, subject, data string
		err                 error
		says                string
	}{
		{"prefix", "sa.publish." + agent, `{"type":"manual"}`, ErrBadSubject, "does not start"},
		{"upper", "sa.trigger." + strings.ToUpper(agent), `{"type":"manual"}`, ErrBadSubject, "lowercase hex"},
		{"short", "sa.trigger.abc", `{"type":"manual"}`, ErrBadSubject, "64"},
		{"extra token", subject + ".x", `{"type":"manual"}`, ErrBadSubject, "64"},
		{"not json", subject, `type=manual`, ErrMalformed, "not a JSON object"},
		{"array", subject, `[{"type":"manual"}]`, ErrMalformed, "not a JSON object"},
		{"null", subject, `null`, ErrMalformed, "not a JSON object"},
		{"truncated", subject, `{"type":"manual"`, ErrMalformed, "unexpected end"},
		{"type missing", subject, `{}`, ErrMalformed, "type: missing"},
		{"type number", subject, `{"type":5}`, ErrMalformed, "type: want string"},
		{"at string", subject, `{"type":"manual","at":"soon"}`, ErrMalformed, "at: want int64"},
		{"unknown", subject, `{"type":"party"}`, ErrUnknownType, `"party"`},
		{"case", subject, `{"type":"Heartbeat"}`, ErrUnknownType, "Heartbeat"},
		{"custom big", subject, `{"type":"custom:65536"}`, ErrUnknownType, "0..65535"},
		{"custom neg", subject, `{"type":"custom:-1"}`, ErrUnknownType, "0..65535"},
		{"custom pad", subject, `{"type":"custom:042"}`, ErrUnknownType, "0..65535"},
		{"custom empty", subject, `{"type":"custom:"}`, ErrUnknownType, "0..65535"},
		{"future", subject, fmt.Sprintf(`{"type":"manual","at":%d}`, now.Add(25*time.Hour).Unix()), ErrMalformed, "in the future"},
		{"millis", subject, fmt.Sprintf(`{"type":"manual","at":%d}`, now.UnixMilli()), ErrMalformed, "in the future"},
		{"negative at", subject, `{"type":"manual","at":-5}`, ErrMalformed, "negative"},
		{"id dot", subject, `{"type":"manual","id":"a.b"}`, ErrMalformed, "id:"},
		{"id long", subject, `{"type":"manual","id":"` + strings.Repeat("a", MaxID+1) + `"}`, ErrMalformed, "id:"},
		{"note long", subject, `{"type":"manual","note":"` + long + `"}`, ErrMalformed, "note: 1001 characters"},
		{"event string", subject, `{"type":"mention","event":"x"}`, ErrBadEvent, "does not decode"},
		{"event empty", subject, `{"type":"mention","event":{}}`, ErrBadEvent, "lowercase hex"},
		{"bad sig", subject, string(msg(t, map[string]any{"type": "mention", "event": badSig})), ErrBadEvent, "signature"},
		{"bad id", subject, string(msg(t, map[string]any{"type": "mention", "event": badID})), ErrBadEvent, "does not match"},
		{"not for agent", subject, string(msg(t, map[string]any{"type": "mention", "event": notForAgent})), ErrBadEvent, "no p tag"},
		{"dm no p", subject, string(msg(t, map[string]any{"type": "dm", "event": signed(t, 4, "")})), ErrBadEvent, "no p tag"},
		{"custom kind", subject, string(msg(t, map[string]any{"type": "custom:42", "event": mention})), ErrBadEvent, "kind 1 does not match"},
		{"huge", subject, `{"type":"manual","note":"` + strings.Repeat("a", MaxData) + `"}`, ErrMalformed, "bytes"},
	}
	reasons := map[error]string{ErrBadSubject: "bad_subject", ErrMalformed: "malformed", ErrUnknownType: "unknown_type", ErrBadEvent: "bad_event"}
	for _, c := range cases {
		_, _, err := Parse(c.subject, []byte(c.data), now)
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: got %v, want %v containing %q", c.name, err, c.err, c.says)
			continue
		}
		if Reason(err) != reasons[c.err] {
			t.Errorf("%s: Reason %q", c.name, Reason(err))
		}
		if len(err.Error()) > 400 {
			t.Errorf("%s: error too long (%d)", c.name, len(err.Error()))
		}
	}
	if Reason(nil) != "" || Reason(errors.New("x")) != "other" {
		t.Fatal("Reason of nil / foreign errors")
	}
}

func TestIDs(t *testing.T) {
	a, b := HeartbeatID(agent, 1891111), HeartbeatID(agent, 1891112)
	if a == b || a != HeartbeatID(strings.ToUpper(agent), 1891111) || HeartbeatID(other, 1891111) == a {
		t.Fatalf("heartbeat ids %s %s", a, b)
	}
	for _, id := range []string{a, HeartbeatID(agent, -1), EventTriggerID(strings.Repeat("F", 64))} {
		if err := checkID(id); err != nil {
			t.Errorf("%s: generated id fails its own check: %v", id, err)
		}
	}
	if EventTriggerID("ABC") != "ev-abc" {
		t.Fatal(EventTriggerID("ABC"))
	}
}

// FuzzParse: never panics; an accepted trigger is fully valid, and parses again to itself.
func FuzzParse(f *testing.F) {
	ev := signed(f, 1, agent)
	for _, s := range []string{`{"type":"heartbeat"}`, `{"type":"custom:42","at":1}`, `{"type":"manual","id":"x","note":"n"}`,
		string(msg(f, map[string]any{"type": "mention", "event": ev})), `{"type":"dm","event":{"id":1}}`, `[]`, ``, `{"at":1e99}`} {
		f.Add(subject, []byte(s))
	}
	f.Add("sa.trigger.", []byte(`{"type":"zap"}`))
	f.Fuzz(func(t *testing.T, subj string, data []byte) {
		tr, a, err := Parse(subj, data, now)
		if err != nil {
			if Reason(err) == "other" || Reason(err) == "" {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !isLowerHex(a, 64) || subj != contracts.TriggerSubject(a) {
			t.Fatalf("agent %q from %q", a, subj)
		}
		if checkID(tr.ID) != nil || tr.ID == "" || tr.At <= 0 || tr.At > now.Add(MaxFuture).Unix() {
			t.Fatalf("accepted %+v", tr)
		}
		if _, err := checkType(tr.Type); err != nil {
			t.Fatalf("accepted type %q", tr.Type)
		}
		b, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		again, _, err := Parse(subj, b, now)
		if err != nil || again.ID != tr.ID || again.At != tr.At || again.Type != tr.Type || again.Note != tr.Note ||
			(again.Event == nil) != (tr.Event == nil) {
			t.Fatalf("re-parse of %s: %+v %v", b, again, err)
		}
	})
}
