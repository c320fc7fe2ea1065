package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/web/webtest"
)

const newAdminPassword = "correct horse battery 9"

func TestFirstSignInMustChangePassword(t *testing.T) {
	e := webtest.Start(t)
	b := e.Browser(t)

	r := b.Get("/ui/password")
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Location, "/ui/login?next=") {
		t.Fatalf("signed-out page: status %d location %q, want a redirect to sign-in", r.Status, r.Location)
	}
	b.SignInAdmin(e, newAdminPassword)

	c := b.Cookie("updraft_session")
	if c == nil || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" {
		t.Fatalf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path=/ui/", c)
	}
	// The old one-time password no longer works; the new one does.
	b2 := e.Browser(t)
	b2.Get("/ui/login")
	if r := b2.Post("/ui/login", url.Values{"name": {"admin"}, "password": {e.AdminPassword}}); r.Status != http.StatusUnauthorized {
		t.Fatalf("old password: status %d", r.Status)
	}
	if r := b2.Login("admin", newAdminPassword); r.Location != "/ui/" {
		t.Fatalf("sign-in after the change went to %q", r.Location)
	}
	// The session cookie is not an API credential.
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/api/v1/devices", nil)
	req.AddCookie(&http.Cookie{Name: "updraft_session", Value: b2.Cookie("updraft_session").Value})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("management API with a session cookie: %d, want 401", resp.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := webtest.Start(t)
	r := e.Browser(t).Get("/ui/login")
	csp := r.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "form-action 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows unsafe sources: %q", csp)
	}
	if r.Header.Get("X-Frame-Options") != "DENY" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", r.Header)
	}
	if strings.Contains(r.Body, "<script>") || strings.Contains(r.Body, " style=") {
		t.Error("page has inline script or style, which the CSP forbids")
	}
}

func TestPostsNeedCSRFToken(t *testing.T) {
	e := webtest.Start(t)
	b := e.Browser(t)
	b.SignInAdmin(e, newAdminPassword)

	r := b.PostWithoutCSRF("/ui/logout", url.Values{})
	if r.Status != http.StatusForbidden {
		t.Fatalf("sign-out without CSRF token: %d, want 403", r.Status)
	}
	r = b.PostWithoutCSRF("/ui/logout", url.Values{"csrf": {"forged"}})
	if r.Status != http.StatusForbidden {
		t.Fatalf("sign-out with a wrong CSRF token: %d, want 403", r.Status)
	}
	// Another site's form is refused even with the right token.
	b.Get("/ui/password")
	b.Origin = "https://evil.example"
	if r := b.Post("/ui/logout", url.Values{}); r.Status != http.StatusForbidden {
		t.Fatalf("cross-origin post: %d, want 403", r.Status)
	}
	b.Origin = ""
	// Sign-in needs the login form's token too.
	b3 := e.Browser(t)
	if r := b3.PostWithoutCSRF("/ui/login", url.Values{"name": {"admin"}, "password": {newAdminPassword}}); r.Status != http.StatusForbidden {
		t.Fatalf("sign-in without the login token: %d, want 403", r.Status)
	}
	// With the token, signing out revokes the session for good.
	old := b.Cookie("updraft_session").Value
	if r := b.Post("/ui/logout", url.Values{}); r.Status != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", r.Status)
	}
	b4 := e.Browser(t)
	b4.Get("/ui/login")
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/ui/password", nil)
	req.AddCookie(&http.Cookie{Name: "updraft_session", Value: old})
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoked session: %d, want a redirect to sign-in", resp.StatusCode)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := webtest.Start(t)
	e.AddUser(t, "olga", store.RoleOperator, "olga's long password 1")
	b := e.Browser(t)
	b.Get("/ui/login")
	for i := range 5 {
		if r := b.Post("/ui/login", url.Values{"name": {"olga"}, "password": {"guess"}}); r.Status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i+1, r.Status)
		}
	}
	// Now even the right password is refused, with a retry time.
	r := b.Post("/ui/login", url.Values{"name": {"olga"}, "password": {"olga's long password 1"}})
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("after 5 failures: %d (Retry-After %q), want 429", r.Status, r.Header.Get("Retry-After"))
	}
	r.MustContain(t, "Too many failed sign-ins")
	entries, _, err := e.Store.ListAudit(t.Context(), store.DefaultTenant, store.AuditQuery{Action: "user.login_failed"})
	if err != nil || len(entries) != 5 {
		t.Fatalf("audited failures: %d (%v), want 5", len(entries), err)
	}
	e.Clock.Advance(16 * time.Minute)
	if r := b.Login("olga", "olga's long password 1"); r.Location != "/ui/" {
		t.Fatalf("after the window: went to %q", r.Location)
	}
}

func TestUnknownPageAndSafeRedirect(t *testing.T) {
	e := webtest.Start(t)
	b := e.Browser(t)
	b.SignInAdmin(e, newAdminPassword)
	r := b.Get("/ui/no/such/page")
	if r.Status != http.StatusNotFound {
		t.Fatalf("unknown page: %d", r.Status)
	}
	r.MustContain(t, "There is no page at /ui/no/such/page")
	// A next= pointing elsewhere is ignored.
	b2 := e.Browser(t)
	b2.Get("/ui/login")
	r = b2.Post("/ui/login", url.Values{"name": {"admin"}, "password": {newAdminPassword}, "next": {"https://evil.example/"}})
	if r.Location != "/ui/" {
		t.Fatalf("next to another site: redirected to %q", r.Location)
	}
}
