package provider

import (
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
)

func FuzzParseJob(f *testing.F) {
	f.Add("i", "hello", "text", "bid", "1000", "")
	f.Add("param", "max_tokens", "-3", "i", "", "url")
	f.Add("encrypted", "", "", "bid", "1e9", "x")
	f.Fuzz(func(t *testing.T, k1, v1, v2, k2, w1, w2 string) {
		ev := &nostr.Event{Tags: nostr.Tags{{k1, v1, v2}, {k2, w1, w2}, {k1}, {}}}
		j, reason := parseJob(ev)
		if reason != "" {
			return
		}
		if strings.TrimSpace(j.prompt) == "" || j.bidMsat < 0 || j.maxTokens < 0 {
			t.Fatalf("accepted %+v", j)
		}
		for _, tg := range ev.Tags {
			if len(tg) > 0 && tg[0] == "encrypted" {
				t.Fatal("encrypted request accepted")
			}
		}
	})
}
