package custody

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/openagents/runtime/pkg/contracts"
	"github.com/openagents/runtime/pkg/natsx"
)

const words = "leader monkey parrot ring guide accident before fence cannon height naive bean"

func TestParseKEK(t *testing.T) {
	k, h := NewKEK()
	k2, err := ParseKEK([]byte(" " + h + "\n"))
	if err != nil || k2.ID != k.ID {
		t.Fatalf("hex: %v", err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("z", 64), strings.Repeat("a", 62)} {
		if _, err := ParseKEK([]byte(bad)); !errors.Is(err, ErrBadKEK) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
	if strings.Contains(k.String(), h) || strings.Contains(k.String(), h[:16]) {
		t.Fatal("String shows the key")
	}
}

func TestSealOpenBindsAgentAndKEK(t *testing.T) {
	k, _ := NewKEK()
	other, _ := NewKEK()
	s := k.Seal([]byte("secret"), "agent-a")
	if p, err := k.Open(s, "agent-a"); err != nil || string(p) != "secret" {
		t.Fatalf("open: %q %v", p, err)
	}
	if _, err := k.Open(s, "agent-b"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped record opened: %v", err)
	}
	if _, err := other.Open(s, "agent-a"); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("wrong kek: %v", err)
	}
	s.Data[0] ^= 1
	if _, err := k.Open(s, "agent-a"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("tampered: %v", err)
	}
}

func TestVaultRotate(t *testing.T) {
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	ctx := context.Background()
	nc, js, err := natsx.ConnectAndProvision(ctx, natsx.ConnectOptions{URL: ns.URL()}, contracts.ProvisionOptions{Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	oldK, _ := NewKEK()
	v, err := OpenVault(ctx, js, oldK)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"a1", "a2", "a3"} {
		if err := v.Put(ctx, a, Secrets{Mnemonic: words + " " + a}); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing secret at rest.
	kv, _ := js.KeyValue(ctx, contracts.BucketKeys)
	e, _ := kv.Get(ctx, "agent.a1")
	if strings.Contains(string(e.Value()), "leader") {
		t.Fatal("mnemonic stored in clear")
	}
	var sealed Sealed
	if json.Unmarshal(e.Value(), &sealed) != nil || sealed.KID != oldK.ID {
		t.Fatal("record not sealed under the KEK id")
	}
	newK, _ := NewKEK()
	n, err := v.Rotate(ctx, newK)
	if err != nil || n != 3 {
		t.Fatalf("rotate: %d %v", n, err)
	}
	if s, err := v.Get(ctx, "a2"); err != nil || s.Mnemonic != words+" a2" {
		t.Fatalf("after rotate: %v", err)
	}
	stale := &Vault{KV: v.KV, KEK: oldK}
	if _, err := stale.Get(ctx, "a2"); !errors.Is(err, ErrWrongKEK) {
		t.Fatalf("old kek after rotation: %v", err)
	}
	// Running it again re-seals nothing.
	if n, err := v.Rotate(ctx, newK); err != nil || n != 0 {
		t.Fatalf("second rotate: %d %v", n, err)
	}
	if _, err := v.Get(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}
