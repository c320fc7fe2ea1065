package mgmtapi

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

func TestFleetSummary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	// Empty fleet: zeros, every failure state present, the default window.
	var empty fleetSummary
	e.must(200, req{token: e.viewer, method: "GET", path: "/fleet/summary"}).decode(t, &empty)
	if empty.Devices.Total != 0 || empty.Failures.Total != 0 || len(empty.Failures.ByState) != 3 ||
		empty.CheckInIntervalSeconds != 300 || empty.OnlineWindowSeconds != 600 ||
		!empty.Failures.Since.Equal(t0.Add(-24*time.Hour)) || !empty.OnlineSince.Equal(t0.Add(-10*time.Minute)) {
		t.Fatalf("empty summary %+v", empty)
	}

	online := e.enroll("ON", "gw-200", "B", true)
	offline := e.enroll("OFF", "gw-200", "B", true)
	e.enroll("NEVER", "gw-200", "B", true)
	pending := e.enroll("PEND", "gw-200", "B", false)
	rel := e.release("1.0.0", "gw-200", []string{"B"}, true)
	var as assignResult
	e.must(201, req{token: e.operator, method: "POST", path: "/devices/" + online + "/assignments",
		body: map[string]any{"release": rel.Version}}).decode(t, &as)

	e.clock.Advance(3 * time.Hour)
	now := e.clock.Now()
	if err := e.st.TouchLastSeen(ctx, store.DefaultTenant, map[string]time.Time{
		online: now.Add(-9 * time.Minute), offline: now.Add(-11 * time.Minute), pending: now,
	}); err != nil {
		t.Fatal(err)
	}
	r := store.StatusReport{AssignmentID: as.Assignment.ID, Seq: 1, State: store.AssignFailed, ErrorCode: "E_DISK", ReportedAt: now}
	if _, err := e.st.RecordReports(ctx, []store.DeviceReports{{TenantID: store.DefaultTenant, DeviceID: online, Reports: []store.StatusReport{r}}}, now.Add(-30*time.Minute)); err != nil {
		t.Fatal(err)
	}

	var got fleetSummary
	e.must(200, req{token: e.viewer, method: "GET", path: "/fleet/summary"}).decode(t, &got)
	d := got.Devices
	if d.Total != 4 || d.Online != 1 || d.Offline != 1 || d.NeverSeen != 1 ||
		!maps.Equal(d.ByState, map[string]int{"accepted": 3, "pending": 1}) || d.SeenByState["pending"].Recent != 1 {
		t.Fatalf("devices %+v", d)
	}
	f := got.Failures
	if f.Total != 1 || f.ByState["failed"] != 1 || f.ByState["timed-out"] != 0 || len(f.Recent) != 1 ||
		f.Recent[0].DeviceID != online || f.Recent[0].ErrorCode != "E_DISK" {
		t.Fatalf("failures %+v", f)
	}
	// A window that starts after the failure counts none.
	e.must(200, req{token: e.viewer, method: "GET", path: "/fleet/summary?since=" + now.Add(-29*time.Minute).Format(time.RFC3339)}).decode(t, &got)
	if got.Failures.Total != 0 || len(got.Failures.Recent) != 0 {
		t.Fatalf("failures after the window start: %+v", got.Failures)
	}
	for _, q := range []string{"?since=yesterday", "?since=" + now.Add(time.Hour).Format(time.RFC3339), "?recent=3"} {
		if code := e.must(400, req{token: e.viewer, method: "GET", path: "/fleet/summary" + q}).errorCode(t); code != "bad_parameter" {
			t.Errorf("%s: code %s", q, code)
		}
	}
}
