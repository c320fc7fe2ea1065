package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/store"
)

// Prefix is the path under which the dashboard is served.
const Prefix = "/ui/"

// Config configures the dashboard.
type Config struct {
	Store store.Store
	// API is the management API handler (mounted at /api/v1/ in the
	// server); pages call it in process with the session's token.
	API http.Handler
	// Clock is the server's clock (sessions, rate limits, "2 h ago").
	Clock clock.Clock
	// Ticker paces live views (server-sent events); default real time.
	Ticker clock.Clock
	// LiveInterval is how often live views look for changes [2s].
	LiveInterval time.Duration
	Logger       *slog.Logger
	// CSRFKey signs the per-session CSRF tokens (at least 32 bytes);
	// replicas sharing a database must share it.
	CSRFKey []byte
	// SessionTTL is how long a sign-in lasts [12h].
	SessionTTL time.Duration
	// InsecureCookies drops the Secure flag from cookies, for plain-HTTP
	// deployments reached by a host name other than localhost. Browsers
	// accept Secure cookies from http://localhost and http://127.0.0.1.
	InsecureCookies bool
}

// UI is the dashboard.
type UI struct {
	cfg     Config
	log     *slog.Logger
	pages   map[string]*template.Template
	static  fs.FS
	limiter *loginLimiter
	handler http.Handler
}

// New prepares the dashboard: it parses every template, so that a broken
// template fails at start rather than on first view.
func New(cfg Config) (*UI, error) {
	if cfg.Store == nil || cfg.API == nil {
		return nil, errors.New("web: need a store and the management API")
	}
	if len(cfg.CSRFKey) < 32 {
		return nil, errors.New("web: the CSRF key must be at least 32 bytes")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Ticker == nil {
		cfg.Ticker = clock.Real{}
	}
	if cfg.LiveInterval <= 0 {
		cfg.LiveInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	u := &UI{cfg: cfg, log: cfg.Logger, limiter: newLoginLimiter(cfg.Clock)}
	var err error
	if u.pages, err = parseTemplates(u.funcs()); err != nil {
		return nil, err
	}
	if u.static, err = fs.Sub(assets, "static"); err != nil {
		return nil, err
	}
	u.handler, err = u.mux()
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Handler serves everything under Prefix.
func (u *UI) Handler() http.Handler { return u.handler }

// route is one dashboard page or action.
type route struct {
	method  string // GET or POST
	pattern string // below Prefix, e.g. "devices/{id}"; "" is the overview
	// access is who may use it: public (no session), any signed-in user,
	// or write (operator and admin; viewers get 403).
	access access
	handle func(w http.ResponseWriter, r *http.Request, s *Session) error
}

type access int

const (
	signedIn access = iota
	public
	write
)

func (u *UI) mux() (http.Handler, error) {
	mux := http.NewServeMux()
	seen := map[string]bool{}
	for _, rt := range u.routes() {
		if rt.method != http.MethodGet && rt.method != http.MethodPost {
			return nil, fmt.Errorf("web: route %s %s: only GET and POST", rt.method, rt.pattern)
		}
		p := rt.method + " " + Prefix + rt.pattern
		if rt.pattern == "" {
			p += "{$}"
		}
		if seen[p] {
			return nil, fmt.Errorf("web: route %s registered twice", p)
		}
		seen[p] = true
		mux.Handle(p, u.wrap(rt))
	}
	mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", u.staticHandler()))
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		s, _ := u.session(r)
		u.renderError(w, r, s, &APIError{Status: http.StatusNotFound, Code: "not_found",
			Message: fmt.Sprintf("There is no page at %s.", r.URL.Path)})
	})
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.renderError(w, r, nil, &APIError{Status: http.StatusForbidden, Code: "cross_origin",
			Message: "This request came from another site and was refused."})
	}))
	return securityHeaders(cop.Handler(mux)), nil
}

// wrap authenticates, enforces access and CSRF, and renders errors.
func (u *UI) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s *Session
		if rt.access != public {
			var err error
			s, err = u.session(r)
			if err != nil {
				u.log.Warn("dashboard session lookup failed", "err", err)
				u.renderError(w, r, nil, err)
				return
			}
			if s == nil {
				u.toLogin(w, r)
				return
			}
			if s.MustChangePassword && rt.pattern != "password" && rt.pattern != "logout" {
				http.Redirect(w, r, Prefix+"password", http.StatusSeeOther)
				return
			}
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if err := u.checkCSRF(r, s); err != nil {
				u.renderError(w, r, s, err)
				return
			}
		}
		if rt.access == write && !s.CanWrite() {
			u.renderError(w, r, s, &APIError{Status: http.StatusForbidden, Code: "forbidden",
				Message: "Your role (" + string(s.Role) + ") can look but not change anything."})
			return
		}
		if err := rt.handle(w, r, s); err != nil {
			if errors.Is(err, context.Canceled) {
				return
			}
			u.renderError(w, r, s, err)
		}
	})
}

// maxFormBytes bounds a form post.
const maxFormBytes = 256 << 10

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
			"img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if !strings.HasPrefix(r.URL.Path, Prefix+"static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

func (u *UI) staticHandler() http.Handler {
	fsrv := http.FileServerFS(u.static)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Assets change only with the binary; a day is short enough.
		w.Header().Set("Cache-Control", "public, max-age=86400")
		fsrv.ServeHTTP(w, r)
	})
}

func (u *UI) toLogin(w http.ResponseWriter, r *http.Request) {
	next := r.URL.RequestURI()
	if r.Method != http.MethodGet {
		next = Prefix
	}
	if r.Header.Get("Accept") == "text/event-stream" {
		http.Error(w, "signed out", http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, Prefix+"login?next="+urlQueryEscape(next), http.StatusSeeOther)
}

func (u *UI) now() time.Time { return u.cfg.Clock.Now() }
