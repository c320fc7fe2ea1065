package web

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// The audit log page: a filter form over GET /audit, pages of entries, and
// CSV/JSON downloads of everything the filter matches through GET
// /audit/export. Filters live in the URL, so every state of the page can
// be linked to.

func (u *UI) auditRoutes() []route {
	return []route{
		{http.MethodGet, "audit", signedIn, u.auditPage},
		{http.MethodGet, "audit/export", signedIn, u.auditExport},
	}
}

const auditPageLimit = 50

// auditFilterFields are the filter form's fields: form name → API parameter.
var auditFilterFields = [][2]string{
	{"action", "action"}, {"object_type", "object_type"}, {"object_id", "object_id"},
	{"actor", "actor"}, {"since", "since"}, {"until", "until"},
}

type auditFilter struct {
	Action, ObjectType, ObjectID, Actor, Since, Until string
}

type auditView struct {
	Filter     auditFilter
	Items      []store.AuditEntry
	NextURL    string
	Filtered   bool
	ExportCSV  string
	ExportJSON string
	// FieldErrors are shown at the form's fields.
	FieldErrors map[string]string
}

// formTime reads a filter time: RFC 3339, a datetime-local value
// (YYYY-MM-DDTHH:MM, UTC) or a date (its start, UTC).
func formTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// auditQuery turns the page's query into the API's filter parameters,
// with an error per field that does not parse.
func auditQuery(in url.Values) (url.Values, auditFilter, map[string]string) {
	f := auditFilter{Action: in.Get("action"), ObjectType: in.Get("object_type"), ObjectID: in.Get("object_id"),
		Actor: in.Get("actor"), Since: in.Get("since"), Until: in.Get("until")}
	q := url.Values{}
	errs := map[string]string{}
	for _, kv := range auditFilterFields {
		v := in.Get(kv[0])
		if v == "" {
			continue
		}
		if kv[0] == "since" || kv[0] == "until" {
			t, ok := formTime(v)
			if !ok {
				errs[kv[0]] = "Give a date (2026-03-01) or a time (2026-03-01T12:00:00Z)."
				continue
			}
			v = t.Format(time.RFC3339Nano)
		}
		q.Set(kv[1], v)
	}
	return q, f, errs
}

func (u *UI) auditPage(w http.ResponseWriter, r *http.Request, s *Session) error {
	q, f, errs := auditQuery(r.URL.Query())
	v := auditView{Filter: f, Filtered: len(q) > 0, FieldErrors: errs}
	export := url.Values{}
	for k, vs := range r.URL.Query() {
		if k != "after" {
			export[k] = vs
		}
	}
	export.Set("format", "csv")
	v.ExportCSV = Prefix + "audit/export?" + export.Encode()
	export.Set("format", "json")
	v.ExportJSON = Prefix + "audit/export?" + export.Encode()
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusBadRequest
		return u.render(w, r, s, status, "audit.html", "Audit log", v)
	}
	q.Set("limit", strconv.Itoa(auditPageLimit))
	if after := r.URL.Query().Get("after"); after != "" {
		q.Set("after", after)
	}
	var out struct {
		Items []store.AuditEntry `json:"items"`
		Next  string             `json:"next"`
	}
	err := s.API().Do(r.Context(), http.MethodGet, "/audit", q, nil, &out)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		// since ≥ until, or a cursor from elsewhere: say so at the form.
		v.FieldErrors["form"] = ae.Message
		return u.render(w, r, s, http.StatusBadRequest, "audit.html", "Audit log", v)
	} else if err != nil {
		return err
	}
	v.Items, v.NextURL = out.Items, nextPage(r, out.Next)
	return u.render(w, r, s, status, "audit.html", "Audit log", v)
}

func (u *UI) auditExport(w http.ResponseWriter, r *http.Request, s *Session) error {
	q, _, errs := auditQuery(r.URL.Query())
	if len(errs) > 0 {
		return &APIError{Status: http.StatusBadRequest, Code: "bad_parameter", Message: "The filter's time does not parse: give a date or an RFC 3339 time."}
	}
	format := r.URL.Query().Get("format")
	if format != "csv" && format != "json" {
		return &APIError{Status: http.StatusBadRequest, Code: "bad_parameter", Message: "Choose CSV or JSON."}
	}
	q.Set("format", format)
	return u.download(w, r, s, "/audit/export", q)
}

// download streams a management API file answer (CSV, JSON export) to
// the browser as it is produced, with the API's Content-Type and
// Content-Disposition. An error answer is shown as an error page instead.
func (u *UI) download(w http.ResponseWriter, r *http.Request, s *Session, path string, q url.Values) error {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, inProcessBase+"/api/v1"+path+"?"+q.Encode(), http.NoBody)
	if err != nil {
		return err
	}
	req.RemoteAddr = "127.0.0.1:0"
	req.RequestURI = req.URL.RequestURI()
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("User-Agent", "updraft-dashboard")
	dw := &downloadWriter{w: w}
	u.cfg.API.ServeHTTP(dw, req)
	if dw.failed {
		return decodeAPIError(dw.status, dw.errBody.Bytes())
	}
	return nil
}

// downloadWriter passes a successful answer through to the browser and
// keeps an error answer back, so that it can become an error page.
type downloadWriter struct {
	w       http.ResponseWriter
	header  http.Header
	status  int
	failed  bool
	errBody bytes.Buffer
}

func (d *downloadWriter) Header() http.Header {
	if d.header == nil {
		d.header = http.Header{}
	}
	return d.header
}

func (d *downloadWriter) WriteHeader(code int) {
	if d.status != 0 {
		return
	}
	d.status = code
	if code < 200 || code > 299 {
		d.failed = true
		return
	}
	h := d.w.Header()
	for _, k := range []string{"Content-Type", "Content-Disposition", "Content-Length"} {
		if v := d.header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	d.w.WriteHeader(code)
}

func (d *downloadWriter) Write(b []byte) (int, error) {
	if d.status == 0 {
		d.WriteHeader(http.StatusOK)
	}
	if d.failed {
		if d.errBody.Len() < 64<<10 {
			d.errBody.Write(b)
		}
		return len(b), nil
	}
	return d.w.Write(b)
}

// Flush passes flushes through, so a long download leaves as it is made.
func (d *downloadWriter) Flush() {
	if f, ok := d.w.(http.Flusher); ok && !d.failed {
		f.Flush()
	}
}
