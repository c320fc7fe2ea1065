package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/store"
)

// Campaign pages: the list (filtered by state, paginated), the detail with
// the spec, live progress per wave and stratum, the health gates over
// time, every engine decision, and the operator commands. Everything comes
// from the management API; the commands are the API's, which decides
// whether the campaign's state allows them.

func (u *UI) campaignRoutes() []route {
	return []route{
		{http.MethodGet, "campaigns", signedIn, u.campaignList},
		{http.MethodGet, "campaigns/{id}", signedIn, u.campaignPage},
		{http.MethodGet, "campaigns/{id}/live", signedIn, u.campaignLive},
		{http.MethodGet, "campaigns/{id}/devices", signedIn, u.campaignDevices},
		{http.MethodPost, "campaigns/{id}/{command}", write, u.campaignCommand},
	}
}

// campaignStates are the states the list filters by, in lifecycle order.
var campaignStates = []store.CampaignState{
	store.CampaignDraft, store.CampaignRunning, store.CampaignWaitingApproval, store.CampaignPaused,
	store.CampaignHalted, store.CampaignCompleted, store.CampaignAborted,
}

const campaignListLimit = 50

type campaignListView struct {
	State   string
	States  []store.CampaignState
	Items   []store.Campaign
	NextURL string
}

func (u *UI) campaignList(w http.ResponseWriter, r *http.Request, s *Session) error {
	q := url.Values{"limit": {strconv.Itoa(campaignListLimit)}}
	state := r.URL.Query().Get("state")
	if state != "" {
		if !store.CampaignState(state).Known() {
			return &APIError{Status: http.StatusBadRequest, Code: "bad_parameter",
				Message: fmt.Sprintf("%q is not a campaign state.", state)}
		}
		q.Set("state", state)
	}
	if after := r.URL.Query().Get("after"); after != "" {
		q.Set("after", after)
	}
	var out struct {
		Items []store.Campaign `json:"items"`
		Next  string           `json:"next"`
	}
	if err := s.API().Do(r.Context(), http.MethodGet, "/campaigns", q, nil, &out); err != nil {
		return err
	}
	return u.render(w, r, s, http.StatusOK, "campaigns.html", "Campaigns", campaignListView{
		State: state, States: campaignStates, Items: out.Items, NextURL: nextPage(r, out.Next),
	})
}

// apiCampaign is GET /campaigns/{id}.
type apiCampaign struct {
	store.Campaign
	Steps []struct {
		Index   int            `json:"index"`
		Name    string         `json:"name"`
		Kind    string         `json:"kind"`
		Planned int            `json:"planned"`
		Devices map[string]int `json:"devices"`
	} `json:"steps"`
	Tallies      []store.CampaignTally   `json:"tallies"`
	HaltedStrata []string                `json:"halted_strata"`
	Rollbacks    []string                `json:"rollbacks"`
	LastDecision *store.CampaignDecision `json:"last_decision"`
}

// cdStateOrder orders the campaign device states in bars and tables:
// done, in progress, waiting, then the ways a device drops out.
var cdStateOrder = []store.CampaignDeviceState{
	store.CDSucceeded, store.CDAssigned, store.CDQueued, store.CDFailed, store.CDRolledBack,
	store.CDTimedOut, store.CDCanceled, store.CDSuperseded, store.CDSkipped, store.CDExcluded,
}

// cdCount is how many devices are in one state.
type cdCount struct {
	State string
	N     int
}

// progressRow is one wave or stratum: its devices by state and a bar.
type progressRow struct {
	Name     string
	Kind     string
	Planned  int
	Total    int
	Done     int // succeeded
	Counts   []cdCount
	Bar      template.HTML
	Current  bool
	Approval bool
	Halted   bool
	ID       string // stable element id
}

type progressView struct {
	Waves    []progressRow
	Strata   []progressRow
	Total    progressRow
	Targeted bool
}

// gateChart is one health gate's statistic over the stored decisions.
type gateChart struct {
	ID          string
	Title       string
	Method      string
	Outcome     string
	Statistic   float64
	Threshold   float64
	Explanation string
	Chart       LineChart
}

// engineDecision is one stored engine decision.
type engineDecision struct {
	Seq     int64
	At      time.Time
	Step    string
	Verdict string
	Action  string
	Summary string
	Tests   []health.TestResult
	Alpha   float64
}

// campaignCommandView is an operator command the campaign's state allows.
type campaignCommandView struct {
	Name    string
	Label   string
	Help    string
	Danger  bool
	Confirm string
	Reason  bool // takes an optional reason
}

type campaignView struct {
	C          apiCampaign
	Spec       []specFact
	SpecErr    string
	Progress   progressView
	Gates      []gateChart
	Decisions  []engineDecision
	NextURL    string
	Commands   []campaignCommandView
	Notice     string
	Error      string
	LiveURL    string
	StepName   string
	Finalized  bool
	IsRollback bool
}

// specFact is one line of the spec summary.
type specFact struct {
	Label string
	Value string
	Href  string
}

const (
	decisionsPerPage = 20
	// gateDecisions bounds the decisions the gate charts are drawn from
	// (the newest ones).
	gateDecisions = store.MaxPageLimit
)

func (u *UI) campaignPage(w http.ResponseWriter, r *http.Request, s *Session) error {
	v, err := u.loadCampaign(r.Context(), s, r.PathValue("id"), true)
	if err != nil {
		return err
	}
	if err := u.loadDecisions(r, s, &v); err != nil {
		return err
	}
	if cmd := r.URL.Query().Get("done"); cmd != "" {
		v.Notice = commandNotice(cmd)
	}
	return u.render(w, r, s, http.StatusOK, "campaign.html", "Campaign "+v.C.Name, v)
}

// loadCampaign reads a campaign and builds everything but the decision
// list; gates adds the health-gate charts.
func (u *UI) loadCampaign(ctx context.Context, s *Session, id string, gates bool) (campaignView, error) {
	var v campaignView
	if err := s.API().Do(ctx, http.MethodGet, "/campaigns/"+url.PathEscape(id), nil, nil, &v.C); err != nil {
		return v, err
	}
	v.LiveURL = Prefix + "campaigns/" + url.PathEscape(v.C.ID) + "/live"
	v.Finalized = v.C.FinalizedAt != nil
	v.IsRollback = v.C.Kind == store.CampaignKindRollback
	plan, _ := campaign.PlanOf(v.C.Campaign)
	spec, err := campaign.FromCampaign(v.C.Campaign)
	if err != nil {
		v.SpecErr = "The stored spec could not be read."
	} else {
		v.Spec = specFacts(v.C.Campaign, spec, plan)
	}
	v.StepName = campaignStepName(v.C.Campaign, plan)
	v.Progress = campaignProgress(v.C, plan)
	v.Commands = allowedCommands(v.C.Campaign)
	if gates {
		var out struct {
			Items []store.CampaignDecision `json:"items"`
		}
		if err := s.API().Do(ctx, http.MethodGet, "/campaigns/"+url.PathEscape(v.C.ID)+"/decisions",
			url.Values{"limit": {strconv.Itoa(gateDecisions)}}, nil, &out); err != nil {
			return v, err
		}
		v.Gates = gateCharts(out.Items)
	}
	return v, nil
}

// loadDecisions reads one page of decisions, newest first.
func (u *UI) loadDecisions(r *http.Request, s *Session, v *campaignView) error {
	q := url.Values{"limit": {strconv.Itoa(decisionsPerPage)}}
	if after := r.URL.Query().Get("after"); after != "" {
		q.Set("after", after)
	}
	var out struct {
		Items []store.CampaignDecision `json:"items"`
		Next  string                   `json:"next"`
	}
	if err := s.API().Do(r.Context(), http.MethodGet, "/campaigns/"+url.PathEscape(v.C.ID)+"/decisions", q, nil, &out); err != nil {
		return err
	}
	plan, _ := campaign.PlanOf(v.C.Campaign)
	for _, d := range out.Items {
		v.Decisions = append(v.Decisions, engineDecisionOf(d, plan))
	}
	// The campaign page's own URL: a command's error page renders this
	// list at the command's path, and a notice should not repeat.
	if out.Next != "" {
		v.NextURL = Prefix + "campaigns/" + url.PathEscape(v.C.ID) + "?" + url.Values{"after": {out.Next}}.Encode()
	}
	return nil
}

// storedDecisionDetail is the part of a stored decision's detail the page shows.
type storedDecisionDetail struct {
	Tests []health.TestResult `json:"tests"`
	Alpha float64             `json:"alpha"`
}

func engineDecisionOf(d store.CampaignDecision, plan campaign.Resolved) engineDecision {
	dv := engineDecision{Seq: d.Seq, At: d.At, Step: campaignStepLabel(d.Step, plan), Verdict: d.Verdict, Action: d.Action, Summary: d.Summary}
	var det storedDecisionDetail
	if len(d.Detail) > 0 && json.Unmarshal(d.Detail, &det) == nil {
		dv.Tests, dv.Alpha = det.Tests, det.Alpha
	}
	return dv
}

func campaignStepLabel(step int, plan campaign.Resolved) string {
	switch {
	case step == store.ControlStep:
		return "control group"
	case step >= 0 && step < len(plan.Steps):
		return plan.Steps[step].Name
	case step == len(plan.Steps) && step > 0:
		return "control phase"
	}
	return "step " + strconv.Itoa(step+1)
}

func campaignStepName(c store.Campaign, plan campaign.Resolved) string {
	if c.State == store.CampaignDraft {
		return "not started"
	}
	return campaignStepLabel(c.Step, plan)
}

// campaignProgress groups the campaign's tallies by wave and by stratum.
func campaignProgress(c apiCampaign, plan campaign.Resolved) progressView {
	var pv progressView
	halted := map[string]bool{}
	for _, h := range c.HaltedStrata {
		halted[h] = true
	}
	total := map[string]int{}
	for _, st := range c.Steps {
		row := progressRow{Name: st.Name, Kind: st.Kind, Planned: st.Planned, ID: "wave-" + strconv.Itoa(st.Index)}
		if st.Index == store.ControlStep {
			row.ID = "wave-control"
		}
		if st.Index >= 0 && st.Index < len(plan.Steps) {
			row.Approval = plan.Steps[st.Index].Approval
			// A production wave's planned size is cumulative; the row
			// shows the wave's own devices.
			if st.Index > plan.Staging {
				row.Planned = max(st.Planned-plan.Steps[st.Index-1].Planned, 0)
			}
		}
		row.Current = c.State != store.CampaignDraft && !c.State.Terminal() &&
			(st.Index == c.Step || (st.Index == store.ControlStep && c.Step >= len(plan.Steps)))
		fillProgressRow(&row, st.Devices)
		pv.Waves = append(pv.Waves, row)
	}
	strata := map[string]map[string]int{}
	var keys []string
	for _, t := range c.Tallies {
		if strata[t.Stratum] == nil {
			strata[t.Stratum] = map[string]int{}
			keys = append(keys, t.Stratum)
		}
		strata[t.Stratum][string(t.State)] += t.N
		total[string(t.State)] += t.N
	}
	for k := range plan.Strata {
		if strata[k] == nil {
			strata[k] = map[string]int{}
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for i, k := range keys {
		row := progressRow{Name: k, Planned: plan.Strata[k], Halted: halted[k] || halted["*"], ID: "stratum-" + strconv.Itoa(i)}
		if k == "" {
			row.Name = "(all devices)"
		}
		fillProgressRow(&row, strata[k])
		pv.Strata = append(pv.Strata, row)
	}
	pv.Total = progressRow{Name: "all devices", Planned: plan.Targets, ID: "campaign-total"}
	fillProgressRow(&pv.Total, total)
	pv.Targeted = len(c.Tallies) > 0
	return pv
}

func fillProgressRow(row *progressRow, counts map[string]int) {
	for _, st := range cdStateOrder {
		if n := counts[string(st)]; n > 0 {
			row.Counts = append(row.Counts, cdCount{State: string(st), N: n})
			row.Total += n
		}
	}
	// States the page does not know yet still count.
	for st, n := range counts {
		if n > 0 && !slices.Contains(cdStateOrder, store.CampaignDeviceState(st)) {
			row.Counts = append(row.Counts, cdCount{State: st, N: n})
			row.Total += n
		}
	}
	row.Done = counts[string(store.CDSucceeded)]
	row.Bar = stateBar(row.Counts, max(row.Total, row.Planned))
}

// stateBar draws a row's devices by state as one bar of width scale
// devices; the rest of the bar (planned but not yet targeted) stays empty.
func stateBar(counts []cdCount, scale int) template.HTML {
	const w, h = 360, 14
	var b strings.Builder
	title := make([]string, 0, len(counts))
	for _, c := range counts {
		title = append(title, fmt.Sprintf("%d %s", c.N, c.State))
	}
	if len(title) == 0 {
		title = append(title, "no devices yet")
	}
	fmt.Fprintf(&b, `<svg class="chart stacked" role="img" viewBox="0 0 %d %d" width="%d" height="%d"><title>%s</title>`,
		w, h, w, h, html.EscapeString(strings.Join(title, ", ")))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" class="seg-empty"></rect>`, w, h)
	x := 0.0
	for _, c := range counts {
		if scale <= 0 {
			break
		}
		sw := float64(w) * float64(c.N) / float64(scale)
		fmt.Fprintf(&b, `<rect x="%.1f" y="0" width="%.1f" height="%d" class="seg seg-%s"><title>%d %s</title></rect>`,
			x, math.Max(sw, 1), h, html.EscapeString(c.State), c.N, html.EscapeString(c.State))
		x += sw
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// gateCharts turns the stored decisions (newest first) into one chart per
// health test: its statistic at each decision against its threshold.
// Tests that never had anything to test are left out.
func gateCharts(ds []store.CampaignDecision) []gateChart {
	type series struct {
		g      gateChart
		useful bool
	}
	byKey := map[string]*series{}
	var order []string
	for i := len(ds) - 1; i >= 0; i-- {
		var det storedDecisionDetail
		if len(ds[i].Detail) == 0 || json.Unmarshal(ds[i].Detail, &det) != nil {
			continue
		}
		for _, t := range det.Tests {
			k := t.Stratum + "\x00" + t.Metric
			sr := byKey[k]
			if sr == nil {
				sr = &series{g: gateChart{ID: "gate-" + strconv.Itoa(len(order))}}
				byKey[k] = sr
				order = append(order, k)
			}
			sr.g.Title = gateTitle(t)
			sr.g.Method, sr.g.Outcome, sr.g.Explanation = t.Method, string(t.Outcome), t.Explanation
			sr.g.Statistic, sr.g.Threshold = t.Statistic, t.Threshold
			sr.g.Chart.Points = append(sr.g.Chart.Points, Point{T: ds[i].At, V: t.Statistic})
			sr.useful = sr.useful || t.Outcome != health.Skipped
		}
	}
	var out []gateChart
	for _, k := range order {
		sr := byKey[k]
		if !sr.useful {
			continue
		}
		th := sr.g.Threshold
		sr.g.Chart.Label = sr.g.Title
		sr.g.Chart.Threshold = &th
		sr.g.Chart.ThresholdLabel = "halts at"
		if sr.g.Method == health.MethodSoak {
			sr.g.Chart.ThresholdLabel = "passes at"
		}
		out = append(out, sr.g)
	}
	return out
}

func gateTitle(t health.TestResult) string {
	label := t.Label
	if label == "" {
		label = "campaign"
	}
	switch t.Method {
	case health.MethodSoak:
		return "Soak time (hours)"
	case health.MethodGuardrail:
		return "Guardrail: bricked and rolled-back devices"
	case health.MethodSPRT:
		return label + " · install failures (log-likelihood ratio)"
	case health.MethodMixture:
		return label + " · " + t.Metric + " rate (ln e-value)"
	}
	return label + " · " + t.Metric
}

// Operator commands, in the order the page shows them.
var campaignCommands = []campaignCommandView{
	{Name: "start", Label: "Start", Help: "Check the campaign against the fleet again and start dispatching."},
	{Name: "approve", Label: "Approve next wave", Help: "Let the current step pass once its soak and health tests allow."},
	{Name: "pause", Label: "Pause", Help: "Stop handing the release to new devices; devices already updating carry on."},
	{Name: "resume", Label: "Resume", Help: "Continue a paused or halted campaign (audited)."},
	{Name: "retry", Label: "Retry failed", Help: "Queue the failed, timed-out and skipped devices again."},
	{Name: "finalize", Label: "Finalize", Danger: true, Confirm: "Finalize: devices raise their security floor and the campaign can no longer be rolled back. Continue?",
		Help: "Declare the release proven; devices raise their security floor."},
	{Name: "abort", Label: "Abort", Danger: true, Reason: true, Confirm: "Abort the campaign? Active assignments are canceled and it cannot be restarted.",
		Help: "End the campaign for good and cancel its active assignments."},
	{Name: "rollback", Label: "Roll back", Danger: true, Reason: true, Confirm: "Roll back every device that got the release and mark the release bad?",
		Help: "Halt, move every updated device back and mark the release bad."},
}

// allowedCommands are the commands the campaign's state allows (the same
// rules as internal/campaign; the API has the last word).
func allowedCommands(c store.Campaign) []campaignCommandView {
	active := c.State == store.CampaignRunning || c.State == store.CampaignWaitingApproval
	rollout := c.Kind == store.CampaignKindRollout
	ok := map[string]bool{
		"start":    c.State == store.CampaignDraft,
		"approve":  active,
		"pause":    active,
		"resume":   c.State == store.CampaignPaused || c.State == store.CampaignHalted,
		"retry":    !c.State.Terminal() && c.State != store.CampaignDraft,
		"finalize": rollout && c.FinalizedAt == nil && (active || c.State == store.CampaignCompleted),
		"abort":    !c.State.Terminal(),
		"rollback": rollout && c.FinalizedAt == nil && c.State != store.CampaignDraft && c.State != store.CampaignAborted,
	}
	var out []campaignCommandView
	for _, cmd := range campaignCommands {
		if ok[cmd.Name] {
			out = append(out, cmd)
		}
	}
	return out
}

func commandNotice(cmd string) string {
	switch cmd {
	case "start":
		return "Started. The engine draws the targets and opens the first wave at its next tick."
	case "approve":
		return "Approved. The current step passes once its soak and health tests allow."
	case "pause":
		return "Paused. No new device gets the release; devices already updating carry on."
	case "resume":
		return "Resumed. The engine continues at its next tick."
	case "retry":
		return "Retry requested. Failed, timed-out and skipped devices are queued again at the engine's next tick."
	case "finalize":
		return "Finalized. Devices running the release raise their security floor at their next check-in."
	case "abort":
		return "Aborted. Active assignments are being canceled."
	case "rollback":
		return "Rollback requested. The engine moves the updated devices back and marks the release bad."
	}
	return ""
}

// campaignCommand runs an operator command through the management API.
// A refusal (say the state changed meanwhile) is shown on the page.
func (u *UI) campaignCommand(w http.ResponseWriter, r *http.Request, s *Session) error {
	id, cmd := r.PathValue("id"), r.PathValue("command")
	known := false
	for _, c := range campaignCommands {
		known = known || c.Name == cmd
	}
	if !known {
		return &APIError{Status: http.StatusNotFound, Code: "not_found",
			Message: fmt.Sprintf("There is no campaign command %q.", cmd)}
	}
	var body any
	if reason := strings.TrimSpace(r.PostFormValue("reason")); reason != "" {
		body = map[string]string{"reason": reason}
	}
	err := s.API().Do(r.Context(), http.MethodPost, "/campaigns/"+url.PathEscape(id)+"/"+cmd, nil, body, nil)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status != http.StatusUnauthorized && ae.Status != http.StatusNotFound && ae.Status < 500 {
		v, lerr := u.loadCampaign(r.Context(), s, id, true)
		if lerr != nil {
			return err
		}
		if lerr := u.loadDecisions(r, s, &v); lerr != nil {
			return err
		}
		v.Error = ae.Message
		return u.render(w, r, s, ae.Status, "campaign.html", "Campaign "+v.C.Name, v)
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"campaigns/"+url.PathEscape(id)+"?done="+url.QueryEscape(cmd), http.StatusSeeOther)
	return nil
}

// campaignLive streams the parts of the campaign page that change.
func (u *UI) campaignLive(w http.ResponseWriter, r *http.Request, s *Session) error {
	id := r.PathValue("id")
	// Answer an unknown campaign before the stream starts.
	if err := s.API().Do(r.Context(), http.MethodGet, "/campaigns/"+url.PathEscape(id), nil, nil, nil); err != nil {
		return err
	}
	return u.serveLive(w, r, func(ctx context.Context) ([]Fragment, error) {
		v, err := u.loadCampaign(ctx, s, id, true)
		if err != nil {
			return nil, err
		}
		var fs []Fragment
		for _, part := range []struct{ id, tmpl string }{
			{"campaign-status", "campaign-status"},
			{"campaign-actions", "campaign-actions"},
			{"campaign-progress", "campaign-progress"},
			{"health-gates", "health-gates"},
		} {
			h, err := u.fragment("campaign.html", part.tmpl, s, v)
			if err != nil {
				return nil, err
			}
			fs = append(fs, Fragment{ID: part.id, HTML: h})
		}
		return fs, nil
	})
}

// specFacts summarizes a campaign's spec in plain words.
func specFacts(c store.Campaign, s campaign.Spec, plan campaign.Resolved) []specFact {
	var fs []specFact
	add := func(label, value string) { fs = append(fs, specFact{Label: label, Value: value}) }
	fs = append(fs, specFact{Label: "Release", Value: c.Version, Href: Prefix + "releases/" + url.PathEscape(c.ReleaseID)})
	if c.RollbackOf != "" {
		fs = append(fs, specFact{Label: "Rolls back", Value: c.RollbackOf, Href: Prefix + "campaigns/" + url.PathEscape(c.RollbackOf)})
	}
	sel := s.Selector
	if sel == "" {
		sel = "every accepted device"
	}
	add("Selector", sel)
	add("Strata", strings.Join(s.Strata, ", "))
	if plan.Targets > 0 {
		add("Targets at planning", strconv.Itoa(plan.Targets)+" devices")
	}
	var staging []string
	for _, w := range s.Plan.Staging {
		staging = append(staging, w.Name+" ("+w.Selector+")")
	}
	if len(staging) > 0 {
		add("Staging waves", strings.Join(staging, "; ")+", each approved by an operator")
	}
	if len(s.Plan.Waves) > 0 {
		ws := make([]string, len(s.Plan.Waves))
		for i, w := range s.Plan.Waves {
			ws[i] = trimFloat(w) + " %"
		}
		add("Production waves", strings.Join(ws, " → ")+" (cumulative)")
	} else {
		add("Production waves", "sized from a power calculation")
	}
	if s.Plan.NoControl {
		add("Control group", "none")
	} else {
		add("Control group", trimFloat(s.Plan.ControlPercent)+" % held back, updated last")
	}
	if s.Plan.ApproveWaves {
		add("Approvals", "every production wave after the first waits for an operator")
	}
	var pace []string
	if s.Pacing.PerMinute > 0 {
		p := trimFloat(s.Pacing.PerMinute) + " devices per minute"
		if s.Pacing.RampFactor > 1 {
			p += fmt.Sprintf(", ×%s every %s", trimFloat(s.Pacing.RampFactor), spanText(s.Pacing.RampEvery.D()))
		}
		pace = append(pace, p)
	}
	if s.Pacing.MaxInFlight > 0 {
		pace = append(pace, fmt.Sprintf("at most %d updating at once", s.Pacing.MaxInFlight))
	}
	if len(pace) == 0 {
		pace = append(pace, "no limit")
	}
	add("Pacing", strings.Join(pace, ", "))
	sched := "from the start, no end"
	if s.Schedule.Start != nil || s.Schedule.End != nil {
		from, to := "the start", "no end"
		if s.Schedule.Start != nil {
			from = fmtTime(*s.Schedule.Start)
		}
		if s.Schedule.End != nil {
			to = fmtTime(*s.Schedule.End)
		}
		sched = "from " + from + " to " + to
	}
	add("Schedule", sched)
	if len(s.Schedule.Windows) > 0 {
		var ws []string
		for _, w := range s.Schedule.Windows {
			days := "every day"
			if len(w.Days) > 0 {
				ds := make([]string, len(w.Days))
				for i, d := range w.Days {
					ds[i] = d.String()[:3]
				}
				days = strings.Join(ds, ", ")
			}
			ws = append(ws, fmt.Sprintf("%s for %s, %s", w.Start, spanText(time.Duration(w.Duration)), days))
		}
		add("Maintenance windows", strings.Join(ws, "; ")+" (device local time)")
	} else {
		add("Maintenance windows", "any time")
	}
	if s.Schedule.Deadline != nil {
		add("Deadline", fmtTime(*s.Schedule.Deadline)+" (a critical release is forced after it)")
	}
	h := s.Health
	hp := h.Preset + " preset"
	if pol, err := h.Policy(); err == nil {
		hp += fmt.Sprintf(": α = %s, halts at a %s× install-failure regression or a %s× rate ratio, soak %s, guardrail %d devices",
			trimFloat(pol.Alpha), trimFloat(pol.Regression), trimFloat(pol.RateTolerance), spanText(pol.MinSoak), pol.GuardrailK)
	}
	add("Health policy", hp)
	var rm []string
	for _, m := range h.RateMetrics {
		rm = append(rm, m.Name+" ← "+m.Telemetry)
	}
	add("Rate tests", strings.Join(rm, ", "))
	if plan.BaselineVersion != "" {
		add("Baseline", fmt.Sprintf("%s %% install failures (%s: %d of %d devices)",
			trimFloat(100*plan.Baseline), plan.BaselineVersion, plan.BaselineFailures, plan.BaselineDevices))
	} else if plan.Baseline > 0 {
		add("Baseline", trimFloat(100*plan.Baseline)+" % install failures (the SLO; no earlier outcomes)")
	}
	onFail := "halt: stop handing out the release"
	if s.OnFailure.Action == campaign.FailRollback {
		onFail = "roll back the affected devices"
		if s.OnFailure.RollbackTo != "" {
			onFail += " to " + s.OnFailure.RollbackTo
		} else {
			onFail += " to their previous version"
		}
		onFail += " and mark the release bad"
	}
	add("On failure", onFail)
	add("Device timeout", spanText(s.DeviceTimeout.D()))
	if s.Gates.MinBattery > 0 || s.Gates.AllowMetered {
		g := []string{}
		if s.Gates.MinBattery > 0 {
			g = append(g, fmt.Sprintf("battery ≥ %d %%", s.Gates.MinBattery))
		}
		if s.Gates.AllowMetered {
			g = append(g, "metered links allowed")
		}
		add("Install gates", strings.Join(g, ", "))
	}
	if s.AllowBad {
		add("Override", "rolls out a release marked bad (audited)")
	}
	if s.RequireStagedRelease {
		r := "the release must have passed staging"
		if s.OverrideStaging {
			r += " (overridden, audited)"
		}
		add("Release rule", r)
	}
	return fs
}

// spanText writes a duration for people: "6 h", "1 h 30 min", "45 s".
func spanText(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	var parts []string
	if h := int64(d / time.Hour); h > 0 {
		parts = append(parts, strconv.FormatInt(h, 10)+" h")
	}
	if m := int64(d % time.Hour / time.Minute); m > 0 {
		parts = append(parts, strconv.FormatInt(m, 10)+" min")
	}
	if sec := int64(d % time.Minute / time.Second); sec > 0 || len(parts) == 0 {
		parts = append(parts, strconv.FormatInt(sec, 10)+" s")
	}
	return strings.Join(parts, " ")
}

const campaignDevicesLimit = 50

type campaignDevicesView struct {
	C       store.Campaign
	State   string
	States  []store.CampaignDeviceState
	Items   []campaignDeviceRow
	NextURL string
}

type campaignDeviceRow struct {
	store.CampaignDevice
	StepName string
}

// campaignDevices lists a campaign's devices, optionally in one state,
// with why each one failed or was skipped.
func (u *UI) campaignDevices(w http.ResponseWriter, r *http.Request, s *Session) error {
	ctx, id := r.Context(), r.PathValue("id")
	var c store.Campaign
	if err := s.API().Do(ctx, http.MethodGet, "/campaigns/"+url.PathEscape(id), nil, nil, &c); err != nil {
		return err
	}
	state := r.URL.Query().Get("state")
	if state != "" && !slices.Contains(cdStateOrder, store.CampaignDeviceState(state)) {
		return &APIError{Status: http.StatusBadRequest, Code: "bad_parameter",
			Message: fmt.Sprintf("%q is not a campaign device state.", state)}
	}
	q := url.Values{"limit": {strconv.Itoa(campaignDevicesLimit)}}
	if state != "" {
		q.Set("state", state)
	}
	if after := r.URL.Query().Get("after"); after != "" {
		q.Set("after", after)
	}
	var out struct {
		Items []store.CampaignDevice `json:"items"`
		Next  string                 `json:"next"`
	}
	if err := s.API().Do(ctx, http.MethodGet, "/campaigns/"+url.PathEscape(c.ID)+"/devices", q, nil, &out); err != nil {
		return err
	}
	plan, _ := campaign.PlanOf(c)
	v := campaignDevicesView{C: c, State: state, States: cdStateOrder, NextURL: nextPage(r, out.Next)}
	for _, d := range out.Items {
		v.Items = append(v.Items, campaignDeviceRow{CampaignDevice: d, StepName: campaignStepLabel(d.Step, plan)})
	}
	return u.render(w, r, s, http.StatusOK, "campaign_devices.html", "Devices of "+c.Name, v)
}
