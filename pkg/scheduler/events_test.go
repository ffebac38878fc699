package scheduler

import (
	"crypto/sha256"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/zpay32"
	"github.com/nbd-wtf/go-nostr"
)

// zapOpts shape a zap receipt for tests.
type zapOpts struct {
	requestMsat, invoiceMsat int64
	extraP                   string // a second p tag in the request
	noHash                   bool   // invoice without a description hash
	badHash                  bool   // invoice committing to another description
	noBolt11                 bool
}

// zapReceipt builds a kind 9735 receipt for agent, signed by an LNURL server key, carrying a
// real signed regtest invoice and a zap request signed by sender.
func zapReceipt(t *testing.T, agent, senderSK string, o zapOpts) nostr.Event {
	t.Helper()
	req := nostr.Event{Kind: kindZapRequest, CreatedAt: nostr.Now(), Content: "zap!",
		Tags: nostr.Tags{{"p", agent}, {"amount", strconv.FormatInt(o.requestMsat, 10)}, {"relays", "ws://x"}}}
	if o.extraP != "" {
		req.Tags = append(req.Tags, nostr.Tag{"p", o.extraP})
	}
	if err := req.Sign(senderSK); err != nil {
		t.Fatal(err)
	}
	desc := req.String()
	node, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	var hash [32]byte
	hash[0] = 7
	opts := []func(*zpay32.Invoice){zpay32.Amount(lnwire.MilliSatoshi(o.invoiceMsat))}
	switch {
	case o.noHash:
		opts = append(opts, zpay32.Description("zap"))
	case o.badHash:
		opts = append(opts, zpay32.DescriptionHash(sha256.Sum256([]byte("something else"))))
	default:
		opts = append(opts, zpay32.DescriptionHash(sha256.Sum256([]byte(desc))))
	}
	inv, err := zpay32.NewInvoice(&chaincfg.RegressionNetParams, hash, time.Now(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	bolt11, err := inv.Encode(zpay32.MessageSigner{SignCompact: func(msg []byte) ([]byte, error) {
		return ecdsa.SignCompact(node, chainhash.HashB(msg), true), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	rc := nostr.Event{Kind: kindZapReceipt, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"p", agent}, {"description", desc}}}
	if !o.noBolt11 {
		rc.Tags = append(rc.Tags, nostr.Tag{"bolt11", bolt11})
	}
	if err := rc.Sign(nostr.GeneratePrivateKey()); err != nil {
		t.Fatal(err)
	}
	return rc
}

func TestValidateZap(t *testing.T) {
	agent := newAgent(t)
	other := newAgent(t)
	sender := nostr.GeneratePrivateKey()
	cases := []struct {
		name string
		o    zapOpts
		ok   bool
	}{
		{"valid", zapOpts{requestMsat: 21000, invoiceMsat: 21000}, true},
		{"valid without description hash", zapOpts{requestMsat: 21000, invoiceMsat: 21000, noHash: true}, true},
		{"amount mismatch", zapOpts{requestMsat: 1000, invoiceMsat: 21000}, false},
		{"two p tags", zapOpts{requestMsat: 21000, invoiceMsat: 21000, extraP: other.pub}, false},
		{"description hash mismatch", zapOpts{requestMsat: 21000, invoiceMsat: 21000, badHash: true}, false},
		{"no bolt11", zapOpts{requestMsat: 21000, invoiceMsat: 21000, noBolt11: true}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rc := zapReceipt(t, agent.pub, sender, c.o)
			err := ValidateZap(&rc, agent.pub)
			if c.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !c.ok && !errors.Is(err, ErrInvalidZap) {
				t.Fatalf("got %v, want ErrInvalidZap", err)
			}
		})
	}
	t.Run("zap for someone else", func(t *testing.T) {
		rc := zapReceipt(t, other.pub, sender, zapOpts{requestMsat: 21000, invoiceMsat: 21000})
		if err := ValidateZap(&rc, agent.pub); !errors.Is(err, ErrInvalidZap) {
			t.Fatalf("got %v, want ErrInvalidZap", err)
		}
	})
	t.Run("forged zap request", func(t *testing.T) {
		rc := zapReceipt(t, agent.pub, sender, zapOpts{requestMsat: 21000, invoiceMsat: 21000, noHash: true})
		for i, tg := range rc.Tags {
			if tg[0] == "description" {
				rc.Tags[i][1] = strings.Replace(tg[1], "zap!", "zap?", 1) // the request's signature no longer holds
			}
		}
		if err := ValidateZap(&rc, agent.pub); !errors.Is(err, ErrInvalidZap) {
			t.Fatalf("got %v, want ErrInvalidZap", err)
		}
	})
}

func TestTriggerKinds(t *testing.T) {
	for kind, want := range map[int]string{1: "mention", 4: "dm", 1059: "dm", 9735: "zap", 42: "custom:42", 30023: "custom:30023"} {
		if got := triggerType(kind); got != want {
			t.Errorf("triggerType(%d) = %q, want %q", kind, got, want)
		}
	}
	if k := kindsFor("custom:42"); k != nil {
		t.Errorf("custom:42 subscribed by #p: %v", k)
	}
	if k := kindsFor("custom:30023"); len(k) != 1 || k[0] != 30023 {
		t.Errorf("custom:30023 -> %v", k)
	}
}
