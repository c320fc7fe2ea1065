package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// complianceFleet is the history the compliance tests read:
//
//	T0      1.0.0 (medium, gw-200 B and C) published; all devices enrolled
//	+30m    d3 reports 0.9.0 by itself (no release of it exists)
//	+1h     d1, d2, d5, d6, d7 assigned 1.0.0 by hand; succeeded at +2h
//	+2h30m  d6 decommissioned
//	+3h     1.1.0 (high, fixes CVE-2026-1001, gw-200 B) published;
//	        campaign "spring" for 1.1.0 started by admin
//	+4h     campaign approved by u-lead
//	+5h     d2 assigned 1.1.0 by the campaign; succeeded at +6h
//	+7h     1.1.0 marked affected by CVE-2026-0555
//	+8h     d5 and d7 report 1.0.5 by themselves (flashed outside Updraft)
//	+9h     d7 reports 1.0.0 again
//	+9h30m  1.1.0's marking cleared
//	+10h    1.2.0 (critical, fixes CVE-2026-2002, gw-200 C only) published;
//	        1.0.0 marked affected by CVE-2026-0999
//
// d4 (rev C) never reports.
type complianceFleet struct {
	e                  *releaseEnv
	d                  map[string]store.Device // d1…d7 by name
	r100, r110, r120   store.Release
	spring             store.Campaign
	pendingID          string
	assignD1, assignD2 string
}

var lead = store.Actor{Kind: store.ActorUser, ID: "u-lead", Name: "lead"}

// releaseAt creates and publishes a release with a raw image at the time given.
func (e *releaseEnv) releaseAt(version string, sev store.Severity, cves []string, at time.Time, deviceType string, revs ...string) store.Release {
	e.t.Helper()
	r, err := e.s.CreateRelease(e.ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version, Severity: sev, CVEs: cves}, Admin, at)
	if err != nil {
		e.t.Fatalf("create release %s: %v", version, err)
	}
	e.addArtifact(rawImage(r.ID, deviceType, revs...))
	if r, err = e.s.PublishRelease(e.ctx, store.DefaultTenant, r.ID, Admin, at); err != nil {
		e.t.Fatalf("publish %s: %v", version, err)
	}
	return r
}

// installed assigns a release and reports it succeeded.
func (e *releaseEnv) installed(deviceID, releaseID, campaignID string, seq int64, assignedAt, doneAt time.Time) store.Assignment {
	e.t.Helper()
	a, _, err := e.s.Assign(e.ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: deviceID, ReleaseID: releaseID, CampaignID: campaignID, Now: assignedAt}, Admin)
	if err != nil {
		e.t.Fatalf("assign: %v", err)
	}
	if got := e.report(deviceID, doneAt, rep(a.ID, seq, store.AssignSucceeded, 100)); got[0] != store.ReportApplied {
		e.t.Fatalf("succeeded report: %v", got)
	}
	return a
}

func newComplianceFleet(t *testing.T, h Harness) *complianceFleet {
	e := newReleaseEnv(t, h)
	f := &complianceFleet{e: e, d: map[string]store.Device{}}
	hour := func(h float64) time.Time { return T0.Add(time.Duration(h * float64(time.Hour))) }
	f.r100 = e.releaseAt("1.0.0", store.SeverityMedium, nil, T0, "gw-200", "B", "C")
	for i, rev := range []string{"B", "B", "B", "C", "B", "B", "B"} {
		f.d[fmt.Sprintf("d%d", i+1)] = e.device("gw-200", rev)
	}
	f.pendingID = e.pendingDevice("gw-200", "B").ID
	if _, err := e.s.UpdateDeviceReport(e.ctx, store.DefaultTenant, f.d["d3"].ID, store.DeviceReport{Version: "0.9.0", Now: hour(0.5)}); err != nil {
		t.Fatal(err)
	}
	f.assignD1 = e.installed(f.d["d1"].ID, f.r100.ID, "", 1, hour(1), hour(2)).ID
	f.assignD2 = e.installed(f.d["d2"].ID, f.r100.ID, "", 1, hour(1), hour(2)).ID
	e.installed(f.d["d5"].ID, f.r100.ID, "", 1, hour(1), hour(2))
	e.installed(f.d["d6"].ID, f.r100.ID, "", 1, hour(1), hour(2))
	e.installed(f.d["d7"].ID, f.r100.ID, "", 1, hour(1), hour(2))
	if _, err := e.s.DecommissionDevice(e.ctx, store.DefaultTenant, f.d["d6"].ID, Admin, hour(2.5)); err != nil {
		t.Fatal(err)
	}
	f.r110 = e.releaseAt("1.1.0", store.SeverityHigh, []string{"CVE-2026-1001"}, hour(3), "gw-200", "B")
	f.spring = e.campaign("spring", f.r110.ID)
	for _, step := range []struct {
		action string
		by     store.Actor
		at     time.Time
	}{{"campaign.start", Admin, hour(3)}, {"campaign.approve", lead, hour(4)}} {
		if _, err := e.s.UpdateCampaign(e.ctx, store.DefaultTenant, f.spring.ID, store.CampaignUpdate{
			By: step.by, Now: step.at, Action: step.action,
			Apply: func(c *store.Campaign) error { c.State = store.CampaignRunning; return nil },
		}); err != nil {
			t.Fatalf("%s: %v", step.action, err)
		}
	}
	e.installed(f.d["d2"].ID, f.r110.ID, f.spring.ID, 2, hour(5), hour(6))
	if _, err := e.s.MarkAffected(e.ctx, store.DefaultTenant, f.r110.ID, []string{"CVE-2026-0555"}, Admin, hour(7)); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		name, version string
		at            time.Time
	}{{"d5", "1.0.5", hour(8)}, {"d7", "1.0.5", hour(8)}, {"d7", "1.0.0", hour(9)}} {
		if _, err := e.s.UpdateDeviceReport(e.ctx, store.DefaultTenant, f.d[r.name].ID, store.DeviceReport{Version: r.version, Now: r.at}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.s.MarkAffected(e.ctx, store.DefaultTenant, f.r110.ID, nil, Admin, hour(9.5)); err != nil {
		t.Fatal(err)
	}
	f.r120 = e.releaseAt("1.2.0", store.SeverityCritical, []string{"CVE-2026-2002"}, hour(10), "gw-200", "C")
	if _, err := e.s.MarkAffected(e.ctx, store.DefaultTenant, f.r100.ID, []string{"CVE-2026-0999"}, Admin, hour(10)); err != nil {
		t.Fatal(err)
	}
	return f
}

// all walks every page of a compliance listing with the given page size
// and checks that devices come in id order, each once.
func (f *complianceFleet) all(exposed bool, q store.ComplianceQuery, pageSize int) []store.DeviceVersion {
	f.e.t.Helper()
	list := f.e.s.DeviceVersionsAt
	if exposed {
		list = f.e.s.ExposedDevicesAt
	}
	var out []store.DeviceVersion
	q.Page = store.Page{Limit: pageSize}
	for pages := 0; ; pages++ {
		if pages > 100 {
			f.e.t.Fatal("more than 100 pages: the cursor does not advance")
		}
		rows, next, err := list(f.e.ctx, store.DefaultTenant, q)
		if err != nil {
			f.e.t.Fatalf("compliance at %s: %v", q.At, err)
		}
		if len(rows) > pageSize {
			f.e.t.Fatalf("page of %d rows, asked for %d", len(rows), pageSize)
		}
		out = append(out, rows...)
		if next == "" {
			break
		}
		q.Page.After = next
	}
	if !slices.IsSortedFunc(out, func(a, b store.DeviceVersion) int { return strings.Compare(a.DeviceID, b.DeviceID) }) {
		f.e.t.Fatalf("rows are not in device id order")
	}
	return out
}

// names renders rows as "name=version/source" sorted by name, for
// comparison with the fleet's history.
func (f *complianceFleet) names(rows []store.DeviceVersion) string {
	var out []string
	for _, r := range rows {
		name := "?" + r.DeviceID
		for n, d := range f.d {
			if d.ID == r.DeviceID {
				name = n
			}
		}
		out = append(out, name+"="+r.Version+"/"+string(r.Source))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func (f *complianceFleet) row(rows []store.DeviceVersion, name string) store.DeviceVersion {
	f.e.t.Helper()
	for _, r := range rows {
		if r.DeviceID == f.d[name].ID {
			return r
		}
	}
	f.e.t.Fatalf("no row for %s", name)
	return store.DeviceVersion{}
}

func exposureText(xs []store.Exposure) string {
	var out []string
	for _, x := range xs {
		out = append(out, fmt.Sprintf("%s:%s:%s:%s", x.Reason, x.Release, x.Severity, strings.Join(x.CVEs, ",")))
	}
	return strings.Join(out, " ")
}

func approvalText(aps []store.Approval) string {
	var out []string
	for _, a := range aps {
		out = append(out, a.Action+"@"+a.Actor.ID)
	}
	return strings.Join(out, " ")
}

func testCompliance(t *testing.T, h Harness) {
	t.Parallel()
	f := newComplianceFleet(t, h)
	hour := func(h float64) time.Time { return T0.Add(time.Duration(h * float64(time.Hour))) }
	at := func(h float64) store.ComplianceQuery { return store.ComplianceQuery{At: hour(h)} }

	t.Run("VersionsNow", func(t *testing.T) {
		f.e.t = t
		rows := f.all(false, at(11), 1000)
		want := "d1=1.0.0/assignment d2=1.1.0/assignment d3=0.9.0/reported d4=/unknown d5=1.0.5/reported d6=1.0.0/assignment d7=1.0.0/reported"
		if got := f.names(rows); got != want {
			t.Fatalf("versions at +11h:\n got %s\nwant %s", got, want)
		}
		for _, r := range rows {
			if r.DeviceID == f.pendingID {
				t.Fatal("a pending device is in the report")
			}
		}
		d1 := f.row(rows, "d1")
		if !d1.Since.Equal(hour(2)) || d1.AssignmentID != f.assignD1 || d1.CampaignID != "" || d1.ReleaseID != f.r100.ID ||
			approvalText(d1.Approvals) != "assignment.create@u-admin" {
			t.Fatalf("d1 %+v", d1)
		}
		if got, want := exposureText(d1.Exposures), "affected:1.0.0::CVE-2026-0999 missing-fix:1.1.0:high:CVE-2026-1001"; got != want {
			t.Fatalf("d1 exposures %q, want %q", got, want)
		}
		d2 := f.row(rows, "d2")
		if !d2.Since.Equal(hour(6)) || d2.CampaignID != f.spring.ID || d2.CampaignName != "spring" || d2.ReleaseID != f.r110.ID ||
			approvalText(d2.Approvals) != "campaign.create@u-admin campaign.start@u-admin campaign.approve@u-lead" || len(d2.Exposures) != 0 {
			t.Fatalf("d2 %+v", d2)
		}
		if d2.Approvals[2].At != hour(4) || d2.Approvals[2].Actor.Name != "lead" {
			t.Fatalf("d2 approval %+v", d2.Approvals[2])
		}
		d3 := f.row(rows, "d3")
		if !d3.Since.Equal(hour(0.5)) || d3.ReleaseID != "" || d3.AssignmentID != "" || len(d3.Approvals) != 0 ||
			exposureText(d3.Exposures) != "missing-fix:1.1.0:high:CVE-2026-1001" {
			t.Fatalf("d3 %+v", d3)
		}
		d4 := f.row(rows, "d4")
		if d4.Since != nil || d4.Version != "" || len(d4.Exposures) != 0 {
			t.Fatalf("d4 %+v", d4)
		}
		// d5's own report after its assignment wins; no assignment put it there.
		d5 := f.row(rows, "d5")
		if !d5.Since.Equal(hour(8)) || d5.AssignmentID != "" || len(d5.Approvals) != 0 ||
			exposureText(d5.Exposures) != "missing-fix:1.1.0:high:CVE-2026-1001" {
			t.Fatalf("d5 %+v", d5)
		}
		// d7 left 1.0.0 and came back to it on its own: it has run it
		// since it came back, and no assignment put it there.
		d7 := f.row(rows, "d7")
		if !d7.Since.Equal(hour(9)) || d7.AssignmentID != "" || d7.ReleaseID != f.r100.ID ||
			exposureText(d7.Exposures) != "affected:1.0.0::CVE-2026-0999 missing-fix:1.1.0:high:CVE-2026-1001" {
			t.Fatalf("d7 %+v", d7)
		}
		d6 := f.row(rows, "d6")
		if d6.State != store.DeviceDecommissioned || len(d6.Exposures) != 0 {
			t.Fatalf("d6 %+v", d6)
		}
	})

	t.Run("VersionsInThePast", func(t *testing.T) {
		f.e.t = t
		rows := f.all(false, at(2.75), 1000)
		want := "d1=1.0.0/assignment d2=1.0.0/assignment d3=0.9.0/reported d4=/unknown d5=1.0.0/assignment d6=1.0.0/assignment d7=1.0.0/assignment"
		if got := f.names(rows); got != want {
			t.Fatalf("versions at +2h45m:\n got %s\nwant %s", got, want)
		}
		// 1.1.0 was not yet published and 1.0.0 not yet marked affected:
		// nothing exposes.
		for _, r := range rows {
			if r.Exposed() {
				t.Fatalf("exposed before any fix or marking existed: %+v", r)
			}
		}
		if got := f.names(f.all(false, at(0.75), 1000)); got != "d1=/unknown d2=/unknown d3=0.9.0/reported d4=/unknown d5=/unknown d6=/unknown d7=/unknown" {
			t.Fatalf("versions at +45m: %s", got)
		}
		if rows := f.all(false, store.ComplianceQuery{At: T0.Add(-time.Minute)}, 1000); len(rows) != 0 {
			t.Fatalf("devices before anything enrolled: %s", f.names(rows))
		}
		// The campaign's approvals are those made by the time asked about.
		rows = f.all(false, at(6.5), 1000)
		if got := approvalText(f.row(rows, "d2").Approvals); got != "campaign.create@u-admin campaign.start@u-admin campaign.approve@u-lead" {
			t.Fatalf("d2 approvals at +6h30m: %s", got)
		}
	})

	t.Run("ByRelease", func(t *testing.T) {
		f.e.t = t
		q := at(11)
		q.ReleaseID = f.r100.ID
		if got := f.names(f.all(false, q, 1000)); got != "d1=1.0.0/assignment d6=1.0.0/assignment d7=1.0.0/reported" {
			t.Fatalf("on 1.0.0 at +11h: %s", got)
		}
		q.At = hour(2.75)
		if got := f.names(f.all(false, q, 1)); got != "d1=1.0.0/assignment d2=1.0.0/assignment d5=1.0.0/assignment d6=1.0.0/assignment d7=1.0.0/assignment" {
			t.Fatalf("on 1.0.0 at +2h45m: %s", got)
		}
		q.ReleaseID = f.r120.ID
		if rows := f.all(false, q, 10); len(rows) != 0 {
			t.Fatalf("on 1.2.0: %s", f.names(rows))
		}
	})

	t.Run("Exposed", func(t *testing.T) {
		f.e.t = t
		cases := []struct {
			name string
			q    store.ComplianceQuery
			want string
		}{
			{"Default", at(11), "d1=1.0.0/assignment d3=0.9.0/reported d5=1.0.5/reported d7=1.0.0/reported"},
			{"AffectedCVE", store.ComplianceQuery{At: hour(11), CVE: "CVE-2026-0999"}, "d1=1.0.0/assignment d7=1.0.0/reported"},
			{"FixedCVE", store.ComplianceQuery{At: hour(11), CVE: "CVE-2026-1001"}, "d1=1.0.0/assignment d3=0.9.0/reported d5=1.0.5/reported d7=1.0.0/reported"},
			{"CVENobodyHas", store.ComplianceQuery{At: hour(11), CVE: "CVE-2026-7777"}, ""},
			// The only critical release is built for rev C, where no
			// device runs a known version.
			{"CriticalOnly", store.ComplianceQuery{At: hour(11), Severities: []store.Severity{store.SeverityCritical}}, "d1=1.0.0/assignment d7=1.0.0/reported"},
			{"MediumCountsToo", store.ComplianceQuery{At: hour(11), Severities: []store.Severity{store.SeverityMedium}}, "d1=1.0.0/assignment d3=0.9.0/reported d7=1.0.0/reported"},
			// Markings count as they were at the time asked about.
			{"BeforeTheFixAndTheMarking", at(2.75), ""},
			{"WhileMarked", at(8), "d1=1.0.0/assignment d2=1.1.0/assignment d3=0.9.0/reported d5=1.0.5/reported d7=1.0.0/assignment"},
			{"WhileMarkedCVE", store.ComplianceQuery{At: hour(8), CVE: "CVE-2026-0555"}, "d2=1.1.0/assignment"},
			{"BeforeTheMarkingCVE", store.ComplianceQuery{At: hour(6.5), CVE: "CVE-2026-0555"}, ""},
			{"AfterTheClearingCVE", store.ComplianceQuery{At: hour(11), CVE: "CVE-2026-0555"}, ""},
			{"BeforeTheOtherMarkingCVE", store.ComplianceQuery{At: hour(9.75), CVE: "CVE-2026-0999"}, ""},
		}
		for _, c := range cases {
			for _, size := range []int{1, 1000} {
				rows := f.all(true, c.q, size)
				if got := f.names(rows); got != c.want {
					t.Errorf("%s (pages of %d): got %q, want %q", c.name, size, got, c.want)
				}
				for _, r := range rows {
					if !r.Exposed() {
						t.Errorf("%s: row without exposure %+v", c.name, r)
					}
				}
				// The SQL filter and the explanation agree: every row
				// of the full listing that explains an exposure is in
				// the exposed listing, and no other.
				var explained []store.DeviceVersion
				for _, r := range f.all(false, c.q, 1000) {
					if r.Exposed() {
						explained = append(explained, r)
					}
				}
				if got := f.names(explained); got != c.want {
					t.Errorf("%s: rows explaining an exposure %q, exposed rows %q", c.name, got, c.want)
				}
			}
		}
		q := store.ComplianceQuery{At: hour(11), CVE: "CVE-2026-1001"}
		if got := exposureText(f.row(f.all(true, q, 10), "d1").Exposures); got != "missing-fix:1.1.0:high:CVE-2026-1001" {
			t.Fatalf("d1 exposure to CVE-2026-1001: %s", got)
		}
		if got := exposureText(f.row(f.all(true, at(8), 10), "d2").Exposures); got != "affected:1.1.0::CVE-2026-0555" {
			t.Fatalf("d2 exposure at +8h: %s", got)
		}
	})

	// Last, as it changes the fleet: two markings of one release that
	// commit in the other order than their request times (the time is read
	// before the release is locked). The report follows commit order, so
	// it agrees with the release's list as stored.
	t.Run("MarkingsCommittedOutOfTimeOrder", func(t *testing.T) {
		f.e.t = t
		if _, err := f.e.s.MarkAffected(f.e.ctx, store.DefaultTenant, f.r100.ID, []string{"CVE-2026-7777"}, Admin, hour(12)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.e.s.MarkAffected(f.e.ctx, store.DefaultTenant, f.r100.ID, nil, Admin, hour(11.999)); err != nil {
			t.Fatal(err)
		}
		r, err := f.e.s.Release(f.e.ctx, store.DefaultTenant, f.r100.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.AffectedBy) != 0 {
			t.Fatalf("1.0.0 is stored as affected by %v after the last marking cleared it", r.AffectedBy)
		}
		for _, cve := range []string{"CVE-2026-7777", "CVE-2026-0999"} {
			if got := f.names(f.all(true, store.ComplianceQuery{At: hour(13), CVE: cve}, 1000)); got != "" {
				t.Errorf("exposed to %s at +13h, after the marking that cleared 1.0.0 committed: %s", cve, got)
			}
		}
		// Between the two requests' times only the later-committed one is
		// stamped, so it is the list at that time.
		if got := f.names(f.all(true, store.ComplianceQuery{At: hour(11.9995), CVE: "CVE-2026-7777"}, 1000)); got != "" {
			t.Errorf("exposed to CVE-2026-7777 at +11h59m58s: %s", got)
		}
	})

	t.Run("BadQueries", func(t *testing.T) {
		f.e.t = t
		cases := []struct {
			name   string
			q      store.ComplianceQuery
			target error
		}{
			{"NoTime", store.ComplianceQuery{}, store.ErrInvalidRequest},
			{"BadCVE", store.ComplianceQuery{At: T0, CVE: "cve-1"}, store.ErrInvalidRequest},
			{"BadSeverity", store.ComplianceQuery{At: T0, Severities: []store.Severity{"urgent"}}, store.ErrInvalidRequest},
			{"BadCursor", store.ComplianceQuery{At: T0, Page: store.Page{After: "!!"}}, store.ErrInvalidRequest},
			{"UnknownRelease", store.ComplianceQuery{At: T0, ReleaseID: "no-such-release"}, store.ErrNotFound},
		}
		for _, c := range cases {
			for _, list := range []func() error{
				func() error { _, _, err := f.e.s.DeviceVersionsAt(f.e.ctx, store.DefaultTenant, c.q); return err },
				func() error { _, _, err := f.e.s.ExposedDevicesAt(f.e.ctx, store.DefaultTenant, c.q); return err },
			} {
				if err := list(); !errors.Is(err, c.target) {
					t.Errorf("%s: %v, want %v", c.name, err, c.target)
				}
			}
		}
	})
}
