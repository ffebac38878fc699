package nipsa

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nbd-wtf/go-nostr"
)

// maxIDLen bounds the free-form ids carried in d tags (tick ids, session ids); relays index
// d tags and a megabyte id is an attack, not an id.
const maxIDLen = 256

// verify checks what every Parse function checks first: the kind, then the id and the
// signature (ids are cheap, signatures are not, and a wrong kind needs neither).
func verify(ev *nostr.Event, kind int) error {
	if ev == nil {
		return fmt.Errorf("%w: nil event", ErrBadSignature)
	}
	if ev.Kind != kind {
		return fmt.Errorf("%w: got %d, want %d", ErrWrongKind, ev.Kind, kind)
	}
	if !ev.CheckID() {
		return fmt.Errorf("%w: id does not match the event body", ErrBadSignature)
	}
	if ok, err := ev.CheckSignature(); !ok || err != nil {
		return fmt.Errorf("%w: signature does not verify", ErrBadSignature)
	}
	return nil
}

// tagReader reads the tags of one event and names the kind in every refusal.
type tagReader struct {
	kind int
	tags nostr.Tags
}

// one returns the values of the single tag called name, which must carry at least n values.
// A repeated single-valued tag is refused: two readers could pick different ones.
func (r tagReader) one(name string, n int) ([]string, error) {
	vals, ok, err := r.opt(name, n)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fieldErr(r.kind, name, "missing tag")
	}
	return vals, nil
}

// opt is one for a tag that may be absent.
func (r tagReader) opt(name string, n int) ([]string, bool, error) {
	var found nostr.Tag
	for _, t := range r.tags {
		if len(t) == 0 || t[0] != name {
			continue
		}
		if found != nil {
			return nil, false, fieldErr(r.kind, name, "tag appears more than once")
		}
		found = t
	}
	if found == nil {
		return nil, false, nil
	}
	if len(found)-1 < n {
		return nil, false, fieldErr(r.kind, name, "want %d value(s), got %d", n, len(found)-1)
	}
	return found[1:], true, nil
}

// all returns the first value of every tag called name, in order.
func (r tagReader) all(name string) ([]string, error) {
	var out []string
	for _, t := range r.tags {
		if len(t) == 0 || t[0] != name {
			continue
		}
		if len(t) < 2 {
			return nil, fieldErr(r.kind, name, "tag without a value")
		}
		out = append(out, t[1])
	}
	return out, nil
}

// d checks the d tag against want (when want is non-empty) and returns it.
func (r tagReader) d(want string) (string, error) {
	v, err := r.one("d", 1)
	if err != nil {
		return "", err
	}
	if want != "" && v[0] != want {
		return "", fieldErr(r.kind, "d", "want %q, got %q", want, v[0])
	}
	return v[0], nil
}

// pubkey reads a tag whose first value is a hex x-only public key on the curve.
func (r tagReader) pubkey(name string) (string, error) {
	v, err := r.one(name, 1)
	if err != nil {
		return "", err
	}
	if err := checkPubkey(r.kind, name, v[0]); err != nil {
		return "", err
	}
	return v[0], nil
}

func checkPubkey(kind int, field, pk string) error {
	if !nostr.IsValidPublicKey(pk) {
		return fieldErr(kind, field, "not a lowercase hex public key on secp256k1")
	}
	return nil
}

func checkHex64(kind int, field, s string) error {
	if len(s) != 64 {
		return fieldErr(kind, field, "want 64 lowercase hex characters, got %d characters", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fieldErr(kind, field, "want 64 lowercase hex characters")
		}
	}
	return nil
}

func checkID(kind int, field, id string) error {
	if id == "" {
		return fieldErr(kind, field, "must not be empty")
	}
	if len(id) > maxIDLen {
		return fieldErr(kind, field, "longer than %d bytes", maxIDLen)
	}
	return nil
}

// parseInt reads a base-10 integer in [min, max]. strconv rejects "+1", " 1" and "1.0".
func parseInt(kind int, field, s string, min, max int64) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fieldErr(kind, field, "%q is not an integer", s)
	}
	if n < min || n > max {
		return 0, fieldErr(kind, field, "%d out of range %d..%d", n, min, max)
	}
	return n, nil
}

// decodeJSON decodes content into v, naming the kind on failure. Unknown keys are ignored
// (newer writers may add fields), trailing data is not.
func decodeJSON(kind int, content string, v any) error {
	dec := json.NewDecoder(bytes.NewReader([]byte(content)))
	if err := dec.Decode(v); err != nil {
		return fieldErr(kind, "content", "invalid JSON: %v", err)
	}
	if dec.More() {
		return fieldErr(kind, "content", "trailing data after the JSON value")
	}
	return nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
