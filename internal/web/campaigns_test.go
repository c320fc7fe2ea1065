package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/web/webtest"
)

func TestCampaignListFilterAndEmptyStates(t *testing.T) {
	t.Parallel()
	e := start(t)
	op := signIn(t, e, "olga", store.RoleOperator)
	r := op.Get("/ui/campaigns")
	r.MustContain(t, "No campaigns yet.", `id="btn-new-campaign"`, `href="/ui/campaigns/new"`)

	id := campaignFleet(t, e, false)
	r = op.Get("/ui/campaigns")
	r.MustContain(t, `href="/ui/campaigns/`+id+`"`, "spring rollout", "2.0.0", "state-running")
	r = op.Get("/ui/campaigns?state=running")
	r.MustContain(t, "spring rollout", `aria-current="page">running<`)
	r = op.Get("/ui/campaigns?state=paused")
	r.MustContain(t, "No campaign is paused.")
	if strings.Contains(r.Body, "spring rollout") {
		t.Fatal("a running campaign is listed under paused")
	}
	if r := op.Get("/ui/campaigns?state=sideways"); r.Status != http.StatusBadRequest {
		t.Fatalf("unknown state: %d", r.Status)
	}

	viewer := signIn(t, e, "vera", store.RoleViewer)
	r = viewer.Get("/ui/campaigns")
	r.MustContain(t, "spring rollout")
	if strings.Contains(r.Body, "btn-new-campaign") {
		t.Fatal("a viewer is offered the New campaign button")
	}

	// Long lists are paginated (drafts stored directly: the list does
	// not care how they were made).
	c, err := e.Store.Campaign(context.Background(), store.DefaultTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 54 {
		d := c
		d.ID, d.Name, d.State, d.StartedAt = "", fmt.Sprintf("batch %02d", i), store.CampaignDraft, nil
		if _, err := e.Store.CreateCampaign(context.Background(), d, store.Actor{Kind: store.ActorSystem, Name: "test"}, e.Clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	r = viewer.Get("/ui/campaigns")
	if n := strings.Count(r.Body, `<tr id="campaign-`); n != 50 {
		t.Fatalf("first page lists %d campaigns, want 50", n)
	}
	m := regexp.MustCompile(`rel="next" href="([^"]+)"`).FindStringSubmatch(r.Body)
	if m == nil {
		t.Fatal("no next page link")
	}
	r = viewer.Get(strings.ReplaceAll(m[1], "&amp;", "&"))
	if n := strings.Count(r.Body, `<tr id="campaign-`); n != 5 {
		t.Fatalf("second page lists %d campaigns, want 5", n)
	}
	if strings.Contains(r.Body, `rel="next"`) {
		t.Fatal("the last page links to a next one")
	}
	r = viewer.Get("/ui/campaigns?state=draft")
	if n := strings.Count(r.Body, `<tr id="campaign-`); n != 50 || strings.Contains(r.Body, "spring rollout") {
		t.Fatalf("draft filter lists %d campaigns", n)
	}
}

func TestCampaignPageShowsSpecWavesAndStrata(t *testing.T) {
	t.Parallel()
	e := start(t)
	id := campaignFleet(t, e, true)
	op := signIn(t, e, "olga", store.RoleOperator)
	r := op.Get("/ui/campaigns/" + id)
	r.MustContain(t, "spring rollout", `id="campaign-progress"`, `id="campaign-status"`, `id="health-gates"`,
		`id="decisions"`, `id="campaign-spec"`, `data-live="/ui/campaigns/`+id+`/live"`, `id="live-status"`,
		"wave 1", "wave 2", `id="wave-0"`, `id="wave-1"`,
		"device_type=gw-200,hw_rev=B", "device_type=gw-200,hw_rev=C",
		"50 % → 100 % (cumulative)", "relaxed preset", `device_type == &#34;gw-200&#34;`,
		`id="btn-start"`, `id="btn-abort"`, "then press Start", "No device is targeted yet")
	for _, absent := range []string{`id="btn-pause"`, `id="btn-resume"`, `id="btn-approve"`} {
		if strings.Contains(r.Body, absent) {
			t.Errorf("a draft offers %s", absent)
		}
	}
	if strings.Contains(r.Body, " style=") || strings.Contains(r.Body, "<script>") {
		t.Fatal("inline style or script")
	}
	// Wave 2 plans its own 4 devices (8 cumulative).
	if !regexp.MustCompile(`(?s)<tr id="wave-1">.*?wave 2.*?<td class="num">4</td>`).MatchString(r.Body) {
		t.Fatal("wave 2 does not plan its own 4 devices")
	}
	op.Get("/ui/campaigns/"+id+"/devices").MustContain(t, "No devices yet.", "when it is started")
	// Start from the page.
	r = op.Post("/ui/campaigns/"+id+"/start", url.Values{})
	if r.Status != http.StatusSeeOther || r.Location != "/ui/campaigns/"+id+"?done=start" {
		t.Fatalf("start: %d %q\n%s", r.Status, r.Location, r.Body)
	}
	r = op.Get(r.Location)
	r.MustContain(t, "state-running", `id="btn-pause"`, `id="btn-approve"`, `id="btn-rollback"`, `data-confirm="Roll back`,
		`data-confirm="Abort`, "Started.")
	if r := op.Get("/ui/campaigns/no-such-campaign"); r.Status != http.StatusNotFound {
		t.Fatalf("unknown campaign: %d", r.Status)
	}
}

func TestCampaignCommandsByRole(t *testing.T) {
	t.Parallel()
	e := start(t)
	id := campaignFleet(t, e, false)
	op := signIn(t, e, "olga", store.RoleOperator)
	viewer := signIn(t, e, "vera", store.RoleViewer)

	// A viewer sees the campaign but no button, and cannot post.
	r := viewer.Get("/ui/campaigns/" + id)
	r.MustContain(t, "spring rollout", "can watch this campaign but not change it")
	if strings.Contains(r.Body, `id="btn-`) {
		t.Fatal("a viewer is shown command buttons")
	}
	if r := viewer.Post("/ui/campaigns/"+id+"/pause", url.Values{}); r.Status != http.StatusForbidden {
		t.Fatalf("viewer pause: %d, want 403", r.Status)
	}
	// An operator without the CSRF token is refused.
	if r := op.PostWithoutCSRF("/ui/campaigns/"+id+"/pause", url.Values{}); r.Status != http.StatusForbidden {
		t.Fatalf("pause without CSRF token: %d, want 403", r.Status)
	}
	assertState(t, e, id, store.CampaignRunning)

	// With the token, pause works.
	op.Get("/ui/campaigns/" + id)
	r = op.Post("/ui/campaigns/"+id+"/pause", url.Values{})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("pause: %d\n%s", r.Status, r.Body)
	}
	assertState(t, e, id, store.CampaignPaused)
	r = op.Get(r.Location)
	r.MustContain(t, "Paused.", "state-paused", `id="btn-resume"`)
	if strings.Contains(r.Body, `id="btn-pause"`) {
		t.Fatal("a paused campaign offers Pause")
	}
	// A command the state no longer allows: the API's refusal is shown.
	r = op.Post("/ui/campaigns/"+id+"/approve", url.Values{})
	if r.Status != http.StatusConflict {
		t.Fatalf("approve a paused campaign: %d, want 409", r.Status)
	}
	r.MustContain(t, `id="campaign-error"`, "is paused; it cannot be approved")
	if r := op.Post("/ui/campaigns/"+id+"/explode", url.Values{}); r.Status != http.StatusNotFound {
		t.Fatalf("unknown command: %d", r.Status)
	}
	// Abort takes a reason, which is kept.
	r = op.Post("/ui/campaigns/"+id+"/abort", url.Values{"reason": {"wrong selector"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("abort: %d\n%s", r.Status, r.Body)
	}
	c := assertState(t, e, id, store.CampaignAborted)
	if c.StateReason != "wrong selector" {
		t.Fatalf("abort reason %q", c.StateReason)
	}
}

func assertState(t *testing.T, e *webtest.Env, id string, want store.CampaignState) store.Campaign {
	t.Helper()
	c, err := e.Store.Campaign(context.Background(), store.DefaultTenant, id)
	if err != nil {
		t.Fatal(err)
	}
	if c.State != want {
		t.Fatalf("campaign state %s, want %s", c.State, want)
	}
	return c
}

// sseEvent is one "replace" event of a live view.
type sseEvent struct {
	ID   string `json:"id"`
	HTML string `json:"html"`
}

// openLive connects to a live view with the browser's session and returns
// its replace events on a channel.
func openLive(t *testing.T, e *webtest.Env, b *webtest.Browser, path string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.AddCookie(&http.Cookie{Name: "updraft_session", Value: b.Cookie("updraft_session").Value})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		cancel()
		t.Fatalf("live view: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 64)
	done := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
		<-done
	})
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "replace":
				var ev sseEvent
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev) == nil {
					select {
					case ch <- ev:
					case <-ctx.Done():
						return
					}
				}
			case line == "":
				event = ""
			}
		}
	}()
	return ch
}

// TestCampaignLiveProgress watches the live view while the rollout engine
// (on the server's fake clock) draws the targets and dispatches the first
// wave: the progress fragment is sent again with the new counts.
func TestCampaignLiveProgress(t *testing.T) {
	t.Parallel()
	e := start(t)
	id := campaignFleet(t, e, false)
	b := signIn(t, e, "vera", store.RoleViewer)
	ch := openLive(t, e, b, "/ui/campaigns/"+id+"/live")

	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	seen := map[string]string{}
	// The first frame has every fragment.
	for len(seen) < 4 {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("live view closed early")
			}
			seen[ev.ID] = ev.HTML
		case <-deadline.C:
			t.Fatalf("the first frame has only %v", keys(seen))
		}
	}
	for _, id := range []string{"campaign-status", "campaign-actions", "campaign-progress", "health-gates"} {
		if _, ok := seen[id]; !ok {
			t.Fatalf("first frame lacks fragment %s; got %v", id, keys(seen))
		}
	}
	first := seen["campaign-progress"]
	if !strings.Contains(first, `data-total="0"`) || !strings.Contains(first, "No device is targeted yet") {
		t.Fatalf("progress before the engine ran:\n%s", first)
	}
	if strings.Contains(seen["campaign-actions"], `id="btn-`) {
		t.Fatal("the live view shows a viewer command buttons")
	}
	// Let the engine tick (on the fake clock) until the counts change.
	changed := awaitProgress(t, e, ch, func(html string) bool { return html != first })
	if !strings.Contains(changed, `id="campaign-progress"`) || strings.Contains(changed, `data-total="0"`) {
		t.Fatalf("changed progress fragment:\n%s", changed)
	}
	if !strings.Contains(changed, "device_type=gw-200,hw_rev=B") || !regexp.MustCompile(`(assigned|queued) <b>\d+</b>`).MatchString(changed) {
		t.Fatalf("progress lacks the strata counts:\n%s", changed)
	}

	// The campaign's devices are listed by state.
	r := b.Get("/ui/campaigns/" + id + "/devices")
	if n := strings.Count(r.Body, `<tr id="cd-`); n != 8 {
		t.Fatalf("lists %d devices, want 8", n)
	}
	r.MustContain(t, "device_type=gw-200,hw_rev=B", "wave 1")
	r = b.Get("/ui/campaigns/" + id + "/devices?state=failed")
	r.MustContain(t, "No device of this campaign is failed.")
	if r := b.Get("/ui/campaigns/" + id + "/devices?state=melted"); r.Status != http.StatusBadRequest {
		t.Fatalf("unknown state: %d", r.Status)
	}
	r = b.Get("/ui/campaigns/" + id)
	r.MustContain(t, `id="campaign-devices-link"`, `/ui/campaigns/`+id+`/devices?state=`)
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestCampaignDecisionsAndGates stores engine decisions the way the
// rollout engine does and checks that the page explains each one, newest
// first and paginated, and charts each gate's statistic against its
// threshold.
func TestCampaignDecisionsAndGates(t *testing.T) {
	t.Parallel()
	e := start(t)
	id := campaignFleet(t, e, false)
	// Paused, the engine stores no decisions of its own meanwhile.
	e.API(t, 200, "POST", "/campaigns/"+id+"/pause", nil, nil)
	ctx := context.Background()
	for i := range 25 {
		tests := []health.TestResult{
			{Metric: "soak", Method: health.MethodSoak, Outcome: health.Continuing, Statistic: float64(i), Threshold: 12,
				Explanation: "The wave has soaked for a while."},
			{Metric: "install", Stratum: "device_type=gw-200,hw_rev=B", Label: "gw-200 rev B", Method: health.MethodSPRT,
				Outcome: health.Continuing, Statistic: 0.1 * float64(i), Threshold: 4.6, Explanation: fmt.Sprintf("install evidence %d", i)},
			{Metric: "crash", Stratum: "device_type=gw-200,hw_rev=B", Label: "gw-200 rev B", Method: health.MethodMixture,
				Outcome: health.Skipped, Explanation: "no telemetry"},
		}
		detail, err := json.Marshal(map[string]any{"tests": tests, "alpha": 0.005})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Store.UpdateCampaign(ctx, store.DefaultTenant, id, store.CampaignUpdate{
			Decision: &store.CampaignDecision{Step: 0, Verdict: "hold", Action: "hold",
				Summary: fmt.Sprintf("Hold: decision number %d.", i), Detail: detail},
			Now: e.Clock.Now().Add(time.Duration(i) * time.Hour),
		}); err != nil {
			t.Fatal(err)
		}
	}
	b := signIn(t, e, "vera", store.RoleViewer)
	r := b.Get("/ui/campaigns/" + id)
	r.MustContain(t, "Hold: decision number 24.", "Hold: decision number 5.", "install evidence 24",
		`id="gate-0"`, `id="gate-1"`, "Soak time (hours)", "gw-200 rev B · install failures", `class="threshold"`, "halts at 4.6", "passes at 12")
	if strings.Contains(r.Body, "Hold: decision number 4.") {
		t.Fatal("the first page shows more than 20 decisions")
	}
	if strings.Contains(r.Body, "crash rate") {
		t.Fatal("a test that never had evidence is charted")
	}
	if i, j := strings.Index(r.Body, "decision number 24."), strings.Index(r.Body, "decision number 23."); i < 0 || j < i {
		t.Fatal("decisions are not newest first")
	}
	m := regexp.MustCompile(`rel="next" href="([^"]+)"`).FindStringSubmatch(r.Body)
	if m == nil {
		t.Fatal("no next page of decisions")
	}
	if !strings.HasPrefix(m[1], "/ui/campaigns/"+id+"?after=") {
		t.Fatalf("next page of decisions at %q", m[1])
	}
	r = b.Get(strings.ReplaceAll(m[1], "&amp;", "&"))
	r.MustContain(t, "Hold: decision number 4.", "Hold: decision number 0.")
	if strings.Contains(r.Body, "decision number 5.") {
		t.Fatal("the second page repeats decisions")
	}
}

// awaitProgress advances the server's fake clock one engine tick at a time
// until the live view sends a progress fragment for which ok holds, and
// returns it. Every wait is bounded by real time.
func awaitProgress(t *testing.T, e *webtest.Env, ch <-chan sseEvent, ok func(html string) bool) string {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		e.Clock.Advance(5 * time.Second)
		wait := time.NewTimer(3 * time.Second)
		select {
		case ev, open := <-ch:
			wait.Stop()
			if !open {
				t.Fatal("live view closed early")
			}
			if ev.ID == "campaign-progress" && ok(ev.HTML) {
				return ev.HTML
			}
		case <-wait.C:
		case <-deadline.C:
			wait.Stop()
			t.Fatal("the progress fragment did not reach the expected state within 20 s")
		}
	}
}
