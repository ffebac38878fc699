package nipsa

import (
	"errors"
	"fmt"
)

// Sentinel errors a caller matches with errors.Is. A *FieldError may wrap one of them, so
// errors.Is(err, ErrUnsupportedStateVersion) holds while the message still names the field.
var (
	// ErrBadSignature: the event id does not match its body or the signature does not verify.
	ErrBadSignature = errors.New("nipsa: bad event id or signature")
	// ErrWrongKind: the event is not of the kind the parser reads.
	ErrWrongKind = errors.New("nipsa: wrong event kind")
	// ErrStateTooLarge: the state does not fit in one NIP-44 v2 plaintext (65,535 bytes) even
	// with every memory entry compacted away. State is never truncated.
	ErrStateTooLarge = errors.New("nipsa: state too large to seal")
	// ErrUnsupportedStateVersion: a 38001 from a newer writer; reading it as version 1 could
	// silently drop fields, so it is refused.
	ErrUnsupportedStateVersion = errors.New("nipsa: unsupported state_version")
	// ErrNotOwnState: a 38001 whose author is not the key opening it (state is sealed to self).
	ErrNotOwnState = errors.New("nipsa: state sealed by another key")
)

// FieldError is a refusal that names the kind and the field (a tag name, a content key, or a
// dotted path such as goals[2].status) so an operator sees at once what to fix.
type FieldError struct {
	Kind   int
	Field  string
	Reason string
	Err    error // optional sentinel this refusal is an instance of
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("nipsa: %d %s: %s", e.Kind, e.Field, e.Reason)
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(kind int, field, format string, args ...any) *FieldError {
	return &FieldError{Kind: kind, Field: field, Reason: fmt.Sprintf(format, args...)}
}
