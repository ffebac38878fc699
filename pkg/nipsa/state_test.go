package nipsa

import (
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
)

func sampleState() AgentState {
	return AgentState{
		Goals: []Goal{{ID: "g1", Description: "earn", Priority: 1, CreatedAt: 1703000000, Status: GoalActive, Progress: 0.3}},
		Memory: []Memory{
			{Type: "tick", Content: "first", Timestamp: 1703001000},
			{Type: "tick", Content: "second", Timestamp: 1703002000},
		},
		PendingTasks:      []string{"reply to bob"},
		Beliefs:           map[string]any{"market": "up"},
		WalletBalanceSats: 50000, LastTick: 1703002000, TickCount: 42,
		Budget: BudgetState{Limits: BudgetLimits{DailyLimitSats: 10000, PerTickLimitSats: 1000, ReservedSats: 5000},
			CurrentDate: "2025-12-28"},
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	s, err := NewSealer(agentSK)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleState()
	ev, compacted, err := s.Seal(want)
	if err != nil || compacted != 0 {
		t.Fatalf("seal: %v compacted=%d", err, compacted)
	}
	if ev.PubKey != pub(t, agentSK) || ev.Kind != KindAgentState {
		t.Fatalf("pubkey %s kind %d", ev.PubKey, ev.Kind)
	}
	if strings.Contains(ev.Content, "reply to bob") {
		t.Fatal("state content is not encrypted")
	}
	assertTagOrder(t, &ev, "d", "encrypted", "state_version",
		"state_meta", "state_meta", "state_meta", "state_meta", "state_meta", "state_meta", "state_meta")
	meta := map[string]string{}
	for _, tg := range ev.Tags[3:] {
		meta[tg[1]] = tg[2]
	}
	for k, v := range map[string]string{"goals": "1", "memory": "2", "pending_tasks": "1", "beliefs": "1",
		"tick_count": "42", "last_tick": "1703002000"} {
		if meta[k] != v {
			t.Errorf("state_meta %s = %q, want %q", k, meta[k], v)
		}
	}
	// Sealed by Go's nip44 to self: decrypting with the conversation key gives content_bytes.
	ck, _ := nip44.GenerateConversationKey(pub(t, agentSK), agentSK)
	plain, err := nip44.Decrypt(ev.Content, ck)
	if err != nil || itoa(int64(len(plain))) != meta["content_bytes"] {
		t.Fatalf("content_bytes %s, plaintext %d bytes, %v", meta["content_bytes"], len(plain), err)
	}
	sig := signed(t, ev, agentSK)
	got, err := s.Open(sig)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("open: %+v, %v\nwant %+v", got, err, want)
	}
	// The one-off functions agree with the Sealer.
	if got2, err := Open(agentSK, sig); err != nil || !reflect.DeepEqual(got2, want) {
		t.Fatalf("Open: %v", err)
	}
}

func TestSealNormalizes(t *testing.T) {
	st := AgentState{Goals: []Goal{{ID: "g", Description: "d", Status: GoalActive, Progress: 2}}}
	ev, _, err := Seal(agentSK, st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(agentSK, signed(t, ev, agentSK))
	if err != nil {
		t.Fatal(err)
	}
	if got.Goals[0].Progress != 1 || got.Goals[0].Status != GoalCompleted {
		t.Fatalf("goal not normalized: %+v", got.Goals[0])
	}
	if got.Memory == nil || got.PendingTasks == nil || got.Beliefs == nil {
		t.Fatalf("nil collections must become empty: %+v", got)
	}
}

func TestOpenRefuses(t *testing.T) {
	s, _ := NewSealer(agentSK)
	base, _, err := s.Seal(sampleState())
	if err != nil {
		t.Fatal(err)
	}
	good := signed(t, base, agentSK)

	tampered := *good
	b := []byte(tampered.Content)
	b[60] ^= 1
	tampered.Content = string(b)
	if _, err := s.Open(&tampered); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered ciphertext: %v", err)
	}
	// Tampered ciphertext re-signed by the agent still fails: the NIP-44 MAC catches it.
	resigned := base
	resigned.Content = string(b)
	var fe *FieldError
	if _, err := s.Open(signed(t, resigned, agentSK)); !errors.As(err, &fe) || fe.Field != "content" {
		t.Fatalf("re-signed tampered ciphertext: %v", err)
	}
	// Another key's state (even a validly signed one) is not ours.
	if _, err := s.Open(signed(t, base, runnerSK)); !errors.Is(err, ErrNotOwnState) {
		t.Fatalf("foreign author: %v", err)
	}
	// Sealed to another key: the other key cannot open ours.
	other, _ := NewSealer(runnerSK)
	if _, err := other.Open(good); !errors.Is(err, ErrNotOwnState) {
		t.Fatalf("other sealer: %v", err)
	}
	for _, c := range []struct {
		name  string
		mut   func(*nostr.Event)
		field string
		is    error
	}{
		{"version 2", setTag("state_version", "2"), "state_version", ErrUnsupportedStateVersion},
		{"version 0", setTag("state_version", "0"), "state_version", nil},
		{"version missing", delTag("state_version"), "state_version", nil},
		{"not encrypted", delTag("encrypted"), "encrypted", nil},
		{"d wrong", setTag("d", "profile"), "d", nil},
		{"content plain", setContent(`{"goals":[]}`), "content", nil},
	} {
		ev := base
		ev.Tags = append(nostr.Tags{}, base.Tags...)
		c.mut(&ev)
		_, err := s.Open(signed(t, ev, agentSK))
		if !errors.As(err, &fe) || fe.Field != c.field || (c.is != nil && !errors.Is(err, c.is)) {
			t.Errorf("%s: got %v, want field %q", c.name, err, c.field)
		}
	}
	_, err = s.Open(signed(t, func() nostr.Event {
		e := base
		e.Tags = append(nostr.Tags{}, base.Tags...)
		setTag("state_version", "2")(&e)
		return e
	}(), agentSK))
	if !strings.Contains(err.Error(), "state_version") || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("version error is not clear: %v", err)
	}
	// Invalid state inside a valid seal is refused with the field named.
	bad := sampleState()
	bad.Budget.DailySpentSats = -1
	ck, _ := nip44.GenerateConversationKey(pub(t, agentSK), agentSK)
	plain, _ := marshal(bad)
	enc, _ := nip44.Encrypt(plain, ck)
	ev := base
	ev.Content = enc
	if _, err := s.Open(signed(t, ev, agentSK)); !errors.As(err, &fe) || fe.Field != "budget.daily_spent_sats" {
		t.Fatalf("negative spend: %v", err)
	}
	if _, err := NewSealer("zz"); err == nil || strings.Contains(err.Error(), "zz") {
		t.Fatalf("bad key: %v (must fail without echoing the key)", err)
	}
}

func TestSealCompactsOldestMemoryFirst(t *testing.T) {
	st := sampleState()
	st.Memory = nil
	big := strings.Repeat("m", 1000)
	// 100 memories of ~1 KB: ~100 KB, well over the 65,535-byte cap. Timestamps are out of
	// slice order so "oldest" must mean by timestamp, not position.
	for i := 0; i < 100; i++ {
		ts := int64(1703000000 + (i*37)%100)
		st.Memory = append(st.Memory, Memory{Type: "tick", Content: itoa(ts) + big, Timestamp: ts})
	}
	ev, compacted, err := Seal(agentSK, st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Open(agentSK, signed(t, ev, agentSK))
	if err != nil {
		t.Fatal(err)
	}
	if compacted == 0 || compacted+len(got.Memory) != 100 {
		t.Fatalf("compacted %d, kept %d", compacted, len(got.Memory))
	}
	// Every kept memory is newer than every dropped one, and the kept ones keep their order.
	cut := int64(1703000000 + compacted)
	var wantKept []Memory
	for _, m := range st.Memory {
		if m.Timestamp >= cut {
			wantKept = append(wantKept, m)
		}
	}
	if !reflect.DeepEqual(got.Memory, wantKept) {
		t.Fatalf("kept memories are not the newest %d in original order", len(wantKept))
	}
	// Fewest drops: the plaintext fits, and keeping one more ~1 KB memory would not.
	plain, _ := marshal(normalizeState(got))
	if len(plain) > MaxStatePlaintext || len(plain)+1000 <= MaxStatePlaintext {
		t.Fatalf("plaintext %d bytes: compaction not minimal or over the cap", len(plain))
	}
	if len(st.Memory) != 100 {
		t.Fatal("Seal must not change the caller's memory slice")
	}
	t.Logf("compacted %d of 100 memories; plaintext %d bytes", compacted, len(plain))
}

func TestSealRefusesWhatCannotFit(t *testing.T) {
	st := sampleState()
	st.Beliefs = map[string]any{"blob": strings.Repeat("b", MaxStatePlaintext)}
	_, _, err := Seal(agentSK, st)
	if !errors.Is(err, ErrStateTooLarge) {
		t.Fatalf("got %v, want ErrStateTooLarge", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Kind != KindAgentState {
		t.Fatalf("error does not name the kind: %v", err)
	}
}

func TestSealerDoesNotPrintItsKey(t *testing.T) {
	s, _ := NewSealer(agentSK)
	ck, _ := nip44.GenerateConversationKey(pub(t, agentSK), agentSK)
	for _, out := range []string{fmt.Sprintf("%v", s), fmt.Sprintf("%+v", s), fmt.Sprintf("%#v", s), fmt.Sprint(*s)} {
		if strings.Contains(out, fmt.Sprint(ck[0], " ", ck[1])) || strings.Contains(out, hex.EncodeToString(ck[:])) {
			t.Fatalf("printing a Sealer shows its conversation key: %s", out)
		}
	}
}
