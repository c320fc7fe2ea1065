package web_test

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/web/webtest"
)

// reportFleet: three gw-200 rev B devices; GW-1 installed 1.0.0 by hand,
// GW-2 reports 0.9.0 on its own, GW-3 never reports. 1.1.0 (high, like
// every makeRelease release) is published later, so GW-1 and GW-2 miss it.
func reportFleet(t *testing.T, e *webtest.Env) map[string]string {
	t.Helper()
	ctx := context.Background()
	ids := map[string]string{}
	for _, s := range []string{"GW-1", "GW-2", "GW-3"} {
		ids[s] = enroll(t, e, s, "gw-200", "B")
	}
	makeRelease(t, e, "1.0.0", "gw-200", []string{"B"}, false)
	var as struct {
		Assignment store.Assignment `json:"assignment"`
	}
	e.API(t, 201, "POST", "/devices/"+ids["GW-1"]+"/assignments", map[string]any{"release": "1.0.0"}, &as)
	e.Clock.Advance(time.Minute)
	out, err := e.Store.RecordReports(ctx, []store.DeviceReports{{TenantID: store.DefaultTenant, DeviceID: ids["GW-1"], Reports: []store.StatusReport{
		{AssignmentID: as.Assignment.ID, Seq: 1, State: store.AssignSucceeded, Progress: 100, ReportedAt: e.Clock.Now()},
	}}}, e.Clock.Now())
	if err != nil || out[0][0] != store.ReportApplied {
		t.Fatalf("report success: %v %v", out, err)
	}
	if _, err := e.Store.UpdateDeviceReport(ctx, store.DefaultTenant, ids["GW-2"], store.DeviceReport{Version: "0.9.0", Now: e.Clock.Now()}); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(time.Hour)
	makeRelease(t, e, "1.1.0", "gw-200", []string{"B"}, false)
	e.Clock.Advance(time.Minute)
	return ids
}

func parseCSV(t *testing.T, body string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, body)
	}
	return recs
}

// hrefOf finds the href of the element with the id, unescaped.
func hrefOf(t *testing.T, body, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + id + `" href="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no link %s", id)
	}
	return html.UnescapeString(m[1])
}

func TestAuditPage(t *testing.T) {
	t.Parallel()
	e := start(t)
	b := signIn(t, e, "vera", store.RoleViewer)
	r := b.Get("/ui/audit?action=no.such")
	r.MustContain(t, "No entry matches this filter.", `href="/ui/audit">Clear`)

	reportFleet(t, e)
	for i := range 55 {
		if err := e.Store.AppendAudit(context.Background(), store.DefaultTenant, store.Actor{Kind: store.ActorUser, ID: "u-x", Name: "xavier"},
			"test.note", "note", fmt.Sprintf("n%02d", i), map[string]int{"i": i}, e.Clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	r = b.Get("/ui/audit")
	r.MustContain(t, `id="audit"`, "test.note", "release.publish", `id="audit-export-csv"`)
	if n := strings.Count(r.Body, `<tr id="audit-`); n != 50 {
		t.Fatalf("first page shows %d entries, want 50", n)
	}
	m := regexp.MustCompile(`rel="next" href="([^"]+)"`).FindStringSubmatch(r.Body)
	if m == nil {
		t.Fatal("no next page")
	}
	r = b.Get(html.UnescapeString(m[1]))
	if n := strings.Count(r.Body, `<tr id="audit-`); n == 0 || strings.Contains(r.Body, "note n54") {
		t.Fatalf("second page: %d entries", n)
	}

	r = b.Get("/ui/audit?action=release.publish&since=2026-06-01")
	if n := strings.Count(r.Body, `<tr id="audit-`); n != 2 || strings.Contains(r.Body, "test.note") {
		t.Fatalf("filtered page shows %d entries", n)
	}
	csvURL := hrefOf(t, r.Body, "audit-export-csv")
	if !strings.Contains(csvURL, "action=release.publish") || !strings.Contains(csvURL, "since=2026-06-01") {
		t.Fatalf("export link %q does not keep the filter", csvURL)
	}
	d := b.Get(csvURL)
	if d.Status != 200 || d.Header.Get("Content-Type") != "text/csv; charset=utf-8" || !strings.HasPrefix(d.Header.Get("Content-Disposition"), "attachment; filename=") {
		t.Fatalf("CSV export: %d %v", d.Status, d.Header)
	}
	if recs := parseCSV(t, d.Body); len(recs) != 3 || recs[1][5] != "release.publish" {
		t.Fatalf("CSV export of two entries: %v", recs)
	}
	d = b.Get(hrefOf(t, r.Body, "audit-export-json"))
	var entries []store.AuditEntry
	if err := json.Unmarshal([]byte(d.Body), &entries); err != nil || len(entries) != 2 {
		t.Fatalf("JSON export: %v %s", err, d.Body)
	}

	r = b.Get("/ui/audit?since=last+week")
	if r.Status != http.StatusBadRequest {
		t.Fatalf("bad since: %d", r.Status)
	}
	r.MustContain(t, `id="since-error"`, `aria-invalid="true"`, `value="last week"`)
	r = b.Get("/ui/audit?since=2026-07-01&until=2026-06-01")
	if r.Status != http.StatusBadRequest {
		t.Fatalf("since after until: %d", r.Status)
	}
	r.MustContain(t, `id="audit-error"`, "since must be before until")
	if r := b.Get("/ui/audit/export?format=xml"); r.Status != http.StatusBadRequest {
		t.Fatalf("export as xml: %d", r.Status)
	}

	anon := e.Browser(t)
	if r := anon.Get("/ui/audit/export?format=csv"); r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Location, "/ui/login") {
		t.Fatalf("anonymous export: %d %s", r.Status, r.Location)
	}
}

func TestComplianceReportPages(t *testing.T) {
	t.Parallel()
	e := start(t)
	b := signIn(t, e, "vera", store.RoleViewer)
	r := b.Get("/ui/reports")
	r.MustContain(t, "No device to report on.", `id="report-form"`)

	ids := reportFleet(t, e)
	r = b.Get("/ui/reports")
	r.MustContain(t, `id="compliance"`, `id="device-`+ids["GW-1"]+`" class="exposed"`, "needs 1.1.0 (high)", "assignment.create by",
		"GW-2", "0.9.0", "reported", "GW-3", "unknown", `id="report-print"`, `id="report-csv"`, `id="report-json"`)
	if strings.Contains(r.Body, `id="device-`+ids["GW-3"]+`" class="exposed"`) {
		t.Fatal("a device of unknown version is shown exposed")
	}

	r = b.Get("/ui/reports?severity=high&cve=CVE-2026-0101")
	r.MustContain(t, "exposed devices only", "GW-1", "GW-2", `value="high" checked`)
	if strings.Contains(r.Body, `id="device-`+ids["GW-3"]) {
		t.Fatal("the exposed-only report lists GW-3")
	}
	r = b.Get("/ui/reports?release=1.0.0")
	if n := strings.Count(r.Body, `<tr id="device-`); n != 1 {
		t.Fatalf("on 1.0.0: %d rows", n)
	}
	r = b.Get("/ui/reports?at=2020-01-01")
	r.MustContain(t, "No device to report on.")
	r = b.Get("/ui/reports?cve=bogus")
	if r.Status != http.StatusBadRequest {
		t.Fatalf("bad CVE: %d", r.Status)
	}
	r.MustContain(t, `id="report-error"`, "is not a CVE id", `aria-invalid="true"`)
	if r := b.Get("/ui/reports?release=9.9.9"); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "not found") {
		t.Fatalf("unknown release: %d", r.Status)
	}

	r = b.Get("/ui/reports")
	p := b.Get(hrefOf(t, r.Body, "report-print"))
	p.MustContain(t, `id="report-print-page"`, `id="report-summary"`, "<strong>3</strong> devices, <strong>2</strong> exposed",
		`id="report-versions"`, "unknown", "Generated", "vera")
	d := b.Get(hrefOf(t, r.Body, "report-csv"))
	if d.Status != 200 || !strings.Contains(d.Header.Get("Content-Disposition"), ".csv") {
		t.Fatalf("CSV: %d %v", d.Status, d.Header)
	}
	if recs := parseCSV(t, d.Body); len(recs) != 4 || recs[0][0] != "device_id" {
		t.Fatalf("CSV rows: %v", recs)
	}
	d = b.Get(hrefOf(t, r.Body, "report-json"))
	var rep struct {
		At    time.Time             `json:"at"`
		Items []store.DeviceVersion `json:"items"`
	}
	if err := json.Unmarshal([]byte(d.Body), &rep); err != nil || len(rep.Items) != 3 || !rep.At.Equal(e.Clock.Now()) {
		t.Fatalf("JSON: %v %s", err, d.Body)
	}
	if !strings.Contains(d.Header.Get("Content-Disposition"), ".json") {
		t.Fatalf("JSON Content-Disposition %q", d.Header.Get("Content-Disposition"))
	}
	if r := b.Get("/ui/reports/compliance/export?format=csv&cve=bogus"); r.Status != http.StatusBadRequest || !strings.Contains(r.Body, "CVE") {
		t.Fatalf("CSV export of a bad form: %d", r.Status)
	}
	if r := b.Get("/ui/reports/compliance/export?format=json&at=nonsense"); r.Status != http.StatusBadRequest {
		t.Fatalf("JSON export of a bad form: %d", r.Status)
	}
}
