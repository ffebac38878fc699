package nipsa

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// Fixed test keys (never real ones): the agent and a runner.
const (
	agentSK  = "7f7ff03d123792d6ac594bfa67bf6d0c0ab55b6b1fdb6249303fe861f1ccba9a"
	runnerSK = "0000000000000000000000000000000000000000000000000000000000000003"
)

func pub(t testing.TB, sk string) string {
	t.Helper()
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return pk
}

func signed(t testing.TB, ev nostr.Event, sk string) *nostr.Event {
	t.Helper()
	if err := ev.Sign(sk); err != nil {
		t.Fatal(err)
	}
	return &ev
}

func must(t testing.TB) func(nostr.Event, error) nostr.Event {
	return func(ev nostr.Event, err error) nostr.Event {
		t.Helper()
		if err != nil {
			t.Fatalf("build: %v", err)
		}
		return ev
	}
}

func sampleProfile(t testing.TB) AgentProfile {
	pk := pub(t, agentSK)
	return AgentProfile{
		Name: "ada", About: "a sovereign agent", Capabilities: []string{"post", "zap"},
		AutonomyLevel: AutonomyBounded, Version: "0.1.0",
		Threshold: 1, Signers: 1, Signer: pk, Operator: pk, LUD16: "ada@example.com",
	}
}

func sampleSchedule() AgentSchedule {
	return AgentSchedule{Active: true, HeartbeatSeconds: 900,
		Triggers: []string{"mention", "dm", "zap", "custom:42"}, BusinessHours: "mon,tue,fri 09:00-17:30"}
}

func sampleGoals() PublicGoals {
	return PublicGoals{Goals: []Goal{
		{ID: "g1", Description: "earn sats", Priority: 1, CreatedAt: 1703000000, Status: GoalActive, Progress: 0.3},
		{ID: "g2", Description: "post daily", Priority: 2, CreatedAt: 1703000001, Status: GoalPaused, Progress: 0},
	}}
}

func sampleTickRequest(t testing.TB) TickRequest {
	return TickRequest{TickID: "tick-1", Runner: pub(t, runnerSK), Trigger: "mention",
		Agent: pub(t, agentSK), EventID: strings.Repeat("ab", 32)}
}

func sampleTickResult(t testing.TB) TickResult {
	return TickResult{TickID: "tick-1", RequestID: strings.Repeat("cd", 32), Runner: pub(t, runnerSK),
		Status: TickSuccess, DurationMS: 1234, ActionCount: 1, TrajectoryHash: strings.Repeat("0", 64),
		Content: TickResultContent{TokensIn: 100, TokensOut: 20, CostSats: 3, GoalsUpdated: 1,
			Actions: []TickAction{{Type: "post", Details: map[string]any{"content": "hi"}}}, Session: "s1"}}
}

func sampleSession() TrajectorySession {
	return TrajectorySession{SessionID: "s1", TickID: "tick-1", StartedAt: 1703000000, EndedAt: 1703000009,
		Model: "llama3", Visibility: VisibilityPublic, TotalEvents: 2, TrajectoryHash: strings.Repeat("e", 64)}
}

func sampleTrajectoryEvent() TrajectoryEvent {
	return TrajectoryEvent{SessionID: "s1", TickID: "tick-1", Seq: 2, Step: StepThinking,
		Content: `{"type":"Thinking","content":"<redacted>","hash":"` + strings.Repeat("f", 64) + `"}`}
}

func TestRoundTrip(t *testing.T) {
	t.Run("38000", func(t *testing.T) {
		want := sampleProfile(t)
		ev := signed(t, must(t)(ProfileEvent(want)), agentSK)
		assertTagOrder(t, ev, "d", "threshold", "signer", "operator", "lud16")
		got, err := ParseProfile(ev)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("38002", func(t *testing.T) {
		want := sampleSchedule()
		ev := signed(t, must(t)(ScheduleEvent(want)), agentSK)
		assertTagOrder(t, ev, "d", "active", "heartbeat", "trigger", "trigger", "trigger", "trigger", "business_hours")
		if ev.Content != "" {
			t.Fatalf("content %q", ev.Content)
		}
		got, err := ParseSchedule(ev)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("38003", func(t *testing.T) {
		want := sampleGoals()
		ev := signed(t, must(t)(GoalsEvent(want)), agentSK)
		got, err := ParseGoals(ev)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("38010", func(t *testing.T) {
		want := sampleTickRequest(t)
		ev := signed(t, must(t)(TickRequestEvent(want)), runnerSK)
		assertTagOrder(t, ev, "d", "runner", "trigger", "p", "e")
		got, err := ParseTickRequest(ev)
		if err != nil || got != want {
			t.Fatalf("got %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("38011", func(t *testing.T) {
		want := sampleTickResult(t)
		ev := signed(t, must(t)(TickResultEvent(want)), runnerSK)
		assertTagOrder(t, ev, "d", "request", "runner", "status", "duration_ms", "actions", "trajectory_hash")
		got, err := ParseTickResult(ev)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, %v; want %+v", got, err, want)
		}
	})
	t.Run("38030", func(t *testing.T) {
		want := sampleSession()
		ev := signed(t, must(t)(SessionEvent(want)), agentSK)
		assertTagOrder(t, ev, "d", "tick", "started_at", "model", "visibility", "ended_at")
		got, err := ParseSession(ev)
		if err != nil || got != want {
			t.Fatalf("got %+v, %v; want %+v", got, err, want)
		}
		// Published again at start, without ended_at.
		want.EndedAt, want.TrajectoryHash = 0, ""
		got, err = ParseSession(signed(t, must(t)(SessionEvent(want)), agentSK))
		if err != nil || got != want {
			t.Fatalf("start form: got %+v, %v", got, err)
		}
	})
	t.Run("38031", func(t *testing.T) {
		want := sampleTrajectoryEvent()
		ev := signed(t, must(t)(TrajectoryEventEvent(want)), agentSK)
		assertTagOrder(t, ev, "d", "session", "tick", "seq", "step")
		if ev.Tags[0][1] != "s1:2" || ev.Content != want.Content {
			t.Fatalf("d %q content %q", ev.Tags[0][1], ev.Content)
		}
		got, err := ParseTrajectoryEvent(ev)
		if err != nil || got != want {
			t.Fatalf("got %+v, %v; want %+v", got, err, want)
		}
	})
}

func assertTagOrder(t *testing.T, ev *nostr.Event, names ...string) {
	t.Helper()
	var got []string
	for _, tg := range ev.Tags {
		got = append(got, tg[0])
	}
	if !reflect.DeepEqual(got, names) {
		t.Fatalf("tag order %v, want %v", got, names)
	}
}

func TestGoalNormalization(t *testing.T) {
	g := sampleGoals()
	g.Goals[0].Progress = 1.7
	g.Goals[1].Progress = -0.5
	got, err := ParseGoals(signed(t, must(t)(GoalsEvent(g)), agentSK))
	if err != nil {
		t.Fatal(err)
	}
	if got.Goals[0].Progress != 1 || got.Goals[0].Status != GoalCompleted {
		t.Fatalf("progress over 1 must clamp to 1 and complete the goal: %+v", got.Goals[0])
	}
	if got.Goals[1].Progress != 0 || got.Goals[1].Status != GoalPaused {
		t.Fatalf("negative progress must clamp to 0: %+v", got.Goals[1])
	}
	// A foreign writer's unclamped value is clamped on read too.
	ev := nostr.Event{Kind: KindPublicGoals, Tags: nostr.Tags{{"d", "goals"}},
		Content: `{"goals":[{"id":"x","description":"d","status":"active","progress":3}]}`}
	got, err = ParseGoals(signed(t, ev, agentSK))
	if err != nil || got.Goals[0].Progress != 1 || got.Goals[0].Status != GoalCompleted {
		t.Fatalf("got %+v, %v", got, err)
	}
}

// mutation breaks one field of a valid event and names the field the refusal must carry.
type mutation struct {
	name  string
	mut   func(ev *nostr.Event)
	field string
}

func setTag(name string, vals ...string) func(*nostr.Event) {
	return func(ev *nostr.Event) {
		for i, tg := range ev.Tags {
			if tg[0] == name {
				ev.Tags[i] = append(nostr.Tag{name}, vals...)
				return
			}
		}
		ev.Tags = append(ev.Tags, append(nostr.Tag{name}, vals...))
	}
}

func delTag(name string) func(*nostr.Event) {
	return func(ev *nostr.Event) {
		out := nostr.Tags{}
		for _, tg := range ev.Tags {
			if tg[0] != name {
				out = append(out, tg)
			}
		}
		ev.Tags = out
	}
}

func addTag(vals ...string) func(*nostr.Event) {
	return func(ev *nostr.Event) { ev.Tags = append(ev.Tags, vals) }
}

func setContent(c string) func(*nostr.Event) { return func(ev *nostr.Event) { ev.Content = c } }

func editContent(old, new string) func(*nostr.Event) {
	return func(ev *nostr.Event) { ev.Content = strings.Replace(ev.Content, old, new, 1) }
}

func TestRejections(t *testing.T) {
	other := pub(t, runnerSK)
	cases := []struct {
		kind  int
		base  nostr.Event
		parse func(*nostr.Event) error
		muts  []mutation
	}{
		{KindAgentProfile, must(t)(ProfileEvent(sampleProfile(t))),
			func(ev *nostr.Event) error { _, err := ParseProfile(ev); return err },
			[]mutation{
				{"d wrong", setTag("d", "state"), "d"},
				{"d missing", delTag("d"), "d"},
				{"d twice", addTag("d", "profile"), "d"},
				{"t zero", setTag("threshold", "0", "1"), "threshold"},
				{"t above n", setTag("threshold", "3", "2"), "threshold"},
				{"t not int", setTag("threshold", "one", "1"), "threshold"},
				{"threshold short", setTag("threshold", "1"), "threshold"},
				{"signer bad", setTag("signer", "xyz"), "signer"},
				{"operator empty", setTag("operator", ""), "operator"},
				{"operator missing", delTag("operator"), "operator"},
				{"lud16 bad", setTag("lud16", "nope"), "lud16"},
				{"name empty", editContent(`"name":"ada"`, `"name":""`), "name"},
				{"about empty", editContent(`"about":"a sovereign agent"`, `"about":" "`), "about"},
				{"version empty", editContent(`"version":"0.1.0"`, `"version":""`), "version"},
				{"autonomy bad", editContent(`"bounded"`, `"wild"`), "autonomy_level"},
				{"capability empty", editContent(`"zap"`, `""`), "capabilities[1]"},
				{"content not json", setContent("{"), "content"},
			}},
		{KindAgentSchedule, must(t)(ScheduleEvent(sampleSchedule())),
			func(ev *nostr.Event) error { _, err := ParseSchedule(ev); return err },
			[]mutation{
				{"d wrong", setTag("d", "profile"), "d"},
				{"active missing", delTag("active"), "active"},
				{"active yes", setTag("active", "yes"), "active"},
				{"heartbeat zero", setTag("heartbeat", "0"), "heartbeat"},
				{"heartbeat text", setTag("heartbeat", "15m"), "heartbeat"},
				{"trigger unknown", addTag("trigger", "reply"), "trigger"},
				{"trigger custom text", addTag("trigger", "custom:chat"), "trigger"},
				{"trigger twice", addTag("trigger", "dm"), "trigger"},
				{"trigger heartbeat", addTag("trigger", "heartbeat"), "trigger"},
				{"hours bad day", setTag("business_hours", "mon,funday 09:00-17:00"), "business_hours"},
				{"hours no days", setTag("business_hours", " 09:00-17:00"), "business_hours"},
				{"hours bad time", setTag("business_hours", "mon 9:00-17:00"), "business_hours"},
				{"hours 25h", setTag("business_hours", "mon 09:00-25:00"), "business_hours"},
				{"hours minute 60", setTag("business_hours", "mon 09:60-17:00"), "business_hours"},
				{"hours start=end", setTag("business_hours", "mon 09:00-09:00"), "business_hours"},
				{"hours reversed", setTag("business_hours", "mon 17:00-09:00"), "business_hours"},
				{"content not empty", setContent("{}"), "content"},
			}},
		{KindPublicGoals, must(t)(GoalsEvent(sampleGoals())),
			func(ev *nostr.Event) error { _, err := ParseGoals(ev); return err },
			[]mutation{
				{"d wrong", setTag("d", "goal"), "d"},
				{"goals missing", setContent(`{}`), "goals"},
				{"id empty", editContent(`"id":"g2"`, `"id":""`), "goals[1].id"},
				{"id duplicate", editContent(`"id":"g2"`, `"id":"g1"`), "goals[1].id"},
				{"description empty", editContent(`"earn sats"`, `""`), "goals[0].description"},
				{"status bad", editContent(`"paused"`, `"sleeping"`), "goals[1].status"},
				{"created negative", editContent(`1703000000`, `-1`), "goals[0].created_at"},
				{"content array", setContent(`[]`), "content"},
			}},
		{KindTickRequest, must(t)(TickRequestEvent(sampleTickRequest(t))),
			func(ev *nostr.Event) error { _, err := ParseTickRequest(ev); return err },
			[]mutation{
				{"d empty", setTag("d", ""), "d"},
				{"d huge", setTag("d", strings.Repeat("x", 300)), "d"},
				{"runner bad", setTag("runner", "npub1xyz"), "runner"},
				{"trigger bad", setTag("trigger", "cron"), "trigger"},
				{"p missing", delTag("p"), "p"},
				{"p twice", addTag("p", other), "p"},
				{"e short", setTag("e", "abcd"), "e"},
				{"content not empty", setContent("x"), "content"},
			}},
		{KindTickResult, must(t)(TickResultEvent(sampleTickResult(t))),
			func(ev *nostr.Event) error { _, err := ParseTickResult(ev); return err },
			[]mutation{
				{"d missing", delTag("d"), "d"},
				{"request bad", setTag("request", "zz"), "request"},
				{"request upper", setTag("request", strings.Repeat("CD", 32)), "request"},
				{"runner bad", setTag("runner", strings.Repeat("f", 64)), "runner"},
				{"status bad", setTag("status", "ok"), "status"},
				{"duration negative", setTag("duration_ms", "-1"), "duration_ms"},
				{"duration float", setTag("duration_ms", "1.5"), "duration_ms"},
				{"actions mismatch", setTag("actions", "2"), "actions"},
				{"hash bad", setTag("trajectory_hash", "00"), "trajectory_hash"},
				{"tokens negative", editContent(`"tokens_in":100`, `"tokens_in":-1`), "tokens_in"},
				{"cost negative", editContent(`"cost_sats":3`, `"cost_sats":-3`), "cost_sats"},
				{"action type empty", editContent(`"type":"post"`, `"type":""`), "actions[0].type"},
				{"content bad", setContent(`{"tokens_in":"many"}`), "content"},
			}},
		{KindTrajectorySession, must(t)(SessionEvent(sampleSession())),
			func(ev *nostr.Event) error { _, err := ParseSession(ev); return err },
			[]mutation{
				{"d differs from content", setTag("d", "s2"), "session_id"},
				{"tick missing", delTag("tick"), "tick"},
				{"started tag differs", setTag("started_at", "1703000001"), "started_at"},
				{"model differs", setTag("model", "gpt"), "model"},
				{"visibility bad", setTag("visibility", "secret"), "visibility"},
				{"ended tag missing", delTag("ended_at"), "ended_at"},
				{"ended before start", func(ev *nostr.Event) {
					setTag("ended_at", "1702999999")(ev)
					editContent("1703000009", "1702999999")(ev)
				}, "ended_at"},
				{"hash bad", editContent(strings.Repeat("e", 64), "eee"), "trajectory_hash"},
				{"total negative", editContent(`"total_events":2`, `"total_events":-2`), "total_events"},
			}},
		{KindTrajectoryEvent, must(t)(TrajectoryEventEvent(sampleTrajectoryEvent())),
			func(ev *nostr.Event) error { _, err := ParseTrajectoryEvent(ev); return err },
			[]mutation{
				{"d not session:seq", setTag("d", "s1:3"), "d"},
				{"seq zero", func(ev *nostr.Event) { setTag("seq", "0")(ev); setTag("d", "s1:0")(ev) }, "seq"},
				{"seq text", setTag("seq", "two"), "seq"},
				{"session missing", delTag("session"), "session"},
				{"step bad", setTag("step", "Dream"), "step"},
				{"type differs", editContent(`"type":"Thinking"`, `"type":"Message"`), "type"},
				{"no type", setContent(`{"content":"x"}`), "type"},
				{"thinking leaked", editContent(`"<redacted>"`, `"I plan to..."`), "content"},
				{"thinking hash bad", editContent(strings.Repeat("f", 64), "nothex"), "hash"},
				{"content not object", setContent(`"Thinking"`), "content"},
			}},
	}
	n := 0
	for _, c := range cases {
		// The unmutated base must pass, or every case below would pass for the wrong reason.
		if err := c.parse(signed(t, c.base, agentSK)); err != nil {
			t.Fatalf("%d base event refused: %v", c.kind, err)
		}
		for _, m := range c.muts {
			ev := c.base
			ev.Tags = append(nostr.Tags{}, c.base.Tags...)
			m.mut(&ev)
			err := c.parse(signed(t, ev, agentSK))
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != m.field || fe.Kind != c.kind {
				t.Errorf("%d %s: got %v, want a FieldError naming %q", c.kind, m.name, err, m.field)
				continue
			}
			if !strings.Contains(err.Error(), itoa(int64(c.kind))+" "+m.field+":") {
				t.Errorf("%d %s: message %q does not name the field", c.kind, m.name, err)
			}
			n++
		}
	}
	t.Logf("%d mutations each refused with the named field", n)
}

func TestBuildersRefuseInvalid(t *testing.T) {
	p := sampleProfile(t)
	p.Threshold = 2
	if _, err := ProfileEvent(p); err == nil || err.Error() != "nipsa: 38000 threshold: t must be in 1..n (got t=2 n=1)" {
		t.Fatalf("got %v", err)
	}
	r := sampleTickResult(t)
	r.ActionCount = 0
	if _, err := TickResultEvent(r); err == nil {
		t.Fatal("a result whose actions tag disagrees with its content must not be built")
	}
	e := sampleTrajectoryEvent()
	e.Content = `{"type":"Thinking","content":"the plan is...","hash":"` + strings.Repeat("f", 64) + `"}`
	if _, err := TrajectoryEventEvent(e); err == nil {
		t.Fatal("an unredacted Thinking step must not be built")
	}
	s := sampleSession()
	s.SessionID = "a:b"
	if _, err := SessionEvent(s); err == nil {
		t.Fatal("a session id with ':' must not be built")
	}
}

func TestSignatureAndKindChecked(t *testing.T) {
	ev := signed(t, must(t)(GoalsEvent(sampleGoals())), agentSK)

	tampered := *ev
	tampered.Content = strings.Replace(ev.Content, "earn sats", "burn sats", 1)
	if _, err := ParseGoals(&tampered); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered content: got %v", err)
	}
	resigned := tampered
	resigned.ID = tampered.GetID() // a fresh id, but the signature is over the old one
	if _, err := ParseGoals(&resigned); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("re-id'd event: got %v", err)
	}
	badSig := *ev
	badSig.Sig = strings.Repeat("0", 128)
	if _, err := ParseGoals(&badSig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("zero signature: got %v", err)
	}
	if _, err := ParseProfile(ev); !errors.Is(err, ErrWrongKind) {
		t.Fatalf("goals parsed as profile: got %v", err)
	}
	if _, err := ParseSchedule(nil); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("nil event: got %v", err)
	}
}

func TestBusinessHours(t *testing.T) {
	bh, err := ParseBusinessHours("mon,wed,sun 09:00-17:30")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, c := range []struct {
		when string
		in   bool
	}{
		{"2025-12-29T09:00:00Z", true},  // Monday, start is inclusive
		{"2025-12-29T17:29:59Z", true},  // Monday
		{"2025-12-29T17:30:00Z", false}, // end is exclusive
		{"2025-12-29T08:59:59Z", false},
		{"2025-12-30T12:00:00Z", false},      // Tuesday
		{"2025-12-28T12:00:00Z", true},       // Sunday
		{"2025-12-29T12:00:00+05:00", false}, // the window is UTC: this is 07:00Z
	} {
		if got := bh.Contains(at(c.when)); got != c.in {
			t.Errorf("%s: got %v, want %v", c.when, got, c.in)
		}
	}
	if got := bh.String(); got != "mon,wed,sun 09:00-17:30" {
		t.Fatalf("String %q", got)
	}
	late, err := ParseBusinessHours("fri 22:00-24:00")
	if err != nil || !late.Contains(at("2026-01-02T23:59:00Z")) {
		t.Fatalf("24:00 end: %v %v", late, err)
	}
	if _, err := ParseBusinessHours("fri 24:00-24:00"); err == nil {
		t.Fatal("24:00 is only an end")
	}
	if _, err := ParseBusinessHours("mon,mon 09:00-10:00"); err == nil {
		t.Fatal("duplicate day accepted")
	}
}
