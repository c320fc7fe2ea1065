package client

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"
)

func errorResponse(status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body))}
}

func TestReadAPIError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		body   string
		want   string
	}{
		{404, `{"error":{"code":"not_found","message":"device 42 not found"}}`, "device 42 not found (not_found)"},
		{400, `{"error":{"code":"bad_filter","message":"bad filter","column":3,"line":1}}`, "bad filter (bad_filter)"},
		{502, `<html><body>Bad Gateway</body></html>`, "bad gateway (HTTP 502)"},
		{500, ``, "internal server error (HTTP 500)"},
		{418, `{"error":{}}`, "i'm a teapot (HTTP 418)"},
		{599, `{"error":{"message":"no code"}}`, "unexpected response (HTTP 599)"},
		{413, strings.Repeat("x", 2*maxErrorBytes), "request entity too large (HTTP 413)"},
	}
	for _, tt := range tests {
		err := readAPIError(errorResponse(tt.status, tt.body))
		ae, ok := err.(*APIError)
		if !ok || ae.Status != tt.status || err.Error() != tt.want {
			t.Errorf("readAPIError(%d, %.40q) = %v; want %q", tt.status, tt.body, err, tt.want)
		}
	}
}

// FuzzReadAPIError feeds arbitrary error bodies, as a broken server or a
// proxy might send: the result is always an *APIError with the status and
// a non-empty message.
func FuzzReadAPIError(f *testing.F) {
	f.Add(404, []byte(`{"error":{"code":"not_found","message":"device 42 not found"}}`))
	f.Add(502, []byte(`<html>Bad Gateway</html>`))
	f.Add(400, []byte(`{"error":{"code":"","message":"x"}}`))
	f.Add(401, []byte(`{"error":{"code":"unauthorized","message":"\u0000\ud800"}}`))
	f.Add(500, []byte{})
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		err := readAPIError(errorResponse(status, string(body)))
		ae, ok := err.(*APIError)
		if !ok {
			t.Fatalf("%T is not *APIError", err)
		}
		if ae.Status != status || ae.Message == "" {
			t.Fatalf("readAPIError = %#v", ae)
		}
		if len(ae.Message) > maxErrorBytes || !utf8.ValidString(ae.Error()) && utf8.Valid(body) {
			t.Fatalf("message too long or mangled: %d bytes", len(ae.Message))
		}
	})
}
