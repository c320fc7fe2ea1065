package apierror

import (
	"errors"
	"io"
	"strings"
)

// jsonMessage turns encoding/json's messages into client-facing text; the
// unknown-field message is already precise (`unknown field "x"`).
func jsonMessage(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "request body ends in the middle of a JSON value"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
