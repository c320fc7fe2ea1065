package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/server"
)

const metricsToken = "scrape-token-0123456789abcdef"

func writeMetricsToken(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "metrics-token")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// getFrom sends GET url with the given headers and returns the response
// with its body read.
func getFrom(t *testing.T, c *http.Client, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// remote serves one request through the server's handler as if it came
// from an address on the internet.
func remote(b *bundle, path string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	req.RemoteAddr = "203.0.113.7:40000"
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	b.srv.Handler().ServeHTTP(rec, req)
	return rec
}

func TestMetricsNeedTheToken(t *testing.T) {
	b := start(t, server.Config{DataDir: t.TempDir(), MetricsTokenFile: writeMetricsToken(t, metricsToken+"\n")})
	for _, tt := range []struct {
		name, auth string
	}{
		{"no token", ""},
		{"wrong token", "Bearer not-the-scrape-token-0123"},
		{"token as a prefix", "Bearer " + metricsToken[:len(metricsToken)-1]},
		{"other scheme", "Basic " + metricsToken},
	} {
		h := map[string]string{}
		if tt.auth != "" {
			h["Authorization"] = tt.auth
		}
		resp, body := getFrom(t, b.client, b.url+"/metrics", h) // from loopback: the token is still needed
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: /metrics = %d, WWW-Authenticate %q; want 401 with a Bearer challenge", tt.name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		if strings.Contains(body, "updraft_") || strings.Contains(body, "go_goroutines") {
			t.Errorf("%s: the refusal carries metrics: %s", tt.name, body)
		}
	}
	resp, body := getFrom(t, b.client, b.url+"/metrics", map[string]string{"Authorization": "Bearer " + metricsToken})
	if resp.StatusCode != 200 || !strings.Contains(body, "updraft_http_requests_total") {
		t.Fatalf("/metrics with the token = %d:\n%.300s", resp.StatusCode, body)
	}
	// The refusals are counted like any other request.
	if !strings.Contains(body, `updraft_http_requests_total{code="401",method="GET",route="GET /metrics"} 4`) {
		t.Errorf("the refused scrapes are not counted:\n%s", grepLines(body, "updraft_http_requests_total"))
	}
	// Holders of the token may read them from anywhere, too.
	if rec := remote(b, "/metrics", map[string]string{"Authorization": "Bearer " + metricsToken}); rec.Code != 200 {
		t.Errorf("/metrics with the token from a remote address = %d", rec.Code)
	}
}

func TestMetricsOnASeparateListener(t *testing.T) {
	b := start(t, server.Config{DataDir: t.TempDir(), MetricsAddr: "127.0.0.1:0"})
	if b.srv.MetricsAddr() == "" || b.srv.MetricsAddr() == b.srv.Addr() {
		t.Fatalf("metrics listener %q, main %q", b.srv.MetricsAddr(), b.srv.Addr())
	}
	if code, body := get(t, b, "/metrics", ""); code != http.StatusNotFound || strings.Contains(body, "updraft_") {
		t.Fatalf("/metrics on the main listener = %d %.200s, want 404", code, body)
	}
	murl := "http://" + b.srv.MetricsAddr()
	resp, body := getFrom(t, b.client, murl+"/metrics", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `updraft_http_requests_total{code="404",method="GET",route="other"} 1`) {
		t.Fatalf("/metrics on the metrics listener = %d:\n%s", resp.StatusCode, grepLines(body, "updraft_http_requests_total"))
	}
	if resp, body := getFrom(t, b.client, murl+"/healthz", nil); resp.StatusCode != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/healthz on the metrics listener = %d %s", resp.StatusCode, body)
	}
	if resp, body := getFrom(t, b.client, murl+"/readyz", nil); resp.StatusCode != 200 || !strings.Contains(body, `"checks"`) {
		t.Errorf("/readyz on the metrics listener = %d %s, want details", resp.StatusCode, body)
	}
	if resp, _ := getFrom(t, b.client, murl+"/api/v1/devices", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the management API on the metrics listener = %d, want 404", resp.StatusCode)
	}
	// The main listener keeps /readyz for load balancers, without details.
	if code, body := get(t, b, "/readyz", ""); code != 200 || strings.Contains(body, `"checks"`) {
		t.Errorf("/readyz on the main listener = %d %s, want only ready", code, body)
	}
}

func TestMetricsOnASeparateListenerWithToken(t *testing.T) {
	b := start(t, server.Config{DataDir: t.TempDir(), MetricsAddr: "127.0.0.1:0", MetricsTokenFile: writeMetricsToken(t, metricsToken)})
	murl := "http://" + b.srv.MetricsAddr()
	if resp, _ := getFrom(t, b.client, murl+"/metrics", nil); resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("/metrics without the token = %d %q, want 401 Bearer", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp, body := getFrom(t, b.client, murl+"/metrics", map[string]string{"Authorization": "Bearer " + metricsToken}); resp.StatusCode != 200 || !strings.Contains(body, "updraft_http_requests_total") {
		t.Errorf("/metrics with the token = %d %.200s", resp.StatusCode, body)
	}
	if code, _ := get(t, b, "/metrics", metricsToken); code != http.StatusNotFound {
		t.Errorf("/metrics on the main listener with the token = %d, want 404", code)
	}
}

func TestMetricsForLoopbackClientsByDefault(t *testing.T) {
	b := start(t, server.Config{DataDir: t.TempDir()})
	if code, body := get(t, b, "/metrics", ""); code != 200 || !strings.Contains(body, "updraft_http_requests_total") {
		t.Fatalf("/metrics from loopback = %d %.200s", code, body)
	}
	for name, h := range map[string]map[string]string{
		"remote address":              nil,
		"remote address with a token": {"Authorization": "Bearer " + metricsToken}, // no token is configured
	} {
		if rec := remote(b, "/metrics", h); rec.Code != http.StatusForbidden || strings.Contains(rec.Body.String(), "updraft_") {
			t.Errorf("%s: /metrics = %d %.200s, want 403", name, rec.Code, rec.Body.String())
		}
	}
	// A proxy on this machine connects from loopback for its clients.
	for _, h := range []string{"X-Forwarded-For", "Forwarded", "X-Real-IP"} {
		resp, body := getFrom(t, b.client, b.url+"/metrics", map[string]string{h: "203.0.113.7"})
		if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "updraft_") {
			t.Errorf("/metrics through a proxy (%s) = %d %.200s, want 403", h, resp.StatusCode, body)
		}
	}
}

func TestReadinessDetailsOnlyForOperators(t *testing.T) {
	b := start(t, server.Config{DataDir: t.TempDir(), MetricsTokenFile: writeMetricsToken(t, metricsToken)})
	fields := func(name string, code int, body string) map[string]json.RawMessage {
		t.Helper()
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &m); err != nil || code != 200 {
			t.Fatalf("%s: /readyz = %d %s (%v)", name, code, body, err)
		}
		return m
	}
	rec := remote(b, "/readyz", nil)
	if m := fields("remote", rec.Code, rec.Body.String()); len(m) != 1 || string(m["ready"]) != "true" {
		t.Errorf("/readyz from a remote address = %s, want only ready", rec.Body.String())
	}
	resp, body := getFrom(t, b.client, b.url+"/readyz", map[string]string{"X-Forwarded-For": "203.0.113.7"})
	if m := fields("proxied", resp.StatusCode, body); len(m) != 1 {
		t.Errorf("/readyz through a proxy = %s, want only ready", body)
	}
	rec = remote(b, "/readyz", map[string]string{"Authorization": "Bearer " + metricsToken})
	if m := fields("remote with token", rec.Code, rec.Body.String()); m["checks"] == nil {
		t.Errorf("/readyz with the metrics token = %s, want details", rec.Body.String())
	}
	// With a token configured, loopback clients too must show it: a proxy
	// on this machine that adds no forwarding header looks like one.
	code, body := get(t, b, "/readyz", "")
	if m := fields("loopback", code, body); len(m) != 1 {
		t.Errorf("/readyz from loopback without the token = %s, want only ready", body)
	}
	code, body = get(t, b, "/readyz", metricsToken)
	if m := fields("loopback with token", code, body); m["checks"] == nil || m["degraded"] == nil {
		t.Errorf("/readyz from loopback with the token = %s, want details", body)
	}
	// Any header a proxy adds makes a loopback request remote.
	for _, h := range []string{"Via", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Envoy-External-Address", "L5d-Dst-Canonical"} {
		rec := httptest.NewRequest("GET", "/metrics", nil)
		rec.RemoteAddr = "127.0.0.1:40000"
		rec.Header.Set(h, "x")
		w := httptest.NewRecorder()
		b.srv.Handler().ServeHTTP(w, rec)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("/metrics from loopback with %s and no token = %d, want 401", h, w.Code)
		}
	}
	if rec := remote(b, "/healthz", nil); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
		t.Errorf("/healthz from a remote address = %d %s", rec.Code, rec.Body.String())
	}
}

func TestMetricsTokenFileRefused(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, file, want string
	}{
		{"missing", filepath.Join(t.TempDir(), "none"), "read the metrics token"},
		{"empty", writeMetricsToken(t, ""), "is empty"},
		{"blank", writeMetricsToken(t, " \n\t\n"), "is empty"},
		{"short", writeMetricsToken(t, "short\n"), "shorter than 16 characters"},
	} {
		dir := t.TempDir()
		_, err := server.New(context.Background(), server.Config{DataDir: dir, Addr: "127.0.0.1:0", MetricsTokenFile: tt.file, Out: io.Discard})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New = %v, want an error containing %q", tt.name, err, tt.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "updraft.db")); err == nil {
			t.Errorf("%s: the database was created before the configuration was checked", tt.name)
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
