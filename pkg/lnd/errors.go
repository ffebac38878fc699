package lnd

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/openagents/runtime/pkg/lightning"
)

// Error is a refusal lnd sent: its gRPC status code and message, and the HTTP status the REST
// proxy chose for it. Errors that match a lightning sentinel wrap it too.
type Error struct {
	HTTPStatus int
	Code       int // gRPC code: 5 NotFound, 6 AlreadyExists...
	Message    string
	sentinel   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("lnd: %s (http %d, code %d)", e.Message, e.HTTPStatus, e.Code)
}

// Unwrap lets errors.Is match the lightning sentinel this refusal means, if any.
func (e *Error) Unwrap() error { return e.sentinel }

// gRPC status codes the mapping needs.
const (
	codeNotFound      = 5
	codeAlreadyExists = 6
)

// restError is lnd's error body. Unary replies carry it bare ({"code","message"}); streams wrap
// it ({"error":{...}}), also when the stream fails before its first message.
type restError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// parseError turns a non-200 reply into an *Error, or nil when the body is not lnd's (a proxy's
// HTML page, a truncated body): callers then cannot tell whether lnd saw the request.
func parseError(status int, body []byte) error {
	var wrapped struct {
		Error *restError `json:"error"`
	}
	var re restError
	switch {
	case json.Unmarshal(body, &wrapped) == nil && wrapped.Error != nil && wrapped.Error.Message != "":
		re = *wrapped.Error
	case json.Unmarshal(body, &re) == nil && re.Message != "":
	default:
		return fmt.Errorf("lnd: http %d: %.200q", status, body)
	}
	return newError(status, re)
}

func newError(status int, re restError) *Error {
	e := &Error{HTTPStatus: status, Code: re.Code, Message: re.Message}
	msg := strings.ToLower(re.Message)
	switch {
	case strings.Contains(msg, "already paid"), strings.Contains(msg, "payment already exists"),
		re.Code == codeAlreadyExists, status == http.StatusConflict:
		// lnd: "invoice is already paid" (settled before) or "payment already exists" (the same
		// hash is being paid right now); either way paying again must not happen.
		e.sentinel = lightning.ErrAlreadyPaid
	case re.Code == codeNotFound, status == http.StatusNotFound,
		strings.Contains(msg, "unable to locate invoice"), strings.Contains(msg, "isn't initiated"):
		e.sentinel = lightning.ErrNotFound
	case strings.Contains(msg, "invoice expired"):
		e.sentinel = lightning.ErrExpired
	case strings.Contains(msg, "insufficient"):
		e.sentinel = lightning.ErrInsufficientBalance
	case strings.Contains(msg, "invalid") && strings.Contains(msg, "payment request"),
		strings.Contains(msg, "invoice not for current active network"):
		e.sentinel = lightning.ErrInvalidInvoice
	}
	return e
}

// failureError maps lnd's failure_reason of a FAILED payment. TIMEOUT means lnd gave up looking
// for a working route within timeout_seconds, a final "no route" for the caller.
func failureError(reason string) error {
	var sentinel error
	switch reason {
	case "FAILURE_REASON_NO_ROUTE", "FAILURE_REASON_TIMEOUT":
		sentinel = lightning.ErrNoRoute
	case "FAILURE_REASON_INSUFFICIENT_BALANCE":
		sentinel = lightning.ErrInsufficientBalance
	case "FAILURE_REASON_INCORRECT_PAYMENT_DETAILS":
		sentinel = lightning.ErrInvalidInvoice
	}
	if sentinel == nil {
		return fmt.Errorf("%w: %s", ErrPaymentFailed, reason)
	}
	return fmt.Errorf("%w: %s: %w", ErrPaymentFailed, reason, sentinel)
}

// jsonInt reads the int64 and uint64 fields grpc-gateway sends as strings (and plain numbers).
type jsonInt int64

func (n *jsonInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("lnd: integer %s: %w", b, err)
	}
	*n = jsonInt(v)
	return nil
}
