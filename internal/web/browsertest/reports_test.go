package browsertest_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/web/browsertest"
	"github.com/updraft/updraft/internal/web/webtest"
)

// The audit log and compliance report pages in a real browser: filtering
// through the forms, the export links keeping the filter, and the
// printable report under print media (navigation and forms hidden), saved
// as screenshots and as a PDF next to them.

// reportEnv is a server on a fake clock that starts at the real time (the
// browser judges the session cookie's expiry against its own clock).
type reportEnv struct {
	*webtest.Env
	clk *clock.Fake
	seq map[string]int64 // last report sequence number per device
}

func (re *reportEnv) release(t *testing.T, version, severity string, cves []string) {
	t.Helper()
	var rel store.Release
	re.API(t, http.StatusCreated, "POST", "/releases", map[string]any{"version": version, "severity": severity, "cves": cves}, &rel)
	re.API(t, http.StatusCreated, "PUT", "/releases/"+rel.ID+"/artifacts?device_type=gw-200&hw_revs=A,B&type=raw-image&name=gw-200-"+version+".img",
		[]byte("image "+version), nil)
	re.API(t, http.StatusOK, "POST", "/releases/"+rel.ID+"/publish", nil, nil)
}

func (re *reportEnv) enroll(t *testing.T, serial, rev string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := identity.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := re.Store.Enroll(ctx, store.EnrollParams{
		TenantID: store.DefaultTenant, Serial: serial, DeviceType: "gw-200", HWRev: rev, Protocol: store.ProtocolNative,
		Key: store.Credential{TenantID: store.DefaultTenant, Kind: store.CredPublicKey, Algorithm: key.Algorithm,
			Fingerprint: key.Fingerprint, Material: key.PEM},
		Now: re.clk.Now(), PendingTTL: time.Hour, MaxPending: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := re.Store.AcceptDevice(ctx, store.DefaultTenant, d.ID, store.Actor{Kind: store.ActorSystem, Name: "test"}, re.clk.Now()); err != nil {
		t.Fatal(err)
	}
	return d.ID
}

// install assigns a release by hand and has the device report success.
func (re *reportEnv) install(t *testing.T, deviceID, version string) {
	t.Helper()
	var as struct {
		Assignment store.Assignment `json:"assignment"`
	}
	re.API(t, http.StatusCreated, "POST", "/devices/"+deviceID+"/assignments", map[string]any{"release": version}, &as)
	re.clk.Advance(time.Minute)
	re.seq[deviceID]++
	out, err := re.Store.RecordReports(context.Background(), []store.DeviceReports{{TenantID: store.DefaultTenant, DeviceID: deviceID, Reports: []store.StatusReport{
		{AssignmentID: as.Assignment.ID, Seq: re.seq[deviceID], State: store.AssignSucceeded, Progress: 100, ReportedAt: re.clk.Now()},
	}}}, re.clk.Now())
	if err != nil || out[0][0] != store.ReportApplied {
		t.Fatalf("report success: %v %v", out, err)
	}
}

func TestReportsInBrowser(t *testing.T) {
	b := browsertest.Start(t)
	clk := clock.NewFake(clock.Real{}.Now().UTC().Truncate(time.Second))
	re := &reportEnv{Env: webtest.StartWith(t, webtest.Options{Clock: clk}), clk: clk, seq: map[string]int64{}}
	admin, err := re.Store.UserByName(context.Background(), store.DefaultTenant, "admin")
	if err != nil {
		t.Fatal(err)
	}
	re.API(t, http.StatusNoContent, "POST", "/users/"+admin.ID+"/password",
		map[string]string{"current_password": re.AdminPassword, "password": "the admin's own password 7"}, nil)

	// Six devices: four installed 1.0.0, one reports 0.9.0 itself, one
	// never said; 1.1.0 (critical, fixes CVE-2026-4242) comes later.
	re.release(t, "1.0.0", "low", nil)
	var ids []string
	for i, rev := range []string{"A", "A", "B", "B", "A", "B"} {
		ids = append(ids, re.enroll(t, "GW-"+string(rune('1'+i)), rev))
	}
	for _, id := range ids[:4] {
		re.install(t, id, "1.0.0")
	}
	if _, err := re.Store.UpdateDeviceReport(context.Background(), store.DefaultTenant, ids[4], store.DeviceReport{Version: "0.9.0", Now: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	re.release(t, "1.1.0", "critical", []string{"CVE-2026-4242"})
	re.install(t, ids[0], "1.1.0")
	clk.Advance(time.Minute)

	const pw = "vera's long password 1"
	re.AddUser(t, "vera", store.RoleViewer, pw)
	tab := b.NewTab(t, re.URL, "viewer")
	tab.Open("/ui/login")
	tab.Do("sign in",
		chromedp.SendKeys(chromedp.ID("name"), "vera"),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Click(chromedp.CSS(`form[action="/ui/login"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`nav[aria-label="Main"]`)),
	)

	// The audit log, then filtered through its form.
	tab.Open("/ui/audit")
	tab.WaitFor("entries listed", `document.querySelectorAll("#audit tbody tr").length > 10`)
	tab.Screenshot("audit")
	tab.Do("filter by action",
		chromedp.SendKeys(chromedp.CSS(`#audit-filter input[name="action"]`), "release.publish"),
		chromedp.Click(chromedp.CSS(`#audit-filter button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#audit-filter a[href="/ui/audit"]`)), // Clear: only on the filtered page
	)
	tab.WaitFor("two publications", `document.querySelectorAll("#audit tbody tr").length === 2`)
	if href := browsertest.Run(tab, "export link", chromedp.Evaluate[string](`document.getElementById("audit-export-csv").getAttribute("href")`)); !strings.Contains(href, "action=release.publish") {
		t.Fatalf("the CSV export link %q lost the filter", href)
	}
	tab.Screenshot("audit-filtered")

	// The compliance report, then exposed devices only.
	tab.Open("/ui/reports")
	tab.WaitFor("six devices", `document.querySelectorAll("#compliance tbody tr").length === 6`)
	tab.Screenshot("report")
	tab.Do("ask for critical exposure",
		chromedp.Click(chromedp.CSS(`#report-form input[name="severity"][value="critical"]`)),
		chromedp.Click(chromedp.CSS(`#report-form button[type="submit"]`)),
		// The box is checked by the server only on the new page.
		chromedp.WaitVisible(chromedp.CSS(`#report-form input[name="severity"][value="critical"][checked]`)),
	)
	// GW-2…GW-4 on 1.0.0 and GW-5 on 0.9.0 miss 1.1.0; GW-1 has it and
	// GW-6 never said what it runs.
	tab.WaitFor("four exposed devices", `document.querySelectorAll("#compliance tbody tr.exposed").length === 4 &&
		document.querySelectorAll("#compliance tbody tr").length === 4`)
	if scope := tab.Text("#report-scope"); !strings.Contains(scope, "exposed devices only") {
		t.Fatalf("scope line %q", scope)
	}
	tab.Screenshot("report-exposed")

	// The printable page, on screen and as printed.
	tab.Do("open the printable page",
		chromedp.Click(chromedp.ID("report-print")),
		chromedp.WaitVisible(chromedp.ID("report-print-page")),
	)
	if s := tab.Text("#report-summary"); !strings.Contains(s, "4 devices, 4 exposed") {
		t.Fatalf("summary %q", s)
	}
	tab.Screenshot("report-print")
	tab.Do("emulate print media", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"})
		return err
	}))
	hidden := browsertest.Run(tab, "print styles", chromedp.Evaluate[bool](`["header.top", "footer.foot", "nav.actions"].every(
		s => getComputedStyle(document.querySelector(s)).display === "none") &&
		getComputedStyle(document.querySelector("#compliance")).display !== "none"`))
	if !hidden {
		t.Fatal("under print media the navigation, footer or buttons still show, or the table does not")
	}
	tab.Screenshot("report-print-media")
	pdf := browsertest.Run(tab, "print to PDF", chromedp.Action[[]byte](func(ctx context.Context, tg *chromedp.Target) ([]byte, error) {
		res, err := cdp.Call(ctx, tg, page.PrintToPDF, page.PrintToPDFParams{})
		return res.Data, err
	}))
	if !bytes.HasPrefix(pdf, []byte("%PDF")) {
		t.Fatalf("printing gave %d bytes that are not a PDF", len(pdf))
	}
	p := filepath.Join(b.Dir, "compliance-report.pdf")
	if err := os.WriteFile(p, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("printed report: %s (%d bytes)", p, len(pdf))
	tab.CheckConsole()
}
