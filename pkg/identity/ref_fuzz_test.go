package identity

import (
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr/nip19"
)

// FuzzParseAgentRef: never panics; whatever is accepted is a canonical hex key that the npub
// form maps back to.
func FuzzParseAgentRef(f *testing.F) {
	for _, s := range []string{"", "npub1", "npub1zutzeysacnf9rru6zqwmxd54mud0k44tst6l70ja5mhv8jjumytsd2x7nu",
		"17162c921dc4d2518f9a101db33695df1afb56ab82f5ff3e5da6eec3ca5cd917", strings.Repeat("f", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pk, err := ParseAgentRef(s)
		if err != nil {
			return
		}
		if len(pk) != 64 || strings.ToLower(pk) != pk {
			t.Fatalf("%q -> %q", s, pk)
		}
		npub, err := nip19.EncodePublicKey(pk)
		if err != nil {
			t.Fatal(err)
		}
		if back, err := ParseAgentRef(npub); err != nil || back != pk {
			t.Fatalf("npub round trip: %q %v", back, err)
		}
	})
}
