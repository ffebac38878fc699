package trajectory

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

const (
	testNsec = "nsec10allq0gjx7fddtzef0ax00mdps9t2kmtrldkyjfs8l5xruwvh2dq0lhhkp"
	testJWT  = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
	testPEM  = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n-----END EC PRIVATE KEY-----"
)

func TestIsSecretKey(t *testing.T) {
	yes := []string{"password", "Password", "db_password", "secret", "client_secret", "clientSecret",
		"token", "access_token", "accessToken", "auth", "Authorization", "api_key", "apiKey", "X-Api-Key",
		"apikey", "private_key", "privateKey", "privkey", "seed", "mnemonic", "nsec", "macaroon",
		"admin.macaroon", "kek", "KEK", "wallet_seed", "refreshToken", "credentials"}
	no := []string{"preimage", "payment_preimage", "author", "tokens_in", "tokens_out", "max_tokens",
		"content", "pubkey", "public_key", "event_id", "authority", "seeded_at", "keyword", "sats", ""}
	for _, k := range yes {
		if !IsSecretKey(k) {
			t.Errorf("%q should be secret", k)
		}
	}
	for _, k := range no {
		if IsSecretKey(k) {
			t.Errorf("%q should not be secret", k)
		}
	}
}

func TestScrub(t *testing.T) {
	cases := map[string]string{
		"my key is " + testNsec + ".":                       "my key is [REDACTED].",
		"key sk-proj-abcdefghijklmnopqrstuv01 here":         "key [REDACTED] here",
		"Authorization: Bearer abc.def-ghi_jkl~mno+pq/rs==": "Authorization: Bearer [REDACTED]",
		"authorization: bearer XYZ":                         "authorization: Bearer [REDACTED]",
		"jwt=" + testJWT + " end":                           "jwt=[REDACTED] end",
		"a\n" + testPEM + "\nb":                             "a\n[REDACTED]\nb",
		"cut -----BEGIN PRIVATE KEY-----\nMIIE":             "cut [REDACTED]",
		"mac 0201036c6e6402f801030a1022c6b9f0":              "mac [REDACTED]",
		// Left alone: ordinary text, npubs, domains, hex ids.
		"www.example.com and npub1zutzeysacnf9rru6zqwmxd54mud0k44tst6l70ja5mhv8jjumytsd2x7nu": "",
		"task-force-alpha-bravo-charlie":                                   "",
		"17162c921dc4d2518f9a101db33695df1afb56ab82f5ff3e5da6eec3ca5cd917": "",
		"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----":       "",
	}
	for in, want := range cases {
		if want == "" {
			want = in
		}
		if got := Scrub(in); got != want {
			t.Errorf("Scrub(%q)\n got %q\nwant %q", in, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	type inner struct {
		Mnemonic string `json:"mnemonic"`
		Note     string `json:"note"`
	}
	in := map[string]any{
		"preimage": "ab12",
		"nested":   map[string]any{"list": []any{map[string]any{"password": "hunter2"}, "Bearer abcdef"}},
		"typed":    inner{Mnemonic: "leader monkey", Note: "hi " + testNsec},
		"seed":     42, // numeric: a sampling seed, kept
		"secret":   []string{"a", "b"},
		"big":      json.Number("12345678901234567890"),
	}
	b, _ := json.Marshal(Redact(in))
	got := string(b)
	want := `{"big":12345678901234567890,"nested":{"list":[{"password":"[REDACTED]"},"Bearer [REDACTED]"]},"preimage":"ab12","secret":"[REDACTED]","seed":42,"typed":{"mnemonic":"[REDACTED]","note":"hi [REDACTED]"}}`
	if got != want {
		t.Fatalf("\n got %s\nwant %s", got, want)
	}
	if Redact(func() {}) != Redacted {
		t.Fatal("unmarshalable value must come back redacted")
	}
	if Redact("sk-abcdefghijklmnopqrstu") != Redacted {
		t.Fatal("bare string scrubbed")
	}
}

var leftovers = []*regexp.Regexp{
	regexp.MustCompile(`(?i)nsec1[02-9ac-hj-np-z]{58}`),
	regexp.MustCompile(`eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9\.`),
	regexp.MustCompile(`PRIVATE KEY-----`),
}

// FuzzScrub: a secret placed anywhere in arbitrary text does not survive, and scrubbing is
// idempotent.
func FuzzScrub(f *testing.F) {
	f.Add("", "")
	f.Add("prefix ", " suffix")
	f.Add("Bearer", "sk-")
	f.Add("eyJ", ".x.y")
	f.Add("-----BEGIN ", "-----END PRIVATE KEY-----")
	f.Add("nsec1", "qqqq")
	f.Fuzz(func(t *testing.T, pre, post string) {
		for _, secret := range []string{testNsec, testJWT, testPEM} {
			s := pre + " " + secret + " " + post
			out := Scrub(s)
			if strings.Contains(out, secret) {
				t.Fatalf("secret survived: %q", out)
			}
			for _, re := range leftovers {
				if re.MatchString(out) && !re.MatchString(pre) && !re.MatchString(post) {
					t.Fatalf("%s survived in %q", re, out)
				}
			}
		}
		once := Scrub(pre + post)
		if Scrub(once) != once {
			t.Fatalf("not idempotent: %q -> %q -> %q", pre+post, once, Scrub(once))
		}
		// Redact of arbitrary keys/values yields valid JSON and never keeps a secret key's string.
		b, err := json.Marshal(Redact(map[string]any{pre: post, "password": pre}))
		if err != nil || !json.Valid(b) {
			t.Fatalf("redact: %v %s", err, b)
		}
		if IsSecretKey(pre) {
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			if v, ok := m[pre].(string); ok && v != Redacted {
				t.Fatalf("secret key %q kept %q", pre, v)
			}
		}
	})
}
