package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxRequestBytes is the largest signed device request (enrollment or
// renewal) this package decodes. The HTTP layer should cut bodies off at
// this size before reading them.
const MaxRequestBytes = 64 << 10

// DefaultMaxSkew is the replay window used when a caller passes a
// non-positive skew: a signed request is accepted only if its timestamp is
// within this distance of the server's clock, in either direction.
const DefaultMaxSkew = 5 * time.Minute

// Field limits for identity data.
const (
	MaxSerialLen         = 128
	MaxNameLen           = 64 // device_type, hw_rev, region, attribute keys
	MaxTimeZoneLen       = 64
	MaxAttributes        = 64
	MaxAttributeValueLen = 1024
	MinNonceLen          = 16
	MaxNonceLen          = 128
	MaxDeviceIDLen       = 64
)

// ErrStaleRequest means a signed request's timestamp is outside the replay
// window. A device with a wrong clock gets this; the HTTP layer's Date
// header lets it correct itself.
var ErrStaleRequest = errors.New("request timestamp outside the accepted window")

// ValidationError reports a request field that is missing or malformed. Its
// message is written for the device's developer and safe to return to the
// device.
type ValidationError struct {
	// Field is the JSON path of the field, such as "identity.serial", or
	// "body" when the request as a whole is malformed.
	Field string
	Msg   string
	// Err is an underlying sentinel, such as ErrUnsupportedKey, or nil.
	Err error
}

func (e *ValidationError) Error() string { return "invalid " + e.Field + ": " + e.Msg }

// Unwrap returns the underlying sentinel, if any.
func (e *ValidationError) Unwrap() error { return e.Err }

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// decodeStrict decodes exactly one JSON object into v, refusing unknown
// fields and trailing data.
func decodeStrict(body []byte, v any) error {
	if len(body) > MaxRequestBytes {
		return invalid("body", "larger than %d bytes", MaxRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &ValidationError{Field: "body", Msg: jsonMessage(err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalid("body", "data after the json object")
	}
	return nil
}

// jsonMessage turns a decoding error into a message without Go type names.
func jsonMessage(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed json at offset %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q has the wrong json type %s", typ.Field, typ.Value)
		}
		return fmt.Sprintf("wrong json type %s", typ.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated json"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ")
	}
	return "malformed json"
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

func checkName(field, s string) error {
	if s == "" {
		return invalid(field, "required")
	}
	if !isName(s, MaxNameLen) {
		return invalid(field, "must be 1 to %d characters of A-Z a-z 0-9 . _ -", MaxNameLen)
	}
	return nil
}

// checkSerial allows printable ASCII including inner spaces.
func checkSerial(field, s string) error {
	if s == "" {
		return invalid(field, "required")
	}
	if len(s) > MaxSerialLen {
		return invalid(field, "longer than %d characters", MaxSerialLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return invalid(field, "must be printable ascii")
		}
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return invalid(field, "must not start or end with a space")
	}
	return nil
}

// checkTimeZone accepts an IANA zone name known to the tz database. Binaries
// that validate time zones should import time/tzdata so the answer does not
// depend on the host.
func checkTimeZone(field, s string) error {
	if len(s) > MaxTimeZoneLen {
		return invalid(field, "longer than %d characters", MaxTimeZoneLen)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '/' || b == '_' || b == '-' || b == '+') {
			return invalid(field, "%q is not an IANA time zone name", s)
		}
	}
	if s == "Local" || strings.HasPrefix(s, "/") || strings.Contains(s, "//") {
		return invalid(field, "%q is not an IANA time zone name", s)
	}
	if _, err := time.LoadLocation(s); err != nil {
		return invalid(field, "unknown IANA time zone %q", s)
	}
	return nil
}

func checkAttributes(field string, attrs map[string]string) error {
	if len(attrs) > MaxAttributes {
		return invalid(field, "more than %d attributes", MaxAttributes)
	}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		v := attrs[k]
		if !isName(k, MaxNameLen) {
			return invalid(field, "key %q must be 1 to %d characters of A-Z a-z 0-9 . _ -", k, MaxNameLen)
		}
		if len(v) > MaxAttributeValueLen {
			return invalid(field+"."+k, "longer than %d bytes", MaxAttributeValueLen)
		}
		if !utf8.ValidString(v) {
			return invalid(field+"."+k, "not valid utf-8")
		}
		for _, r := range v {
			if r < 0x20 || r == 0x7f {
				return invalid(field+"."+k, "contains control characters")
			}
		}
	}
	return nil
}

// checkNonce allows base64 (either alphabet) and hex nonces.
func checkNonce(field, s string) error {
	if len(s) < MinNonceLen || len(s) > MaxNonceLen {
		return invalid(field, "must be %d to %d characters", MinNonceLen, MaxNonceLen)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '+' || b == '/' || b == '=' || b == '_' || b == '-') {
			return invalid(field, "must be base64 or hex characters")
		}
	}
	return nil
}

func parseTimestamp(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, invalid(field, "required")
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, invalid(field, "must be an RFC 3339 time such as 2025-01-02T15:04:05Z")
	}
	return t, nil
}

// checkSkew applies the replay window.
func checkSkew(ts, now time.Time, maxSkew time.Duration) error {
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	d := now.Sub(ts)
	if d > maxSkew || d < -maxSkew {
		return fmt.Errorf("%w: timestamp %s, server time %s, allowed skew %s",
			ErrStaleRequest, ts.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), maxSkew)
	}
	return nil
}
