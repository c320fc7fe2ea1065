package web_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/web/webtest"
)

func TestOverviewEmptyFleetSaysWhatToDo(t *testing.T) {
	t.Parallel()
	e := start(t)
	b := signIn(t, e, "vera", store.RoleViewer)
	r := b.Get("/ui/")
	if r.Status != http.StatusOK {
		t.Fatalf("overview: status %d\n%s", r.Status, r.Body)
	}
	r.MustContain(t, `id="overview-empty"`, "No devices yet", "updraft sim --devices 100", "updraft release create 1.0.0",
		`href="/ui/devices?state=pending"`, `data-live="/ui/overview/live"`)
	if strings.Contains(r.Body, `id="overview-versions"`) {
		t.Error("an empty fleet shows a version chart")
	}
}

// reportFailure assigns release to the device through the API and records
// the device's status reports directly in the store, received at now.
func reportFailure(t *testing.T, e *webtest.Env, deviceID, release string, now time.Time, reports ...store.StatusReport) store.Assignment {
	t.Helper()
	var as struct {
		Assignment store.Assignment `json:"assignment"`
	}
	e.API(t, http.StatusCreated, "POST", "/devices/"+deviceID+"/assignments", map[string]any{"release": release}, &as)
	for i := range reports {
		reports[i].AssignmentID = as.Assignment.ID
		if reports[i].ReportedAt.IsZero() {
			reports[i].ReportedAt = now
		}
	}
	out, err := e.Store.RecordReports(context.Background(), []store.DeviceReports{{TenantID: store.DefaultTenant, DeviceID: deviceID, Reports: reports}}, now)
	if err != nil || len(out) != 1 || len(out[0]) != len(reports) {
		t.Fatalf("record reports: %v %v", out, err)
	}
	return as.Assignment
}

func TestOverviewNumbers(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	campaignID := campaignFleet(t, e, false) // GW-000…GW-007, gw-200 B and C, campaign "spring rollout"
	pending := enrollPending(t, e, "PEND-1", "gw-200", "B")
	failing := enroll(t, e, "FAIL-1", "gw-300", "A")
	makeRelease(t, e, "3.0.0", "gw-300", []string{"A"}, false)

	devs := map[string]string{}
	var list struct {
		Items []store.Device `json:"items"`
	}
	e.API(t, http.StatusOK, "GET", "/devices?limit=100", nil, &list)
	for _, d := range list.Items {
		devs[d.Serial] = d.ID
	}
	now := e.Clock.Now()
	for serial, v := range map[string]string{"GW-000": "1.0.0", "GW-001": "1.0.0", "GW-002": "1.1.0+build.7"} {
		if _, err := e.Store.UpdateDeviceReport(ctx, store.DefaultTenant, devs[serial], store.DeviceReport{Version: v, Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Store.TouchLastSeen(ctx, store.DefaultTenant, map[string]time.Time{
		devs["GW-000"]: now.Add(-time.Minute), devs["GW-001"]: now.Add(-time.Hour), pending: now,
	}); err != nil {
		t.Fatal(err)
	}
	reportFailure(t, e, failing, "3.0.0", now.Add(-2*time.Hour),
		store.StatusReport{Seq: 1, State: store.AssignFailed, ErrorCode: "E_FLASH", Message: "write error"})

	b := signIn(t, e, "vera", store.RoleViewer)
	r := b.Get("/ui/")
	if r.Status != http.StatusOK {
		t.Fatalf("overview: status %d\n%s", r.Status, r.Body)
	}
	// 10 devices: 9 accepted, 1 pending.
	wantRow(t, r.Body, "overview-state-accepted", "9")
	wantRow(t, r.Body, "overview-state-pending", "1")
	r.MustContain(t, `<p class="stat" id="overview-total">10</p>`, `href="/ui/devices?state=pending"`)
	// Online: GW-000 (a minute ago) only; the pending device does not count.
	r.MustContain(t, `id="overview-online-n">1<`, `id="overview-offline-n">1<`, `id="overview-never-n">7<`,
		"within the last 10 min", "twice the 5 min check-in interval")
	// Versions: 1.0.0 ×2 linked to its search, 1.1.0+build.7 ×1, 7 unreported.
	r.MustContain(t, `<title>1.0.0: 2</title>`, `<title>(not reported): 7</title>`, `<title>1.1.0+build.7: 1</title>`,
		`href="/ui/devices?q=version+%3D%3D+%221.0.0%22"`)
	// Hardware: B 5 (four campaign devices and the pending one), C 4.
	r.MustContain(t, `<title>B: 5</title>`, `<title>C: 4</title>`, `<title>A: 1</title>`, `<title>gw-200: 9</title>`)
	// Failures in the last 24 h, with the latest one.
	wantRow(t, r.Body, "overview-failures-failed", "1")
	wantRow(t, r.Body, "overview-failures-rolled-back", "0")
	r.MustContain(t, `id="overview-failure-total">1<`, "E_FLASH", `href="/ui/devices/`+failing+`"`, ">FAIL-1<")
	// The running campaign, linked.
	r.MustContain(t, `id="overview-campaign-`+campaignID+`"`, `href="/ui/campaigns/`+campaignID+`"`, "spring rollout", "2.0.0")

	// A failure older than 24 h drops out.
	e.Clock.Advance(23 * time.Hour)
	b.Login("vera", "vera's long password 1") // the session lasted 12 h
	r = b.Get("/ui/")
	wantRow(t, r.Body, "overview-failures-failed", "0")
	if strings.Contains(r.Body, "E_FLASH") {
		t.Error("a failure from 25 h ago is still listed")
	}
	// And after that long every device is offline.
	r.MustContain(t, `id="overview-online-n">0<`)
}

// wantRow checks the number in the second cell of the table row with id.
func wantRow(t *testing.T, body, id, want string) {
	t.Helper()
	m := regexp.MustCompile(`<tr id="` + regexp.QuoteMeta(id) + `">.*?<td class="num">([^<]*)</td>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no row %s in the page", id)
	}
	if m[1] != want {
		t.Fatalf("row %s shows %q, want %q", id, m[1], want)
	}
}

// TestOverviewLive: the live view sends the overview's figures, and sends
// them again when the fleet changes.
func TestOverviewLive(t *testing.T) {
	t.Parallel()
	e := start(t)
	b := signIn(t, e, "vera", store.RoleViewer)
	ch := openLive(t, e, b, "/ui/overview/live")
	next := func(what string) sseEvent {
		t.Helper()
		deadline := time.NewTimer(15 * time.Second)
		defer deadline.Stop()
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("live view closed before %s", what)
			}
			return ev
		case <-deadline.C:
			t.Fatalf("no live update with %s within 15 s", what)
		}
		return sseEvent{}
	}
	ev := next("the first frame")
	if ev.ID != "overview-body" || !strings.Contains(ev.HTML, `id="overview-empty"`) {
		t.Fatalf("first frame: %s\n%s", ev.ID, ev.HTML)
	}
	enroll(t, e, "LIVE-1", "gw-200", "B")
	ev = next("the new device")
	if ev.ID != "overview-body" || !strings.Contains(ev.HTML, `<p class="stat" id="overview-total">1</p>`) ||
		!strings.Contains(ev.HTML, `<title>B: 1</title>`) {
		t.Fatalf("frame after enrolling: %s\n%s", ev.ID, ev.HTML)
	}
}
