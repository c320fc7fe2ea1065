// Package wire holds the JSON messages of Updraft's native device API v1
// (served under /api/device/v1 by internal/deviceapi) and the strict
// decoders the server runs on request bodies.
//
// It imports only the standard library and internal/semver, so the device
// agent can share these types without pulling server code into its import
// graph. docs/device-api.md describes every message.
//
// Decoders are strict: exactly one JSON object, no unknown fields, every
// field within the limits below. A decoding failure is a *FieldError whose
// text is safe to send to the device.
package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Paths of the native device API.
const (
	Prefix        = "/api/device/v1"
	PathEnroll    = Prefix + "/enroll"
	PathToken     = Prefix + "/token"
	PathCheckIn   = Prefix + "/checkin"
	PathReports   = Prefix + "/reports"
	PathTelemetry = Prefix + "/telemetry"
	// PathDownload is the download route pattern (net/http ServeMux
	// syntax); the signed query string is appended by the server.
	PathDownload = Prefix + "/artifacts/{artifact}/download"
	// MetadataPrefix is where TUF metadata files are served by name
	// ("timestamp.json", "3.root.json", …), with the device token;
	// PathMetadata is its route pattern.
	MetadataPrefix = Prefix + "/tuf/"
	PathMetadata   = MetadataPrefix + "{name}"
)

// DownloadPath returns the download path of one artifact.
func DownloadPath(artifactID string) string {
	return Prefix + "/artifacts/" + artifactID + "/download"
}

// Request body limits in bytes. The server cuts bodies off at these sizes
// before decoding.
const (
	MaxCheckInBytes   = 64 << 10
	MaxReportsBytes   = 1 << 20
	MaxTelemetryBytes = 256 << 10
)

// Field limits.
const (
	MaxAttributes        = 64
	MaxNameLen           = 64 // attribute keys, device type, hardware revision, ids
	MaxAttributeValueLen = 1024
	MaxStateLen          = 32
	MaxReports           = 100 // status reports per request
	MaxErrorCodeLen      = 64
	MaxMessageLen        = 1024
	MaxLogTailLen        = 16 << 10
	MaxPoints            = 1000 // telemetry points per request
	MaxMetricNameLen     = 128
	MaxTimeZoneLen       = 64
)

// FieldError says which request field is wrong and why. Its text is meant
// for the device's developer.
type FieldError struct {
	Field string // JSON path, e.g. "reports[2].seq", or "body"
	Msg   string
}

func (e *FieldError) Error() string { return "invalid " + e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// decodeStrict decodes exactly one JSON object into v, refusing unknown
// fields and trailing data, with messages free of Go type names.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &FieldError{Field: "body", Msg: jsonMessage(err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fieldErr("body", "unexpected data after the JSON object")
	}
	return nil
}

func jsonMessage(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var perr *time.ParseError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be a JSON %s", typ.Field, jsonKind(typ.Type.Kind().String()))
		}
		return "the body must be a JSON object"
	case errors.As(err, &perr):
		return "times must be RFC 3339, such as 2025-01-02T15:04:05Z"
	case errors.Is(err, io.EOF):
		return "empty body; expected a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the body ends in the middle of a JSON value"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed JSON"
}

// jsonKind names a Go kind the way a JSON user would.
func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct", "ptr":
		return "object"
	}
	return "value of another type"
}

// isName reports whether s is 1..max characters of [A-Za-z0-9._-].
func isName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

// textKind says which characters a free-text field may hold.
type textKind int

const (
	oneLine   textKind = iota // no control characters at all
	multiLine                 // also '\n', '\r' and '\t'
	logText                   // anything but NUL (log tails carry escapes)
)

// isText checks a decoded string (already valid UTF-8: the JSON decoder
// replaces invalid bytes with U+FFFD). NUL is refused everywhere because
// PostgreSQL text cannot hold it.
func isText(s string, k textKind) bool {
	for _, r := range s {
		switch {
		case r == 0:
			return false
		case k == logText:
		case k == multiLine && (r == '\n' || r == '\t' || r == '\r'):
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return false
		}
	}
	return true
}
