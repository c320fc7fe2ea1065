package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/updraft/updraft/internal/client"
)

// APIError is an error answer of the management API, or one the dashboard
// raises itself; its Message is safe to show.
type APIError struct {
	Status  int
	Code    string
	Message string
	Details map[string]any
}

func (e *APIError) Error() string { return fmt.Sprintf("%s (%s)", e.Message, e.Code) }

// API calls the management API in process with a session's token.
type API struct {
	h     http.Handler
	token string
}

// API returns the session's management API caller.
func (s *Session) API() *API { return &API{h: s.ui.cfg.API, token: s.token} }

// Client returns a typed management API client acting as the session.
func (s *Session) Client() *client.Client {
	c, err := client.New(inProcessBase, client.Options{
		Token:      s.token,
		HTTPClient: &http.Client{Transport: handlerTransport{s.ui.cfg.API}},
		UserAgent:  "updraft-dashboard",
	})
	if err != nil {
		panic(err) // inProcessBase is a constant, valid URL
	}
	return c
}

// inProcessBase is the base URL of in-process calls; it never reaches a
// network.
const inProcessBase = "http://updraft.invalid"

// maxAPIResponse bounds a response the dashboard buffers.
const maxAPIResponse = 32 << 20

// Do sends a JSON request to path below /api/v1 (e.g. "/devices") and
// decodes the JSON answer into out (nil: discard). Errors are *APIError.
func (a *API) Do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	resp, err := a.raw(ctx, method, path, q, in)
	if err != nil {
		return err
	}
	if out == nil || resp.Code == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(resp.Body.Bytes(), out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// Raw sends a request and returns the whole successful response (for CSV
// and other non-JSON answers).
func (a *API) Raw(ctx context.Context, method, path string, q url.Values) (*httptest.ResponseRecorder, error) {
	return a.raw(ctx, method, path, q, nil)
}

func (a *API) raw(ctx context.Context, method, path string, q url.Values, in any) (*httptest.ResponseRecorder, error) {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	target := "/api/v1" + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, inProcessBase+target, body)
	if err != nil {
		return nil, err
	}
	req.RemoteAddr = "127.0.0.1:0"
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "updraft-dashboard")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	if rec.Body.Len() > maxAPIResponse {
		return nil, fmt.Errorf("%s %s: response of %d bytes is too large for the dashboard", method, path, rec.Body.Len())
	}
	if rec.Code < 200 || rec.Code > 299 {
		return nil, decodeAPIError(rec.Code, rec.Body.Bytes())
	}
	return rec, nil
}

func decodeAPIError(status int, b []byte) *APIError {
	var body struct {
		Error map[string]any `json:"error"`
	}
	e := &APIError{Status: status, Code: "error", Message: strings.ToLower(http.StatusText(status))}
	if json.Unmarshal(b, &body) == nil && body.Error != nil {
		if c, ok := body.Error["code"].(string); ok {
			e.Code = c
		}
		if m, ok := body.Error["message"].(string); ok {
			e.Message = m
		}
		for k, v := range body.Error {
			if k != "code" && k != "message" {
				if e.Details == nil {
					e.Details = map[string]any{}
				}
				e.Details[k] = v
			}
		}
	}
	return e
}

// handlerTransport serves client requests from a handler in process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	r := req.Clone(req.Context())
	r.RemoteAddr = "127.0.0.1:0"
	r.RequestURI = req.URL.RequestURI()
	t.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}
