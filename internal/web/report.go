package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/store"
)

// The compliance report pages (docs/compliance.md): a form and one page of
// rows over GET /reports/compliance, a printable page with the whole
// report and its summary, and CSV and JSON downloads. Every state is in
// the URL.

func (u *UI) reportRoutes() []route {
	return []route{
		{http.MethodGet, "reports", signedIn, u.reportPage},
		{http.MethodGet, "reports/compliance/print", signedIn, u.reportPrint},
		{http.MethodGet, "reports/compliance/export", signedIn, u.reportExport},
	}
}

const (
	reportPageLimit = 100
	// reportPrintMax bounds the printable page; larger reports belong in
	// the CSV.
	reportPrintMax = 5000
)

var reportSeverities = []string{"low", "medium", "high", "critical"}

type reportForm struct {
	At, Release, CVE, Exposed string
	Severity                  map[string]bool
}

// complianceReport is one page of GET /reports/compliance.
type complianceReport struct {
	At          time.Time             `json:"at"`
	Release     string                `json:"release,omitempty"`
	Severities  []store.Severity      `json:"severities"`
	CVE         string                `json:"cve,omitempty"`
	ExposedOnly bool                  `json:"exposed_only"`
	Items       []store.DeviceVersion `json:"items"`
	Next        string                `json:"next,omitempty"`
}

type versionCount struct {
	Version string
	N       int
}

type reportView struct {
	Form       reportForm
	Severities []string
	Report     *complianceReport
	NextURL    string
	PrintURL   string
	CSVURL     string
	JSONURL    string
	// Error is the API's refusal of the form, shown above it; Field names
	// the field it is about ("at", "release", "severity", "cve").
	Error, Field string
	// Print page only.
	ByVersion []versionCount
	Exposed   int
	Total     int
	Truncated bool
}

// reportQuery reads the form from the page's query and builds the API's.
func reportQuery(in url.Values) (url.Values, reportForm) {
	f := reportForm{At: strings.TrimSpace(in.Get("at")), Release: strings.TrimSpace(in.Get("release")),
		CVE: strings.TrimSpace(in.Get("cve")), Exposed: in.Get("exposed"), Severity: map[string]bool{}}
	q := url.Values{}
	if f.At != "" {
		at := f.At
		// A datetime-local value has no zone: it is read as UTC.
		if t, err := time.Parse("2006-01-02T15:04", at); err == nil {
			at = t.Format(time.RFC3339)
		}
		q.Set("at", at)
	}
	if f.Release != "" {
		q.Set("release", f.Release)
	}
	var sev []string
	for _, v := range in["severity"] {
		for _, one := range strings.Split(v, ",") {
			if one = strings.TrimSpace(one); one != "" && !f.Severity[one] {
				f.Severity[one] = true
				sev = append(sev, one)
			}
		}
	}
	if len(sev) > 0 {
		q.Set("severity", strings.Join(sev, ","))
	}
	if f.CVE != "" {
		q.Set("cve", f.CVE)
	}
	if f.Exposed == "true" || f.Exposed == "false" {
		q.Set("exposed", f.Exposed)
	}
	return q, f
}

// formError shows an API refusal of the form's values at the form.
func formError(err error, v *reportView) bool {
	var ae *APIError
	if !errors.As(err, &ae) || (ae.Status != http.StatusBadRequest && ae.Status != http.StatusNotFound) {
		return false
	}
	v.Error = ae.Message
	msg := strings.ToLower(ae.Message)
	for _, f := range []string{"at", "release", "severity", "cve", "exposed"} {
		if strings.HasPrefix(msg, f+" ") {
			v.Field = f
			break
		}
	}
	return true
}

func (u *UI) newReportView(r *http.Request) (reportView, url.Values) {
	q, f := reportQuery(r.URL.Query())
	v := reportView{Form: f, Severities: reportSeverities}
	enc := q.Encode()
	if enc != "" {
		enc = "&" + enc
	}
	v.PrintURL = Prefix + "reports/compliance/print?" + strings.TrimPrefix(enc, "&")
	v.CSVURL = Prefix + "reports/compliance/export?format=csv" + enc
	v.JSONURL = Prefix + "reports/compliance/export?format=json" + enc
	return v, q
}

func (u *UI) reportPage(w http.ResponseWriter, r *http.Request, s *Session) error {
	v, q := u.newReportView(r)
	q.Set("limit", strconv.Itoa(reportPageLimit))
	if after := r.URL.Query().Get("after"); after != "" {
		q.Set("after", after)
	}
	var rep complianceReport
	if err := s.API().Do(r.Context(), http.MethodGet, "/reports/compliance", q, nil, &rep); err != nil {
		if formError(err, &v) {
			return u.render(w, r, s, http.StatusBadRequest, "report.html", "Compliance report", v)
		}
		return err
	}
	v.Report, v.NextURL = &rep, nextPage(r, rep.Next)
	return u.render(w, r, s, http.StatusOK, "report.html", "Compliance report", v)
}

// reportPages calls fn with each page of the report, at most max rows in
// all (0: no bound); it reports whether rows were left out.
func reportPages(r *http.Request, s *Session, q url.Values, max int, fn func(complianceReport) error) (truncated bool, err error) {
	q.Set("limit", strconv.Itoa(store.MaxPageLimit))
	seen := 0
	for {
		var rep complianceReport
		if err := s.API().Do(r.Context(), http.MethodGet, "/reports/compliance", q, nil, &rep); err != nil {
			return false, err
		}
		if max > 0 && seen+len(rep.Items) > max {
			rep.Items = rep.Items[:max-seen]
			return true, fn(rep)
		}
		seen += len(rep.Items)
		if err := fn(rep); err != nil {
			return false, err
		}
		if rep.Next == "" {
			return false, nil
		}
		if rep.Next == q.Get("after") {
			return false, fmt.Errorf("compliance report: the same page cursor twice")
		}
		q.Set("after", rep.Next)
	}
}

func (u *UI) reportPrint(w http.ResponseWriter, r *http.Request, s *Session) error {
	v, q := u.newReportView(r)
	var all complianceReport
	byVersion := map[string]int{}
	truncated, err := reportPages(r, s, q, reportPrintMax, func(p complianceReport) error {
		items := all.Items
		all = p
		all.Items = append(items, p.Items...)
		for _, d := range p.Items {
			byVersion[d.Version]++
			if d.Exposed() {
				v.Exposed++
			}
		}
		return nil
	})
	if err != nil {
		if formError(err, &v) {
			return u.render(w, r, s, http.StatusBadRequest, "report.html", "Compliance report", v)
		}
		return err
	}
	if all.Items == nil {
		all.Items = []store.DeviceVersion{}
	}
	all.Next = ""
	v.Report, v.Truncated, v.Total = &all, truncated, len(all.Items)
	for ver, n := range byVersion {
		v.ByVersion = append(v.ByVersion, versionCount{Version: ver, N: n})
	}
	slices.SortFunc(v.ByVersion, func(a, b versionCount) int { return strings.Compare(a.Version, b.Version) })
	return u.render(w, r, s, http.StatusOK, "report_print.html", "Compliance report "+fmtTime(all.At), v)
}

func (u *UI) reportExport(w http.ResponseWriter, r *http.Request, s *Session) error {
	_, q := u.newReportView(r)
	switch r.URL.Query().Get("format") {
	case "csv":
		q.Set("format", "csv")
		return u.download(w, r, s, "/reports/compliance", q)
	case "json":
	default:
		return &APIError{Status: http.StatusBadRequest, Code: "bad_parameter", Message: "Choose CSV or JSON."}
	}
	// JSON: every page as one document, written as the pages arrive. The
	// first page is read before anything is sent, so a refused form is
	// still an error page.
	out := client.NewPagedJSON(w)
	_, err := reportPages(r, s, q, 0, func(p complianceReport) error {
		if !out.Started() {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Disposition", `attachment; filename="updraft-compliance-`+p.At.UTC().Format("20060102T150405Z")+`.json"`)
			w.WriteHeader(http.StatusOK)
			head := p
			head.Items, head.Next = nil, ""
			if err := out.Head(head); err != nil {
				return err
			}
		}
		for _, it := range p.Items {
			if err := out.Item(it); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if out.Started() {
			// Too late for an error page: break the transfer.
			u.log.Error("compliance export aborted", "err", err)
			panic(http.ErrAbortHandler)
		}
		return err
	}
	return out.Close()
}
