package lnd

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// stream reads a grpc-gateway server stream: JSON objects one after another (newline
// separated), each {"result": ...} or {"error": {...}}.
type stream struct {
	status int
	dec    *json.Decoder
}

func newStream(r io.Reader, status int) *stream {
	return &stream{status: status, dec: json.NewDecoder(r)}
}

// errStreamEnded: the server closed the stream cleanly.
var errStreamEnded = errors.New("lnd: stream ended")

// next decodes the next message's result into out. An error line comes back as *Error; a
// clean end as errStreamEnded; anything else (a cut connection, garbage) as the transport or
// decode error itself.
func (s *stream) next(out any) error {
	var line struct {
		Result json.RawMessage `json:"result"`
		Error  *restError      `json:"error"`
	}
	if err := s.dec.Decode(&line); err != nil {
		if err == io.EOF {
			return errStreamEnded
		}
		return err
	}
	if line.Error != nil {
		status := s.status
		if status == http.StatusOK {
			status = 0 // the HTTP status was sent before the error and says nothing about it
		}
		return newError(status, *line.Error)
	}
	if len(line.Result) == 0 {
		return errors.New("lnd: stream message without result")
	}
	return json.Unmarshal(line.Result, out)
}
