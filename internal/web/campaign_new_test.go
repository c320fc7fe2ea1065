package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/web/webtest"
)

// newCampaignFleet enrolls six gw-200 devices of rev B and two of rev C
// and publishes release 3.1.0 for both revisions (and a draft 3.2.0).
func newCampaignFleet(t *testing.T) (*newCampaignSetup, *webtest.Browser) {
	t.Helper()
	e := start(t)
	for i := range 8 {
		rev := "B"
		if i >= 6 {
			rev = "C"
		}
		enroll(t, e, fmt.Sprintf("NC-%03d", i), "gw-200", rev)
	}
	rel := makeRelease(t, e, "3.1.0", "gw-200", []string{"B", "C"}, false)
	makeRelease(t, e, "3.2.0", "gw-200", []string{"B"}, true)
	return &newCampaignSetup{e: e, rel: rel}, signIn(t, e, "olga", store.RoleOperator)
}

type newCampaignSetup struct {
	e   *webtest.Env
	rel store.Release
}

func TestCampaignNewFormPreviewsPerStratum(t *testing.T) {
	t.Parallel()
	er, op := newCampaignFleet(t)
	r := op.Get("/ui/campaigns/new")
	if r.Status != http.StatusOK {
		t.Fatalf("status %d\n%s", r.Status, r.Body)
	}
	r.MustContain(t, `id="campaign-form"`, `data-preview-url="/ui/campaigns/preview"`,
		`<option value="`+er.rel.ID+`" selected>3.1.0`, // the newest published release is chosen
		`name="csrf"`, `id="f-preset-strict"`, `id="f-preset-relaxed"`,
		// the preset figures come from campaign.Health.Policy
		"halts on a 1.5× install-failure regression", "each wave soaks at least 48 h",
		// the preview of "every device" is rendered with the page
		`id="strata-counts"`, "device_type=gw-200, hw_rev=B", "device_type=gw-200, hw_rev=C")
	if strings.Contains(r.Body, ">3.2.0") {
		t.Fatal("a draft release is offered")
	}
	// A release's page links here with its version; the other fields keep
	// their defaults.
	r = op.Get("/ui/campaigns/new?release=3.1.0")
	r.MustContain(t, `<option value="`+er.rel.ID+`" selected>3.1.0`, `name="control" value="1"`,
		`name="strata" value="hw_rev" checked`, `id="f-preset-standard" checked`)

	// The live preview as the selector is typed: per-stratum counts.
	q := url.Values{"release": {er.rel.ID}, "selector": {`hw_rev == "B"`}, "strata": {"device_type", "hw_rev"}}
	r = op.Get("/ui/campaigns/preview?" + q.Encode())
	r.MustContain(t, `id="campaign-preview"`, `<span class="stat">6</span> accepted devices match`,
		"device_type=gw-200, hw_rev=B</td><td class=\"num\">6<", `id="plan-steps"`, `id="preview-ok"`)
	if strings.Contains(r.Body, "hw_rev=C") || strings.Contains(r.Body, "<html") {
		t.Fatalf("the fragment lists rev C or is a whole page:\n%s", r.Body)
	}
	// Stratified by region instead.
	q.Set("strata", "region")
	r = op.Get("/ui/campaigns/preview?" + q.Encode())
	r.MustContain(t, "region=eu-west</td><td class=\"num\">6<")
	// A selector that matches nothing says why the campaign could not start.
	q.Set("selector", `hw_rev == "Z"`)
	r = op.Get("/ui/campaigns/preview?" + q.Encode())
	r.MustContain(t, `<span class="stat">0</span> accepted devices match`, `id="preview-problems"`, "matches no accepted device")
	// A broken selector.
	q.Set("selector", `hw_rev == B`)
	r = op.Get("/ui/campaigns/preview?" + q.Encode())
	r.MustContain(t, `id="preview-problems"`, "selector")
}

func TestCampaignNewCreatesAndStarts(t *testing.T) {
	t.Parallel()
	er, op := newCampaignFleet(t)
	op.Get("/ui/campaigns/new")
	form := url.Values{
		"name": {"rev B first"}, "release": {er.rel.ID}, "selector": {`device_type == "gw-200"`},
		"strata": {"device_type", "hw_rev"}, "staging": {"lab=serial == \"NC-000\""},
		"waves": {"50, 100"}, "control": {"0"}, "per_minute": {"30"}, "windows": {"01:00/4h,sat,sun"},
		"start_at": {"2026-06-01T10:00"}, "preset": {"relaxed"}, "on_failure": {"rollback"},
		"start_now": {"on"},
	}
	r := op.Post("/ui/campaigns/new", form)
	if r.Status != http.StatusSeeOther {
		t.Fatalf("create: status %d\n%s", r.Status, r.Body)
	}
	m := regexp.MustCompile(`^/ui/campaigns/([^/?]+)\?done=start$`).FindStringSubmatch(r.Location)
	if m == nil {
		t.Fatalf("create went to %q", r.Location)
	}
	c, err := er.e.Store.Campaign(context.Background(), store.DefaultTenant, m[1])
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "rev B first" || c.State != store.CampaignRunning || c.ReleaseID != er.rel.ID {
		t.Fatalf("campaign %+v", c)
	}
	spec := string(c.Spec)
	for _, want := range []string{`"staging":[{"name":"lab","selector":"serial == \"NC-000\""}]`, `"waves":[50,100]`,
		`"no_control":true`, `"per_minute":30`, `"start":"2026-06-01T10:00:00Z"`, `"days":[6,0]`, `"start":"01:00"`,
		`"duration":"4h0m0s"`, `"preset":"relaxed"`, `"action":"rollback"`} {
		if !strings.Contains(spec, want) {
			t.Errorf("spec lacks %s:\n%s", want, spec)
		}
	}
	// Without start_now the campaign stays a draft.
	op.Get("/ui/campaigns/new")
	form.Set("name", "kept as draft")
	form.Del("start_now")
	r = op.Post("/ui/campaigns/new", form)
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Location, "/ui/campaigns/") || strings.Contains(r.Location, "?") {
		t.Fatalf("draft: status %d to %q", r.Status, r.Location)
	}
	d, err := er.e.Store.Campaign(context.Background(), store.DefaultTenant, strings.TrimPrefix(r.Location, "/ui/campaigns/"))
	if err != nil {
		t.Fatal(err)
	}
	if d.State != store.CampaignDraft {
		t.Fatalf("state %s, want draft", d.State)
	}
}

func TestCampaignNewShowsProblemsAtTheirFields(t *testing.T) {
	t.Parallel()
	er, op := newCampaignFleet(t)
	op.Get("/ui/campaigns/new")
	// Problems the form finds itself: nothing is sent to the API.
	r := op.Post("/ui/campaigns/new", url.Values{
		"name": {"typo"}, "release": {er.rel.ID}, "selector": {`hw_rev == "B"`},
		"waves": {"5, ten, 100"}, "windows": {"02:00/3h,someday"}, "staging": {"no equals sign"},
	})
	if r.Status != http.StatusBadRequest {
		t.Fatalf("status %d", r.Status)
	}
	r.MustContain(t, `id="form-problems"`, `id="err-waves"`, `&#34;ten&#34; is not a percentage`,
		`id="err-windows"`, `day &#34;someday&#34;`, `id="err-staging"`, "write NAME=SELECTOR",
		// the inputs are kept
		`value="typo"`, `value="5, ten, 100"`, `>no equals sign</textarea>`, `value="hw_rev == &#34;B&#34;"`)

	// Problems the API finds: a selector with a syntax error is pointed at
	// its column; one that matches nothing is explained at the selector.
	op.Get("/ui/campaigns/new")
	r = op.Post("/ui/campaigns/new", url.Values{"name": {"broken"}, "release": {er.rel.ID}, "selector": {`hw_rev == B`}})
	if r.Status != http.StatusBadRequest {
		t.Fatalf("status %d", r.Status)
	}
	r.MustContain(t, `id="err-selector"`, `<span class="caret">hw_rev == B`+"\n"+`          ^</span>`, "column 11", `aria-invalid="true"`)
	op.Get("/ui/campaigns/new")
	r = op.Post("/ui/campaigns/new", url.Values{"name": {"nobody"}, "release": {er.rel.ID}, "selector": {`hw_rev == "Z"`}})
	r.MustContain(t, `id="err-selector"`, "matches no accepted device", `value="nobody"`)
	// Nothing was created.
	items, _, err := er.e.Store.ListCampaigns(context.Background(), store.DefaultTenant, store.CampaignQuery{Page: store.Page{Limit: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 0 {
		t.Fatalf("%d campaigns were created from invalid forms", len(items))
	}
}

func TestCampaignNewAccess(t *testing.T) {
	t.Parallel()
	er, op := newCampaignFleet(t)
	viewer := signIn(t, er.e, "vera", store.RoleViewer)
	for _, p := range []string{"/ui/campaigns/new", "/ui/campaigns/preview?release=" + er.rel.ID} {
		if r := viewer.Get(p); r.Status != http.StatusForbidden {
			t.Fatalf("viewer GET %s: %d", p, r.Status)
		}
	}
	viewer.Get("/ui/campaigns")
	form := url.Values{"name": {"sneaky"}, "release": {er.rel.ID}, "start_now": {"on"}}
	if r := viewer.Post("/ui/campaigns/new", form); r.Status != http.StatusForbidden {
		t.Fatalf("viewer POST: %d", r.Status)
	}
	// An operator's post without the CSRF token is refused.
	if r := op.PostWithoutCSRF("/ui/campaigns/new", form); r.Status != http.StatusForbidden || !strings.Contains(r.Body, "did not come from this dashboard") {
		t.Fatalf("post without CSRF: %d", r.Status)
	}
	items, _, err := er.e.Store.ListCampaigns(context.Background(), store.DefaultTenant, store.CampaignQuery{Page: store.Page{Limit: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 0 {
		t.Fatalf("%d campaigns were created by refused posts", len(items))
	}
}

func TestCampaignNewWithoutReleases(t *testing.T) {
	t.Parallel()
	e := start(t)
	op := signIn(t, e, "olga", store.RoleOperator)
	r := op.Get("/ui/campaigns/new")
	r.MustContain(t, "No published release to roll out.", `href="/ui/releases"`)
	if strings.Contains(r.Body, `id="campaign-form"`) {
		t.Fatal("the form is offered without a release to roll out")
	}
}

func TestCampaignNewPreflight(t *testing.T) {
	t.Parallel()
	er, op := newCampaignFleet(t)
	op.Get("/ui/campaigns/new")
	form := url.Values{"name": {""}, "release": {er.rel.ID}, "selector": {`device_type == "gw-200"`},
		"strata": {"device_type", "hw_rev"}, "waves": {"25, 100"}, "control": {"0"}, "preset": {"standard"}, "runs": {"20"}}
	r := op.Post("/ui/campaigns/new/preflight", form)
	if r.Status != http.StatusOK {
		t.Fatalf("pre-flight: status %d\n%s", r.Status, r.Body)
	}
	r.MustContain(t, `id="campaign-preflight"`, `id="preflight-scenarios"`, "20 simulated runs per scenario over a twin of the 8 targeted devices",
		`<tr class="scenario-good"><td>good</td>`, `<tr class="scenario-regression"><td>3× fleet-wide</td>`,
		`value="25, 100"`, "Nothing was created.")
	items, _, err := er.e.Store.ListCampaigns(context.Background(), store.DefaultTenant, store.CampaignQuery{Page: store.Page{Limit: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 0 {
		t.Fatalf("a pre-flight created %d campaigns", len(items))
	}
	// A plan the API refuses is explained, not simulated.
	op.Get("/ui/campaigns/new")
	form.Set("selector", `hw_rev == "Z"`)
	r = op.Post("/ui/campaigns/new/preflight", form)
	if r.Status != http.StatusBadRequest {
		t.Fatalf("refused pre-flight: status %d", r.Status)
	}
	r.MustContain(t, "The pre-flight could not run.", `id="err-selector"`, "matches no accepted device")
	if strings.Contains(r.Body, `id="campaign-preflight"`) {
		t.Fatal("figures shown for a refused pre-flight")
	}
	// A size that is not a number is refused before the API is asked.
	op.Get("/ui/campaigns/new")
	form.Set("selector", "")
	form.Set("runs", "many")
	r = op.Post("/ui/campaigns/new/preflight", form)
	r.MustContain(t, `id="err-runs"`, "want a whole number of at least 1")
}

// TestCampaignNewPreflightRunsFitTheFleet checks that the form offers and
// sends only pre-flight sizes the API accepts for the previewed fleet: in
// seven strata (one per revision) at most 6,600 / 8 = 825 runs, not the
// 1,000 a fleet in few strata may have.
func TestCampaignNewPreflightRunsFitTheFleet(t *testing.T) {
	t.Parallel()
	e := start(t)
	revs := []string{"A", "B", "C", "D", "E", "F", "G"}
	for i, rev := range revs {
		enroll(t, e, fmt.Sprintf("RF-%03d", i), "gw-200", rev)
	}
	rel := makeRelease(t, e, "3.1.0", "gw-200", revs, false)
	op := signIn(t, e, "olga", store.RoleOperator)

	options := regexp.MustCompile(`<option value="(\d*)"[^>]*>([^<]*)</option>`)
	offered := func(body string) []string {
		i := strings.Index(body, `id="f-runs"`)
		if i < 0 {
			t.Fatalf("no runs select:\n%s", body)
		}
		j := strings.Index(body[i:], "</select>")
		var vs []string
		for _, m := range options.FindAllStringSubmatch(body[i:i+j], -1) {
			vs = append(vs, m[1]+" "+m[2])
		}
		return vs
	}
	q := url.Values{"release": {rel.Version}, "selector": {`device_type == "gw-200"`}, "strata": {"hw_rev"}, "waves": {"50, 100"}, "control": {"0"}}
	r := op.Get("/ui/campaigns/new?" + q.Encode())
	r.MustContain(t, `id="preflight-max-runs"`, "(7 strata) runs at most 825 runs per scenario")
	want := []string{"50 50 runs per scenario (quick)", " 200 runs per scenario", "825 825 runs per scenario (the most this fleet allows; finer, slower)"}
	if got := offered(r.Body); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("seven strata: offered %q, want %q", got, want)
	}
	// One stratum allows the API's cap.
	q.Set("strata", "device_type")
	r = op.Get("/ui/campaigns/new?" + q.Encode())
	if got := offered(r.Body); len(got) != 3 || got[2] != "1000 1,000 runs per scenario (the most this fleet allows; finer, slower)" {
		t.Errorf("one stratum: offered %q", got)
	}
	// Sent for seven strata, runs that do not fit are not sent as asked
	// (TestFitRuns has the rule); a size that is not a number is a
	// problem at the field, and the API is not asked.
	form := url.Values{"name": {""}, "release": {rel.ID}, "selector": {`device_type == "gw-200"`},
		"strata": {"hw_rev"}, "waves": {"50, 100"}, "control": {"0"}, "preset": {"standard"}, "runs": {"0"}}
	r = op.Post("/ui/campaigns/new/preflight", form)
	if r.Status != http.StatusBadRequest {
		t.Fatalf("zero runs: status %d", r.Status)
	}
	r.MustContain(t, `id="err-runs"`, "want a whole number of at least 1", `id="preflight-max-runs"`)
}
