package browsertest_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/sim"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/web/browsertest"
	"github.com/updraft/updraft/internal/web/webtest"
)

// The dashboard in a real browser, against a real server with a simulated
// fleet of real agents (internal/sim) on an accelerated clock: sign-in with
// the forced password change, the fleet overview, device search, creating
// a campaign through the form, its progress arriving live over server-sent
// events, pausing it, a viewer who cannot, and a post without the CSRF
// token. Every main page is saved as a screenshot (see the test log for
// the folder).

const (
	// fleetSize devices run the agent against the server.
	fleetSize = 12
	// speed of the simulated clock. The dashboard's sessions last 12 h of
	// server time, 12 minutes of real time at 60×.
	speed = 60
	// seed of the fleet (hardware, regions, keys, faults).
	fleetSeed = 11
)

// fleetEnv is the server, its clock and the running fleet.
type fleetEnv struct {
	*webtest.Env
	clock *sim.Accelerated
	fleet *sim.Fleet
}

func startFleetServer(t *testing.T) *fleetEnv {
	t.Helper()
	// The simulated time starts at the real time: the browser judges the
	// session cookie's expiry, which the server sets from its own clock,
	// against the real one.
	clk := sim.NewAccelerated(clock.Real{}.Now().UTC().Truncate(time.Minute), speed)
	e := webtest.StartWith(t, webtest.Options{Clock: clk, Timing: server.Timing{
		PollInterval: time.Minute, // 1 s of real time
		// A tick every 30 simulated seconds; the lease outlasts a slow
		// tick under -race by a minute of real time.
		EngineInterval: 30 * time.Second, EngineLeaseTTL: time.Hour,
	}})
	return &fleetEnv{Env: e, clock: clk}
}

// runFleet starts the simulated devices (preauthorized, so accepted at
// enrollment) and waits until all of them have checked in.
func (fe *fleetEnv) runFleet(t *testing.T) {
	t.Helper()
	p := sim.DefaultProfile()
	p.PollInterval = sim.Duration(time.Minute)
	ctx := context.Background()
	admin := store.Actor{Kind: store.ActorSystem, Name: "browser test"}
	f, err := sim.New(sim.Config{
		ServerURL: fe.URL, Devices: fleetSize, Profile: p, Clock: fe.clock, Seed: fleetSeed,
		// 30 s of real time for a new image to reach the server before the
		// agent rolls it back (its own default is 10 simulated minutes): a
		// busy CI machine must not turn healthy updates into rollbacks.
		ServerWindow: 30 * speed * time.Second,
		Preauthorize: func(ctx context.Context, pub ed25519.PublicKey, _ string) error {
			pk, err := identity.NewPublicKey(pub)
			if err != nil {
				return err
			}
			c := pk.Credential()
			_, err = fe.Store.PreauthorizeKey(ctx, store.Credential{TenantID: store.DefaultTenant, Kind: store.CredentialKind(c.Kind),
				Algorithm: c.Algorithm, Fingerprint: c.Fingerprint, Material: c.Material}, admin, fe.clock.Now())
			return err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Preauthorize(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- f.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		<-ran
	})
	fe.fleet = f
	fe.await(t, "every device enrolled and its version known to the server", 2*time.Hour, func() bool {
		if f.Stats().Enrolled < fleetSize {
			return false
		}
		byVersion, err := fe.Store.CountDevicesBy(ctx, store.DefaultTenant, nil, store.CountByVersion)
		return err == nil && byVersion[p.InitialVersion] == fleetSize
	})
}

// await polls cond on the simulated clock, failing after budget of
// simulated time.
func (fe *fleetEnv) await(t *testing.T, what string, budget time.Duration, cond func() bool) {
	t.Helper()
	end := fe.clock.Now().Add(budget)
	for !cond() {
		if fe.clock.Now().After(end) {
			t.Fatalf("%s: not reached within %v of simulated time (seed %d): %+v", what, budget, fleetSeed, fe.fleet.Stats())
		}
		clock.Sleep(fe.clock, 15*time.Second, nil)
	}
}

// api calls the management API as the first admin with the body's content
// type given (webtest.Env.APIRequest).
func (fe *fleetEnv) api(t *testing.T, want int, method, path, ctype string, body io.Reader, out any) {
	t.Helper()
	fe.APIRequest(t, want, method, path, ctype, body, out)
}

// publish uploads one image for every revision of the default profile and
// publishes the release.
func (fe *fleetEnv) publish(t *testing.T, version string) store.Release {
	t.Helper()
	var rel store.Release
	fe.API(t, http.StatusCreated, "POST", "/releases", map[string]any{"version": version, "severity": "medium", "notes": "browser test release"}, &rel)
	img := make([]byte, 64<<10)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(img)
	fe.api(t, http.StatusCreated, "PUT", "/releases/"+rel.ID+"/artifacts?device_type=gw-200&hw_revs=A,B,C&type=raw-image&component=rootfs&name=gw-200-"+version+".img",
		"application/octet-stream", bytes.NewReader(img), nil)
	fe.API(t, http.StatusOK, "POST", "/releases/"+rel.ID+"/publish", nil, &rel)
	return rel
}

func (fe *fleetEnv) campaign(t *testing.T, id string) store.Campaign {
	t.Helper()
	c, err := fe.Store.Campaign(context.Background(), store.DefaultTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signIn signs in through the login form and waits for the page after it.
func signIn(tab *browsertest.Tab, name, password, waitFor string) {
	tab.Open("/ui/login")
	tab.Do("sign in as "+name,
		chromedp.SendKeys(chromedp.ID("name"), name),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS(`form[action="/ui/login"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(waitFor)),
	)
}

// postStatus posts a form from the page with fetch, as a forged or
// tampered request would, and returns the status.
func postStatus(tab *browsertest.Tab, path, body string) int {
	js := fmt.Sprintf(`fetch(%q, {method: "POST", credentials: "same-origin", redirect: "manual",
		headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: %s}).then(r => r.status)`, path, body)
	return browsertest.Run(tab, "post "+path, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
}

// anyTab is what the shared steps need of a tab, in Chromium or Firefox.
type anyTab interface {
	Open(path string)
	WaitFor(what, expr string)
	Screenshot(name string) string
}

// fleetOnOverview runs the simulated fleet, publishes 2.0.0 for it, checks
// that the fleet overview counts the devices by state and installed
// version, and opens the device list with every device on it. It returns
// the release and how many devices are of revision A.
func (fe *fleetEnv) fleetOnOverview(t *testing.T, admin anyTab, step func(string)) (store.Release, int) {
	t.Helper()
	fe.runFleet(t)
	step(fmt.Sprintf("%d simulated devices checked in", fleetSize))
	rel := fe.publish(t, "2.0.0")

	admin.Open("/ui/")
	admin.WaitFor("the overview to count the fleet", fmt.Sprintf(`(document.getElementById("overview-total") || {}).textContent === "%d"`, fleetSize))
	admin.WaitFor("the overview's versions chart to show the fleet's 1.0.0", `(document.getElementById("overview-versions") || {textContent: ""}).textContent.includes("1.0.0")`)
	admin.Screenshot("overview")

	revA := 0
	for _, d := range fe.fleet.Devices() {
		if d.Identity.HWRev == "A" {
			revA++
		}
	}
	admin.Open("/ui/devices")
	admin.WaitFor("every device listed", fmt.Sprintf(`document.querySelectorAll("#device-results tbody tr").length === %d`, fleetSize))
	return rel, revA
}

// viewerPassword is the password of the viewer "vera" that the browser
// tests sign in as.
const viewerPassword = "the viewer's password 12"

// prepareViewer hashes viewerPassword in the background (that takes
// seconds under -race, so tests start it first) and returns the function
// that creates the viewer "vera" with it.
func prepareViewer() func(t *testing.T, fe *fleetEnv) {
	hashed := make(chan string, 1)
	go func() {
		h, err := auth.HashPassword(viewerPassword, auth.DefaultArgon2Params())
		if err != nil {
			h = "error: " + err.Error()
		}
		hashed <- h
	}()
	return func(t *testing.T, fe *fleetEnv) {
		t.Helper()
		hash := <-hashed
		if strings.HasPrefix(hash, "error: ") {
			t.Fatal(hash)
		}
		now := fe.clock.Now()
		if _, err := fe.Store.CreateUser(context.Background(), store.User{TenantID: store.DefaultTenant, ID: "usr_vera", Name: "vera",
			Role: store.RoleViewer, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}, store.Actor{Kind: store.ActorSystem, Name: "browser test"}, now); err != nil {
			t.Fatal(err)
		}
	}
}

// stepLogger returns a function that logs a step of the test with the
// seconds since the test began.
func stepLogger(t *testing.T) func(what string) {
	began := clock.Real{}.Now()
	return func(what string) {
		t.Logf("%6.1f s  %s", clock.Since(clock.Real{}, began).Seconds(), what)
	}
}

func TestDashboardInBrowser(t *testing.T) {
	step := stepLogger(t)
	addViewer := prepareViewer()
	b := browsertest.Start(t)
	fe := startFleetServer(t)

	// The first admin signs in with the one-time password and must choose
	// a new one before anything else.
	admin := b.NewTab(t, fe.URL, "admin")
	admin.Open("/ui/")
	if loc := admin.Location(); !strings.HasPrefix(loc, "/ui/login") {
		t.Fatalf("signed out, /ui/ went to %s, want the login page", loc)
	}
	admin.Screenshot("login")
	signIn(admin, "admin", fe.AdminPassword, "#new-password")
	if loc := admin.Location(); loc != "/ui/password" {
		t.Fatalf("first sign-in went to %s, want the forced password change", loc)
	}
	admin.Screenshot("password-forced")
	admin.Open("/ui/campaigns") // any page sends the admin back until the password is changed
	if loc := admin.Location(); loc != "/ui/password" {
		t.Fatalf("before the password change /ui/campaigns went to %s", loc)
	}
	const adminPassword = "a long new admin password 42"
	admin.Do("change the one-time password",
		chromedp.SendKeys(chromedp.ID("current"), fe.AdminPassword),
		chromedp.SendKeys(chromedp.ID("new-password"), adminPassword),
		chromedp.SendKeys(chromedp.ID("again"), adminPassword),
		chromedp.Click(chromedp.CSS(`form[action="/ui/password"] button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`p.notice[role="status"]`)),
	)
	step("signed in, password changed")

	// The fleet overview, then device search: a bad expression is pointed
	// at its column, a good one lists exactly the matching devices.
	rel, revA := fe.fleetOnOverview(t, admin, step)
	admin.Do("search with a bad expression",
		chromedp.SendKeys(chromedp.ID("device-search"), `hw_rev == A`),
		chromedp.Click(chromedp.ID("device-search-submit")),
		chromedp.WaitVisible(chromedp.ID("device-search-error")),
	)
	if col := browsertest.Run(admin, "error column", chromedp.AttributeValue(chromedp.ID("device-search-error"), "data-column")); col.Value != "11" {
		t.Fatalf("the search error points at column %q, want 11 (the bare A)", col.Value)
	}
	if caret := admin.Text("#device-search-caret"); !strings.Contains(caret, "hw_rev == A") || !strings.Contains(caret, "column 11") {
		t.Fatalf("caret %q", caret)
	}
	admin.Screenshot("devices-bad-filter")
	admin.Do("search with a good expression",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("device-search").value = ""`),
		chromedp.SendKeys(chromedp.ID("device-search"), `hw_rev == "A"`),
		chromedp.Click(chromedp.ID("device-search-submit")),
		chromedp.WaitVisible(chromedp.ID("device-results")),
	)
	if n := browsertest.Run(admin, "count results", chromedp.Evaluate[int](`document.querySelectorAll("#device-results tbody tr").length`)); n != revA || revA == 0 {
		t.Fatalf("hw_rev == \"A\" lists %d devices, the fleet has %d of revision A (seed %d)", n, revA, fleetSeed)
	}
	admin.Screenshot("devices")
	admin.Do("open a device",
		chromedp.Click(chromedp.CSS(`#device-results tbody tr a`)),
		chromedp.WaitVisible(chromedp.ID("device-facts")),
	)
	admin.Screenshot("device")
	step("overview and device search checked")

	admin.Open("/ui/campaigns")
	admin.Screenshot("campaigns-empty")

	// Create a campaign through the form: the preview counts the matching
	// devices per stratum as the selector is typed.
	admin.Open("/ui/campaigns/new")
	if v := browsertest.Run(admin, "chosen release", chromedp.Value(chromedp.ID("f-release"))); v != rel.ID {
		t.Fatalf("the form chose release %q, want the newest published %s", v, rel.ID)
	}
	admin.Do("fill in the campaign",
		chromedp.SendKeys(chromedp.ID("f-name"), "browser rollout"),
		chromedp.SendKeys(chromedp.ID("f-selector"), `hw_rev == "Q"`),
	)
	admin.WaitFor("the preview to find nothing for rev Q", `(document.querySelector("#campaign-preview #match-count .stat") || {}).textContent === "0"`)
	admin.Do("widen the selector",
		chromedp.Evaluate[chromedp.Void](`document.getElementById("f-selector").value = ""`),
		chromedp.SendKeys(chromedp.ID("f-selector"), `device_type == "gw-200"`),
	)
	admin.WaitFor("the preview to count the whole fleet", fmt.Sprintf(`(document.querySelector("#campaign-preview #match-count .stat") || {}).textContent === "%d"`, fleetSize))
	strata := admin.Text("#strata-counts")
	if !strings.Contains(strata, "device_type=gw-200, hw_rev=A") {
		t.Fatalf("the preview's strata lack rev A:\n%s", strata)
	}
	// Two waves, no control group, two devices a simulated minute (one
	// every 0.5 s of real time: the first wave takes seconds, so the page
	// sees it progress), the fast preset, start right away.
	admin.Do("choose the plan",
		chromedp.SetValue(chromedp.ID("f-waves"), "50, 100"),
		chromedp.SetValue(chromedp.ID("f-control"), "0"),
		chromedp.SetValue(chromedp.ID("f-per-minute"), "2"),
		chromedp.Click(chromedp.ID("f-preset-relaxed")),
		chromedp.Click(chromedp.ID("f-start-now")),
	)
	admin.WaitFor("the preview of the plan", `(document.querySelector("#campaign-preview") || {}).textContent.includes("Control group 0 %") &&
		document.querySelector("#plan-steps").textContent.includes("wave 2")`)
	admin.Screenshot("campaign-new")
	admin.Do("create the campaign",
		chromedp.Click(chromedp.ID("btn-create")),
		chromedp.WaitVisible(chromedp.ID("campaign-progress")),
	)
	loc := admin.Location()
	id := strings.TrimPrefix(strings.SplitN(loc, "?", 2)[0], "/ui/campaigns/")
	if c := fe.campaign(t, id); c.Name != "browser rollout" || c.State != store.CampaignRunning {
		t.Fatalf("campaign at %s: %+v", loc, c)
	}
	step("campaign created and started through the form")

	// Its progress arrives over server-sent events: the page is not
	// reloaded, yet more devices show up as updated than when it loaded.
	initial := browsertest.Run(admin, "devices updated at load",
		chromedp.Evaluate[int](`parseInt(document.getElementById("campaign-progress").getAttribute("data-done"), 10)`))
	if initial >= fleetSize/2 {
		t.Fatalf("the first wave (%d devices) finished before its page loaded (%d updated): pace the campaign slower", fleetSize/2, initial)
	}
	admin.Do("mark the page", chromedp.Evaluate[chromedp.Void](`window.loadedOnce = true`))
	admin.WaitFor("live updates", `parseInt(document.body.getAttribute("data-updates") || "0", 10) > 0`)
	admin.WaitFor("more updated devices on the same page", fmt.Sprintf(
		`window.loadedOnce === true && parseInt(document.getElementById("campaign-progress").getAttribute("data-done"), 10) > %d`, initial))
	step("progress updated live")
	admin.Screenshot("campaign-live")

	// Pause it.
	admin.Do("pause", chromedp.Click(chromedp.ID("btn-pause")), chromedp.WaitVisible(chromedp.ID("btn-resume")))
	if c := fe.campaign(t, id); c.State != store.CampaignPaused {
		t.Fatalf("after Pause the campaign is %s", c.State)
	}
	admin.Screenshot("campaign-paused")

	// A post without the CSRF token is refused, even from the signed-in
	// admin's own page.
	if st := postStatus(admin, "/ui/campaigns/"+id+"/resume", `""`); st != http.StatusForbidden {
		t.Fatalf("resume without a CSRF token: status %d, want 403", st)
	}
	if c := fe.campaign(t, id); c.State != store.CampaignPaused {
		t.Fatalf("a post without a CSRF token resumed the campaign (%s)", c.State)
	}

	// A viewer sees the campaign but no buttons, and a forged post with
	// the viewer's own valid CSRF token is refused for the role.
	addViewer(t, fe)
	viewer := b.NewTab(t, fe.URL, "viewer")
	signIn(viewer, "vera", viewerPassword, "header .who")
	viewer.Open("/ui/campaigns/" + id)
	viewer.WaitFor("the campaign page", `!!document.getElementById("campaign-progress")`)
	if n := browsertest.Run(viewer, "count buttons", chromedp.Evaluate[int](`document.querySelectorAll("#campaign-actions button, #campaign-actions form").length`)); n != 0 {
		t.Fatalf("a viewer is shown %d campaign buttons or forms", n)
	}
	if txt := viewer.Text("#campaign-actions"); !strings.Contains(txt, "can watch this campaign but not change it") {
		t.Fatalf("viewer's actions section: %q", txt)
	}
	viewer.WaitFor("the viewer's live view to connect", `document.getElementById("live-status").classList.contains("on")`)
	viewer.Screenshot("campaign-viewer")
	forged := `new URLSearchParams({csrf: document.querySelector('input[name="csrf"]').value})`
	if st := postStatus(viewer, "/ui/campaigns/"+id+"/resume", forged); st != http.StatusForbidden {
		t.Fatalf("a viewer's forged resume: status %d, want 403", st)
	}
	if st := postStatus(viewer, "/ui/campaigns/new", forged); st != http.StatusForbidden {
		t.Fatalf("a viewer's forged campaign: status %d, want 403", st)
	}
	if c := fe.campaign(t, id); c.State != store.CampaignPaused {
		t.Fatalf("a viewer's post changed the campaign (%s)", c.State)
	}
	step("viewer and CSRF refusals checked")

	// The other main pages, for the reviewer.
	for _, p := range []struct{ path, name, wait string }{
		{"/ui/", "overview-campaign", "#overview-campaigns"},
		{"/ui/campaigns", "campaigns", "#campaigns"},
		{"/ui/releases", "releases", "#releases"},
		{"/ui/releases/" + rel.ID, "release", "#release-facts"},
		{"/ui/audit", "audit", "#audit"},
		{"/ui/reports", "reports", "#report-form"},
	} {
		admin.Open(p.path)
		admin.Do("wait for "+p.name, chromedp.WaitVisible(chromedp.CSS(p.wait)))
		admin.Screenshot(p.name)
	}
	admin.CheckConsole()
	viewer.CheckConsole()
	step("done; screenshots in " + b.Dir)
}
