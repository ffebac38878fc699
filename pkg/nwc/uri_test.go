package nwc_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"

	"github.com/openagents/runtime/pkg/nwc"
)

const (
	walletPK = "b889ff5b1513b641e2a139f661a661364979c5beee91842f8f0ef42ab558e9d4"
	secret   = "71a8c14c1407c113601079c4302dab36460f0ccd0ad506f1f2dc73b5100e4f3c"
)

func TestParseURI(t *testing.T) {
	s := "nostr+walletconnect://" + walletPK + "?relay=wss%3A%2F%2Frelay.damus.io&relay=ws://127.0.0.1:7777&secret=" + secret + "&lud16=alice@example.com"
	u, err := nwc.ParseURI(s)
	if err != nil {
		t.Fatal(err)
	}
	if u.WalletPubkey != walletPK || u.Secret != secret || u.Lud16 != "alice@example.com" ||
		len(u.Relays) != 2 || u.Relays[0] != "wss://relay.damus.io" || u.Relays[1] != "ws://127.0.0.1:7777" {
		t.Fatalf("%#v", u.Relays)
	}
	back, err := nwc.ParseURI(u.Encode())
	if err != nil || back.Encode() != u.Encode() || back.Secret != secret {
		t.Fatalf("round trip: %v", err)
	}
	pk, _ := nostr.GetPublicKey(secret)
	if got, _ := u.ClientPubkey(); got != pk {
		t.Fatal("client pubkey")
	}

	// The secret never leaks through formatting or logging.
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("conn", "uri", u)
	for _, out := range []string{u.String(), fmt.Sprint(u), fmt.Sprintf("%v %+v %#v %s", u, u, u, u), logs.String()} {
		if strings.Contains(out, secret) {
			t.Fatalf("secret leaked: %s", out)
		}
		if !strings.Contains(out, walletPK) {
			t.Fatalf("redacted too much: %s", out)
		}
	}
}

func TestParseURIRejects(t *testing.T) {
	good := "?relay=wss://r.example&secret=" + secret
	for name, s := range map[string]string{
		"empty":        "",
		"scheme":       "nostr+walletconnectx://" + walletPK + good,
		"short pubkey": "nostr+walletconnect://abcd" + good,
		"no relay":     "nostr+walletconnect://" + walletPK + "?secret=" + secret,
		"http relay":   "nostr+walletconnect://" + walletPK + "?relay=https://r.example&secret=" + secret,
		"no secret":    "nostr+walletconnect://" + walletPK + "?relay=wss://r.example",
		"bad secret":   "nostr+walletconnect://" + walletPK + "?relay=wss://r.example&secret=" + secret[:60] + "zzzz",
		"zero secret":  "nostr+walletconnect://" + walletPK + "?relay=wss://r.example&secret=" + strings.Repeat("0", 64),
		"broken url":   "nostr+walletconnect://" + walletPK + "?relay=%zz&secret=" + secret,
	} {
		_, err := nwc.ParseURI(s)
		if !errors.Is(err, nwc.ErrInvalidURI) {
			t.Errorf("%s: got %v", name, err)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), secret[:60]) {
			t.Errorf("%s: secret in error %q", name, err)
		}
	}
}

func FuzzParseURI(f *testing.F) {
	f.Add("nostr+walletconnect://" + walletPK + "?relay=wss://r.example&secret=" + secret)
	f.Add("nostr+walletconnect:" + walletPK + "?relay=ws://a&relay=ws://b&secret=" + secret + "&lud16=a@b")
	f.Add("nostr+walletconnect://%zz")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := nwc.ParseURI(s)
		if err != nil {
			if !errors.Is(err, nwc.ErrInvalidURI) {
				t.Fatalf("unwrapped error %v", err)
			}
			q := strings.Index(s, "secret=")
			if q >= 0 && len(s) >= q+7+16 && strings.Contains(err.Error(), s[q+7:q+7+16]) {
				t.Fatalf("secret-looking text in error: %v", err)
			}
			return
		}
		again, err := nwc.ParseURI(u.Encode())
		if err != nil || again.Encode() != u.Encode() {
			t.Fatalf("re-parse of %q: %v", u.Encode(), err)
		}
		if strings.Contains(u.String(), u.Secret) {
			t.Fatal("String shows the secret")
		}
	})
}
