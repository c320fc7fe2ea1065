package apierror_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/store"
)

func TestFromMapsStoreErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("device x: %w", store.ErrNotFound), 404, "not_found"},
		{store.Conflictf("serial taken"), 409, "conflict"},
		{store.ErrImmutable, 409, "immutable"},
		{store.ErrPendingLimit, 429, "pending_limit"},
		{fmt.Errorf("%w: bad version", store.ErrInvalidRequest), 400, "invalid"},
		{errors.New("disk on fire"), 500, "internal"},
		{apierror.Forbidden("viewers cannot write"), 403, "forbidden"},
	}
	for _, tt := range tests {
		e := apierror.From(tt.err)
		if e.Status != tt.status || e.Code != tt.code {
			t.Errorf("From(%v) = %d %s, want %d %s", tt.err, e.Status, e.Code, tt.status, tt.code)
		}
	}
}

func TestWriteHidesInternalText(t *testing.T) {
	t.Parallel()
	rec := httptest.NewRecorder()
	apierror.Write(rec, httptest.NewRequest("GET", "/", nil), nil, errors.New("pq: password for user x"))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "password") {
		t.Fatalf("got %d %q; want 500 without internal text", rec.Code, rec.Body.String())
	}
	var b apierror.Body
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Error.Code != "internal" {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	if rec.Header().Get("Content-Length") == "" {
		t.Fatal("no Content-Length")
	}
}

func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	type req struct {
		Name string `json:"name"`
	}
	tests := []struct {
		body   string
		status int
		code   string
	}{
		{`{"name":"a"}`, 0, ""},
		{``, 400, "bad_request"},
		{`{"name":`, 400, "malformed_json"},
		{`{"name":"a","extra":1}`, 400, "malformed_json"},
		{`{"name":1}`, 400, "malformed_json"},
		{`{"name":"a"} {}`, 400, "malformed_json"},
		{`{"name":"a"}}`, 400, "malformed_json"},
		{`{"name":"a"}]`, 400, "malformed_json"},
		{"{\"name\":\"a\"}\n", 0, ""},
		{`{"name":"` + strings.Repeat("x", 100) + `"}`, 413, "too_large"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
		var v req
		err := apierror.DecodeJSON(rec, r, 64, &v)
		if tt.status == 0 {
			if err != nil {
				t.Errorf("body %q: %v", tt.body, err)
			}
			continue
		}
		e := apierror.From(err)
		if err == nil || e.Status != tt.status || e.Code != tt.code {
			t.Errorf("body %q: err %v (%d %s), want %d %s", tt.body, err, e.Status, e.Code, tt.status, tt.code)
		}
	}
}

func TestWriteDetails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		details map[string]any
		want    map[string]any // the whole "error" object
	}{
		{"none", nil, map[string]any{"code": "bad_filter", "message": "bad filter"}},
		{"position", map[string]any{"line": 2, "column": 7},
			map[string]any{"code": "bad_filter", "message": "bad filter", "line": 2.0, "column": 7.0}},
		{"cannot replace code or message", map[string]any{"code": "ok", "message": "fine", "column": 1},
			map[string]any{"code": "bad_filter", "message": "bad filter", "column": 1.0}},
		{"unencodable details are dropped", map[string]any{"column": 1, "f": func() {}},
			map[string]any{"code": "bad_filter", "message": "bad filter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			err := &apierror.Error{Status: http.StatusBadRequest, Code: "bad_filter", Message: "bad filter", Details: tt.details}
			apierror.Write(rec, httptest.NewRequest("GET", "/", nil), nil, fmt.Errorf("list: %w", err))
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", rec.Code)
			}
			var got struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", rec.Body.String(), err)
			}
			if !reflect.DeepEqual(got.Error, tt.want) {
				t.Fatalf("error object = %v, want %v", got.Error, tt.want)
			}
			if cl := rec.Header().Get("Content-Length"); cl != fmt.Sprint(rec.Body.Len()) {
				t.Fatalf("Content-Length %s for a %d-byte body", cl, rec.Body.Len())
			}
		})
	}
}
