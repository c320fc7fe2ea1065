package mgmtapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequests sends arbitrary paths, query strings and bodies to the API
// as an admin: whatever arrives, the answer is never a server error, and an
// error is always the JSON error shape.
func FuzzRequests(f *testing.F) {
	for _, s := range []struct {
		method byte
		target string
		body   string
	}{
		{0, "/devices?q=" + "tag%3Alab", ""},
		{1, "/releases", `{"version":"1.0.0","cves":["CVE-2024-1234"]}`},
		{2, "/releases/1.0.0/artifacts?device_type=a&hw_revs=B,C&type=raw-image&name=x", "content"},
		{1, "/users", `{"name":"a","role":"viewer","password":"\u0000"}`},
		{1, "/tokens", `{"name":"t","role":"admin","expires_in":-9223372036854775808}`},
		{0, "/audit?since=2026-01-01T00:00:00Z&limit=1000", ""},
		{3, "/devices/x/credentials/y", ""},
	} {
		f.Add(s.method, s.target, []byte(s.body))
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, m byte, target string, body []byte) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \t\r\n#") {
			return
		}
		method := []string{"GET", "POST", "PUT", "DELETE"}[int(m)%4]
		hr, err := http.NewRequest(method, "http://updraft.test"+Prefix+target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		hr.Header.Set("Authorization", "Bearer "+e.admin)
		rec := httptest.NewRecorder()
		e.api.Handler().ServeHTTP(rec, hr)
		if rec.Code >= 500 {
			t.Fatalf("%s %s: %d %s", method, target, rec.Code, rec.Body.Bytes())
		}
		if rec.Code >= 400 {
			var b struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil || b.Error.Code == "" || b.Error.Message == "" {
				t.Fatalf("%s %s: %d with body %q", method, target, rec.Code, rec.Body.Bytes())
			}
		}
	})
}
