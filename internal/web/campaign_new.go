package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/preflight"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
)

// The campaign create form: release, selector with a live per-stratum
// match count, staging and wave plan, pacing, schedule and health preset.
// The form's fields become a campaign.Spec (campaignForm.spec), which the
// preview fragment sends to POST /api/v1/campaigns/preview as it is edited
// and the submit sends to POST /api/v1/campaigns. Every problem, the
// form's own (a wave that is not a number) and the API's (a selector that
// matches nothing), is shown next to its field with the inputs kept.

func (u *UI) campaignNewRoutes() []route {
	return []route{
		{http.MethodGet, "campaigns/new", write, u.campaignNewPage},
		{http.MethodPost, "campaigns/new", write, u.campaignCreate},
		{http.MethodGet, "campaigns/preview", write, u.campaignPreviewFragment},
		{http.MethodPost, "campaigns/new/preflight", write, u.campaignPreflight},
	}
}

// campaignForm is the form's fields as typed.
type campaignForm struct {
	Name, Release, Selector                  string
	Strata                                   []string
	Staging                                  string // NAME=SELECTOR per line
	Waves                                    string // "1, 5, 25, 100"
	Control                                  string // percent; 0: no control group
	ApproveWaves                             bool
	PerMinute, RampFactor, RampEvery, MaxFly string
	StartAt, EndAt                           string // datetime-local, UTC
	Windows                                  string // HH:MM/DURATION[,DAY…] per line
	Preset, OnFailure, RollbackTo            string
	RequireStaged, StartNow                  bool
	// Runs is the pre-flight's runs per scenario ("": the API's default).
	Runs string
}

func formOf(q url.Values) campaignForm {
	f := campaignForm{
		Name: strings.TrimSpace(q.Get("name")), Release: strings.TrimSpace(q.Get("release")),
		Selector: strings.TrimSpace(q.Get("selector")), Strata: q["strata"],
		Staging: q.Get("staging"), Waves: strings.TrimSpace(q.Get("waves")), Control: strings.TrimSpace(q.Get("control")),
		ApproveWaves: q.Get("approve_waves") != "",
		PerMinute:    strings.TrimSpace(q.Get("per_minute")), RampFactor: strings.TrimSpace(q.Get("ramp_factor")),
		RampEvery: strings.TrimSpace(q.Get("ramp_every")), MaxFly: strings.TrimSpace(q.Get("max_in_flight")),
		StartAt: strings.TrimSpace(q.Get("start_at")), EndAt: strings.TrimSpace(q.Get("end_at")),
		Windows: q.Get("windows"), Preset: q.Get("preset"), OnFailure: q.Get("on_failure"),
		RollbackTo:    strings.TrimSpace(q.Get("rollback_to")),
		RequireStaged: q.Get("require_staged_release") != "", StartNow: q.Get("start_now") != "",
		Runs: strings.TrimSpace(q.Get("runs")),
	}
	if f.Preset == "" {
		f.Preset = "standard"
	}
	if f.OnFailure == "" {
		f.OnFailure = campaign.FailHalt
	}
	return f
}

// newForm is the form as first shown.
func newForm() campaignForm {
	return campaignForm{Strata: campaign.DefaultStrata(), Control: "1", Preset: "standard", OnFailure: campaign.FailHalt}
}

// HasStratum reports whether a stratification field is ticked.
func (f campaignForm) HasStratum(field string) bool {
	for _, s := range f.Strata {
		if s == field {
			return true
		}
	}
	return false
}

// datetime-local inputs send minutes, sometimes seconds.
var localLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339}

func parseLocal(s string) (time.Time, bool) {
	for _, l := range localLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// spec turns the form into a campaign spec. Problems are the fields the
// form itself cannot read, named as the API names them.
func (f campaignForm) spec() (campaign.Spec, campaign.Problems) {
	var ps campaign.Problems
	add := func(field, format string, args ...any) {
		ps = append(ps, campaign.Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	s := campaign.Spec{Name: f.Name, Release: f.Release, Selector: f.Selector, Strata: f.Strata,
		RequireStagedRelease: f.RequireStaged}
	for i, l := range lines(f.Staging) {
		name, sel, ok := strings.Cut(l, "=")
		name, sel = strings.TrimSpace(name), strings.TrimSpace(sel)
		if !ok || name == "" || sel == "" {
			add(fmt.Sprintf("plan.staging[%d]", i), "line %d: write NAME=SELECTOR, e.g. lab=tag:lab", i+1)
			continue
		}
		s.Plan.Staging = append(s.Plan.Staging, campaign.StagingWave{Name: name, Selector: sel})
	}
	if f.Waves != "" {
		for _, w := range strings.FieldsFunc(f.Waves, func(r rune) bool { return r == ',' || r == ' ' }) {
			x, err := strconv.ParseFloat(strings.TrimSuffix(w, "%"), 64)
			if err != nil {
				add("plan.waves", "%q is not a percentage", w)
				continue
			}
			s.Plan.Waves = append(s.Plan.Waves, x)
		}
	}
	switch c, err := strconv.ParseFloat(strings.TrimSuffix(f.Control, "%"), 64); {
	case f.Control == "":
	case err != nil:
		add("plan.control_percent", "%q is not a percentage", f.Control)
	case c == 0:
		s.Plan.NoControl = true
	default:
		s.Plan.ControlPercent = c
	}
	s.Plan.ApproveWaves = f.ApproveWaves
	if f.PerMinute != "" {
		x, err := strconv.ParseFloat(f.PerMinute, 64)
		if err != nil {
			add("pacing.per_minute", "%q is not a number", f.PerMinute)
		}
		s.Pacing.PerMinute = x
	}
	if f.RampFactor != "" {
		x, err := strconv.ParseFloat(f.RampFactor, 64)
		if err != nil {
			add("pacing.ramp_factor", "%q is not a number", f.RampFactor)
		}
		s.Pacing.RampFactor = x
	}
	if f.RampEvery != "" {
		d, err := time.ParseDuration(f.RampEvery)
		if err != nil {
			add("pacing.ramp_every", "%q is not a duration such as 1h or 30m", f.RampEvery)
		}
		s.Pacing.RampEvery = campaign.Duration(d)
	}
	if f.MaxFly != "" {
		n, err := strconv.Atoi(f.MaxFly)
		if err != nil {
			add("pacing.max_in_flight", "%q is not a whole number", f.MaxFly)
		}
		s.Pacing.MaxInFlight = n
	}
	if f.StartAt != "" {
		if t, ok := parseLocal(f.StartAt); ok {
			s.Schedule.Start = &t
		} else {
			add("schedule.start", "%q is not a date and time", f.StartAt)
		}
	}
	if f.EndAt != "" {
		if t, ok := parseLocal(f.EndAt); ok {
			s.Schedule.End = &t
		} else {
			add("schedule.end", "%q is not a date and time", f.EndAt)
		}
	}
	for i, l := range lines(f.Windows) {
		field := fmt.Sprintf("schedule.windows[%d]", i)
		start, rest, ok := strings.Cut(l, "/")
		parts := strings.Split(rest, ",")
		d, err := time.ParseDuration(strings.TrimSpace(parts[0]))
		if !ok || err != nil {
			add(field, "line %d: write HH:MM/DURATION[,DAY…], e.g. 02:00/3h,sat,sun", i+1)
			continue
		}
		w := tufmeta.Window{Start: strings.TrimSpace(start), Duration: tufmeta.Duration(d)}
		bad := false
		for _, p := range parts[1:] {
			wd, ok := weekdays[strings.ToLower(strings.TrimSpace(p))]
			if !ok {
				add(field, "line %d: day %q: want sun, mon, … sat", i+1, p)
				bad = true
				break
			}
			w.Days = append(w.Days, wd)
		}
		if !bad {
			s.Schedule.Windows = append(s.Schedule.Windows, w)
		}
	}
	s.Health.Preset = f.Preset
	s.OnFailure.Action = f.OnFailure
	if f.OnFailure == campaign.FailRollback {
		s.OnFailure.RollbackTo = f.RollbackTo
	}
	return s, ps
}

// preset is one health policy preset as the form offers it.
type preset struct {
	Value, Label, Help string
	Facts              string // the policy's figures, from the code
}

// presets lists the Spec's health presets with their figures, computed
// from campaign.Health.Policy so that the page cannot drift from it.
func presets() []preset {
	list := []preset{
		{Value: "strict", Label: "Cautious", Help: "halts on smaller regressions and soaks each wave longer; for fleets where a bad update is expensive"},
		{Value: "standard", Label: "Standard", Help: "the default balance of detection and speed"},
		{Value: "relaxed", Label: "Fast", Help: "soaks each wave briefly and halts only on large regressions; for low-risk releases and test fleets"},
	}
	for i, p := range list {
		pol, err := campaign.Health{Preset: p.Value}.Policy()
		if err != nil {
			list[i].Facts = err.Error()
			continue
		}
		list[i].Facts = fmt.Sprintf("halts on a %g× install-failure regression or a %g× crash/reboot rate at α = %g; each wave soaks at least %s; %d guardrail events halt at once",
			pol.Regression, pol.RateTolerance, pol.Alpha, fmtDuration(pol.MinSoak), pol.GuardrailK)
	}
	return list
}

func fmtDuration(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return d.String()
}

// stratumFields are the device fields a campaign may be stratified by.
var stratumFields = []string{store.CountByDeviceType, store.CountByHWRev, store.CountByRegion, store.CountByVersion}

type campaignNewView struct {
	Form     campaignForm
	Releases []store.Release
	Presets  []preset
	Strata   []string
	// Errors are the problems by form field (see fieldOf); Problems all of
	// them, for the summary above the form.
	Errors   map[string][]string
	Problems campaign.Problems
	// SelectorError points at the selector's syntax error; SelectorCaret
	// is a line with ^ under its column.
	SelectorError *filter.SyntaxError
	SelectorCaret string
	Error         string // what failed, above the list of problems
	Preview       *previewView
	// Preflight is the pre-flight simulation's report, once run.
	Preflight *preflightView
	// RunChoices are the pre-flight sizes offered.
	RunChoices []runChoice
	// RunsNote says why the pre-flight ran fewer runs than the form asked.
	RunsNote string
}

// runChoice is one size of pre-flight: more runs, finer figures, longer
// wait.
type runChoice struct{ Value, Label string }

// quickRuns is the size of a quick pre-flight.
const quickRuns = 50

// runChoices are the pre-flight sizes offered for a fleet that allows at
// most most runs per scenario (the preview's preflight_max_runs; 0: not
// known, as without a preview): none larger, none twice.
func runChoices(most int) []runChoice {
	def := preflight.DefaultRuns // what the API runs when ?runs is not given
	if most > 0 {
		def = min(def, most)
	}
	var cs []runChoice
	if quickRuns < def {
		cs = append(cs, runChoice{strconv.Itoa(quickRuns), fmt.Sprintf("%d runs per scenario (quick)", quickRuns)})
	}
	cs = append(cs, runChoice{"", fmt.Sprintf("%s runs per scenario", thousands(def))})
	if most > def {
		cs = append(cs, runChoice{strconv.Itoa(most), fmt.Sprintf("%s runs per scenario (the most this fleet allows; finer, slower)", thousands(most))})
	}
	return cs
}

// fitRuns reads the runs per scenario the form asks for, for a fleet in
// strata strata that allows at most most (0: not known): the runs to ask
// the API for, a note when that is fewer than asked, and a problem when
// asked is not a number of runs.
func fitRuns(asked string, most, strata int) (runs, note, problem string) {
	n, err := strconv.Atoi(asked)
	switch {
	case err != nil || n < 1:
		return asked, "", fmt.Sprintf("runs %q: want a whole number of at least 1", asked)
	case most > 0 && n > most:
		return strconv.Itoa(most), fmt.Sprintf("%s runs per scenario were asked for; a fleet in %d strata allows at most %s, so %s ran.",
			thousands(n), strata, thousands(most), thousands(most)), ""
	}
	return strconv.Itoa(n), "", ""
}

// setPreview shows pv next to the form and offers the pre-flight sizes its
// fleet allows.
func (v *campaignNewView) setPreview(pv previewView) {
	v.Preview = &pv
	v.RunChoices = runChoices(pv.MaxRuns)
}

// previewView is the live preview fragment's data.
type previewView struct {
	Ready    bool   // a release is chosen: the API could preview
	Hint     string // why there is nothing to show
	Preview  campaign.Preview
	Strata   []stratumCount
	Steps    []planRow
	Problems campaign.Problems
	// ControlPct and BaselinePct are the plan's control group and
	// baseline install-failure rate as percentages.
	ControlPct, BaselinePct string
	// MaxRuns is the most pre-flight runs per scenario the API accepts
	// for this fleet (its preflight_max_runs); 0 when there is no preview.
	MaxRuns int
}

// planRow is one step of the previewed plan.
type planRow struct {
	Name, Kind string
	Planned    int
	Approval   bool
	Detects    string // the smallest install-failure regression it detects
}

type stratumCount struct {
	Key   string
	Parts []string // "hw_rev=B" split at commas
	N     int
}

// fieldIndex is the list index at the end of a problem's field.
var fieldIndex = regexp.MustCompile(`\[\d+\]$`)

// fieldOf maps a problem's field ("plan.staging[1]") to the form field
// it is shown next to; "" for problems shown only in the summary.
func fieldOf(problem string) string {
	f := fieldIndex.ReplaceAllString(problem, "")
	switch f {
	case "name", "release", "selector", "strata", "plan.staging", "plan.waves", "plan.control_percent",
		"pacing.per_minute", "pacing.ramp_factor", "pacing.ramp_every", "pacing.max_in_flight",
		"schedule.start", "schedule.end", "schedule.windows", "health", "on_failure.action", "on_failure.rollback_to", "runs":
		return f
	case "health.baseline_slo", "health.rate_metrics":
		return "health"
	}
	return ""
}

func (v *campaignNewView) setProblems(ps campaign.Problems) {
	v.Problems = ps
	v.Errors = map[string][]string{}
	for _, p := range ps {
		f := fieldOf(p.Field)
		v.Errors[f] = append(v.Errors[f], p.Message)
	}
	if v.Form.Selector != "" {
		var se *filter.SyntaxError
		if _, err := filter.Parse(v.Form.Selector); errors.As(err, &se) {
			v.SelectorError = se
			if se.Line <= 1 && se.Column >= 1 {
				v.SelectorCaret = strings.Repeat(" ", se.Column-1) + "^"
			}
		}
	}
}

// publishedReleases lists the releases a campaign can roll out, newest
// first (one page of the API's largest page size).
func (u *UI) publishedReleases(r *http.Request, s *Session) ([]store.Release, error) {
	var out struct {
		Items []store.Release `json:"items"`
	}
	if err := s.API().Do(r.Context(), http.MethodGet, "/releases", url.Values{"limit": {strconv.Itoa(store.MaxPageLimit)}}, nil, &out); err != nil {
		return nil, err
	}
	var rels []store.Release
	for _, rel := range out.Items {
		if rel.State == store.ReleasePublished {
			rels = append(rels, rel)
		}
	}
	sort.SliceStable(rels, func(i, j int) bool { return rels[i].CreatedAt.After(rels[j].CreatedAt) })
	return rels, nil
}

func (u *UI) campaignNewView(r *http.Request, s *Session, f campaignForm) (campaignNewView, error) {
	rels, err := u.publishedReleases(r, s)
	if err != nil {
		return campaignNewView{}, err
	}
	for _, rel := range rels {
		if f.Release == rel.Version {
			f.Release = rel.ID // the list's options are ids
		}
	}
	if f.Release == "" && len(rels) > 0 {
		f.Release = rels[0].ID
	}
	return campaignNewView{Form: f, Releases: rels, Presets: presets(), Strata: stratumFields, Errors: map[string][]string{},
		RunChoices: runChoices(0)}, nil
}

// campaignNewPage shows the form; its query string may fill it in (every
// state of the page has a URL, e.g. a link from a release's page).
func (u *UI) campaignNewPage(w http.ResponseWriter, r *http.Request, s *Session) error {
	f := newForm()
	if q := r.URL.Query(); len(q) > 0 {
		// A link may fill in some fields (a release's page sends
		// ?release=VERSION); the others keep the form's defaults.
		f = formOf(q)
		if !q.Has("strata") {
			f.Strata = campaign.DefaultStrata()
		}
		if !q.Has("control") {
			f.Control = newForm().Control
		}
	}
	v, err := u.campaignNewView(r, s, f)
	if err != nil {
		return err
	}
	pv, err := u.preview(r, s, v.Form)
	if err != nil {
		return err
	}
	v.setPreview(pv)
	return u.render(w, r, s, http.StatusOK, "campaign_new.html", "New campaign", v)
}

// preview asks the API what the form's campaign would do.
func (u *UI) preview(r *http.Request, s *Session, f campaignForm) (previewView, error) {
	if f.Release == "" {
		return previewView{Hint: "Choose a release to see which devices the campaign would target."}, nil
	}
	spec, ps := f.spec()
	if spec.Name == "" {
		spec.Name = "preview" // the name does not change what a campaign targets
	}
	var pv struct {
		campaign.Preview
		PreflightMaxRuns int `json:"preflight_max_runs"`
	}
	err := s.API().Do(r.Context(), http.MethodPost, "/campaigns/preview", nil, spec, &pv)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		return previewView{Hint: ae.Message, Problems: ps}, nil
	}
	if err != nil {
		return previewView{}, err
	}
	v := previewView{Ready: true, Preview: pv.Preview, Problems: append(ps, pv.Problems...), MaxRuns: pv.PreflightMaxRuns,
		ControlPct:  fmt.Sprintf("%.3g %%", 100*pv.Plan.ControlFraction),
		BaselinePct: fmt.Sprintf("%.2g %%", 100*pv.Plan.Baseline)}
	for k, n := range pv.Strata {
		v.Strata = append(v.Strata, stratumCount{Key: k, Parts: strings.Split(k, ","), N: n})
	}
	for _, st := range pv.Plan.Steps {
		row := planRow{Name: st.Name, Kind: st.Kind, Planned: st.Planned, Approval: st.Approval, Detects: "—"}
		if st.Detectable != nil {
			row.Detects = fmt.Sprintf("%.1f×", *st.Detectable)
		}
		v.Steps = append(v.Steps, row)
	}
	sort.Slice(v.Strata, func(i, j int) bool {
		a, b := v.Strata[i], v.Strata[j]
		return a.N > b.N || a.N == b.N && a.Key < b.Key
	})
	return v, nil
}

// campaignPreviewFragment answers the form's live preview: the HTML of the
// preview box for the fields in the query string.
func (u *UI) campaignPreviewFragment(w http.ResponseWriter, r *http.Request, s *Session) error {
	pv, err := u.preview(r, s, formOf(r.URL.Query()))
	if err != nil {
		return err
	}
	html, err := u.fragment("campaign_new.html", "campaign-preview", s, pv)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err = w.Write([]byte(html))
	return err
}

// campaignCreate creates the campaign (and starts it when asked) and goes
// to its page; problems re-render the form with the inputs kept.
func (u *UI) campaignCreate(w http.ResponseWriter, r *http.Request, s *Session) error {
	if err := r.ParseForm(); err != nil {
		return &APIError{Status: http.StatusBadRequest, Code: "bad_form", Message: "The form could not be read."}
	}
	f := formOf(r.PostForm)
	again := func(status int, ps campaign.Problems, msg string) error {
		v, err := u.campaignNewView(r, s, f)
		if err != nil {
			return err
		}
		v.setProblems(ps)
		v.Error = msg
		pv, err := u.preview(r, s, v.Form)
		if err != nil {
			return err
		}
		v.setPreview(pv)
		return u.render(w, r, s, status, "campaign_new.html", "New campaign", v)
	}
	spec, ps := f.spec()
	if len(ps) > 0 {
		return again(http.StatusBadRequest, ps, "")
	}
	var out struct {
		Campaign store.Campaign `json:"campaign"`
	}
	err := s.API().Do(r.Context(), http.MethodPost, "/campaigns", nil, spec, &out)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusUnauthorized {
		return again(ae.Status, problemsOf(ae), "The campaign was not created.")
	}
	if err != nil {
		return err
	}
	id := out.Campaign.ID
	next := Prefix + "campaigns/" + url.PathEscape(id)
	if f.StartNow {
		// Create checked the campaign against the fleet; start checks
		// again. Should the fleet have changed in between, the draft's
		// page offers Start, which shows the reason.
		err := s.API().Do(r.Context(), http.MethodPost, "/campaigns/"+url.PathEscape(id)+"/start", nil, nil, nil)
		if errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusUnauthorized {
			u.log.Info("dashboard: created campaign did not start", "campaign", id, "err", ae.Message)
			http.Redirect(w, r, next, http.StatusSeeOther)
			return nil
		}
		if err != nil {
			return err
		}
		next += "?done=start"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
	return nil
}

// problemsOf reads the API's list of problems from an invalid_campaign
// answer; other answers become one problem without a field.
func problemsOf(ae *APIError) campaign.Problems {
	var ps campaign.Problems
	if list, ok := ae.Details["problems"].([]any); ok {
		for _, it := range list {
			m, _ := it.(map[string]any)
			field, _ := m["field"].(string)
			msg, _ := m["message"].(string)
			if msg != "" {
				ps = append(ps, campaign.Problem{Field: field, Message: msg})
			}
		}
	}
	if len(ps) == 0 {
		ps = append(ps, campaign.Problem{Message: ae.Message})
	}
	return ps
}

// preflightView is POST /api/v1/campaigns/preflight's report as the form
// shows it.
type preflightView struct {
	preflight.Report
	Rows []preflightRow
	// Asked is set when some runs ended waiting for the operator's
	// decision on a hold the engine could not resolve.
	Asked bool
}

// preflightRow is one scenario's figures, formatted.
type preflightRow struct {
	Name, Kind                    string // Kind: "good" or "regression"
	Halt, CampaignHalt            string // probabilities
	HaltHours, Exposed, Affected  string // over the runs that halted
	Completed, Duration, Unhalted string
}

func pctOf(p float64) string { return fmt.Sprintf("%.0f %%", 100*p) }

func hoursOf(q preflight.Quantiles, n int) string {
	if n == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f h / %.1f h", q.P50, q.P90)
}

func spreadOf(s preflight.Spread, n int) string {
	if n == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f / %.0f", s.Mean, s.P90)
}

func newPreflightView(rep preflight.Report) *preflightView {
	v := &preflightView{Report: rep}
	for _, sc := range rep.Scenarios {
		row := preflightRow{Name: sc.Scenario.Name, Kind: "regression",
			Halt: pctOf(sc.HaltProbability), CampaignHalt: pctOf(sc.CampaignHaltProbability),
			HaltHours: hoursOf(sc.HaltHours, sc.Halted), Exposed: spreadOf(sc.ExposedAtHalt, sc.Halted),
			Affected:  spreadOf(sc.AffectedAtHalt, sc.Halted),
			Completed: fmt.Sprintf("%d of %d", sc.Completed, rep.Runs), Duration: hoursOf(sc.DurationHours, sc.Completed),
			Unhalted: spreadOf(sc.ExposedByTheEnd, rep.Runs)}
		if sc.WaitingOperator > 0 {
			row.Completed += fmt.Sprintf("; %d still waiting for the operator (asked at %.0f h / %.0f h)", sc.WaitingOperator, sc.AskedHours.P50, sc.AskedHours.P90)
			v.Asked = true
		}
		if sc.Unfinished > 0 {
			row.Completed += fmt.Sprintf("; %d unfinished", sc.Unfinished)
		}
		if sc.Scenario.Good() {
			row.Kind = "good"
		}
		v.Rows = append(v.Rows, row)
	}
	return v
}

// campaignPreflight simulates the form's campaign (POST
// /api/v1/campaigns/preflight) and shows the form again, inputs kept, with
// the figures next to the preview. It creates nothing.
func (u *UI) campaignPreflight(w http.ResponseWriter, r *http.Request, s *Session) error {
	if err := r.ParseForm(); err != nil {
		return &APIError{Status: http.StatusBadRequest, Code: "bad_form", Message: "The form could not be read."}
	}
	f := formOf(r.PostForm)
	v, err := u.campaignNewView(r, s, f)
	if err != nil {
		return err
	}
	status := http.StatusOK
	spec, ps := f.spec()
	if spec.Name == "" {
		spec.Name = "pre-flight" // a name is needed to create, not to simulate
	}
	// The preview of the form as sent says how many runs its fleet allows
	// (the strata may have changed since the page offered its sizes).
	pv, err := u.preview(r, s, v.Form)
	if err != nil {
		return err
	}
	var q url.Values
	if f.Runs != "" {
		runs, note, problem := fitRuns(f.Runs, pv.MaxRuns, len(pv.Preview.Strata))
		if problem != "" {
			ps = append(ps, campaign.Problem{Field: "runs", Message: problem})
		}
		v.Form.Runs, v.RunsNote = runs, note
		q = url.Values{"runs": {runs}}
	}
	if len(ps) == 0 {
		var out struct {
			preflight.Report
		}
		err := s.API().Do(r.Context(), http.MethodPost, "/campaigns/preflight", q, spec, &out)
		var ae *APIError
		switch {
		case errors.As(err, &ae) && ae.Status < 500 && ae.Status != http.StatusUnauthorized:
			status = ae.Status
			v.Error = "The pre-flight could not run."
			ps = problemsOf(ae)
		case err != nil:
			return err
		default:
			v.Preflight = newPreflightView(out.Report)
		}
	} else {
		status = http.StatusBadRequest
	}
	if len(ps) > 0 {
		v.setProblems(ps)
	}
	v.setPreview(pv)
	return u.render(w, r, s, status, "campaign_new.html", "New campaign", v)
}
