package web_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/web/webtest"
)

// enrollPending adds a device that waits for an operator.
func enrollPending(t testing.TB, e *webtest.Env, serial, deviceType, hwRev string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := identity.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Store.Enroll(context.Background(), store.EnrollParams{
		TenantID: store.DefaultTenant, Serial: serial, DeviceType: deviceType, HWRev: hwRev, Protocol: store.ProtocolNative,
		Key: store.Credential{TenantID: store.DefaultTenant, Kind: store.CredPublicKey, Algorithm: key.Algorithm,
			Fingerprint: key.Fingerprint, Material: key.PEM},
		Now: e.Clock.Now(), PendingTTL: 24 * time.Hour, MaxPending: 1000,
	})
	if err != nil {
		t.Fatalf("enroll %s: %v", serial, err)
	}
	return d.ID
}

func deviceState(t *testing.T, e *webtest.Env, id string) store.DeviceState {
	t.Helper()
	d, err := e.Store.Device(context.Background(), store.DefaultTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return d.State
}

func TestDeviceSearchGoodAndBadFilters(t *testing.T) {
	t.Parallel()
	e := start(t)
	b := signIn(t, e, "vera", store.RoleViewer)
	r := b.Get("/ui/devices")
	r.MustContain(t, "No devices yet", "updraft sim", `id="device-search"`, `data-count-url="/ui/devices/count"`, `data-count-target="device-count"`)

	bDev := enroll(t, e, "GW-B", "gw-200", "B")
	cDev := enroll(t, e, "GW-C", "gw-200", "C")
	enroll(t, e, "SENSOR-A", "sensor-9", "A")

	q := `device_type == "gw-200" and hw_rev == "B"`
	r = b.Get("/ui/devices?q=" + url.QueryEscape(q))
	if r.Status != http.StatusOK {
		t.Fatalf("good filter: status %d\n%s", r.Status, r.Body)
	}
	r.MustContain(t, `id="device-row-`+bDev+`"`, ">GW-B<", "1 device matches",
		`value="device_type == &#34;gw-200&#34; and hw_rev == &#34;B&#34;"`)
	if strings.Contains(r.Body, cDev) || strings.Contains(r.Body, "SENSOR-A") {
		t.Fatal("the filter listed devices it does not match")
	}

	// A bad expression: the API's message, a caret under column 10, and
	// the input kept as typed.
	bad := `hw_rev ==`
	r = b.Get("/ui/devices?q=" + url.QueryEscape(bad) + "&state=accepted")
	if r.Status != http.StatusBadRequest {
		t.Fatalf("bad filter: status %d", r.Status)
	}
	r.MustContain(t, `id="device-search-error"`, `data-column="10"`, "column 10", `value="hw_rev =="`, `aria-invalid="true"`,
		"hw_rev ==\n         ^ line 1, column 10", `<option value="accepted" selected>`)
	if strings.Contains(r.Body, `id="device-results"`) {
		t.Fatal("a bad filter still listed devices")
	}
	// The error on the second line of an expression points into that line.
	r = b.Get("/ui/devices?q=" + url.QueryEscape("tag:lab and\n  region == eu-west"))
	r.MustContain(t, "line 2", `data-line="2"`, "  region == eu-west\n            ^")

	// The live count fragment: a count, or the error in one line.
	r = b.Get("/ui/devices/count?q=" + url.QueryEscape(`device_type == "gw-200"`))
	if r.Status != http.StatusOK || strings.TrimSpace(r.Body) != `<span class="count-ok" data-valid="true" data-count="2">2 devices match</span>` {
		t.Fatalf("count: %d %q", r.Status, r.Body)
	}
	r = b.Get("/ui/devices/count")
	r.MustContain(t, `data-count="3">3 devices match`)
	r = b.Get("/ui/devices/count?q=" + url.QueryEscape(bad))
	if r.Status != http.StatusBadRequest || strings.Count(r.Body, "\n") > 1 {
		t.Fatalf("bad count: %d %q", r.Status, r.Body)
	}
	r.MustContain(t, `class="count-error"`, `data-column="10"`, "column 10")

	// No match: an empty state that says what to do.
	r = b.Get("/ui/devices?q=" + url.QueryEscape(`region == "mars"`))
	r.MustContain(t, "No device matches", "0 devices match", `href="/ui/devices" id="device-search-clear"`)
}

func TestDeviceSearchPaginates(t *testing.T) {
	t.Parallel()
	e := start(t)
	for i := range 53 {
		enroll(t, e, fmt.Sprintf("PG-%03d", i), "gw-200", "B")
	}
	b := signIn(t, e, "vera", store.RoleViewer)
	q := url.QueryEscape(`device_type == "gw-200"`)
	r := b.Get("/ui/devices?q=" + q)
	if n := strings.Count(r.Body, `id="device-row-`); n != 50 {
		t.Fatalf("first page lists %d devices, want 50", n)
	}
	r.MustContain(t, "53 devices match", `rel="next"`)
	next := between(r.Body, `<a rel="next" href="`, `"`)
	next = html.UnescapeString(next)
	if !strings.Contains(next, "q="+q) || !strings.Contains(next, "after=") {
		t.Fatalf("next page link %q loses the filter or the cursor", next)
	}
	r2 := b.Get(next)
	if n := strings.Count(r2.Body, `id="device-row-`); n != 3 {
		t.Fatalf("second page lists %d devices, want 3", n)
	}
	if strings.Contains(r2.Body, `rel="next"`) {
		t.Fatal("the last page links to a next one")
	}
	for _, id := range rowIDs(r2.Body) {
		if strings.Contains(r.Body, id) {
			t.Fatalf("device %s is on both pages", id)
		}
	}
}

func between(s, from, to string) string {
	_, rest, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, to)
	return v
}

func rowIDs(body string) []string {
	var ids []string
	for _, part := range strings.Split(body, `id="device-row-`)[1:] {
		id, _, _ := strings.Cut(part, `"`)
		ids = append(ids, id)
	}
	return ids
}

func TestDeviceDetailHistoryAndTelemetry(t *testing.T) {
	t.Parallel()
	e := start(t)
	ctx := context.Background()
	id := enroll(t, e, "GW-7", "gw-200", "B")
	makeRelease(t, e, "1.0.0", "gw-200", []string{"B"}, false)
	makeRelease(t, e, "1.1.0", "gw-200", []string{"B"}, false)
	now := e.Clock.Now()
	if _, err := e.Store.UpdateDeviceReport(ctx, store.DefaultTenant, id, store.DeviceReport{Version: "0.9.0", TimeZone: "Europe/Berlin",
		Attributes: map[string]string{"site": "hamburg", "modem": "lte-cat1"}, Now: now.Add(-3 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// The first update fails verification (report 4 after 1: 2–3 are a gap);
	// the second is still downloading.
	first := reportFailure(t, e, id, "1.0.0", now.Add(-2*time.Hour),
		store.StatusReport{Seq: 1, State: store.AssignDownloading, Progress: 40},
		store.StatusReport{Seq: 4, State: store.AssignFailed, ErrorCode: "E_VERIFY", Message: "hash mismatch", LogTail: "verify: sha256 differs"})
	e.Clock.Advance(time.Minute) // history is ordered by creation time
	second := reportFailure(t, e, id, "1.1.0", now.Add(-time.Hour),
		store.StatusReport{Seq: 5, State: store.AssignDownloading, Progress: 70})
	pts := []store.MetricPoint{
		{Name: "crashes", At: now.Add(-150 * time.Minute), Value: 1}, {Name: "crashes", At: now.Add(-90 * time.Minute), Value: 2},
		{Name: "battery_pct", At: now.Add(-150 * time.Minute), Value: 80}, {Name: "battery_pct", At: now.Add(-30 * time.Minute), Value: 75},
		{Name: "signal_dbm", At: now.Add(-30 * time.Minute), Value: -71},
	}
	if err := e.Store.RecordTelemetry(ctx, store.DefaultTenant, id, pts); err != nil {
		t.Fatal(err)
	}

	b := signIn(t, e, "vera", store.RoleViewer)
	r := b.Get("/ui/devices/" + id)
	if r.Status != http.StatusOK {
		t.Fatalf("device page: status %d\n%s", r.Status, r.Body)
	}
	r.MustContain(t, `<h1 id="device-title">GW-7</h1>`, "Europe/Berlin", "hamburg", "lte-cat1", "0.9.0", "eu-west", "ed25519",
		// History, newest first, with every report and error.
		`id="assignment-`+second.ID+`"`, `id="assignment-`+first.ID+`"`, "E_VERIFY", "hash mismatch", "verify: sha256 differs",
		"40 %", "70 %", `<td class="num">4</td>`,
		// The report gap.
		"2–3",
		// Telemetry sparklines and summaries.
		`id="telemetry-crashes"`, "3 in the last 7 days", `id="telemetry-battery_pct"`, "now 75 %", "now -71 dBm",
		`id="telemetry-unexpected_reboots"`, "no data in the last 7 days", `class="chart spark"`)
	if strings.Index(r.Body, second.ID) > strings.Index(r.Body, first.ID) {
		t.Error("history is not newest first")
	}
	if strings.Contains(r.Body, `id="device-actions"`) || strings.Contains(r.Body, `id="device-tag-form"`) {
		t.Error("a viewer sees the write buttons")
	}
	if r := b.Get("/ui/devices/no-such-device"); r.Status != http.StatusNotFound {
		t.Errorf("unknown device: status %d", r.Status)
	}

	// An operator tags the device and removes a tag again.
	op := signIn(t, e, "olga", store.RoleOperator)
	r = op.Get("/ui/devices/" + id)
	r.MustContain(t, `id="device-tag-form"`, `id="device-decommission"`, `data-confirm="Decommission this device?`)
	if r := op.Post("/ui/devices/"+id+"/tags", url.Values{"add": {"lab, env:prod"}}); r.Status != http.StatusSeeOther || r.Location != "/ui/devices/"+id {
		t.Fatalf("add tags: %d %q\n%s", r.Status, r.Location, r.Body)
	}
	r = op.Get("/ui/devices/" + id)
	r.MustContain(t, `href="/ui/devices?q=tag%3Alab"`, `href="/ui/devices?q=tag%3A%22env%3Aprod%22"`, ">env:prod<")
	op.Post("/ui/devices/"+id+"/tags", url.Values{"remove": {"lab"}})
	d, err := e.Store.Device(ctx, store.DefaultTenant, id)
	if err != nil || strings.Join(d.Tags, ",") != "env:prod" {
		t.Fatalf("tags after removal %v (%v)", d.Tags, err)
	}
	// History pages: with more than a page of assignments the next link
	// carries the cursor.
	for i := range 10 {
		e.Clock.Advance(time.Minute)
		e.API(t, http.StatusCreated, "POST", "/devices/"+id+"/assignments", map[string]any{"release": []string{"1.0.0", "1.1.0"}[i%2]}, nil)
	}
	r = op.Get("/ui/devices/" + id)
	next := html.UnescapeString(between(r.Body, `<a rel="next" href="`, `"`))
	if next == "" || strings.Count(r.Body, `<article class="assignment"`) != 10 {
		t.Fatalf("first history page: next %q, %d assignments", next, strings.Count(r.Body, `<article class="assignment"`))
	}
	r = op.Get(next)
	if strings.Count(r.Body, `<article class="assignment"`) != 2 || !strings.Contains(r.Body, first.ID) {
		t.Fatalf("second history page lacks the oldest assignments")
	}
}

func TestPendingDeviceAcceptByRole(t *testing.T) {
	t.Parallel()
	e := start(t)
	p1 := enrollPending(t, e, "NEW-1", "gw-200", "B")
	p2 := enrollPending(t, e, "NEW-2", "gw-200", "B")

	viewer := signIn(t, e, "vera", store.RoleViewer)
	r := viewer.Get("/ui/devices?state=pending")
	r.MustContain(t, `id="pending-notice"`, "2 pending devices wait", `id="device-row-`+p1+`"`)
	if strings.Contains(r.Body, `id="accept-`) || strings.Contains(r.Body, `action="/ui/devices/`+p1+`/accept"`) {
		t.Fatal("a viewer sees the accept button")
	}
	// Even with a valid CSRF token, the viewer's post is refused.
	if r := viewer.Post("/ui/devices/"+p1+"/accept", nil); r.Status != http.StatusForbidden {
		t.Fatalf("viewer accept: status %d", r.Status)
	}
	if st := deviceState(t, e, p1); st != store.DevicePending {
		t.Fatalf("after the viewer's attempt the device is %s", st)
	}

	op := signIn(t, e, "olga", store.RoleOperator)
	r = op.Get("/ui/devices?state=pending")
	r.MustContain(t, `id="accept-`+p1+`"`, `id="reject-`+p2+`"`, `data-confirm="Reject device NEW-2?`)
	r = op.Post("/ui/devices/"+p1+"/accept", url.Values{"next": {"/ui/devices?state=pending"}})
	if r.Status != http.StatusSeeOther || r.Location != "/ui/devices?state=pending" {
		t.Fatalf("operator accept: status %d location %q\n%s", r.Status, r.Location, r.Body)
	}
	if st := deviceState(t, e, p1); st != store.DeviceAccepted {
		t.Fatalf("after accept the device is %s", st)
	}
	op.Get("/ui/devices?state=pending")
	if r := op.Post("/ui/devices/"+p2+"/reject", url.Values{"next": {"https://evil.example/"}}); r.Status != http.StatusSeeOther || r.Location != "/ui/" {
		t.Fatalf("reject with an outside next: %d %q", r.Status, r.Location)
	}
	if st := deviceState(t, e, p2); st != store.DeviceRejected {
		t.Fatalf("after reject the device is %s", st)
	}
	r = op.Get("/ui/devices?state=pending")
	r.MustContain(t, "No pending devices", "preauthorized key")
	// Without the CSRF token nothing happens.
	if r := op.PostWithoutCSRF("/ui/devices/"+p1+"/decommission", url.Values{}); r.Status != http.StatusForbidden {
		t.Fatalf("post without CSRF: status %d", r.Status)
	}
	if st := deviceState(t, e, p1); st != store.DeviceAccepted {
		t.Fatalf("a post without a CSRF token changed the device to %s", st)
	}
}

// TestDeviceLive: the device page's live view sends its parts, and the
// history again when the device reports progress.
func TestDeviceLive(t *testing.T) {
	t.Parallel()
	e := start(t)
	id := enroll(t, e, "GW-LIVE", "gw-200", "B")
	makeRelease(t, e, "1.0.0", "gw-200", []string{"B"}, false)
	as := reportFailure(t, e, id, "1.0.0", e.Clock.Now())
	b := signIn(t, e, "olga", store.RoleOperator)
	r := b.Get("/ui/devices/" + id)
	r.MustContain(t, `data-live="/ui/devices/`+id+`/live"`, `id="live-status"`)
	ch := openLive(t, e, b, "/ui/devices/"+id+"/live")
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	next := func() sseEvent {
		t.Helper()
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("live view closed early")
			}
			return ev
		case <-deadline.C:
			t.Fatal("no live update within 15 s")
		}
		return sseEvent{}
	}
	seen := map[string]string{}
	for len(seen) < 4 {
		ev := next()
		seen[ev.ID] = ev.HTML
	}
	for _, part := range []string{"device-head", "device-facts", "device-telemetry", "device-history"} {
		if !strings.HasPrefix(strings.TrimSpace(seen[part]), `<`) || !strings.Contains(seen[part], `id="`+part+`"`) {
			t.Fatalf("first frame part %s:\n%s", part, seen[part])
		}
	}
	if !strings.Contains(seen["device-head"], `id="device-decommission"`) || !strings.Contains(seen["device-head"], `name="csrf"`) {
		t.Fatalf("the operator's live head lacks the buttons:\n%s", seen["device-head"])
	}
	out, err := e.Store.RecordReports(context.Background(), []store.DeviceReports{{TenantID: store.DefaultTenant, DeviceID: id,
		Reports: []store.StatusReport{{AssignmentID: as.ID, Seq: 1, State: store.AssignDownloading, Progress: 55, ReportedAt: e.Clock.Now()}}}}, e.Clock.Now())
	if err != nil || out[0][0] != store.ReportApplied {
		t.Fatalf("report: %v %v", out, err)
	}
	for {
		ev := next()
		if ev.ID == "device-history" && strings.Contains(ev.HTML, "55 %") {
			return
		}
	}
}
