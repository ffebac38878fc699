package trajectory

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"unicode"
)

// Redacted replaces every secret value and scrubbed string.
const Redacted = "[REDACTED]"

// Words that make a key name a secret. "preimage" is deliberately absent: it is public after
// payment and is the proof a trajectory wants to show. "tokens" (plural) is absent too: it is
// how model usage is counted (tokens_in, max_tokens).
var secretWords = map[string]bool{
	"password": true, "passwd": true, "passphrase": true, "secret": true, "secrets": true,
	"token": true, "auth": true, "authorization": true, "apikey": true, "privatekey": true,
	"privkey": true, "seed": true, "mnemonic": true, "nsec": true, "macaroon": true, "kek": true,
	"credential": true, "credentials": true, "cookie": true,
}

// Suffixes of a key with its separators removed (clientsecret, accesstoken, dbpassword).
var secretSuffixes = []string{"password", "passwd", "passphrase", "secret", "token", "apikey",
	"privatekey", "privkey", "mnemonic", "macaroon"}

// IsSecretKey reports whether a JSON object key names a secret: a word of it (split at _ - . and
// camelCase) or two adjacent words (api_key, private-key) is a secret word, or it ends in one.
func IsSecretKey(key string) bool {
	words := splitWords(key)
	for i, w := range words {
		if secretWords[w] || (i > 0 && secretWords[words[i-1]+w]) {
			return true
		}
	}
	joined := strings.Join(words, "")
	for _, s := range secretSuffixes {
		if strings.HasSuffix(joined, s) {
			return true
		}
	}
	return false
}

func splitWords(key string) []string {
	var words []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(key)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rs[i-1]) ||
			(i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))):
			// fooBar, HTTPServer -> foo bar, http server
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return words
}

// Patterns scrubbed from every string. Each replacement contains only characters outside the
// patterns' classes, so scrubbing is idempotent and cannot splice a new match together.
var scrubbers = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`(?s)-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)`), Redacted},
	{regexp.MustCompile(`(?i)n(?:crypt)?sec1[02-9ac-hj-np-z]{8,}`), Redacted},
	{regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*`), "Bearer " + Redacted},
	{regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*`), Redacted},
	{regexp.MustCompile(`\bsk-[A-Za-z0-9_-]{16,}`), Redacted},
	// LND macaroons are hex with this fixed prefix ("\x02\x01\x03lnd").
	{regexp.MustCompile(`(?i)0201036c6e64[0-9a-f]{16,}`), Redacted},
}

// Scrub removes secrets that look like themselves wherever they appear in free text: nsec1...,
// sk-..., "Bearer xxx", JWTs, PEM private key blocks and LND macaroons.
func Scrub(s string) string {
	for _, sc := range scrubbers {
		if sc.re.MatchString(s) {
			s = sc.re.ReplaceAllLiteralString(s, sc.with)
		}
	}
	return s
}

// Redact returns a JSON-shaped copy of v (maps, slices, strings, json.Number, bools, nil) with
// the strings, objects and arrays under secret keys replaced by Redacted and every other
// string scrubbed. Numbers and bools under secret keys stay: token counts and sampling seeds
// are not secrets, and a secret is never a bare number here. Values that do not marshal to
// JSON come back as Redacted rather than risk leaking through a fallback.
func Redact(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return Redacted
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return Redacted
	}
	return redact(x)
}

func redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if IsSecretKey(k) {
				switch val.(type) {
				case json.Number, bool, nil:
				default:
					x[k] = Redacted
					continue
				}
			}
			x[k] = redact(val)
		}
		return x
	case []any:
		for i := range x {
			x[i] = redact(x[i])
		}
		return x
	case string:
		return Scrub(x)
	}
	return v
}
