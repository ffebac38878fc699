package nipsa

import (
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
)

// StateVersion is the only 38001 plaintext layout this package reads and writes.
const StateVersion = 1

// MaxStatePlaintext is the NIP-44 v2 plaintext cap; go-nostr, nostr-tools and most other
// libraries refuse anything longer, so state must fit under it.
const MaxStatePlaintext = nip44.MaxPlaintextSize

// Sealer seals and opens one agent's state. It caches the agent's public key and the NIP-44
// conversation key with itself: the ECDH behind it costs more than the sealing does.
// A Sealer holds the secret key's derivative; never log or print it.
type Sealer struct {
	pub string
	ck  [32]byte
}

// NewSealer derives the public key and self conversation key of the hex secret key sk.
// Errors never echo the key.
func NewSealer(sk string) (*Sealer, error) {
	if len(sk) != 64 {
		return nil, fmt.Errorf("nipsa: secret key: want 64 hex characters")
	}
	if _, err := hex.DecodeString(sk); err != nil {
		return nil, fmt.Errorf("nipsa: secret key: not hex")
	}
	pub, err := nostr.GetPublicKey(sk)
	if err != nil || !nostr.IsValidPublicKey(pub) {
		return nil, fmt.Errorf("nipsa: secret key: not a valid secp256k1 key")
	}
	// go-nostr takes the PUBKEY first (nostr-tools takes the private key first).
	ck, err := nip44.GenerateConversationKey(pub, sk)
	if err != nil {
		return nil, fmt.Errorf("nipsa: secret key: not a valid secp256k1 key")
	}
	return &Sealer{pub: pub, ck: ck}, nil
}

// PubKey is the agent's hex public key, the author a sealed state must carry.
func (s *Sealer) PubKey() string { return s.pub }

// String and GoString keep the conversation key out of logs: printing a Sealer with %v or
// %#v shows only the public key.
func (s Sealer) String() string { return "nipsa.Sealer{" + s.pub + "}" }

// GoString: see String.
func (s Sealer) GoString() string { return s.String() }

// Seal builds the unsigned kind 38001 carrying st, encrypted to the agent itself. PubKey is
// set, so the event is ready for ev.Sign(sk). If the plaintext would exceed
// MaxStatePlaintext the oldest memory entries are dropped until it fits; compacted says how
// many. If it cannot fit even with no memory left, the error is ErrStateTooLarge: state is
// never truncated.
func (s *Sealer) Seal(st AgentState) (ev nostr.Event, compacted int, err error) {
	st = normalizeState(st)
	if err := checkState(st); err != nil {
		return nostr.Event{}, 0, err
	}
	plain, compacted, err := fitState(st)
	if err != nil {
		return nostr.Event{}, 0, err
	}
	content, err := nip44.Encrypt(plain, s.ck)
	if err != nil {
		return nostr.Event{}, 0, fmt.Errorf("nipsa: seal state: %w", err)
	}
	// Decode the compacted plaintext again for the meta counts rather than trusting st.
	var sealed AgentState
	if err := decodeJSON(KindAgentState, plain, &sealed); err != nil {
		return nostr.Event{}, 0, err
	}
	meta := func(k string, n int64) nostr.Tag { return nostr.Tag{"state_meta", k, itoa(n)} }
	tags := nostr.Tags{
		{"d", "state"},
		{"encrypted"},
		{"state_version", itoa(StateVersion)},
		meta("goals", int64(len(sealed.Goals))),
		meta("memory", int64(len(sealed.Memory))),
		meta("pending_tasks", int64(len(sealed.PendingTasks))),
		meta("beliefs", int64(len(sealed.Beliefs))),
		meta("tick_count", sealed.TickCount),
		meta("last_tick", sealed.LastTick),
		meta("content_bytes", int64(len(plain))),
	}
	return nostr.Event{
		Kind:      KindAgentState,
		PubKey:    s.pub,
		CreatedAt: nostr.Now(),
		Tags:      tags,
		Content:   content,
	}, compacted, nil
}

// Open verifies ev (id, signature, kind, author is this agent), checks its tags and decrypts
// and validates the state.
func (s *Sealer) Open(ev *nostr.Event) (AgentState, error) {
	if err := verify(ev, KindAgentState); err != nil {
		return AgentState{}, err
	}
	if ev.PubKey != s.pub {
		return AgentState{}, &FieldError{Kind: KindAgentState, Field: "pubkey",
			Reason: "state is sealed by the agent to itself; this event is by another key", Err: ErrNotOwnState}
	}
	return s.open(ev.Tags, ev.Content)
}

// open is Open without the signature and author checks (fuzzed directly).
func (s *Sealer) open(tags nostr.Tags, content string) (AgentState, error) {
	const k = KindAgentState
	r := tagReader{k, tags}
	if _, err := r.d("state"); err != nil {
		return AgentState{}, err
	}
	v, err := r.one("state_version", 1)
	if err != nil {
		return AgentState{}, err
	}
	ver, err := parseInt(k, "state_version", v[0], 1, 1<<31)
	if err != nil {
		return AgentState{}, err
	}
	if ver > StateVersion {
		return AgentState{}, &FieldError{Kind: k, Field: "state_version",
			Reason: fmt.Sprintf("version %d is newer than this runtime reads (%d); upgrade before opening it", ver, StateVersion),
			Err:    ErrUnsupportedStateVersion}
	}
	if _, ok, err := r.opt("encrypted", 0); err != nil {
		return AgentState{}, err
	} else if !ok {
		return AgentState{}, fieldErr(k, "encrypted", "missing tag")
	}
	plain, err := nip44.Decrypt(content, s.ck)
	if err != nil {
		return AgentState{}, fieldErr(k, "content", "cannot open NIP-44 v2 payload: %v", err)
	}
	var st AgentState
	if err := decodeJSON(k, plain, &st); err != nil {
		return AgentState{}, err
	}
	st = normalizeState(st)
	return st, checkState(st)
}

// Seal is NewSealer(sk).Seal(st) for one-off use.
func Seal(sk string, st AgentState) (nostr.Event, int, error) {
	s, err := NewSealer(sk)
	if err != nil {
		return nostr.Event{}, 0, err
	}
	return s.Seal(st)
}

// Open is NewSealer(sk).Open(ev) for one-off use.
func Open(sk string, ev *nostr.Event) (AgentState, error) {
	s, err := NewSealer(sk)
	if err != nil {
		return AgentState{}, err
	}
	return s.Open(ev)
}

// normalizeState returns a copy with goals normalized and nil collections made empty, so
// the plaintext reads [] and {} (as the SPEC example does) rather than null.
func normalizeState(st AgentState) AgentState {
	st.Goals = normalizeGoals(st.Goals)
	if st.Memory == nil {
		st.Memory = []Memory{}
	}
	if st.PendingTasks == nil {
		st.PendingTasks = []string{}
	}
	if st.Beliefs == nil {
		st.Beliefs = map[string]any{}
	}
	return st
}

func checkState(st AgentState) error {
	const k = KindAgentState
	if err := checkGoals(k, st.Goals); err != nil {
		return err
	}
	b := st.Budget
	switch {
	case st.TickCount < 0:
		return fieldErr(k, "tick_count", "must not be negative")
	case st.LastTick < 0:
		return fieldErr(k, "last_tick", "must not be negative")
	case b.Limits.DailyLimitSats < 0:
		return fieldErr(k, "budget.limits.daily_limit_sats", "must not be negative")
	case b.Limits.PerTickLimitSats < 0:
		return fieldErr(k, "budget.limits.per_tick_limit_sats", "must not be negative")
	case b.Limits.ReservedSats < 0:
		return fieldErr(k, "budget.limits.reserved_sats", "must not be negative")
	case b.DailySpentSats < 0:
		return fieldErr(k, "budget.daily_spent_sats", "must not be negative")
	case b.TickSpentSats < 0:
		return fieldErr(k, "budget.tick_spent_sats", "must not be negative")
	}
	return nil
}

// fitState marshals st, dropping the oldest memories (smallest timestamp, earlier entry on
// ties) until the plaintext fits. The plaintext shrinks as more are dropped, so the fewest
// drops that fit are found by binary search: a handful of marshals, not one per memory.
func fitState(st AgentState) (string, int, error) {
	plain, err := marshal(st)
	if err != nil {
		return "", 0, err
	}
	if len(plain) <= MaxStatePlaintext {
		return plain, 0, nil
	}
	order := make([]int, len(st.Memory)) // memory indexes, oldest first
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return st.Memory[order[a]].Timestamp < st.Memory[order[b]].Timestamp })
	without := func(drop int) (string, error) {
		gone := make(map[int]bool, drop)
		for _, i := range order[:drop] {
			gone[i] = true
		}
		c := st
		c.Memory = make([]Memory, 0, len(st.Memory)-drop)
		for i, m := range st.Memory {
			if !gone[i] {
				c.Memory = append(c.Memory, m)
			}
		}
		return marshal(c)
	}
	lo, hi := 1, len(order) // invariant: dropping hi fits, if anything does
	best, err := without(hi)
	if err != nil {
		return "", 0, err
	}
	if len(best) > MaxStatePlaintext {
		return "", 0, &FieldError{Kind: KindAgentState, Field: "content",
			Reason: fmt.Sprintf("%d bytes without any memory, over the NIP-44 limit of %d", len(best), MaxStatePlaintext),
			Err:    ErrStateTooLarge}
	}
	for lo < hi {
		mid := (lo + hi) / 2
		p, err := without(mid)
		if err != nil {
			return "", 0, err
		}
		if len(p) <= MaxStatePlaintext {
			hi, best = mid, p
		} else {
			lo = mid + 1
		}
	}
	return best, hi, nil
}
