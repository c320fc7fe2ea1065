// Package webtest runs a real Updraft server for dashboard tests and
// drives it with a cookie-keeping HTTP client that fills in CSRF tokens the
// way a browser submitting the page's form would.
package webtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/store"
)

// Env is a running server.
type Env struct {
	URL    string
	Server *server.Server
	Store  store.Store
	Clock  *clock.Fake
	// Now is the server's clock: Clock, or the one given to StartWith.
	Now clock.Clock
	// Admin's one-time password (the admin must change it first).
	AdminPassword string
	AdminToken    string
	// APIToken, when set, is the admin bearer token API sends instead of
	// AdminToken, e.g. an API token not tied to the first admin.
	APIToken string
}

// Start runs a server on SQLite in a temporary directory on a free
// loopback port until the test ends. The server's clock is fake.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartWith(t, Options{})
}

// Options change the server StartWith runs.
type Options struct {
	// Clock replaces the fake clock: a sim.Accelerated clock for a test
	// whose simulated devices need time to pass on its own. Env.Clock is
	// then nil and Env.Now is this clock.
	Clock clock.Clock
	// Timing stretches the server's periodic work for such a clock.
	Timing server.Timing
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Env {
	t.Helper()
	var fake *clock.Fake
	var clk clock.Clock = o.Clock
	if clk == nil {
		fake = clock.NewFake(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))
		clk = fake
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{DataDir: t.TempDir(), Addr: "127.0.0.1:0", Clock: clk, Out: io.Discard, Timing: o.Timing})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	})
	ia := srv.Initial()
	if ia == nil {
		t.Fatal("server created no initial admin")
	}
	e := &Env{URL: "http://" + srv.Addr(), Server: srv, Store: srv.Store(), Clock: fake, Now: clk,
		AdminPassword: ia.Password, AdminToken: ia.Token}
	return e
}

// AddUser creates a user with a password that need not be changed.
func (e *Env) AddUser(t testing.TB, name string, role store.Role, password string) store.User {
	t.Helper()
	hash, err := auth.HashPassword(password, auth.DefaultArgon2Params())
	if err != nil {
		t.Fatal(err)
	}
	now := e.Now.Now()
	u, err := e.Store.CreateUser(context.Background(), store.User{
		TenantID: store.DefaultTenant, ID: "usr_" + name, Name: name, Role: role, PasswordHash: hash,
		CreatedAt: now, UpdatedAt: now,
	}, store.Actor{Kind: store.ActorSystem, Name: "test"}, now)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Token is the bearer token API sends: APIToken, else AdminToken.
func (e *Env) Token() string {
	if e.APIToken != "" {
		return e.APIToken
	}
	return e.AdminToken
}

// API sends a request to the management API (path below /api/v1) as an
// admin and decodes the JSON answer into out unless out is nil; it fails
// the test unless the status is want. body is nil, an io.Reader or []byte
// (sent as application/octet-stream), or any other value, sent as JSON.
func (e *Env) API(t testing.TB, want int, method, path string, body, out any) {
	t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd, ctype = b, "application/octet-stream"
	case []byte:
		rd, ctype = bytes.NewReader(b), "application/octet-stream"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	e.APIRequest(t, want, method, path, ctype, rd, out)
}

// APIRequest is API with the body's content type given ("": none).
func (e *Env) APIRequest(t testing.TB, want int, method, path, ctype string, body io.Reader, out any) {
	t.Helper()
	if body == nil {
		body = http.NoBody
	}
	req, err := http.NewRequest(method, e.URL+"/api/v1"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.Token())
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
}

// Browser is an HTTP client that keeps cookies (including Secure ones,
// which Go's cookie jar withholds from http:// URLs) and remembers the CSRF
// token of the last page it saw.
type Browser struct {
	t       testing.TB
	base    string
	hc      *http.Client
	cookies map[string]*http.Cookie
	csrf    string
	// Origin, when set, is sent as the Origin header of POSTs.
	Origin string
}

// Browser returns a new client with no cookies.
func (e *Env) Browser(t testing.TB) *Browser {
	return &Browser{t: t, base: e.URL, cookies: map[string]*http.Cookie{}, hc: &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Response is a page as the browser saw it.
type Response struct {
	Status   int
	Header   http.Header
	Body     string
	Location string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// Do sends a request with the stored cookies and stores the answer's.
func (b *Browser) Do(method, path string, form url.Values) Response {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.Origin != "" && method == http.MethodPost {
		req.Header.Set("Origin", b.Origin)
	}
	for _, c := range b.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, resp.Body); err != nil {
		b.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
		} else {
			b.cookies[c.Name] = c
		}
	}
	r := Response{Status: resp.StatusCode, Header: resp.Header, Body: buf.String(), Location: resp.Header.Get("Location")}
	if m := csrfField.FindStringSubmatch(r.Body); m != nil {
		b.csrf = m[1]
	}
	return r
}

// Get fetches a page.
func (b *Browser) Get(path string) Response { return b.Do(http.MethodGet, path, nil) }

// Post submits a form, adding the CSRF token of the last page seen.
func (b *Browser) Post(path string, form url.Values) Response {
	b.t.Helper()
	f := url.Values{}
	for k, v := range form {
		f[k] = v
	}
	if f.Get("csrf") == "" && b.csrf != "" {
		f.Set("csrf", b.csrf)
	}
	return b.Do(http.MethodPost, path, f)
}

// PostWithoutCSRF submits a form exactly as given.
func (b *Browser) PostWithoutCSRF(path string, form url.Values) Response {
	return b.Do(http.MethodPost, path, form)
}

// Cookie returns a stored cookie, nil if none.
func (b *Browser) Cookie(name string) *http.Cookie { return b.cookies[name] }

// Login signs in; it fails the test unless the server redirects.
func (b *Browser) Login(name, password string) Response {
	b.t.Helper()
	b.Get("/ui/login")
	r := b.Post("/ui/login", url.Values{"name": {name}, "password": {password}})
	if r.Status != http.StatusSeeOther {
		b.t.Fatalf("sign in as %s: status %d\n%s", name, r.Status, r.Body)
	}
	return r
}

// SignInAdmin signs in as the first admin and changes the one-time
// password to newPassword, as the dashboard demands.
func (b *Browser) SignInAdmin(e *Env, newPassword string) {
	b.t.Helper()
	r := b.Login("admin", e.AdminPassword)
	if r.Location != "/ui/password" {
		b.t.Fatalf("first sign-in went to %q, want the password page", r.Location)
	}
	b.Get("/ui/password")
	r = b.Post("/ui/password", url.Values{"current": {e.AdminPassword}, "password": {newPassword}, "again": {newPassword}})
	if r.Status != http.StatusSeeOther {
		b.t.Fatalf("change password: status %d\n%s", r.Status, r.Body)
	}
}

// MustContain fails unless the body contains every string.
func (r Response) MustContain(t testing.TB, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(r.Body, s) {
			t.Fatalf("page (status %d) lacks %q:\n%s", r.Status, s, shorten(r.Body))
		}
	}
}

func shorten(s string) string {
	if len(s) > 4000 {
		return s[:4000] + fmt.Sprintf("… (%d bytes)", len(s))
	}
	return s
}
