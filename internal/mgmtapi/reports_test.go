package mgmtapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// reportRequestFor builds requests for the report routes (see requestFor).
func (e *env) reportRequestFor(rt Route, fx fixture) (req, bool) {
	switch rt.Method + " " + strings.TrimPrefix(rt.Pattern, Prefix) {
	case "GET /audit/export":
		return req{method: "GET", path: "/audit/export?format=csv"}, true
	case "GET /reports/compliance":
		return req{method: "GET", path: "/reports/compliance?release=" + fx.published.Version}, true
	}
	return req{}, false
}

func readCSV(t *testing.T, body []byte) [][]string {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("CSV does not parse: %v\n%s", err, body)
	}
	return recs
}

// TestAuditExport exports more entries than one store page holds, in both
// formats and with filters, and compares with the paged listing.
func TestAuditExport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	prankster := store.Actor{Kind: store.ActorUser, ID: "u-prank", Name: "=HYPERLINK(\"x\")"}
	// More entries than one store page, written in one transaction (an
	// append per entry would dominate the test's time); the export reads
	// them and does not verify the chain.
	const n = store.MaxPageLimit + 50
	var head int64
	if err := e.st.DB().QueryRowContext(ctx, `SELECT seq FROM audit_heads WHERE tenant_id = 'default'`).Scan(&head); err != nil {
		t.Fatal(err)
	}
	tx, err := e.st.WriteDB().BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		by := bootstrap
		if i%100 == 0 {
			by = prankster
		}
		seq := head + 1 + int64(i)
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log (tenant_id, seq, at, actor_kind, actor_id, actor_name, action, object_type, object_id, details, prev_hash, hash)
			VALUES ('default', ?, ?, ?, ?, ?, 'test.export', 'thing', ?, ?, ?, ?)`,
			seq, t0.Add(time.Duration(i)*time.Second).UnixMicro(), string(by.Kind), by.ID, by.Name, fmt.Sprintf("t%04d", i),
			fmt.Sprintf(`{"i":%d}`, i), fmt.Sprintf("h%d", seq-1), fmt.Sprintf("h%d", seq)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE audit_heads SET seq = ?, hash = ? WHERE tenant_id = 'default'`, head+n, fmt.Sprintf("h%d", head+n)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var want []store.AuditEntry
	for after := ""; ; {
		var page listBody[store.AuditEntry]
		e.must(200, req{token: e.viewer, method: "GET", path: "/audit?limit=1000&after=" + after}).decode(t, &page)
		want = append(want, page.Items...)
		if after = page.Next; after == "" {
			break
		}
	}
	if len(want) < n {
		t.Fatalf("listing has %d entries, want at least %d", len(want), n)
	}

	r := e.must(200, req{token: e.viewer, method: "GET", path: "/audit/export"})
	if ct := r.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="updraft-audit-20260301T120000Z.csv"` {
		t.Fatalf("Content-Disposition %q", cd)
	}
	recs := readCSV(t, r.body)
	if !slices.Equal(recs[0], auditCSVHeader) || len(recs) != len(want)+1 {
		t.Fatalf("CSV has %d records with header %v; want %d entries", len(recs), recs[0], len(want))
	}
	for i, w := range want {
		rec := recs[i+1]
		if rec[0] != fmt.Sprint(w.Seq) || rec[5] != w.Action || rec[10] != w.Hash || rec[1] != w.At.Format(time.RFC3339Nano) {
			t.Fatalf("CSV line %d = %v, want entry %+v", i+1, rec, w)
		}
		if w.Actor.ID == prankster.ID && rec[4] != `'=HYPERLINK("x")` {
			t.Fatalf("formula-looking actor name exported as %q", rec[4])
		}
		if w.Action == "test.export" && !json.Valid([]byte(rec[8])) {
			t.Fatalf("details cell %q is not JSON", rec[8])
		}
	}

	r = e.must(200, req{token: e.viewer, method: "GET", path: "/audit/export?format=json"})
	var all []store.AuditEntry
	r.decode(t, &all)
	if len(all) != len(want) || all[0].Seq != want[0].Seq || all[len(all)-1].Seq != want[len(want)-1].Seq {
		t.Fatalf("JSON export has %d entries, want %d", len(all), len(want))
	}
	if cd := r.header.Get("Content-Disposition"); !strings.HasSuffix(cd, `.json"`) {
		t.Fatalf("Content-Disposition %q", cd)
	}

	// Filters are the listing's.
	since := t0.Add(10 * time.Second).Format(time.RFC3339)
	until := t0.Add(20 * time.Second).Format(time.RFC3339)
	r = e.must(200, req{token: e.viewer, method: "GET", path: "/audit/export?format=json&action=test.export&since=" + since + "&until=" + until})
	r.decode(t, &all)
	if len(all) != 10 || all[0].ObjectID != "t0019" || all[9].ObjectID != "t0010" {
		t.Fatalf("filtered export: %d entries", len(all))
	}
	r = e.must(200, req{token: e.viewer, method: "GET", path: "/audit/export?format=json&actor=u-prank"})
	r.decode(t, &all)
	if len(all) != 11 {
		t.Fatalf("export by actor: %d entries, want 11", len(all))
	}
	r = e.must(200, req{token: e.viewer, method: "GET", path: "/audit/export?format=json&action=no.such"})
	if strings.TrimSpace(string(r.body)) != "[]" {
		t.Fatalf("empty export %q", r.body)
	}
	if r := e.must(200, req{token: e.viewer, method: "GET", path: "/audit/export?action=no.such"}); len(readCSV(t, r.body)) != 1 {
		t.Fatalf("empty CSV export %q", r.body)
	}

	for _, q := range []string{"format=xml", "since=yesterday", "since=" + until + "&until=" + since, "limit=5"} {
		if r := e.must(400, req{token: e.viewer, method: "GET", path: "/audit/export?" + q}); r.errorCode(t) != "bad_parameter" {
			t.Errorf("%s: code %s", q, r.errorCode(t))
		}
	}
}

// complianceEnv is a small fleet: two devices installed 1.0.0 by hand,
// one of them then 1.1.0 (a high-severity fix of CVE-2026-1001) through
// a campaign; one device reports a version on its own; 1.0.0 is marked
// affected by CVE-2026-0999.
type complianceEnv struct {
	*env
	dev              map[string]string // serial → id
	r100, r110       store.Release
	campaignID       string
	afterAll, before time.Time
}

func newComplianceEnv(t *testing.T) *complianceEnv {
	e := &complianceEnv{env: newEnv(t), dev: map[string]string{}}
	ctx := context.Background()
	create := func(version string, sev store.Severity, cves []string) store.Release {
		rel, err := e.st.CreateRelease(ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version, Severity: sev, CVEs: cves}, bootstrap, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		e.must(201, req{token: e.operator, method: "PUT", path: "/releases/" + rel.ID + "/artifacts?device_type=gw-200&hw_revs=B&type=raw-image&name=r.img", body: strings.NewReader("image " + version)})
		e.must(200, req{token: e.operator, method: "POST", path: "/releases/" + rel.ID + "/publish"}).decode(t, &rel)
		return rel
	}
	seq := map[string]int64{}
	install := func(serial, version, campaignID string) {
		id := e.dev[serial]
		body := map[string]any{"release": version}
		var as store.Assignment
		if campaignID == "" {
			var ar assignResult
			e.must(201, req{token: e.operator, method: "POST", path: "/devices/" + id + "/assignments", body: body}).decode(t, &ar)
			as = ar.Assignment
		} else {
			rel, err := e.st.ReleaseByVersion(ctx, store.DefaultTenant, version)
			if err != nil {
				t.Fatal(err)
			}
			if as, _, err = e.st.Assign(ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: id, ReleaseID: rel.ID, CampaignID: campaignID, Now: e.clock.Now()}, store.System); err != nil {
				t.Fatal(err)
			}
		}
		e.clock.Advance(time.Minute)
		seq[id]++
		out, err := e.st.RecordReports(ctx, []store.DeviceReports{{TenantID: store.DefaultTenant, DeviceID: id, Reports: []store.StatusReport{
			{AssignmentID: as.ID, Seq: seq[id], State: store.AssignSucceeded, Progress: 100, ReportedAt: e.clock.Now()},
		}}}, e.clock.Now())
		if err != nil || out[0][0] != store.ReportApplied {
			t.Fatalf("report success: %v %v", out, err)
		}
		e.clock.Advance(time.Minute)
	}
	for _, s := range []string{"A1", "A2", "A3"} {
		e.dev[s] = e.enroll(s, "gw-200", "B", true)
	}
	e.before = e.clock.Now().Add(-time.Second)
	e.r100 = create("1.0.0", store.SeverityLow, nil)
	install("A1", "1.0.0", "")
	install("A2", "1.0.0", "")
	if _, err := e.st.UpdateDeviceReport(ctx, store.DefaultTenant, e.dev["A3"], store.DeviceReport{Version: "0.9.0", Now: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	e.r110 = create("1.1.0", store.SeverityHigh, []string{"CVE-2026-1001"})
	c, err := e.st.CreateCampaign(ctx, store.Campaign{TenantID: store.DefaultTenant, Name: "autumn", Kind: store.CampaignKindRollout,
		ReleaseID: e.r110.ID, Spec: json.RawMessage(`{}`), ApprovedStep: -1, Seed: 1}, bootstrap, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	e.campaignID = c.ID
	approver := store.Actor{Kind: store.ActorUser, ID: "u-quinn", Name: "quinn"}
	if _, err := e.st.UpdateCampaign(ctx, store.DefaultTenant, c.ID, store.CampaignUpdate{By: approver, Now: e.clock.Now(), Action: "campaign.approve",
		Apply: func(c *store.Campaign) error { c.State = store.CampaignRunning; return nil }}); err != nil {
		t.Fatal(err)
	}
	install("A2", "1.1.0", c.ID)
	e.must(200, req{token: e.operator, method: "POST", path: "/releases/1.0.0/mark-affected", body: map[string]any{"cves": []string{"CVE-2026-0999"}}})
	e.afterAll = e.clock.Now()
	return e
}

func (e *complianceEnv) report(t *testing.T, query string) complianceReportBody {
	t.Helper()
	var body complianceReportBody
	e.must(200, req{token: e.viewer, method: "GET", path: "/reports/compliance?" + query}).decode(t, &body)
	return body
}

func (e *complianceEnv) summary(rows []store.DeviceVersion) string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Serial+"="+r.Version+"/"+string(r.Source))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func TestComplianceReport(t *testing.T) {
	t.Parallel()
	e := newComplianceEnv(t)

	now := e.report(t, "")
	if !now.At.Equal(e.afterAll) || now.ExposedOnly || !slices.Equal(now.Severities, []store.Severity{store.SeverityHigh, store.SeverityCritical}) {
		t.Fatalf("report header %+v", now)
	}
	if got := e.summary(now.Items); got != "A1=1.0.0/assignment A2=1.1.0/assignment A3=0.9.0/reported" {
		t.Fatalf("now: %s", got)
	}
	for _, r := range now.Items {
		switch r.Serial {
		case "A1":
			if len(r.Approvals) != 1 || r.Approvals[0].Action != "assignment.create" || exposureText(r.Exposures) != "affected 1.0.0 CVE-2026-0999; missing-fix 1.1.0 high CVE-2026-1001" {
				t.Fatalf("A1 %+v", r)
			}
		case "A2":
			if r.CampaignName != "autumn" || len(r.Approvals) != 2 || r.Approvals[1].Actor.Name != "quinn" || r.Exposed() {
				t.Fatalf("A2 %+v", r)
			}
		}
	}

	// Paging, by date, by release, by exposure.
	p1 := e.report(t, "limit=2")
	p2 := e.report(t, "limit=2&after="+p1.Next)
	if len(p1.Items) != 2 || len(p2.Items) != 1 || p2.Next != "" || e.summary(append(p1.Items, p2.Items...)) != e.summary(now.Items) {
		t.Fatalf("pages %d+%d", len(p1.Items), len(p2.Items))
	}
	day := e.report(t, "at=2026-02-28")
	if want := time.Date(2026, 2, 28, 23, 59, 59, 999999000, time.UTC); !day.At.Equal(want) || len(day.Items) != 0 {
		t.Fatalf("a day before the fleet existed: at %s, %d rows", day.At, len(day.Items))
	}
	if got := e.summary(e.report(t, "release=1.0.0").Items); got != "A1=1.0.0/assignment" {
		t.Fatalf("on 1.0.0 now: %s", got)
	}
	past := e.afterAll.Add(-30 * time.Minute).Format(time.RFC3339)
	if got := e.summary(e.report(t, "release="+e.r100.ID+"&at="+past).Items); got != "A1=1.0.0/assignment A2=1.0.0/assignment" {
		t.Fatalf("on 1.0.0 at %s: %s", past, got)
	}
	byCVE := e.report(t, "cve=cve-2026-1001")
	if !byCVE.ExposedOnly || byCVE.CVE != "CVE-2026-1001" || e.summary(byCVE.Items) != "A1=1.0.0/assignment A3=0.9.0/reported" {
		t.Fatalf("exposed to CVE-2026-1001: %+v", byCVE)
	}
	if got := e.summary(e.report(t, "severity=critical").Items); got != "A1=1.0.0/assignment" {
		t.Fatalf("exposed with critical fixes only: %s", got)
	}
	if all := e.report(t, "severity=critical&exposed=false"); len(all.Items) != 3 || all.ExposedOnly {
		t.Fatalf("exposed=false lists every device: %d", len(all.Items))
	}

	// CSV: the whole report, the same rows as JSON.
	r := e.must(200, req{token: e.viewer, method: "GET", path: "/reports/compliance?format=csv"})
	if ct := r.header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename="updraft-compliance-`+fileStamp(e.afterAll)+`.csv"` {
		t.Fatalf("Content-Disposition %q", cd)
	}
	recs := readCSV(t, r.body)
	if !slices.Equal(recs[0], complianceCSVHeader) || len(recs) != len(now.Items)+1 {
		t.Fatalf("CSV: %v", recs)
	}
	for i, row := range now.Items {
		if !slices.Equal(recs[i+1], complianceCSVRecord(row)) {
			t.Fatalf("CSV line %d %v, JSON row %+v", i+1, recs[i+1], row)
		}
	}
	a1 := recs[1]
	if a1[1] == "A1" && (a1[13] != "true" || !strings.Contains(a1[12], "assignment.create by")) {
		t.Fatalf("A1 CSV line %v", a1)
	}

	for _, c := range []struct{ query, code string }{
		{"at=last+tuesday", "bad_parameter"},
		{"severity=urgent", "bad_parameter"},
		{"cve=CVE-1", "bad_parameter"},
		{"exposed=maybe", "bad_parameter"},
		{"format=pdf", "bad_parameter"},
		{"format=csv&limit=10", "bad_parameter"},
		{"after=%21%21", "bad_request"},
	} {
		r := e.do(req{token: e.viewer, method: "GET", path: "/reports/compliance?" + c.query})
		if r.status != 400 {
			t.Errorf("%s: status %d %s", c.query, r.status, r.body)
		}
	}
	if r := e.must(404, req{token: e.viewer, method: "GET", path: "/reports/compliance?release=9.9.9"}); r.errorCode(t) != "not_found" {
		t.Fatalf("unknown release: %s", r.body)
	}
}
