package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
)

type vectors struct {
	NIP06 []struct {
		Mnemonic  string `json:"mnemonic"`
		SecretKey string `json:"secret_key"`
		Nsec      string `json:"nsec"`
		PublicKey string `json:"public_key"`
		Npub      string `json:"npub"`
	} `json:"nip06"`
	BIP84 []struct {
		Mnemonic string `json:"mnemonic"`
		Network  string `json:"network"`
		Path     string `json:"path"`
		Address  string `json:"address"`
		PubKey   string `json:"pubkey"`
	} `json:"bip84"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/nip06.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.NIP06) != 2 || len(v.BIP84) == 0 {
		t.Fatalf("testdata incomplete: %d nip06, %d bip84", len(v.NIP06), len(v.BIP84))
	}
	return v
}

func TestNIP06Vectors(t *testing.T) {
	for _, tc := range loadVectors(t).NIP06 {
		id, err := FromMnemonic(tc.Mnemonic)
		if err != nil {
			t.Fatalf("%d words: %v", len(strings.Fields(tc.Mnemonic)), err)
		}
		for _, c := range []struct{ name, got, want string }{
			{"sk", id.SecretKey, tc.SecretKey},
			{"pk", id.PublicKey, tc.PublicKey},
			{"npub", id.Npub, tc.Npub},
			{"nsec", id.Nsec, tc.Nsec},
		} {
			if c.got != c.want {
				t.Errorf("%s: got %s, want %s", c.name, c.got, c.want)
			}
		}
	}
}

func TestBIP84Vector(t *testing.T) {
	for _, tc := range loadVectors(t).BIP84 {
		id, err := FromMnemonic(tc.Mnemonic, WithNetwork(tc.Network))
		if err != nil {
			t.Fatal(err)
		}
		if id.Wallet.Address != tc.Address || id.Wallet.Path != tc.Path {
			t.Errorf("got %s at %s, want %s at %s", id.Wallet.Address, id.Wallet.Path, tc.Address, tc.Path)
		}
		if tc.PubKey != "" && id.Wallet.PublicKey != tc.PubKey {
			t.Errorf("wallet pubkey %s, want %s", id.Wallet.PublicKey, tc.PubKey)
		}
	}
}

func TestWalletNetworks(t *testing.T) {
	const m = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
	main, _ := FromMnemonic(m)
	reg, err := FromMnemonic(m, WithNetwork(Regtest))
	if err != nil {
		t.Fatal(err)
	}
	test, _ := FromMnemonic(m, WithNetwork(Testnet))
	if !strings.HasPrefix(reg.Wallet.Address, "bcrt1q") || !strings.HasPrefix(test.Wallet.Address, "tb1q") {
		t.Fatalf("prefixes: regtest %s testnet %s", reg.Wallet.Address, test.Wallet.Address)
	}
	if reg.Wallet.Path != "m/84'/1'/0'/0/0" || reg.Wallet.PublicKey != test.Wallet.PublicKey {
		t.Fatalf("regtest and testnet share coin type 1': %s %s %s", reg.Wallet.Path, reg.Wallet.PublicKey, test.Wallet.PublicKey)
	}
	if reg.Wallet.PublicKey == main.Wallet.PublicKey {
		t.Fatal("mainnet and regtest wallet keys must differ (coin type)")
	}
	if reg.SecretKey != main.SecretKey {
		t.Fatal("the nostr key must not depend on the bitcoin network")
	}
	if main.Wallet.SecretKey == main.SecretKey {
		t.Fatal("wallet and nostr keys must differ")
	}
	if _, err := FromMnemonic(m, WithNetwork("litecoin")); !errors.Is(err, ErrUnknownNetwork) {
		t.Fatalf("unknown network: %v", err)
	}
}

func TestNewMnemonic(t *testing.T) {
	a, err := NewMnemonic()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewMnemonic()
	if n := len(strings.Fields(a)); n != 12 {
		t.Fatalf("%d words", n)
	}
	if a == b {
		t.Fatal("two mnemonics are equal")
	}
	ia, err := FromMnemonic(a)
	if err != nil {
		t.Fatal(err)
	}
	ib, _ := FromMnemonic("  " + strings.ToUpper(a) + "\n")
	if ia.SecretKey != ib.SecretKey {
		t.Fatal("normalisation: same words, different key")
	}
}

func TestFromMnemonicErrors(t *testing.T) {
	const secretWord = "leader"
	for name, words := range map[string]string{
		"empty":    "",
		"11 words": "leader monkey parrot ring guide accident before fence cannon height naive",
		"bad word": "leader monkey parrot ring guide accident before fence cannon height naive zzzz",
		"checksum": "leader monkey parrot ring guide accident before fence cannon height bean naive",
	} {
		_, err := FromMnemonic(words)
		if !errors.Is(err, ErrInvalidMnemonic) {
			t.Errorf("%s: got %v", name, err)
			continue
		}
		if strings.Contains(err.Error(), secretWord) || strings.Contains(err.Error(), "zzzz") {
			t.Errorf("%s: error leaks words: %v", name, err)
		}
	}
	_, err := FromMnemonic("leader monkey parrot ring guide accident before fence cannon height bean naive")
	if !strings.Contains(err.Error(), "checksum") {
		t.Errorf("checksum error should say so: %v", err)
	}
}

func TestNeverRevealsSecrets(t *testing.T) {
	v := loadVectors(t).NIP06[0]
	id, err := FromMnemonic(v.Mnemonic)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("spawned", "agent", id, "wallet", id.Wallet)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("spawned", "agent", &id)
	js, _ := json.Marshal(id)
	js2, _ := json.Marshal(&id)
	outs := []string{
		fmt.Sprint(id), fmt.Sprintf("%v %+v %#v %s %q %x", id, id, id, id, id, id),
		fmt.Sprintf("%v %+v %#v", &id, &id, &id), fmt.Sprintf("%+v %#v", id.Wallet, id.Wallet),
		logged.String(), string(js), string(js2),
	}
	secrets := []string{id.SecretKey, id.Nsec, id.Wallet.SecretKey, v.Mnemonic}
	for _, out := range outs {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Fatalf("output reveals a secret: %s", out)
			}
		}
	}
	if !strings.Contains(fmt.Sprint(id), v.Npub) || !strings.Contains(logged.String(), v.Npub) {
		t.Fatal("npub should be visible")
	}
}

func TestParseAgentRef(t *testing.T) {
	v := loadVectors(t).NIP06[0]
	for _, in := range []string{v.Npub, v.PublicKey, strings.ToUpper(v.PublicKey), " " + v.Npub + " "} {
		got, err := ParseAgentRef(in)
		if err != nil || got != v.PublicKey {
			t.Errorf("%q: got %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "npub1xyz", v.Nsec, v.PublicKey[:63], v.PublicKey + "0",
		strings.Repeat("g", 64), strings.Repeat("0", 64)} {
		if _, err := ParseAgentRef(in); !errors.Is(err, ErrInvalidAgentRef) {
			t.Errorf("%q: want ErrInvalidAgentRef, got %v", in, err)
		}
	}
}
