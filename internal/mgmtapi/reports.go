package mgmtapi

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/store"
)

// Reports: the audit log export and the compliance report
// (docs/compliance.md). Both stream their CSV (and the export its JSON)
// page by page from the store, so memory stays bounded whatever the size
// of the log or the fleet. Once the first byte is sent an error can no
// longer become a status code: the handler aborts the connection instead,
// so that a client sees a broken transfer rather than a short file.

func (a *API) reportRoutes() []Route {
	p := func(s string) string { return Prefix + s }
	return []Route{
		{"GET", p("/audit/export"), ActionRead, append([]string{"format"}, auditFilterParams...), a.exportAudit},
		{"GET", p("/reports/compliance"), ActionRead, []string{"at", "release", "severity", "cve", "exposed", "format", "limit", "after"}, a.complianceReport},
	}
}

// cveID is the form of a CVE id (as the store checks it).
var cveID = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,19}$`)

var auditFilterParams = []string{"action", "object_type", "object_id", "actor", "since", "until"}

// auditQuery reads the audit filters shared by the list and the export.
func auditQuery(r *http.Request) (store.AuditQuery, error) {
	q := r.URL.Query()
	since, err := timeParam(r, "since")
	if err != nil {
		return store.AuditQuery{}, err
	}
	until, err := timeParam(r, "until")
	if err != nil {
		return store.AuditQuery{}, err
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return store.AuditQuery{}, apierror.New(http.StatusBadRequest, "bad_parameter", "since must be before until")
	}
	return store.AuditQuery{
		Action:     q.Get("action"),
		ObjectType: q.Get("object_type"),
		ObjectID:   q.Get("object_id"),
		ActorID:    q.Get("actor"),
		Since:      since,
		Until:      until,
	}, nil
}

// exportFormat reads format: csv or json, defaulting to def.
func exportFormat(r *http.Request, def string) (string, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "":
		return def, nil
	case "csv", "json":
		return f, nil
	default:
		return "", apierror.New(http.StatusBadRequest, "bad_parameter", "format must be csv or json, not %q", f)
	}
}

// startDownload sets the headers of a streamed file download.
func startDownload(w http.ResponseWriter, format, name string) {
	h := w.Header()
	if format == "csv" {
		h.Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s.%s"`, name, format))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
}

// abortStream ends a response whose body has started: the server closes
// the connection without finishing the body.
func (a *API) abortStream(r *http.Request, what string, err error) {
	a.log.ErrorContext(r.Context(), "stream aborted", "what", what, "err", err)
	panic(http.ErrAbortHandler)
}

// cell keeps a text value from being read as a formula by a spreadsheet
// that opens the CSV: a leading =, +, -, @, tab or carriage return gets a
// quote in front. Values written by the server itself (ids, hashes,
// times, numbers) never start with one.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func fileStamp(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

var auditCSVHeader = []string{"seq", "at", "actor_kind", "actor_id", "actor_name", "action", "object_type", "object_id", "details", "prev_hash", "hash"}

// exportAudit streams every audit entry matching the filters, newest
// first, as CSV (the default) or as one JSON array. It reads the log in
// pages of store.MaxPageLimit; entries appended while it runs are not
// included, since the walk goes from the newest entry at the start down.
func (a *API) exportAudit(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := auditQuery(r)
	if err != nil {
		return err
	}
	format, err := exportFormat(r, "csv")
	if err != nil {
		return err
	}
	q.Page = store.Page{Limit: store.MaxPageLimit}
	// The first page is read before anything is written, so that a bad
	// filter or a database failure is still an ordinary error response.
	entries, next, err := a.store.ListAudit(r.Context(), c.tenant(), q)
	if err != nil {
		return fmt.Errorf("export audit: %w", err)
	}
	startDownload(w, format, "updraft-audit-"+fileStamp(a.now()))
	fetch := func(after string) ([]store.AuditEntry, string, error) {
		q.Page.After = after
		return a.store.ListAudit(r.Context(), c.tenant(), q)
	}
	if format == "csv" {
		cw := csv.NewWriter(w)
		_ = cw.Write(auditCSVHeader)
		err = streamPages(entries, next, fetch, func(e store.AuditEntry) error {
			details := ""
			if len(e.Details) > 0 {
				details = string(e.Details)
			}
			return cw.Write([]string{
				strconv.FormatInt(e.Seq, 10), e.At.UTC().Format(time.RFC3339Nano), string(e.Actor.Kind), cell(e.Actor.ID), cell(e.Actor.Name),
				cell(e.Action), cell(e.ObjectType), cell(e.ObjectID), cell(details), e.PrevHash, e.Hash,
			})
		}, func() error { cw.Flush(); return cw.Error() })
	} else {
		enc := json.NewEncoder(w)
		sep := "["
		err = streamPages(entries, next, fetch, func(e store.AuditEntry) error {
			if _, err := io.WriteString(w, sep); err != nil {
				return err
			}
			sep = ","
			return enc.Encode(e)
		}, func() error { return nil })
		if err == nil && sep == "[" {
			_, err = io.WriteString(w, "[")
		}
		if err == nil {
			_, err = io.WriteString(w, "]\n")
		}
	}
	if err != nil {
		a.abortStream(r, "audit export", err)
	}
	return nil
}

// streamPages writes the items of a first page and of every page after
// it, fetching by cursor, and calls flush after each page, so that a large
// export leaves the server page by page.
func streamPages[T any](items []T, next string, fetch func(after string) ([]T, string, error), write func(T) error, flush func() error) error {
	for {
		for _, it := range items {
			if err := write(it); err != nil {
				return err
			}
		}
		if err := flush(); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		var err error
		if items, next, err = fetch(next); err != nil {
			return err
		}
	}
}

// complianceParams is a compliance request, parsed.
type complianceParams struct {
	query       store.ComplianceQuery
	release     *store.Release
	exposedOnly bool
	format      string
}

// parseAt reads at: an RFC 3339 time, or a date (YYYY-MM-DD, UTC), which
// means the end of that day; empty means now.
func parseAt(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return now, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		return d.AddDate(0, 0, 1).Add(-time.Microsecond), nil
	}
	return time.Time{}, apierror.New(http.StatusBadRequest, "bad_parameter", "at must be an RFC 3339 time such as 2026-03-01T12:00:00Z or a date such as 2026-03-01 (the end of that day, UTC)")
}

func (a *API) parseCompliance(r *http.Request, c *caller) (complianceParams, error) {
	q := r.URL.Query()
	var p complianceParams
	var err error
	if p.query.At, err = parseAt(q.Get("at"), a.now()); err != nil {
		return p, err
	}
	if ref := q.Get("release"); ref != "" {
		rel, err := a.findRelease(r, c, ref)
		if err != nil {
			return p, err
		}
		p.release = &rel
		p.query.ReleaseID = rel.ID
	}
	if s := q.Get("severity"); s != "" {
		for _, v := range strings.Split(s, ",") {
			sev := store.Severity(strings.ToLower(strings.TrimSpace(v)))
			switch sev {
			case store.SeverityLow, store.SeverityMedium, store.SeverityHigh, store.SeverityCritical:
			default:
				return p, apierror.New(http.StatusBadRequest, "bad_parameter", "severity %q is not one of low, medium, high, critical", v)
			}
			p.query.Severities = append(p.query.Severities, sev)
		}
	}
	if s := q.Get("cve"); s != "" {
		p.query.CVE = strings.ToUpper(strings.TrimSpace(s))
		if !cveID.MatchString(p.query.CVE) {
			return p, apierror.New(http.StatusBadRequest, "bad_parameter", "cve %q is not a CVE id such as CVE-2026-1234", s)
		}
	}
	// Asking about a severity or a CVE asks which devices are exposed;
	// exposed=false still lists every device with its exposures.
	p.exposedOnly = len(p.query.Severities) > 0 || p.query.CVE != ""
	switch s := q.Get("exposed"); s {
	case "":
	case "true":
		p.exposedOnly = true
	case "false":
		p.exposedOnly = false
	default:
		return p, apierror.New(http.StatusBadRequest, "bad_parameter", "exposed must be true or false")
	}
	if p.format, err = exportFormat(r, "json"); err != nil {
		return p, err
	}
	if p.format == "csv" && (q.Has("limit") || q.Has("after")) {
		return p, apierror.New(http.StatusBadRequest, "bad_parameter", "format=csv streams the whole report; limit and after apply to JSON pages")
	}
	if p.query.Page, err = page(r); err != nil {
		return p, err
	}
	return p, nil
}

// complianceReportBody is one JSON page of the compliance report.
type complianceReportBody struct {
	At          time.Time             `json:"at"`
	Release     string                `json:"release,omitempty"`
	Severities  []store.Severity      `json:"severities"`
	CVE         string                `json:"cve,omitempty"`
	ExposedOnly bool                  `json:"exposed_only"`
	Items       []store.DeviceVersion `json:"items"`
	Next        string                `json:"next,omitempty"`
}

func (p complianceParams) severities() []store.Severity {
	if len(p.query.Severities) == 0 {
		return []store.Severity{store.SeverityHigh, store.SeverityCritical}
	}
	return p.query.Severities
}

func (a *API) complianceReport(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := a.parseCompliance(r, c)
	if err != nil {
		return err
	}
	list := a.store.DeviceVersionsAt
	if p.exposedOnly {
		list = a.store.ExposedDevicesAt
	}
	if p.format == "csv" {
		p.query.Page = store.Page{Limit: store.MaxPageLimit}
	}
	rows, next, err := list(r.Context(), c.tenant(), p.query)
	if err != nil {
		return fmt.Errorf("compliance report: %w", err)
	}
	if p.format == "json" {
		body := complianceReportBody{At: p.query.At, Severities: p.severities(), CVE: p.query.CVE, ExposedOnly: p.exposedOnly, Items: rows, Next: next}
		if p.release != nil {
			body.Release = p.release.Version
		}
		return ok(w, body)
	}
	startDownload(w, "csv", "updraft-compliance-"+fileStamp(p.query.At))
	cw := csv.NewWriter(w)
	_ = cw.Write(complianceCSVHeader)
	err = streamPages(rows, next, func(after string) ([]store.DeviceVersion, string, error) {
		p.query.Page.After = after
		return list(r.Context(), c.tenant(), p.query)
	}, func(d store.DeviceVersion) error {
		return cw.Write(complianceCSVRecord(d))
	}, func() error { cw.Flush(); return cw.Error() })
	if err != nil {
		a.abortStream(r, "compliance report", err)
	}
	return nil
}

// complianceCSVHeader names the columns of the compliance report's CSV.
var complianceCSVHeader = []string{"device_id", "serial", "device_type", "hw_rev", "state", "version", "since", "source",
	"release_id", "assignment_id", "campaign_id", "campaign_name", "approvals", "exposed", "exposures"}

// complianceCSVRecord is one device's CSV line. Approvals are
// "time action by kind:name" joined with "; ", exposures
// "reason release [severity] CVE,CVE" joined with "; ".
func complianceCSVRecord(d store.DeviceVersion) []string {
	since := ""
	if d.Since != nil {
		since = d.Since.UTC().Format(time.RFC3339Nano)
	}
	var aps []string
	for _, ap := range d.Approvals {
		who := ap.Actor.Name
		if who == "" {
			who = ap.Actor.ID
		}
		aps = append(aps, fmt.Sprintf("%s %s by %s:%s", ap.At.UTC().Format(time.RFC3339), ap.Action, ap.Actor.Kind, who))
	}
	return []string{d.DeviceID, cell(d.Serial), cell(d.DeviceType), cell(d.HWRev), string(d.State), d.Version, since, string(d.Source),
		d.ReleaseID, d.AssignmentID, d.CampaignID, cell(d.CampaignName), cell(strings.Join(aps, "; ")),
		strconv.FormatBool(d.Exposed()), exposureText(d.Exposures)}
}

// exposureText renders exposures for one CSV cell or table column.
func exposureText(xs []store.Exposure) string {
	var parts []string
	for _, x := range xs {
		s := x.Reason + " " + x.Release
		if x.Severity != "" {
			s += " " + string(x.Severity)
		}
		if len(x.CVEs) > 0 {
			s += " " + strings.Join(x.CVEs, ",")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
