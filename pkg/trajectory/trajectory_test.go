package trajectory

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openagents/runtime/pkg/nipsa"
)

func TestHash(t *testing.T) {
	if got := Hash(nil); got != strings.Repeat("0", 64) {
		t.Fatalf("empty: %s", got)
	}
	// sha256("a\nb"), computed independently of Hash.
	sum := sha256.Sum256([]byte("a\nb"))
	if got, want := Hash([]string{"a", "b"}), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("got %s want %s", got, want)
	}
	if Hash([]string{"a", "b"}) == Hash([]string{"b", "a"}) || Hash([]string{"ab"}) == Hash([]string{"a", "b"}) {
		t.Fatal("order and boundaries must change the hash")
	}
	if got := Hash([]string{""}); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("one empty content is sha256(\"\"): %s", got)
	}
}

func TestRecorder(t *testing.T) {
	now := time.Unix(1703000000, 0)
	r := NewRecorder("s1", "t1", "llama", now)
	r.Observation("mention from alice: hi <b>", map[string]any{"event_id": "abc", "token": "xyz"})
	r.Thinking("I should reply")
	r.ToolUse("inference", map[string]any{"provider": "p", "api_key": "sk-abcdefghijklmnopqrstuvwxyz"})
	r.ToolResult("inference", map[string]any{"text": "ok", "tokens_in": 12, "seed": 7}, false)
	r.Action("post", map[string]any{"content": "hello"})
	evs := r.Events()
	if len(evs) != 5 {
		t.Fatalf("%d events", len(evs))
	}
	want := []struct {
		step    string
		content string
	}{
		{nipsa.StepMessage, `{"type":"Message","subtype":"observation","content":"mention from alice: hi <b>","meta":{"event_id":"abc","token":"[REDACTED]"}}`},
		{nipsa.StepThinking, `{"type":"Thinking","content":"<redacted>","hash":"` + sha("I should reply") + `"}`},
		{nipsa.StepToolUse, `{"type":"ToolUse","tool":"inference","input":{"api_key":"[REDACTED]","provider":"p"}}`},
		{nipsa.StepToolResult, `{"type":"ToolResult","tool":"inference","output":{"seed":7,"text":"ok","tokens_in":12}}`},
		{nipsa.StepMessage, `{"type":"Message","subtype":"action","action_type":"post","details":{"content":"hello"}}`},
	}
	contents := make([]string, len(evs))
	for i, e := range evs {
		if e.Seq != i+1 || e.SessionID != "s1" || e.TickID != "t1" || e.Step != want[i].step {
			t.Errorf("event %d: %+v", i, e)
		}
		if e.Content != want[i].content {
			t.Errorf("event %d content:\n got %s\nwant %s", i, e.Content, want[i].content)
		}
		if !json.Valid([]byte(e.Content)) {
			t.Errorf("event %d: invalid JSON", i)
		}
		contents[i] = e.Content
	}
	if r.Hash() != Hash(contents) {
		t.Fatal("Recorder.Hash differs from Hash of contents")
	}
	if err := Verify(evs, r.Hash()); err != nil {
		t.Fatal(err)
	}
	s := r.Session(now.Add(time.Minute))
	if s.TotalEvents != 5 || s.TrajectoryHash != r.Hash() || s.StartedAt != now.Unix() || s.EndedAt != now.Unix()+60 || s.Model != "llama" {
		t.Fatalf("session %+v", s)
	}
	if st := r.Session(time.Time{}); st.EndedAt != 0 || st.TrajectoryHash != "" {
		t.Fatalf("start session %+v", st)
	}
	// Events is a copy.
	evs[0].Content = "x"
	if r.Events()[0].Content == "x" {
		t.Fatal("Events exposes internal slice")
	}
	if got := NewRecorder("s", "t", "m", now).Hash(); got != EmptyHash {
		t.Fatalf("empty recorder: %s", got)
	}
}

func TestRecorderClipsHugeText(t *testing.T) {
	r := NewRecorder("s", "t", "m", time.Now())
	ev := r.Observation(strings.Repeat("é", MaxText), nil)
	if len(ev.Content) > MaxText+200 || !json.Valid([]byte(ev.Content)) || !strings.Contains(ev.Content, "[truncated]") {
		t.Fatalf("len %d", len(ev.Content))
	}
}

func sha(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func TestVerify(t *testing.T) {
	r := NewRecorder("s", "t", "m", time.Now())
	for i := 0; i < 4; i++ {
		r.Observation("o", nil)
	}
	good := r.Events()
	h := r.Hash()
	rev := []nipsa.TrajectoryEvent{good[3], good[1], good[0], good[2]}
	if err := Verify(rev, h); err != nil {
		t.Fatalf("any order: %v", err)
	}
	if rev[0].Seq != 4 {
		t.Fatal("Verify reordered the caller's slice")
	}
	if err := Verify(nil, EmptyHash); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		evs  []nipsa.TrajectoryEvent
		hash string
		err  error
		says string
	}{
		"gap":       {[]nipsa.TrajectoryEvent{good[0], good[1], good[3]}, h, ErrBadSequence, "seq 3 is missing"},
		"duplicate": {[]nipsa.TrajectoryEvent{good[0], good[1], good[1], good[2]}, h, ErrBadSequence, "seq 2 appears twice"},
		"start":     {good[1:], h, ErrBadSequence, "first seq is 2"},
		"tampered":  {append(good[:3:3], nipsa.TrajectoryEvent{SessionID: "s", Seq: 4, Content: "{}"}), h, ErrHashMismatch, "want " + h},
		"wrong":     {good, EmptyHash, ErrHashMismatch, "4 events"},
		"sessions":  {[]nipsa.TrajectoryEvent{good[0], {SessionID: "other", Seq: 2}}, h, ErrBadSequence, `"other"`},
	}
	for name, c := range cases {
		err := Verify(c.evs, c.hash)
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}
