//go:build unix

package browsertest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/web/browsertest"
)

// TestFirefox checks the Firefox helper against a tiny site: a script
// under a strict CSP runs, a full-page screenshot is a PNG of the whole
// page, a second tab has its own cookies, typing reaches a field, and an
// inline script blocked by the CSP and an uncaught exception are reported.
func TestFirefox(t *testing.T) {
	mux := http.NewServeMux()
	// img-src: Firefox asks for /favicon.ico, which default-src 'none' would
	// block and report, as it would on the dashboard without img-src.
	csp := "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'"
	page := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", csp)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write([]byte(`<!doctype html><html><head><link rel="stylesheet" href="/app.css"></head><body><main>` + body + `</main></body></html>`))
		}
	}
	// A tall page: the screenshot must cover all of it.
	mux.HandleFunc("/page", page(`<h1 id="t">hello</h1><input id="in"><div class="tall"></div><script src="/app.js"></script>`))
	mux.HandleFunc("/inline", page(`<script>document.title = "ran"</script>`))
	mux.HandleFunc("/throws", page(`<script src="/throw.js"></script>`))
	mux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write([]byte(`document.getElementById("t").textContent = "scripted";`))
	})
	mux.HandleFunc("/throw.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Write([]byte(`null.boom();`))
	})
	mux.HandleFunc("/app.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		w.Write([]byte(`.tall { height: 3000px; }`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	f := browsertest.StartFirefox(t)
	tab := f.NewTab(t, srv.URL, "test")
	tab.Open("/page")
	if got := tab.Text("#t"); got != "scripted" {
		t.Fatalf("heading %q, want scripted", got)
	}
	if loc := tab.Location(); loc != "/page" {
		t.Fatalf("location %q", loc)
	}
	tab.Type("#in", `a "quoted" value`)
	tab.CheckConsole()
	p := tab.Screenshot("page")
	png, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 24 {
		t.Fatalf("%s is not a PNG", p)
	}
	height := int(png[20])<<24 | int(png[21])<<16 | int(png[22])<<8 | int(png[23])
	if height < 3000 {
		t.Fatalf("screenshot is %d px high; the page is over 3000 px: not a full-page shot", height)
	}
	if !strings.HasPrefix(p, browsertest.ScreenshotDir()) {
		t.Fatalf("screenshot %s outside %s", p, browsertest.ScreenshotDir())
	}

	// A second tab has its own cookies.
	tab.Eval("set a cookie", `document.cookie = "a=1; path=/"`, nil)
	other := f.NewTab(t, srv.URL, "other")
	other.Open("/page")
	var cookies string
	other.Eval("read cookies", "document.cookie", &cookies)
	if cookies != "" {
		t.Fatalf("a new tab sees cookies %q", cookies)
	}

	other.Open("/inline")
	other.WaitFor("the CSP report", `true`)
	other.Eval("flush", "1", nil)
	if problems := strings.Join(other.Problems(), "\n"); !strings.Contains(problems, "Content-Security-Policy") && !strings.Contains(problems, "Content Security Policy") {
		t.Fatalf("an inline script under a strict CSP was not reported; problems: %q", problems)
	}
	var title string
	other.Eval("title", "document.title", &title)
	if title == "ran" {
		t.Fatal("the inline script ran despite the CSP")
	}
	third := f.NewTab(t, srv.URL, "third")
	third.Open("/throws")
	third.Eval("flush", "1", nil)
	if problems := strings.Join(third.Problems(), "\n"); !strings.Contains(problems, "boom") {
		t.Fatalf("an uncaught exception was not reported; problems: %q", problems)
	}
}

// The dashboard in Firefox, against the same server and simulated fleet as
// TestDashboardInBrowser (see dashboard_test.go for the fixtures): the
// keyboard order of the sign-in form, sign-in with the forced password
// change, the fleet overview, device search, a running campaign's progress
// arriving over server-sent events, pausing it, and a viewer who cannot.
// Creating a campaign through the form is covered in Chromium only; here
// the campaign is created through the API.
func TestDashboardInFirefox(t *testing.T) {
	step := stepLogger(t)
	addViewer := prepareViewer()
	f := browsertest.StartFirefox(t)
	fe := startFleetServer(t)

	admin := f.NewTab(t, fe.URL, "admin")
	admin.Open("/ui/")
	if loc := admin.Location(); !strings.HasPrefix(loc, "/ui/login") {
		t.Fatalf("signed out, /ui/ went to %s, want the login page", loc)
	}
	admin.Screenshot("login")

	// Keyboard: the name field has the focus on load (autofocus); from the
	// skip link, the first stop of the page, Tab goes through the brand to
	// the name, the password and the submit button.
	admin.WaitFor("the name field focused on load", `document.activeElement === document.getElementById("name")`)
	admin.Focus("a.skip")
	var order []string
	for range 4 {
		admin.Keys("press Tab", browsertest.KeyTab)
		var got string
		admin.Eval("read the focused element", `(e => e.id ? "#" + e.id : e.tagName.toLowerCase() + (e.className ? "." + e.className : "") + (e.type ? "[" + e.type + "]" : ""))(document.activeElement)`, &got)
		order = append(order, got)
	}
	if want := []string{"a.brand", "#name", "#password", "button.primary[submit]"}; strings.Join(order, " ") != strings.Join(want, " ") {
		t.Fatalf("Tab order on the sign-in page from the skip link: %q, want %q", order, want)
	}

	// The first admin signs in with the one-time password and must choose
	// a new one before anything else.
	firefoxSignIn(admin, "admin", fe.AdminPassword, "#new-password")
	if loc := admin.Location(); loc != "/ui/password" {
		t.Fatalf("first sign-in went to %s, want the forced password change", loc)
	}
	const adminPassword = "a long new admin password 42"
	admin.Type("#current", fe.AdminPassword)
	admin.Type("#new-password", adminPassword)
	admin.Type("#again", adminPassword)
	admin.Click(`form[action="/ui/password"] button[type="submit"]`)
	admin.WaitVisible(`p.notice[role="status"]`)
	step("signed in, password changed")

	// The fleet overview, then device search: a bad expression is pointed
	// at its column, a good one lists exactly the matching devices.
	rel, revA := fe.fleetOnOverview(t, admin, step)
	// Typing asks for the match count. A count request that fails (the
	// server restarting, the network gone, or in Firefox a navigation that
	// cuts it short) must not leave an uncaught error in the page.
	// The test's own handler on the page's fetch tells when the failure
	// has reached the page; the page's promise chain is left as it is.
	admin.Eval("watch the count requests", `(() => {
		const fetch = window.fetch;
		window.countFailures = 0;
		window.fetch = (...args) => {
			const p = fetch(...args);
			p.catch(() => { window.countFailures++; });
			return p;
		};
		return true;
	})()`, nil)
	count := admin.HoldRequests("/ui/devices/count")
	admin.Type("#device-search", `hw_rev == A`)
	count.Fail(count.Wait("the match count to be asked for"))
	count.Release()
	admin.WaitFor("the page to see the count request fail", `window.countFailures > 0`)
	admin.CheckConsole()
	admin.Click("#device-search-submit")
	admin.WaitVisible("#device-search-error")
	var col string
	admin.Eval("error column", `document.getElementById("device-search-error").getAttribute("data-column")`, &col)
	if col != "11" {
		t.Fatalf("the search error points at column %q, want 11 (the bare A)", col)
	}
	if caret := admin.Text("#device-search-caret"); !strings.Contains(caret, "hw_rev == A") || !strings.Contains(caret, "column 11") {
		t.Fatalf("caret %q", caret)
	}
	admin.Screenshot("devices-bad-filter")
	admin.Type("#device-search", `hw_rev == "A"`)
	admin.Click("#device-search-submit")
	admin.WaitFor("the results of the good expression", `!document.getElementById("device-search-error") && !!document.getElementById("device-results")`)
	var n int
	admin.Eval("count results", `document.querySelectorAll("#device-results tbody tr").length`, &n)
	if n != revA || revA == 0 {
		t.Fatalf("hw_rev == \"A\" lists %d devices, the fleet has %d of revision A (seed %d)", n, revA, fleetSeed)
	}
	admin.Screenshot("devices")
	step("overview and device search checked")

	// A running campaign, two devices a simulated minute (one every 0.5 s
	// of real time): its page sees it progress.
	body, _ := json.Marshal(map[string]any{
		"name": "firefox rollout", "release": rel.Version, "selector": `device_type == "gw-200"`,
		"plan":   map[string]any{"waves": []float64{50, 100}, "no_control": true},
		"pacing": map[string]any{"per_minute": 2},
		"health": map[string]any{"preset": "relaxed"}, "seed": 7,
	})
	var created struct {
		Campaign store.Campaign `json:"campaign"`
	}
	fe.api(t, http.StatusCreated, "POST", "/campaigns", "application/json", bytes.NewReader(body), &created)
	id := created.Campaign.ID
	fe.api(t, http.StatusOK, "POST", "/campaigns/"+id+"/start", "", nil, nil)

	admin.Open("/ui/campaigns/" + id)
	var initial int
	admin.Eval("devices updated at load", `parseInt(document.getElementById("campaign-progress").getAttribute("data-done"), 10)`, &initial)
	if initial >= fleetSize/2 {
		t.Fatalf("the first wave (%d devices) finished before its page loaded (%d updated): pace the campaign slower", fleetSize/2, initial)
	}
	admin.Eval("mark the page", `window.loadedOnce = true`, nil)
	admin.WaitFor("live updates", `parseInt(document.body.getAttribute("data-updates") || "0", 10) > 0`)
	admin.WaitFor("the live status on", `document.getElementById("live-status").classList.contains("on")`)
	admin.WaitFor("more updated devices on the same page", fmt.Sprintf(
		`window.loadedOnce === true && parseInt(document.getElementById("campaign-progress").getAttribute("data-done"), 10) > %d`, initial))
	step("progress updated live")
	admin.Screenshot("campaign-live")

	admin.Click("#btn-pause")
	admin.WaitVisible("#btn-resume")
	if c := fe.campaign(t, id); c.State != store.CampaignPaused {
		t.Fatalf("after Pause the campaign is %s", c.State)
	}
	admin.Screenshot("campaign-paused")

	// A viewer, in a window with its own cookies, sees the campaign live
	// but no buttons.
	addViewer(t, fe)
	viewer := f.NewTab(t, fe.URL, "viewer")
	viewer.Open("/ui/login")
	firefoxSignIn(viewer, "vera", viewerPassword, "header .who")
	viewer.Open("/ui/campaigns/" + id)
	viewer.WaitVisible("#campaign-progress")
	var buttons int
	viewer.Eval("count buttons", `document.querySelectorAll("#campaign-actions button, #campaign-actions form").length`, &buttons)
	if buttons != 0 {
		t.Fatalf("a viewer is shown %d campaign buttons or forms", buttons)
	}
	if txt := viewer.Text("#campaign-actions"); !strings.Contains(txt, "can watch this campaign but not change it") {
		t.Fatalf("viewer's actions section: %q", txt)
	}
	viewer.WaitFor("the viewer's live view to connect", `document.getElementById("live-status").classList.contains("on")`)
	viewer.Screenshot("campaign-viewer")
	admin.CheckConsole()
	viewer.CheckConsole()
	step("done; screenshots in " + f.Dir)
}

// firefoxSignIn fills in the login form of the page the tab is on, submits
// it and waits for an element of the page after it.
func firefoxSignIn(tab *browsertest.FirefoxTab, name, password, waitFor string) {
	tab.Type("#name", name)
	tab.Type("#password", password)
	tab.Click(`form[action="/ui/login"] button[type="submit"]`)
	tab.WaitVisible(waitFor)
}
