package mgmtapi

import (
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/store"
)

// campaignFixture holds campaigns of the fixture's published release in
// the states the commands need (one per command that changes the state,
// so that running every route in turn still finds each as it needs), and
// a webhook.
type campaignFixture struct {
	draft, abortable, running, pausable, paused, rollbackable string
	webhook, deletable                                        string
}

func (f *campaignFixture) ids() []string {
	return []string{f.draft, f.abortable, f.running, f.pausable, f.paused, f.rollbackable, f.webhook, f.deletable}
}

func (e *env) newCampaign(name string) string {
	e.t.Helper()
	var out campaignCreated
	e.must(201, req{token: e.operator, method: "POST", path: "/campaigns", body: map[string]any{"name": name, "release": "1.0.0", "allow_bad": true}}).decode(e.t, &out)
	return out.Campaign.ID
}

func (e *env) campaignFixture(fixture) *campaignFixture {
	e.t.Helper()
	f := &campaignFixture{draft: e.newCampaign("draft"), abortable: e.newCampaign("abortable"), running: e.newCampaign("running"),
		pausable: e.newCampaign("pausable"), paused: e.newCampaign("paused"), rollbackable: e.newCampaign("rollbackable")}
	for _, id := range []string{f.running, f.pausable, f.paused, f.rollbackable} {
		e.must(200, req{token: e.operator, method: "POST", path: "/campaigns/" + id + "/start"})
	}
	e.must(200, req{token: e.operator, method: "POST", path: "/campaigns/" + f.paused + "/pause"})
	for _, id := range []*string{&f.webhook, &f.deletable} {
		var w store.Webhook
		e.must(201, req{token: e.admin, method: "POST", path: "/webhooks", body: map[string]any{
			"url": "https://hooks.example.com/updraft", "secret": "0123456789abcdef", "events": []string{"campaign.halted"},
		}}).decode(e.t, &w)
		*id = w.ID
	}
	return f
}

// campaignRequestFor builds requests for the campaign and webhook routes.
func (e *env) campaignRequestFor(rt Route, fx fixture) (req, bool) {
	f := fx.cmp
	spec := map[string]any{"name": "another", "release": "1.0.0", "allow_bad": true}
	path := strings.TrimPrefix(rt.Pattern, Prefix)
	with := func(id string) string { return strings.ReplaceAll(path, "{id}", id) }
	switch rt.Method + " " + path {
	case "POST /campaigns", "POST /campaigns/preview":
		return req{method: rt.Method, path: path, body: spec}, true
	case "GET /campaigns", "GET /webhooks":
		return req{method: rt.Method, path: path}, true
	case "GET /campaigns/{id}", "GET /campaigns/{id}/decisions", "GET /campaigns/{id}/devices",
		"POST /campaigns/{id}/retry", "POST /campaigns/{id}/approve", "POST /campaigns/{id}/finalize":
		return req{method: rt.Method, path: with(f.running)}, true
	case "POST /campaigns/{id}/pause":
		return req{method: rt.Method, path: with(f.pausable)}, true
	case "POST /campaigns/{id}/rollback":
		return req{method: rt.Method, path: with(f.rollbackable)}, true
	case "POST /campaigns/{id}/start":
		return req{method: rt.Method, path: with(f.draft)}, true
	case "POST /campaigns/{id}/abort":
		return req{method: rt.Method, path: with(f.abortable)}, true
	case "POST /campaigns/{id}/resume":
		return req{method: rt.Method, path: with(f.paused)}, true
	case "POST /webhooks":
		return req{method: rt.Method, path: path, body: map[string]any{"url": "https://h.example.com/x", "secret": "fedcba9876543210", "events": []string{"*"}}}, true
	case "GET /webhooks/{id}/deliveries":
		return req{method: rt.Method, path: with(f.webhook)}, true
	case "DELETE /webhooks/{id}":
		return req{method: rt.Method, path: with(f.deletable)}, true
	}
	return req{}, false
}

// TestCampaignLifecycleThroughTheAPI creates, previews, starts, pauses,
// resumes, approves and aborts a campaign; problems come back before
// start; every command is audited.
func TestCampaignLifecycleThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.fixture()

	var pv struct {
		Targets  int            `json:"targets"`
		Strata   map[string]int `json:"strata"`
		Problems []struct{ Field, Message string }
	}
	e.must(200, req{token: e.operator, method: "POST", path: "/campaigns/preview", body: map[string]any{"name": "p", "release": "1.0.0", "strata": []string{"hw_rev"}}}).decode(t, &pv)
	if pv.Targets != 1 || pv.Strata["hw_rev=B"] != 1 || len(pv.Problems) != 0 {
		t.Fatalf("preview %+v, want 1 target in hw_rev=B and no problems", pv)
	}

	id := e.newCampaign("life")
	e.must(200, req{token: e.operator, method: "POST", path: "/campaigns/" + id + "/start"})
	// Refused up front: a revision the release has no artifact for, a
	// staging wave that matches nobody.
	e.enroll("REV-D-1", "gw-200", "D", true)
	r := e.must(400, req{token: e.operator, method: "POST", path: "/campaigns", body: map[string]any{
		"name": "bad", "release": "1.0.0",
		"plan": map[string]any{"staging": []map[string]any{{"name": "lab", "selector": "tag:nosuchtag"}}},
	}})
	if code := r.errorCode(t); code != "invalid_campaign" || !strings.Contains(string(r.body), "rev D") || !strings.Contains(string(r.body), "can never be approved") {
		t.Fatalf("bad campaign: %s %s", code, r.body)
	}

	for _, cmd := range []string{"pause", "resume", "approve", "retry", "abort"} {
		e.must(200, req{token: e.operator, method: "POST", path: "/campaigns/" + id + "/" + cmd})
	}
	e.must(409, req{token: e.operator, method: "POST", path: "/campaigns/" + id + "/resume"})
	var detail struct {
		State string `json:"state"`
		Steps []struct {
			Name string `json:"name"`
		} `json:"steps"`
	}
	e.must(200, req{token: e.viewer, method: "GET", path: "/campaigns/" + id}).decode(t, &detail)
	if detail.State != "aborted" || len(detail.Steps) == 0 {
		t.Fatalf("detail %+v, want aborted with steps", detail)
	}
	entries, _, err := e.st.ListAudit(t.Context(), store.DefaultTenant, store.AuditQuery{ObjectType: "campaign", ObjectID: id, Page: store.Page{Limit: 100}})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, en := range entries {
		actions = append(actions, en.Action)
	}
	for _, want := range []string{"campaign.create", "campaign.start", "campaign.pause", "campaign.resume", "campaign.approve", "campaign.retry", "campaign.abort"} {
		if !strings.Contains(strings.Join(actions, ","), want) {
			t.Errorf("audit lacks %s: %v", want, actions)
		}
	}
}
