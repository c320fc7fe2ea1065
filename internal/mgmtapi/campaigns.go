package mgmtapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/webhook"
)

// Campaign routes: create (checked up front, with a preview), list, show
// with per-step progress and the latest decision, decisions, devices, and
// the operator commands. Commands only change the stored campaign (each
// audited); the rollout engine's leader acts on them at its next tick.

// campaignRoutes are appended to the route table.
func (a *API) campaignRoutes() []Route {
	p := func(s string) string { return Prefix + s }
	page := []string{"limit", "after"}
	rs := []Route{
		{"POST", p("/campaigns"), ActionWrite, nil, a.createCampaign},
		{"POST", p("/campaigns/preview"), ActionWrite, nil, a.previewCampaign},
		{"POST", p("/campaigns/preflight"), ActionWrite, []string{"runs", "seed", "regress"}, a.preflightCampaign},
		{"GET", p("/campaigns"), ActionRead, append([]string{"state"}, page...), a.listCampaigns},
		{"GET", p("/campaigns/{id}"), ActionRead, nil, a.getCampaign},
		{"GET", p("/campaigns/{id}/decisions"), ActionRead, page, a.campaignDecisions},
		{"GET", p("/campaigns/{id}/devices"), ActionRead, append([]string{"state"}, page...), a.campaignDevices},

		{"POST", p("/webhooks"), ActionAdmin, nil, a.createWebhook},
		{"GET", p("/webhooks"), ActionAdmin, nil, a.listWebhooks},
		{"DELETE", p("/webhooks/{id}"), ActionAdmin, nil, a.deleteWebhook},
		{"GET", p("/webhooks/{id}/deliveries"), ActionAdmin, page, a.webhookDeliveries},
	}
	for _, cmd := range []string{"start", "pause", "resume", "abort", "retry", "approve", "finalize", "rollback"} {
		rs = append(rs, Route{"POST", p("/campaigns/{id}/" + cmd), ActionWrite, nil, a.campaignCommand(cmd)})
	}
	return rs
}

const maxCampaignBody = 64 << 10

// problemsError answers a campaign that cannot start with 400 and the list.
func problemsError(err error) error {
	var ps campaign.Problems
	if errors.As(err, &ps) {
		e := apierror.New(http.StatusBadRequest, "invalid_campaign", "%s", ps.Error())
		e.Details = map[string]any{"problems": ps}
		return e
	}
	return err
}

func (a *API) decodeSpec(w http.ResponseWriter, r *http.Request) (campaign.Spec, error) {
	var s campaign.Spec
	if err := decodeBody(w, r, maxCampaignBody, &s); err != nil {
		return s, err
	}
	return s, nil
}

func (a *API) createCampaign(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.decodeSpec(w, r)
	if err != nil {
		return err
	}
	cp, pv, err := campaign.Create(r.Context(), a.store, c.tenant(), s, c.actor, a.now())
	if err != nil {
		return problemsError(err)
	}
	return created(w, campaignCreated{Campaign: cp, Preview: answerPreview(pv)})
}

func (a *API) previewCampaign(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.decodeSpec(w, r)
	if err != nil {
		return err
	}
	pv, err := campaign.Check(r.Context(), a.store, c.tenant(), s)
	var ps campaign.Problems
	if err != nil && !errors.As(err, &ps) {
		return err
	}
	return ok(w, answerPreview(pv))
}

func (a *API) listCampaigns(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	q := store.CampaignQuery{Page: p}
	if s := r.URL.Query().Get("state"); s != "" {
		for _, st := range strings.Split(s, ",") {
			if !store.CampaignState(st).Known() {
				return apierror.New(http.StatusBadRequest, "bad_parameter", "state %q is not a campaign state", st)
			}
			q.States = append(q.States, store.CampaignState(st))
		}
	}
	items, next, err := a.store.ListCampaigns(r.Context(), c.tenant(), q)
	if err != nil {
		return err
	}
	writeList(w, items, next)
	return nil
}

func (a *API) getCampaign(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	id := r.PathValue("id")
	cp, err := a.store.Campaign(ctx, c.tenant(), id)
	if err != nil {
		return fmt.Errorf("campaign %s: %w", id, err)
	}
	tallies, err := a.store.CampaignTallies(ctx, c.tenant(), id)
	if err != nil {
		return err
	}
	ds, _, err := a.store.ListCampaignDecisions(ctx, c.tenant(), id, store.Page{Limit: 1})
	if err != nil {
		return err
	}
	plan, _ := campaign.PlanOf(cp)
	rt, _ := campaign.RuntimeOf(cp)
	out := campaignDetail{Campaign: cp, Steps: stepProgress(plan, tallies), Tallies: nonNil(tallies), HaltedStrata: nonNil(rt.HaltedStrata),
		Rollbacks: nonNil(rt.Rollbacks)}
	if len(ds) > 0 {
		out.LastDecision = &ds[0]
	}
	return ok(w, out)
}

func (a *API) campaignDecisions(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	items, next, err := a.store.ListCampaignDecisions(r.Context(), c.tenant(), id, p)
	if err != nil {
		return fmt.Errorf("decisions of campaign %s: %w", id, err)
	}
	writeList(w, items, next)
	return nil
}

func (a *API) campaignDevices(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if _, err := a.store.Campaign(r.Context(), c.tenant(), id); err != nil {
		return fmt.Errorf("campaign %s: %w", id, err)
	}
	items, next, err := a.store.ListCampaignDevices(r.Context(), c.tenant(), id, store.CampaignDeviceState(r.URL.Query().Get("state")), p)
	if err != nil {
		return err
	}
	writeList(w, items, next)
	return nil
}

// campaignCommand serves POST /campaigns/{id}/{cmd}; abort and rollback
// take an optional reason.
func (a *API) campaignCommand(cmd string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *caller) error {
		var req struct {
			Reason string `json:"reason"`
		}
		if err := decodeOptionalBody(w, r, maxBody, &req); err != nil {
			return err
		}
		if len(req.Reason) > maxReasonLen {
			return apierror.BadRequest("reason is longer than %d bytes", maxReasonLen)
		}
		ctx, id, by, now := r.Context(), r.PathValue("id"), c.actor, a.now()
		var (
			cp  store.Campaign
			err error
		)
		switch cmd {
		case "start":
			cp, err = campaign.Start(ctx, a.store, c.tenant(), id, by, now)
		case "pause":
			cp, err = campaign.Pause(ctx, a.store, c.tenant(), id, by, now)
		case "resume":
			cp, err = campaign.Resume(ctx, a.store, c.tenant(), id, by, now)
		case "abort":
			cp, err = campaign.Abort(ctx, a.store, c.tenant(), id, req.Reason, by, now)
		case "retry":
			cp, err = campaign.Retry(ctx, a.store, c.tenant(), id, by, now)
		case "approve":
			cp, err = campaign.Approve(ctx, a.store, c.tenant(), id, by, now)
		case "finalize":
			cp, err = campaign.Finalize(ctx, a.store, c.tenant(), id, by, now)
		case "rollback":
			cp, err = campaign.Rollback(ctx, a.store, c.tenant(), id, req.Reason, by, now)
		}
		if err != nil {
			return problemsError(fmt.Errorf("%s campaign %s: %w", cmd, id, err))
		}
		return ok(w, cp)
	}
}

func (a *API) createWebhook(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		URL    string   `json:"url"`
		Secret string   `json:"secret"`
		Events []string `json:"events"`
	}
	if err := decodeBody(w, r, maxBody, &req); err != nil {
		return err
	}
	known := append(webhook.Events(), "*")
	for _, e := range req.Events {
		found := false
		for _, k := range known {
			found = found || k == e
		}
		if !found {
			return apierror.BadRequest("unknown webhook event %q (known: %s)", e, strings.Join(known, ", "))
		}
	}
	wh, err := a.store.CreateWebhook(r.Context(), store.Webhook{TenantID: c.tenant(), URL: req.URL, Secret: req.Secret, Events: req.Events}, c.actor, a.now())
	if err != nil {
		return err
	}
	return created(w, wh)
}

func (a *API) listWebhooks(w http.ResponseWriter, r *http.Request, c *caller) error {
	items, err := a.store.ListWebhooks(r.Context(), c.tenant())
	if err != nil {
		return err
	}
	writeList(w, items, "")
	return nil
}

func (a *API) deleteWebhook(w http.ResponseWriter, r *http.Request, c *caller) error {
	id := r.PathValue("id")
	if err := a.store.DeleteWebhook(r.Context(), c.tenant(), id, c.actor, a.now()); err != nil {
		return fmt.Errorf("webhook %s: %w", id, err)
	}
	return noContent(w)
}

func (a *API) webhookDeliveries(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	items, next, err := a.store.ListWebhookDeliveries(r.Context(), c.tenant(), id, p)
	if err != nil {
		return fmt.Errorf("deliveries of webhook %s: %w", id, err)
	}
	writeList(w, items, next)
	return nil
}

// campaignCreated answers POST /campaigns.
type campaignCreated struct {
	Campaign store.Campaign `json:"campaign"`
	Preview  previewAnswer  `json:"preview"`
}

// previewAnswer is a campaign preview as the API answers it.
type previewAnswer struct {
	campaign.Preview
	// PreflightMaxRuns is the most runs per scenario POST
	// /campaigns/preflight accepts for the previewed fleet, so that a
	// client can offer only sizes that will run.
	PreflightMaxRuns int `json:"preflight_max_runs"`
}

// answerPreview is pv as the API answers it.
func answerPreview(pv campaign.Preview) previewAnswer {
	pv = previewView(pv)
	return previewAnswer{Preview: pv, PreflightMaxRuns: preflightMaxRuns(len(pv.Strata))}
}

// previewView makes the preview's lists [] rather than null.
func previewView(pv campaign.Preview) campaign.Preview {
	pv.Problems = nonNil(pv.Problems)
	pv.Warnings = nonNil(pv.Warnings)
	pv.Hardware = nonNil(pv.Hardware)
	pv.Plan.Steps = nonNil(pv.Plan.Steps)
	if pv.Strata == nil {
		pv.Strata = map[string]int{}
	}
	if pv.Plan.Strata == nil {
		pv.Plan.Strata = map[string]int{}
	}
	pv.Release = releaseView(pv.Release)
	return pv
}

// stepView is one step's progress: devices by campaign state.
type stepView struct {
	Index   int            `json:"index"`
	Name    string         `json:"name"`
	Kind    string         `json:"kind"`
	Planned int            `json:"planned"`
	Devices map[string]int `json:"devices"`
}

// campaignDetail is GET /campaigns/{id}.
type campaignDetail struct {
	store.Campaign
	Steps        []stepView              `json:"steps"`
	Tallies      []store.CampaignTally   `json:"tallies"`
	HaltedStrata []string                `json:"halted_strata"`
	Rollbacks    []string                `json:"rollbacks"`
	LastDecision *store.CampaignDecision `json:"last_decision,omitempty"`
}

// stepProgress groups the tallies by step; the control group comes last.
func stepProgress(plan campaign.Resolved, tallies []store.CampaignTally) []stepView {
	out := []stepView{}
	for i, s := range plan.Steps {
		out = append(out, stepView{Index: i, Name: s.Name, Kind: s.Kind, Planned: s.Planned, Devices: map[string]int{}})
	}
	control := stepView{Index: store.ControlStep, Name: "control", Kind: "control", Devices: map[string]int{}}
	for _, t := range tallies {
		switch {
		case t.Step == store.ControlStep:
			control.Devices[string(t.State)] += t.N
			control.Planned += t.N
		case t.Step >= 0 && t.Step < len(out):
			out[t.Step].Devices[string(t.State)] += t.N
		}
	}
	if control.Planned > 0 {
		out = append(out, control)
	}
	return out
}
