package compute

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

var pk = strings.Repeat("ab", 32)

func announce(content string, tags ...nostr.Tag) *nostr.Event {
	return &nostr.Event{Kind: 31990, PubKey: pk, Content: content, Tags: append(nostr.Tags{{"k", "5050"}}, tags...)}
}

func TestParseHandlerSpec(t *testing.T) {
	ch := strings.Repeat("cd", 32)
	ev := announce(`{"name":"Alpha","description":"fast"}`,
		nostr.Tag{"d", "openagents-compute"}, nostr.Tag{"handler", "compute_provider"},
		nostr.Tag{"capability", "text-generation"}, nostr.Tag{"price", "5000", "per-request", "msats"},
		nostr.Tag{"network", "regtest"}, nostr.Tag{"model", "llama3"}, nostr.Tag{"model", "qwen"},
		nostr.Tag{"channel", ch}, nostr.Tag{"relay", "wss://relay.example"})
	p, err := ParseHandler(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := Provider{Pubkey: pk, Name: "Alpha", PriceMsat: 5000, Network: "regtest", Models: []string{"llama3", "qwen"},
		Channel: ch, Relays: []string{"wss://relay.example"}, NIP90: true, NIP28: true}
	if p.Pubkey != want.Pubkey || p.Name != want.Name || p.PriceMsat != want.PriceMsat || p.Network != want.Network ||
		!slices.Equal(p.Models, want.Models) || p.Channel != want.Channel || !slices.Equal(p.Relays, want.Relays) ||
		!p.NIP90 || !p.NIP28 {
		t.Fatalf("got %+v\nwant %+v", p, want)
	}
}

func TestParseHandlerLenient(t *testing.T) {
	cases := []struct {
		name  string
		ev    *nostr.Event
		price int64
		pname string
	}{
		{"price tag without unit", announce(`{}`, nostr.Tag{"price", "1000"}), 1000, pk[:16]},
		{"price in sats", announce(`{"name":"s"}`, nostr.Tag{"price", "21", "per-request", "sats"}), 21000, "s"},
		{"underscores", announce(`{}`, nostr.Tag{"price", "100_000", "per-request", "msats"}), 100000, pk[:16]},
		{"amount number in content", announce(`{"name":"dvm","amount":2000}`), 2000, "dvm"},
		{"amount string in content", announce(`{"display_name":"D","amount":"3,000"}`), 3000, "D"},
		{"price_msats in content", announce(`{"price_msats":4000}`, nostr.Tag{"d", "dtag"}), 4000, "dtag"},
		{"tag wins over content", announce(`{"amount":9}`, nostr.Tag{"price", "7"}), 7, pk[:16]},
		{"bad tag, good content", announce(`{"amount":9}`, nostr.Tag{"price", "x"}), 9, pk[:16]},
		{"non-JSON content with a tag", announce(`hello`, nostr.Tag{"price", "8"}), 8, pk[:16]},
		{"junk ignored", announce(`{}`, nostr.Tag{"price", "8"}, nostr.Tag{"channel", "nothex"},
			nostr.Tag{"relay", "http://x"}, nostr.Tag{"x"}, nostr.Tag{}), 8, pk[:16]},
	}
	for _, c := range cases {
		p, err := ParseHandler(c.ev)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if p.PriceMsat != c.price || p.Name != c.pname {
			t.Errorf("%s: price %d name %q, want %d %q", c.name, p.PriceMsat, p.Name, c.price, c.pname)
		}
		if c.name == "junk ignored" && (p.Channel != "" || p.NIP28 || len(p.Relays) != 0) {
			t.Errorf("junk accepted: %+v", p)
		}
	}
}

func TestParseHandlerRejects(t *testing.T) {
	noK := announce(`{}`, nostr.Tag{"price", "1"})
	noK.Tags = noK.Tags[1:]
	wrongKind := announce(`{}`, nostr.Tag{"price", "1"})
	wrongKind.Kind = 1
	badPK := announce(`{}`, nostr.Tag{"price", "1"})
	badPK.PubKey = "zz"
	otherK := announce(`{}`, nostr.Tag{"price", "1"})
	otherK.Tags[0] = nostr.Tag{"k", "5100"}
	cases := []struct {
		name string
		ev   *nostr.Event
		want error
	}{
		{"nil", nil, ErrNotHandler},
		{"wrong kind", wrongKind, ErrNotHandler},
		{"bad pubkey", badPK, ErrNotHandler},
		{"no k tag", noK, ErrNotHandler},
		{"other job kind", otherK, ErrNotHandler},
		{"unpriced", announce(`{"name":"free"}`), ErrUnpriced},
		{"zero", announce(`{}`, nostr.Tag{"price", "0"}), ErrUnpriced},
		{"negative", announce(`{"amount":-5}`), ErrUnpriced},
		{"fraction", announce(`{"amount":1.5}`), ErrUnpriced},
		{"per token", announce(`{}`, nostr.Tag{"price", "10", "per-token", "msats"}), ErrUnpriced},
		{"unknown unit", announce(`{}`, nostr.Tag{"price", "10", "per-request", "usd"}), ErrUnpriced},
		{"overflow sats", announce(`{}`, nostr.Tag{"price", "9223372036854775807", "per-request", "sats"}), ErrUnpriced},
		{"overflow", announce(`{}`, nostr.Tag{"price", "99999999999999999999"}), ErrUnpriced},
		{"amount object", announce(`{"amount":{"v":1}}`), ErrUnpriced},
		{"lightning address", announce(`{"amount":"me@getalby.com"}`), ErrUnpriced},
	}
	for _, c := range cases {
		if _, err := ParseHandler(c.ev); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzParseHandler(f *testing.F) {
	f.Add(`{"name":"a","amount":1000}`, "price", "5000", "per-request", "msats")
	f.Add(`{"price_msats":"1_0"}`, "channel", strings.Repeat("a", 64), "", "")
	f.Add(`nope`, "price", "-1", "per-request", "sats")
	f.Add(`{"amount":1e300}`, "relay", "wss://x", "", "")
	f.Fuzz(func(t *testing.T, content, k, v1, v2, v3 string) {
		ev := announce(content, nostr.Tag{k, v1, v2, v3}, nostr.Tag{k, v1})
		p, err := ParseHandler(ev)
		if err != nil {
			if !errors.Is(err, ErrUnpriced) && !errors.Is(err, ErrNotHandler) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if p.PriceMsat <= 0 || p.Pubkey != pk || p.Name == "" || !p.NIP90 {
			t.Fatalf("accepted %+v", p)
		}
		if p.NIP28 != (p.Channel != "") || (p.Channel != "" && !nostr.IsValid32ByteHex(p.Channel)) {
			t.Fatalf("channel %+v", p)
		}
		for _, r := range p.Relays {
			if !strings.HasPrefix(r, "ws://") && !strings.HasPrefix(r, "wss://") {
				t.Fatalf("relay %q", r)
			}
		}
	})
}
