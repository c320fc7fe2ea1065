package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/store"
)

// Cookie names. Both are scoped to Prefix.
const (
	sessionCookie    = "updraft_session"
	loginCSRFCookie  = "updraft_login"
	sessionTokenName = "dashboard session"
)

// Session is a signed-in dashboard user.
type Session struct {
	TenantID           string
	UserID             string
	UserName           string
	Role               store.Role
	MustChangePassword bool
	TokenID            string
	ExpiresAt          time.Time
	// CSRF is the token every form of this session must carry.
	CSRF string

	token string // the API token the session acts with
	ui    *UI
}

// CanWrite reports whether the user may change things (operator, admin).
func (s *Session) CanWrite() bool {
	return s != nil && (s.Role == store.RoleOperator || s.Role == store.RoleAdmin)
}

// IsAdmin reports whether the user is an admin.
func (s *Session) IsAdmin() bool { return s != nil && s.Role == store.RoleAdmin }

// session returns the request's session, nil if there is none or it is no
// longer valid (expired, revoked, user disabled).
func (u *UI) session(r *http.Request) (*Session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	id, secret, err := auth.ParseAPIToken(c.Value)
	if err != nil {
		return nil, nil
	}
	ctx := r.Context()
	tok, err := u.cfg.Store.APITokenByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up session: %w", err)
	}
	now := u.now()
	if auth.CheckAPITokenSecret(secret, tok.SecretHash) != nil || tok.RevokedAt != nil ||
		tok.ExpiresAt == nil || !now.Before(*tok.ExpiresAt) || tok.UserID == "" || tok.Name != sessionTokenName {
		return nil, nil
	}
	usr, err := u.cfg.Store.User(ctx, tok.TenantID, tok.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up session user: %w", err)
	}
	if usr.Disabled {
		return nil, nil
	}
	role := tok.Role
	if rank(usr.Role) < rank(role) {
		role = usr.Role
	}
	return &Session{
		TenantID: tok.TenantID, UserID: usr.ID, UserName: usr.Name, Role: role,
		MustChangePassword: usr.MustChangePassword, TokenID: tok.ID, ExpiresAt: *tok.ExpiresAt,
		CSRF: u.csrfToken(tok.ID), token: c.Value, ui: u,
	}, nil
}

func rank(r store.Role) int {
	switch r {
	case store.RoleViewer:
		return 1
	case store.RoleOperator:
		return 2
	case store.RoleAdmin:
		return 3
	}
	return 0
}

// csrfToken binds a CSRF token to one session: an attacker who cannot read
// the session cookie cannot compute it.
func (u *UI) csrfToken(sessionID string) string {
	m := hmac.New(sha256.New, u.cfg.CSRFKey)
	m.Write([]byte("updraft-dashboard-csrf\x00" + sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var errCSRF = &APIError{Status: http.StatusForbidden, Code: "csrf",
	Message: "This form expired or did not come from this dashboard. Reload the page and try again."}

// checkCSRF checks the token of a POST: the session's token, or before
// sign-in the login cookie's (double submit).
func (u *UI) checkCSRF(r *http.Request, s *Session) error {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	want := ""
	if s != nil {
		want = s.CSRF
	} else if c, err := r.Cookie(loginCSRFCookie); err == nil {
		want = c.Value
	}
	if want == "" || got == "" || !hmac.Equal([]byte(got), []byte(want)) {
		return errCSRF
	}
	return nil
}

// setCookie sets a dashboard cookie that lives ttl (0: until the browser
// closes), or deletes it when value is empty. Lifetimes are sent as
// Max-Age, which the browser counts on its own clock, so a server on a
// simulated clock does not make cookies expire early or late; the session
// token's own expiry is checked on the server's clock.
func (u *UI) setCookie(w http.ResponseWriter, name, value string, ttl time.Duration) {
	c := &http.Cookie{
		Name: name, Value: value, Path: Prefix, HttpOnly: true,
		Secure: !u.cfg.InsecureCookies, SameSite: http.SameSiteStrictMode,
	}
	if value == "" {
		c.MaxAge = -1
	} else if ttl > 0 {
		c.MaxAge = int(ttl / time.Second)
	}
	http.SetCookie(w, c)
}

func randomToken() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (u *UI) sessionRoutes() []route {
	return []route{
		{http.MethodGet, "login", public, u.loginPage},
		{http.MethodPost, "login", public, u.login},
		{http.MethodPost, "logout", signedIn, u.logout},
		{http.MethodGet, "password", signedIn, u.passwordPage},
		{http.MethodPost, "password", signedIn, u.changePassword},
	}
}

type loginView struct {
	Name  string
	Next  string
	Error string
	CSRF  string
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request, _ *Session) error {
	if s, _ := u.session(r); s != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return nil
	}
	return u.renderLogin(w, r, http.StatusOK, loginView{Next: safeNext(r.URL.Query().Get("next"))})
}

func (u *UI) renderLogin(w http.ResponseWriter, r *http.Request, status int, v loginView) error {
	tok, err := randomToken()
	if err != nil {
		return err
	}
	u.setCookie(w, loginCSRFCookie, tok, 0)
	v.CSRF = tok
	return u.render(w, r, nil, status, "login.html", "Sign in", v)
}

// login checks a user's password and starts a session. Failures are
// counted per client address and per user name; past the limit the answer
// is 429 whatever the password, so guessing costs time.
func (u *UI) login(w http.ResponseWriter, r *http.Request, _ *Session) error {
	ctx := r.Context()
	name := strings.TrimSpace(r.PostFormValue("name"))
	password := r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	addr := clientAddr(r)
	if wait := u.limiter.blocked(addr, name); wait > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds()+1)))
		return u.renderLogin(w, r, http.StatusTooManyRequests, loginView{Name: name, Next: next,
			Error: fmt.Sprintf("Too many failed sign-ins. Try again in %s.", roundUp(wait))})
	}
	fail := func() error {
		u.limiter.failed(addr, name)
		if err := u.cfg.Store.AppendAudit(ctx, store.DefaultTenant, store.Actor{Kind: store.ActorUser, Name: name},
			"user.login_failed", "user", name, map[string]string{"address": addr, "via": "dashboard"}, u.now()); err != nil {
			u.log.Warn("audit failed sign-in", "err", err)
		}
		return u.renderLogin(w, r, http.StatusUnauthorized, loginView{Name: name, Next: next,
			Error: "Wrong user name or password."})
	}
	if name == "" || password == "" || len(name) > 128 || len(password) > 1024 {
		return fail()
	}
	usr, err := u.cfg.Store.UserByName(ctx, store.DefaultTenant, name)
	if errors.Is(err, store.ErrNotFound) {
		auth.SimulateVerify(password, auth.DefaultArgon2Params())
		return fail()
	}
	if err != nil {
		return fmt.Errorf("look up user: %w", err)
	}
	if auth.VerifyPassword(password, usr.PasswordHash) != nil || usr.Disabled {
		return fail()
	}
	u.limiter.succeeded(addr, name)
	nt, err := auth.GenerateAPIToken()
	if err != nil {
		return err
	}
	now := u.now()
	exp := now.Add(u.cfg.SessionTTL)
	actor := store.Actor{Kind: store.ActorUser, ID: usr.ID, Name: usr.Name}
	if _, err := u.cfg.Store.CreateAPIToken(ctx, store.APIToken{
		TenantID: usr.TenantID, ID: nt.ID, Name: sessionTokenName, UserID: usr.ID, Role: usr.Role,
		SecretHash: nt.SecretHash, CreatedAt: now, ExpiresAt: &exp,
	}, actor, now); err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	if err := u.cfg.Store.AppendAudit(ctx, usr.TenantID, actor, "user.login", "user", usr.ID,
		map[string]string{"address": addr, "via": "dashboard", "session": nt.ID}, now); err != nil {
		u.log.Warn("audit sign-in", "err", err)
	}
	u.setCookie(w, sessionCookie, nt.Token, u.cfg.SessionTTL)
	u.setCookie(w, loginCSRFCookie, "", 0)
	if usr.MustChangePassword {
		next = Prefix + "password"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, s *Session) error {
	if err := u.cfg.Store.RevokeAPIToken(r.Context(), s.TenantID, s.TokenID,
		store.Actor{Kind: store.ActorUser, ID: s.UserID, Name: s.UserName}, u.now()); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("end session: %w", err)
	}
	u.setCookie(w, sessionCookie, "", 0)
	http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
	return nil
}

type passwordView struct {
	Forced  bool
	Error   string
	Changed bool
}

func (u *UI) passwordPage(w http.ResponseWriter, r *http.Request, s *Session) error {
	return u.render(w, r, s, http.StatusOK, "password.html", "Change password",
		passwordView{Forced: s.MustChangePassword, Changed: r.URL.Query().Has("changed")})
}

// changePassword goes through the management API, which checks the current
// password and the policy and audits the change.
func (u *UI) changePassword(w http.ResponseWriter, r *http.Request, s *Session) error {
	cur, pw, again := r.PostFormValue("current"), r.PostFormValue("password"), r.PostFormValue("again")
	v := passwordView{Forced: s.MustChangePassword}
	if pw != again {
		v.Error = "The new passwords do not match."
		return u.render(w, r, s, http.StatusBadRequest, "password.html", "Change password", v)
	}
	err := s.API().Do(r.Context(), http.MethodPost, "/users/"+url.PathEscape(s.UserID)+"/password", nil,
		map[string]string{"current_password": cur, "password": pw}, nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status < 500 {
		v.Error = ae.Message
		return u.render(w, r, s, ae.Status, "password.html", "Change password", v)
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"password?changed", http.StatusSeeOther)
	return nil
}

// safeNext keeps a post-login redirect on the dashboard.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return Prefix
	}
	return next
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }

// clientAddr is the client's IP address (no port). Forwarded headers are
// not trusted: behind a proxy the limit is per proxy, which errs safe.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func roundUp(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%d s", int(d.Seconds())+1)
	}
	return fmt.Sprintf("%d min", int(d.Minutes())+1)
}
