package nipsa

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

// Each decoder is fuzzed on arbitrary tags (JSON) and content. Beyond "never panics", what a
// decoder accepts must survive its builder: decode -> build -> decode is stable.
func fuzzDecoder[T any](f *testing.F, seeds []nostr.Event, decode func(nostr.Tags, string) (T, error), build func(T) (nostr.Event, error)) {
	for _, ev := range seeds {
		tags, _ := json.Marshal(ev.Tags)
		f.Add(string(tags), ev.Content)
	}
	f.Add(`[["d"]]`, "")
	f.Add(`[]`, "{}")
	f.Fuzz(func(t *testing.T, tagsJSON, content string) {
		var tags nostr.Tags
		if json.Unmarshal([]byte(tagsJSON), &tags) != nil {
			return
		}
		v1, err := decode(tags, content)
		if err != nil {
			return
		}
		ev, err := build(v1)
		if err != nil {
			t.Fatalf("accepted %+v but the builder refuses it: %v", v1, err)
		}
		v2, err := decode(ev.Tags, ev.Content)
		if err != nil {
			t.Fatalf("builder output refused: %v", err)
		}
		ev, _ = build(v2)
		v3, err := decode(ev.Tags, ev.Content)
		if err != nil || !reflect.DeepEqual(v2, v3) {
			t.Fatalf("round trip unstable: %+v != %+v (%v)", v2, v3, err)
		}
	})
}

func FuzzDecodeProfile(f *testing.F) {
	fuzzDecoder(f, []nostr.Event{must(f)(ProfileEvent(sampleProfile(f)))}, decodeProfile, ProfileEvent)
}

func FuzzDecodeGoals(f *testing.F) {
	fuzzDecoder(f, []nostr.Event{must(f)(GoalsEvent(sampleGoals()))}, decodeGoals, GoalsEvent)
}

func FuzzDecodeTickRequest(f *testing.F) {
	fuzzDecoder(f, []nostr.Event{must(f)(TickRequestEvent(sampleTickRequest(f)))}, decodeTickRequest, TickRequestEvent)
}

func FuzzDecodeTickResult(f *testing.F) {
	fuzzDecoder(f, []nostr.Event{must(f)(TickResultEvent(sampleTickResult(f)))}, decodeTickResult, TickResultEvent)
}

func FuzzDecodeSession(f *testing.F) {
	fuzzDecoder(f, []nostr.Event{must(f)(SessionEvent(sampleSession()))}, decodeSession, SessionEvent)
}

func FuzzDecodeTrajectoryEvent(f *testing.F) {
	fuzzDecoder(f, []nostr.Event{must(f)(TrajectoryEventEvent(sampleTrajectoryEvent()))}, decodeTrajectoryEvent, TrajectoryEventEvent)
}

func FuzzParseScheduleTags(f *testing.F) {
	decode := func(tags nostr.Tags, content string) (AgentSchedule, error) {
		if content != "" {
			return AgentSchedule{}, fieldErr(KindAgentSchedule, "content", "must be empty")
		}
		return ParseScheduleTags(tags)
	}
	fuzzDecoder(f, []nostr.Event{must(f)(ScheduleEvent(sampleSchedule()))}, decode, ScheduleEvent)
}

func FuzzParseBusinessHours(f *testing.F) {
	for _, s := range []string{"mon,tue 09:00-17:00", "sun 00:00-24:00", "fri 22:00-23:59", "mon 9-5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bh, err := ParseBusinessHours(s)
		if err != nil {
			return
		}
		again, err := ParseBusinessHours(bh.String())
		if err != nil || again != bh {
			t.Fatalf("%q -> %q does not parse back the same: %v", s, bh.String(), err)
		}
	})
}

// FuzzOpen feeds arbitrary content and state_version to the state opener: it must refuse
// without panicking, and anything it opens must seal again.
func FuzzOpen(f *testing.F) {
	s, err := NewSealer(agentSK)
	if err != nil {
		f.Fatal(err)
	}
	ev, _, err := s.Seal(sampleState())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ev.Content, "1")
	f.Add(ev.Content, "2")
	f.Add("Ag==", "1")
	f.Add("#"+ev.Content, "1")
	f.Fuzz(func(t *testing.T, content, version string) {
		tags := nostr.Tags{{"d", "state"}, {"encrypted"}, {"state_version", version}}
		st, err := s.open(tags, content)
		if err != nil {
			return
		}
		if _, _, err := s.Seal(st); err != nil {
			t.Fatalf("opened a state that cannot be sealed again: %v", err)
		}
	})
}

// FuzzParseEvent feeds whole events (seeded with validly signed ones of every kind) to every
// Parse function: none may panic, and a mutated event must not verify.
func FuzzParseEvent(f *testing.F) {
	st, _, err := Seal(agentSK, sampleState())
	if err != nil {
		f.Fatal(err)
	}
	for _, ev := range []nostr.Event{
		must(f)(ProfileEvent(sampleProfile(f))), must(f)(ScheduleEvent(sampleSchedule())),
		must(f)(GoalsEvent(sampleGoals())), must(f)(TickRequestEvent(sampleTickRequest(f))),
		must(f)(TickResultEvent(sampleTickResult(f))), must(f)(SessionEvent(sampleSession())),
		must(f)(TrajectoryEventEvent(sampleTrajectoryEvent())), st,
	} {
		raw, _ := json.Marshal(signed(f, ev, agentSK))
		f.Add(string(raw))
	}
	s, _ := NewSealer(agentSK)
	f.Fuzz(func(t *testing.T, raw string) {
		var ev nostr.Event
		if json.Unmarshal([]byte(raw), &ev) != nil {
			return
		}
		_, _ = ParseProfile(&ev)
		_, _ = ParseSchedule(&ev)
		_, _ = ParseGoals(&ev)
		_, _ = ParseTickRequest(&ev)
		_, _ = ParseTickResult(&ev)
		_, _ = ParseSession(&ev)
		_, _ = ParseTrajectoryEvent(&ev)
		_, _ = s.Open(&ev)
	})
}
