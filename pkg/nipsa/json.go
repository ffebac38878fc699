package nipsa

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// marshal encodes v as compact JSON without HTML escaping: content strings are hashed
// (trajectory) and read by other implementations, and "<redacted>" must stay readable.
func marshal(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("nipsa: encode content: %w", err)
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}
