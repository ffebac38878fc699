package nipsa

import (
	"strings"

	"github.com/nbd-wtf/go-nostr"
)

// Autonomy levels of a 38000 profile.
const (
	AutonomySupervised = "supervised"
	AutonomyBounded    = "bounded"
	AutonomyAutonomous = "autonomous"
)

// ProfileEvent builds the unsigned kind 38000 for p. Tags in SPEC order: d, threshold,
// signer, operator, lud16 (when set).
func ProfileEvent(p AgentProfile) (nostr.Event, error) {
	if err := p.validate(); err != nil {
		return nostr.Event{}, err
	}
	tags := nostr.Tags{
		{"d", "profile"},
		{"threshold", itoa(int64(p.Threshold)), itoa(int64(p.Signers))},
		{"signer", p.Signer},
		{"operator", p.Operator},
	}
	if p.LUD16 != "" {
		tags = append(tags, nostr.Tag{"lud16", p.LUD16})
	}
	if p.Capabilities == nil {
		p.Capabilities = []string{} // "capabilities":[] rather than null
	}
	content, err := marshal(p)
	if err != nil {
		return nostr.Event{}, err
	}
	return nostr.Event{Kind: KindAgentProfile, CreatedAt: nostr.Now(), Tags: tags, Content: content}, nil
}

// ParseProfile verifies ev and returns its profile, or an error naming the first bad field.
func ParseProfile(ev *nostr.Event) (AgentProfile, error) {
	if err := verify(ev, KindAgentProfile); err != nil {
		return AgentProfile{}, err
	}
	return decodeProfile(ev.Tags, ev.Content)
}

func decodeProfile(tags nostr.Tags, content string) (AgentProfile, error) {
	const k = KindAgentProfile
	r := tagReader{k, tags}
	if _, err := r.d("profile"); err != nil {
		return AgentProfile{}, err
	}
	var p AgentProfile
	if err := decodeJSON(k, content, &p); err != nil {
		return AgentProfile{}, err
	}
	th, err := r.one("threshold", 2)
	if err != nil {
		return AgentProfile{}, err
	}
	t, err := parseInt(k, "threshold", th[0], 0, 1<<16)
	if err != nil {
		return AgentProfile{}, err
	}
	n, err := parseInt(k, "threshold", th[1], 0, 1<<16)
	if err != nil {
		return AgentProfile{}, err
	}
	p.Threshold, p.Signers = int(t), int(n)
	v, err := r.one("signer", 1)
	if err != nil {
		return AgentProfile{}, err
	}
	p.Signer = v[0]
	if v, err = r.one("operator", 1); err != nil {
		return AgentProfile{}, err
	}
	p.Operator = v[0]
	if v, ok, err := r.opt("lud16", 1); err != nil {
		return AgentProfile{}, err
	} else if ok {
		p.LUD16 = v[0]
	}
	return p, p.validate()
}

func (p AgentProfile) validate() error {
	const k = KindAgentProfile
	switch {
	case p.Signers < 1 || p.Threshold < 1 || p.Threshold > p.Signers:
		return fieldErr(k, "threshold", "t must be in 1..n (got t=%d n=%d)", p.Threshold, p.Signers)
	case p.Signer == "":
		return fieldErr(k, "signer", "must not be empty")
	case p.Operator == "":
		return fieldErr(k, "operator", "must not be empty")
	case strings.TrimSpace(p.Name) == "":
		return fieldErr(k, "name", "must not be empty")
	case strings.TrimSpace(p.About) == "":
		return fieldErr(k, "about", "must not be empty")
	case strings.TrimSpace(p.Version) == "":
		return fieldErr(k, "version", "must not be empty")
	}
	if err := checkPubkey(k, "signer", p.Signer); err != nil {
		return err
	}
	if err := checkPubkey(k, "operator", p.Operator); err != nil {
		return err
	}
	switch p.AutonomyLevel {
	case AutonomySupervised, AutonomyBounded, AutonomyAutonomous:
	default:
		return fieldErr(k, "autonomy_level", "want supervised|bounded|autonomous, got %q", p.AutonomyLevel)
	}
	for i, c := range p.Capabilities {
		if strings.TrimSpace(c) == "" {
			return fieldErr(k, "capabilities["+itoa(int64(i))+"]", "must not be empty")
		}
	}
	if p.LUD16 != "" {
		at := strings.IndexByte(p.LUD16, '@')
		if at <= 0 || at == len(p.LUD16)-1 || strings.Count(p.LUD16, "@") != 1 {
			return fieldErr(k, "lud16", "want name@domain, got %q", p.LUD16)
		}
	}
	return nil
}
