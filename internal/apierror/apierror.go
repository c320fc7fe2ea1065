// Package apierror is the one place where Go errors become HTTP responses
// for Updraft's JSON APIs (management and device). Responses are
//
//	{"error": {"code": "not_found", "message": "device 42 not found"}}
//
// with a stable machine-readable code, and optionally more fields inside
// "error" that locate the problem (Error.Details, e.g. "line" and "column"
// of a bad filter). Internal errors are logged with their full text and
// answered with a generic message: internal error text never reaches
// devices or browsers.
package apierror

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/updraft/updraft/internal/store"
)

// Error is an error with an HTTP status and a stable code whose message is
// safe to show to the client.
type Error struct {
	Status  int
	Code    string
	Message string
	// RetryAfter, when positive, is sent as the Retry-After header (seconds).
	RetryAfter int
	// Details are extra fields of the "error" object, next to code and
	// message (which they cannot replace). Like Message they are sent to
	// the client, so they must hold only client-safe values.
	Details map[string]any
	Err     error // optional cause, logged but never sent
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error with a formatted message.
func New(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Common constructors.
func BadRequest(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "bad_request", format, args...)
}

func NotFound(format string, args ...any) *Error {
	return New(http.StatusNotFound, "not_found", format, args...)
}

func Unauthorized(format string, args ...any) *Error {
	return New(http.StatusUnauthorized, "unauthorized", format, args...)
}

func Forbidden(format string, args ...any) *Error {
	return New(http.StatusForbidden, "forbidden", format, args...)
}

func Conflict(format string, args ...any) *Error {
	return New(http.StatusConflict, "conflict", format, args...)
}

// Body is the JSON shape of an error response without Details; decoding a
// response into it ignores any details.
type Body struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// From maps any error to an *Error: *Error values pass through, store
// sentinels get their status, body-size and JSON errors become 4xx, and
// anything else is a 500 whose text is hidden.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var mbe *http.MaxBytesError
	var ce *store.ConflictError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large",
			Message: fmt.Sprintf("request body exceeds the limit of %d bytes", mbe.Limit), Err: err}
	case errors.As(err, &ce):
		return &Error{Status: http.StatusConflict, Code: "conflict", Message: ce.Msg, Err: err}
	case errors.As(err, &se):
		return &Error{Status: http.StatusBadRequest, Code: "malformed_json",
			Message: fmt.Sprintf("malformed JSON at byte %d", se.Offset), Err: err}
	case errors.As(err, &te):
		return &Error{Status: http.StatusBadRequest, Code: "malformed_json",
			Message: fmt.Sprintf("field %q: expected %s", te.Field, te.Type), Err: err}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: err.Error(), Err: err}
	case errors.Is(err, store.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: "conflict", Message: err.Error(), Err: err}
	case errors.Is(err, store.ErrImmutable):
		return &Error{Status: http.StatusConflict, Code: "immutable", Message: err.Error(), Err: err}
	case errors.Is(err, store.ErrPendingLimit):
		return &Error{Status: http.StatusTooManyRequests, Code: "pending_limit", Message: "too many pending enrollments; try again later", RetryAfter: 300, Err: err}
	case errors.Is(err, store.ErrInvalidRequest):
		return &Error{Status: http.StatusBadRequest, Code: "invalid", Message: err.Error(), Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error", Err: err}
}

// Write sends err as a JSON error response and logs server-side failures.
func Write(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	e := From(err)
	if e.Status >= 500 && log != nil {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	body, err := encodeBody(e)
	if err != nil {
		// Only details can fail to encode; the error is still answered.
		if log != nil {
			log.ErrorContext(r.Context(), "error details not encodable; sent without them", "code", e.Code, "err", err)
		}
		body, _ = encodeBody(&Error{Code: e.Code, Message: e.Message})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	h.Set("Cache-Control", "no-store")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(body, '\n'))
}

// encodeBody renders e's JSON body: code, message and its details.
func encodeBody(e *Error) ([]byte, error) {
	obj := make(map[string]any, len(e.Details)+2)
	for k, v := range e.Details {
		obj[k] = v
	}
	obj["code"] = e.Code
	obj["message"] = e.Message
	return json.Marshal(map[string]any{"error": obj})
}

// DecodeJSON reads a JSON request body of at most limit bytes into v,
// refusing unknown fields and trailing data. Errors are *Error values ready
// for Write.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return From(err)
		}
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		if errors.As(err, &se) || errors.As(err, &te) {
			return From(err)
		}
		if errors.Is(err, io.EOF) {
			return BadRequest("request body is empty; expected a JSON object")
		}
		return &Error{Status: http.StatusBadRequest, Code: "malformed_json", Message: jsonMessage(err), Err: err}
	}
	// Anything after the value, even a stray '}' (which More does not
	// report), is refused.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return From(err)
		}
		return &Error{Status: http.StatusBadRequest, Code: "malformed_json", Message: "unexpected data after the JSON object"}
	}
	return nil
}

// WriteJSON sends v as JSON with an explicit Content-Length (some device
// clients cannot handle chunked responses).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
