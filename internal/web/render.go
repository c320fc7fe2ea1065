package web

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/client"
)

//go:embed templates static
var assets embed.FS

// Shared templates: every page is parsed together with these.
var sharedTemplates = []string{"templates/layout.html", "templates/partials.html"}

// parseTemplates parses each page template (templates/*.html other than the
// shared ones) with the layout and partials.
func parseTemplates(funcs template.FuncMap) (map[string]*template.Template, error) {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		shared := false
		for _, s := range sharedTemplates {
			shared = shared || s == n
		}
		if shared {
			continue
		}
		t, err := template.New(path.Base(n)).Funcs(funcs).ParseFS(assets, append(append([]string{}, sharedTemplates...), n)...)
		if err != nil {
			return nil, fmt.Errorf("web: parse %s: %w", n, err)
		}
		if t.Lookup("content") == nil {
			return nil, fmt.Errorf("web: %s defines no \"content\" template", n)
		}
		pages[path.Base(n)] = t
	}
	return pages, nil
}

// view is what every page template receives.
type view struct {
	Title   string
	Session *Session
	Section string // first path segment below Prefix, for the navigation
	Path    string // the request's path and query
	Now     time.Time
	Data    any
}

// render writes a whole page: the layout around the page's "content".
func (u *UI) render(w http.ResponseWriter, r *http.Request, s *Session, status int, page, title string, data any) error {
	t, ok := u.pages[page]
	if !ok {
		return fmt.Errorf("web: no page template %q", page)
	}
	var b bytes.Buffer
	v := view{Title: title, Session: s, Section: section(r.URL.Path), Path: r.URL.RequestURI(), Now: u.now(), Data: data}
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		return fmt.Errorf("web: render %s: %w", page, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(b.Bytes())
	return err
}

// fragment renders one named template of a page (a part a live view
// replaces) with data.
func (u *UI) fragment(page, name string, s *Session, data any) (string, error) {
	t, ok := u.pages[page]
	if !ok {
		return "", fmt.Errorf("web: no page template %q", page)
	}
	var b bytes.Buffer
	v := view{Session: s, Now: u.now(), Data: data}
	if err := t.ExecuteTemplate(&b, name, v); err != nil {
		return "", fmt.Errorf("web: render %s/%s: %w", page, name, err)
	}
	return b.String(), nil
}

func section(p string) string {
	rest := strings.TrimPrefix(p, Prefix)
	s, _, _ := strings.Cut(rest, "/")
	return s
}

type errorView struct {
	Status  int
	Code    string
	Message string
}

// renderError shows an error page. API errors keep their status and
// message; anything else is logged and shown as an internal error.
func (u *UI) renderError(w http.ResponseWriter, r *http.Request, s *Session, err error) {
	v := errorView{Status: http.StatusInternalServerError, Code: "internal",
		Message: "Something went wrong on the server; the error has been logged."}
	var ae *APIError
	var ce *client.APIError
	switch {
	case errors.As(err, &ae):
		v.Status, v.Code, v.Message = ae.Status, ae.Code, ae.Message
	case errors.As(err, &ce):
		v.Status, v.Code, v.Message = ce.Status, ce.Code, ce.Message
	default:
		u.log.Error("dashboard request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if v.Status == http.StatusUnauthorized {
		// The session's token stopped working (revoked, expired).
		u.setCookie(w, sessionCookie, "", 0)
		u.toLogin(w, r)
		return
	}
	if rerr := u.render(w, r, s, v.Status, "error.html", http.StatusText(v.Status), v); rerr != nil {
		u.log.Error("render error page", "err", rerr)
		http.Error(w, v.Message, v.Status)
	}
}

func (u *UI) funcs() template.FuncMap {
	return template.FuncMap{
		"when": func(t any) string {
			switch t := t.(type) {
			case time.Time:
				return fmtTime(t)
			case *time.Time:
				if t == nil {
					return "—"
				}
				return fmtTime(*t)
			}
			return "—"
		},
		"ago": func(t any) string {
			switch t := t.(type) {
			case time.Time:
				return ago(u.now(), t)
			case *time.Time:
				if t == nil {
					return "never"
				}
				return ago(u.now(), *t)
			}
			return "never"
		},
		"pct": func(a, b int) string {
			if b == 0 {
				return "0 %"
			}
			return fmt.Sprintf("%.0f %%", 100*float64(a)/float64(b))
		},
		// link builds a dashboard URL: link "devices" "q" "state = 'x'".
		"link": func(p string, kv ...string) string {
			q := url.Values{}
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i+1] != "" {
					q.Set(kv[i], kv[i+1])
				}
			}
			s := Prefix + p
			if len(q) > 0 {
				s += "?" + q.Encode()
			}
			return s
		},
		"join": strings.Join,
		"dict": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, errors.New("dict: odd number of arguments")
			}
			m := map[string]any{}
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, errors.New("dict: keys must be strings")
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
		"sparkline": sparkline,
		"barchart":  barChart,
		"linechart": lineChart,
	}
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	suffix := "ago"
	if d < 0 {
		d, suffix = -d, "from now"
	}
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min %s", int(d.Minutes()), suffix)
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %s", int(d.Hours()), suffix)
	}
	return fmt.Sprintf("%d days %s", int(d.Hours()/24), suffix)
}

// nextPage is the URL of the page after this one: the request's URL with
// after set to the cursor; "" when there is no next page.
func nextPage(r *http.Request, cursor string) string {
	if cursor == "" {
		return ""
	}
	q := r.URL.Query()
	q.Set("after", cursor)
	return r.URL.Path + "?" + q.Encode()
}
