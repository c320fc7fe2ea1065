package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/store"
)

// holdEvery is how often an unchanged hold decision is stored again.
const holdEvery = time.Hour

// maxHoursPerTick bounds the telemetry hours turned into evidence per tick.
const maxHoursPerTick = 24

// RateSettle is how long after an hour ends its telemetry is judged:
// devices send telemetry in batches, so the last points of an hour arrive
// a little later. Points arriving later still are not judged.
const RateSettle = 30 * time.Minute

// collectRates turns each completed hour of telemetry into rate evidence:
// per stratum and metric, canary and control events (each device capped at
// Policy.EventCap events per metric per UTC day) and device-hours.
func (r *run) collectRates(ctx context.Context) error {
	if !r.rollout() || !r.rt.Targeted || len(r.pol.RateMetrics) == 0 {
		return nil
	}
	telemetry := map[string]string{} // telemetry metric -> test name
	var metrics []string
	for _, name := range r.pol.RateMetrics {
		if t := r.spec.Health.TelemetryOf(name); t != "" {
			telemetry[t] = name
			metrics = append(metrics, t)
		}
	}
	for n := 0; n < maxHoursPerTick && !r.rt.RateHour.Add(time.Hour+RateSettle).After(r.now); n++ {
		hour := r.rt.RateHour
		counts, exposure, err := r.e.st.CampaignHourCounts(ctx, r.c.TenantID, r.c.ID, metrics, hour)
		if err != nil {
			return err
		}
		type key struct{ stratum, metric string }
		periods := map[key]*store.CampaignRatePeriod{}
		get := func(k key) *store.CampaignRatePeriod {
			if p := periods[k]; p != nil {
				return p
			}
			p := &store.CampaignRatePeriod{Hour: hour, Stratum: k.stratum, Metric: k.metric}
			periods[k] = p
			return p
		}
		for _, x := range exposure {
			p := get(key{x.Stratum, telemetry[x.Metric]})
			if x.Arm == store.ArmCanary {
				p.CanaryHours += float64(x.Hours)
			} else {
				p.ControlHours += float64(x.Hours)
			}
		}
		capped, err := r.capEvents(ctx, counts, hour)
		if err != nil {
			return err
		}
		for i, c := range counts {
			p := get(key{c.Stratum, telemetry[c.Metric]})
			if c.Arm == store.ArmCanary {
				p.CanaryEvents += capped[i]
			} else {
				p.ControlEvents += capped[i]
			}
		}
		for _, p := range periods {
			r.periods = append(r.periods, *p)
		}
		r.rt.RateHour = hour.Add(time.Hour)
	}
	return nil
}

// capEvents caps each device's events so that it contributes at most
// Policy.EventCap per metric per UTC day, counting what it already
// reported earlier that day.
func (r *run) capEvents(ctx context.Context, counts []store.HourlyCount, hour time.Time) ([]int, error) {
	out := make([]int, len(counts))
	limit := r.pol.EventCap
	day := hour.Truncate(24 * time.Hour)
	byMetric := map[string][]string{}
	for _, c := range counts {
		byMetric[c.Metric] = append(byMetric[c.Metric], c.DeviceID)
	}
	earlier := map[string]map[string]float64{}
	if limit > 0 && hour.After(day) {
		for m, ids := range byMetric {
			sums, err := r.e.st.TelemetrySums(ctx, r.c.TenantID, m, ids, day, hour)
			if err != nil {
				return nil, err
			}
			earlier[m] = sums
		}
	}
	for i, c := range counts {
		n := int(math.Round(c.Sum))
		if limit > 0 {
			used := int(math.Round(earlier[c.Metric][c.DeviceID]))
			n = min(n, max(0, limit-used))
		}
		out[i] = max(n, 0)
	}
	return out, nil
}

// outcome states that count as an install outcome, and as a failure.
func isOutcome(s store.CampaignDeviceState) bool {
	return s == store.CDSucceeded || isFailure(s)
}

func isFailure(s store.CampaignDeviceState) bool {
	return s == store.CDFailed || s == store.CDRolledBack || s == store.CDTimedOut
}

// evidence builds the health evidence from the tallies and rate periods.
// Halted strata are listed with no evidence, so the set of strata (and so
// the error budget's split) stays the same for the campaign's life.
func (r *run) evidence(ctx context.Context, tallies []store.CampaignTally) (health.Evidence, error) {
	keys := r.plan.StratumKeys()
	for _, t := range tallies {
		if !slices.Contains(keys, t.Stratum) {
			keys = append(keys, t.Stratum)
		}
	}
	sort.Strings(keys)
	base := health.Baseline{Devices: r.plan.BaselineDevices, Failures: r.plan.BaselineFailures, SLO: r.spec.Health.BaselineSLO}
	strata := map[string]*health.Stratum{}
	var ev health.Evidence
	for _, k := range keys {
		strata[k] = &health.Stratum{Key: k, Label: strings.ReplaceAll(k, ",", " "), Baseline: base}
	}
	for _, t := range tallies {
		s := strata[t.Stratum]
		if t.Step == store.ControlStep || r.halted(t.Stratum) || !isOutcome(t.State) {
			continue
		}
		s.Installs += t.N
		if isFailure(t.State) {
			s.Failures += t.N
		}
		if t.State == store.CDRolledBack {
			s.RolledBack += t.N
		}
		if t.Silent && t.State == store.CDSucceeded {
			s.Silent += t.N
		}
	}
	stored, err := r.e.st.CampaignRatePeriods(ctx, r.c.TenantID, r.c.ID)
	if err != nil {
		return ev, err
	}
	series := map[string]map[string][]health.RatePeriod{}
	for _, p := range append(stored, r.periods...) {
		if strata[p.Stratum] == nil || r.halted(p.Stratum) || p.Metric == "" {
			continue
		}
		if series[p.Stratum] == nil {
			series[p.Stratum] = map[string][]health.RatePeriod{}
		}
		series[p.Stratum][p.Metric] = append(series[p.Stratum][p.Metric], health.RatePeriod{
			CanaryEvents: p.CanaryEvents, CanaryHours: p.CanaryHours, ControlEvents: p.ControlEvents, ControlHours: p.ControlHours,
		})
	}
	for _, k := range keys {
		s := strata[k]
		for _, m := range r.pol.RateMetrics {
			if ps := series[k][m]; len(ps) > 0 {
				s.Rates = append(s.Rates, health.RateSeries{Metric: m, Periods: ps})
			}
		}
		ev.Strata = append(ev.Strata, *s)
	}
	if r.rt.SoakStartedAt != nil {
		ev.SoakElapsed = r.now.Sub(*r.rt.SoakStartedAt)
	}
	return ev, nil
}

// soakReady reports whether the current step's devices have reported:
// none is queued and at most a tenth of those dispatched are unfinished.
func (r *run) soakReady(tallies []store.CampaignTally) bool {
	queued, open, done := 0, 0, 0
	for _, t := range tallies {
		if t.Step != r.step || r.halted(t.Stratum) {
			continue
		}
		switch {
		case t.State == store.CDQueued:
			queued += t.N
		case t.State == store.CDAssigned:
			open += t.N
		case isOutcome(t.State):
			done += t.N
		}
	}
	return queued == 0 && done > 0 && open*10 <= open+done
}

// decisionDetail is what a stored decision's Detail holds.
type decisionDetail struct {
	Tests       []health.TestResult `json:"tests"`
	Alpha       float64             `json:"alpha"`
	TestAlpha   float64             `json:"test_alpha"`
	InstallOnly []string            `json:"install_only,omitempty"`
	Halted      []string            `json:"halted_strata,omitempty"`
}

// evaluate judges the evidence and acts: advance to the next step (or
// wait for approval), hold, or halt the strata (or the campaign) a test
// rejected.
func (r *run) evaluate(ctx context.Context) error {
	if !r.rollout() || !r.rt.Targeted || r.step >= r.plan.ControlPhase() {
		return nil
	}
	if st := r.cur(); st != store.CampaignRunning && st != store.CampaignWaitingApproval {
		r.pausedHold()
		return nil
	}
	r.resumedHold()
	tallies, err := r.loadTallies(ctx)
	if err != nil {
		return err
	}
	if r.rt.SoakStartedAt == nil && r.soakReady(tallies) {
		t := r.now
		r.rt.SoakStartedAt = &t
	}
	ev, err := r.evidence(ctx, tallies)
	if err != nil {
		return err
	}
	d := health.Evaluate(r.pol, ev)
	held, overridden := r.watchSpread(&d)
	r.trackHold(held, overridden)
	action := ""
	switch d.Verdict {
	case health.Halt:
		action = r.halt(ctx, d)
	case health.Advance:
		if r.rt.SoakStartedAt == nil {
			d.Verdict = health.Hold
			break
		}
		action = r.advance()
	case health.Hold:
		if held != nil {
			action = r.escalate(tallies, held, &d)
		}
	}
	keep := action != "" || string(d.Verdict) != r.rt.LastVerdict || r.now.Sub(r.rt.LastDecisionAt) >= holdEvery
	if !keep {
		return nil
	}
	detail, err := json.Marshal(decisionDetail{Tests: finite(d.Tests), Alpha: d.Alpha, TestAlpha: d.TestAlpha, InstallOnly: d.InstallOnly, Halted: r.rt.HaltedStrata})
	if err != nil {
		return fmt.Errorf("encode decision: %w", err)
	}
	if action == "" {
		action = string(d.Verdict)
	}
	r.decision = &store.CampaignDecision{Step: r.c.Step, Verdict: string(d.Verdict), Action: action, Summary: d.Summary, Detail: detail}
	r.rt.LastVerdict, r.rt.LastSummary, r.rt.LastDecisionAt = string(d.Verdict), d.Summary, r.now
	return nil
}

// finite replaces infinities, which JSON cannot hold, by zero (meaning
// "none detectable yet").
func finite(ts []health.TestResult) []health.TestResult {
	out := slices.Clone(ts)
	fix := func(v *float64) {
		if math.IsInf(*v, 0) || math.IsNaN(*v) {
			*v = 0
		}
	}
	for i := range out {
		fix(&out[i].Detectable)
		fix(&out[i].Statistic)
		fix(&out[i].Threshold)
		fix(&out[i].EValue)
		fix(&out[i].PValue)
	}
	return out
}

// advance moves to the next step, or waits for an approval the step needs.
func (r *run) advance() string {
	cur := r.plan.Steps[r.step]
	if cur.Approval && r.c.ApprovedStep < r.step {
		if r.scheduleEnded() {
			// No wave opens after the end: the campaign completes
			// instead of asking for one (see complete).
			return ""
		}
		if r.cur() != store.CampaignWaitingApproval {
			r.state, r.reason = store.CampaignWaitingApproval, fmt.Sprintf("%s passed its soak and health tests; waiting for approval", cur.Name)
			r.event("campaign.approval_needed", r.reason, map[string]any{"step": cur.Name})
			return "wait for approval of " + cur.Name
		}
		return ""
	}
	r.step++
	r.rt.SoakStartedAt, r.rt.StepStartedAt = nil, r.now
	r.rt.HoldSince, r.rt.EscalatedAt = nil, nil
	r.state, r.reason = store.CampaignRunning, ""
	if r.step >= r.plan.ControlPhase() {
		return "advance: every wave passed; updating the control group"
	}
	return "advance to " + r.plan.Steps[r.step].Name
}

// halt stops the strata whose tests rejected, or the whole campaign when
// the rejection cannot be confined (the all-strata group alone, or every
// stratum). Halted strata get no new devices, their unfinished assignments
// are canceled, and with the rollback failure action their updated devices
// are rolled back.
func (r *run) halt(ctx context.Context, d health.Decision) string {
	bad := map[string]bool{}
	whole := false
	for _, t := range d.Tests {
		if t.Outcome != health.Rejected {
			continue
		}
		switch {
		case t.Method == health.MethodGuardrail:
			// Attributed below to the strata with bricked or rolled-back devices.
		case t.Stratum == "":
			whole = true
		default:
			bad[t.Stratum] = true
		}
	}
	tallies, _ := r.loadTallies(ctx)
	for _, t := range d.Tests {
		if t.Method == health.MethodGuardrail && t.Outcome == health.Rejected {
			for _, tl := range tallies {
				if tl.State == store.CDRolledBack && tl.Step != store.ControlStep && !r.halted(tl.Stratum) {
					bad[tl.Stratum] = true
				}
			}
		}
	}
	rejected := map[string]bool{} // metrics that rejected
	for _, t := range d.Tests {
		if t.Outcome == health.Rejected && t.Method != health.MethodGuardrail {
			rejected[t.Metric] = true
		}
	}
	spread := ""
	if len(bad) > 0 {
		// The all-strata test may be explained by the strata that
		// rejected; the halt stays confined to them unless the other
		// strata, judged without them, show the same regression.
		whole = false
		spread = r.spreads(ctx, bad, rejected)
		whole = spread != ""
	}
	live := 0
	for _, k := range r.plan.StratumKeys() {
		if !r.halted(k) && !bad[k] && r.plan.Strata[k] > 0 {
			live++
		}
	}
	if whole || live == 0 || len(bad) == 0 {
		r.rt.HaltedStrata = []string{"*"}
		r.state, r.reason = store.CampaignHalted, d.Summary
		if spread != "" {
			r.reason += " " + spread
		}
		r.event("campaign.halted", d.Summary, nil)
		if r.spec.OnFailure.Action == campaign.FailRollback {
			r.rt.RollbackPending = append(r.rt.RollbackPending, "*")
			r.markBad = "halted by campaign " + r.c.Name + ": " + d.Summary
		}
		return "halt the campaign"
	}
	for m := range rejected {
		if !slices.Contains(r.rt.HaltedMetrics, m) {
			r.rt.HaltedMetrics = append(r.rt.HaltedMetrics, m)
		}
	}
	sort.Strings(r.rt.HaltedMetrics)
	keys := make([]string, 0, len(bad))
	for k := range bad {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	r.rt.HaltedStrata = append(r.rt.HaltedStrata, keys...)
	if r.spec.OnFailure.Action == campaign.FailRollback {
		r.rt.RollbackPending = append(r.rt.RollbackPending, keys...)
	}
	r.event("campaign.halted", d.Summary, map[string]any{"strata": keys})
	return "halt " + strings.Join(keys, "; ")
}

// deadline wakes the devices of a critical release's campaign once its
// deadline passes, so they fetch their now-forced assignment.
func (r *run) deadline(ctx context.Context) error {
	if r.rt.DeadlineNotified || !r.forced() {
		return nil
	}
	after := ""
	for {
		cds, next, err := r.e.st.ListCampaignDevices(ctx, r.c.TenantID, r.c.ID, store.CDAssigned, store.Page{Limit: store.MaxPageLimit, After: after})
		if err != nil {
			return err
		}
		for _, cd := range cds {
			r.notifyDevices = append(r.notifyDevices, cd.DeviceID)
		}
		if next == "" {
			break
		}
		after = next
	}
	r.rt.DeadlineNotified = true
	return nil
}

// complete finishes a campaign with nothing left to do: every step passed
// (or the schedule ended) and no device is queued or updating.
func (r *run) complete(ctx context.Context) error {
	st := r.cur()
	if st == store.CampaignWaitingApproval && r.scheduleEnded() {
		// Nothing an approval could open after the end.
		st = store.CampaignRunning
	}
	if st != store.CampaignRunning && st != store.CampaignHalted {
		return nil
	}
	if r.rollout() && !r.rt.Targeted {
		return nil
	}
	tallies, err := r.loadTallies(ctx)
	if err != nil {
		return err
	}
	queued, open := 0, 0
	for _, t := range tallies {
		switch t.State {
		case store.CDQueued:
			if !r.halted(t.Stratum) {
				queued += t.N
			}
		case store.CDAssigned:
			open += t.N
		}
	}
	if st == store.CampaignHalted {
		if open == 0 && len(r.rt.RollbackPending) == 0 && !r.rt.Finished {
			r.rt.Finished = true
		}
		return nil
	}
	if !r.rollout() {
		if done, err := r.rollbackSourceDone(ctx); err != nil || !done {
			return err
		}
	}
	ended := r.scheduleEnded()
	allSteps := !r.rollout() || r.step >= r.plan.ControlPhase()
	if open > 0 || (queued > 0 && !ended) || !allSteps && !ended {
		return nil
	}
	r.state, r.finished = store.CampaignCompleted, true
	switch {
	case ended && (queued > 0 || !allSteps):
		r.reason = "the schedule ended"
	case len(r.rt.HaltedStrata) > 0:
		r.reason = "completed; halted strata: " + strings.Join(r.rt.HaltedStrata, "; ")
	default:
		r.reason = ""
	}
	r.event("campaign.finished", "campaign "+r.c.Name+" completed "+r.reason, nil)
	return nil
}

// scheduleEnded reports whether the campaign's schedule has an end that
// has passed: no device is handed the release after it.
func (r *run) scheduleEnded() bool {
	e := r.spec.Schedule.End
	return e != nil && !r.now.Before(*e)
}

// SpreadE is the e-value at which the strata that did not reject, judged
// on their own, count as showing the same regression as those that did:
// then the whole campaign halts instead of the rejecting strata alone.
// It is a screening threshold, not a test at the campaign's error budget:
// it only widens a halt that a test at that budget already called.
const SpreadE = 10

// spreads judges the strata outside bad on their own and says how they
// show the regression the rejected metrics found, or "" when they do not.
func (r *run) spreads(ctx context.Context, bad, metrics map[string]bool) string {
	saved := r.rt.HaltedStrata
	for k := range bad {
		r.rt.HaltedStrata = append(slices.Clone(r.rt.HaltedStrata), k)
	}
	ev, err := r.evidence(ctx, r.tallies)
	r.rt.HaltedStrata = saved
	if err != nil {
		return ""
	}
	d := health.Evaluate(r.pol, ev)
	for _, t := range d.Tests {
		if t.Method == health.MethodGuardrail || t.Method == health.MethodSoak || bad[t.Stratum] {
			continue
		}
		if t.Outcome == health.Rejected || metrics[t.Metric] && t.EValue >= SpreadE {
			label := t.Label
			if t.Stratum == "" {
				// The pooled test here leaves the halted strata out; its
				// usual label would say otherwise.
				label = "the other strata together"
			}
			return fmt.Sprintf("The other strata show the same %s regression on their own (%s, E = %.0f), so the whole campaign halts.", t.Metric, label, t.EValue)
		}
	}
	return ""
}

// watchSpread checks, after strata were halted, whether the others show
// the regression that halted them: with E ≥ SpreadE on a halting metric the
// whole campaign halts; with E > 1 (the evidence leans that way) no new
// wave opens until it resolves or, once the engine asked (see escalate),
// an operator approves the next wave anyway. It returns the test the hold
// rests on (nil when there is no hold), and whether an operator's approval
// overrode it.
func (r *run) watchSpread(d *health.Decision) (held *health.TestResult, overridden bool) {
	if len(r.rt.HaltedMetrics) == 0 || d.Verdict == health.Halt {
		return nil, false
	}
	var worst *health.TestResult
	for i, t := range d.Tests {
		if !slices.Contains(r.rt.HaltedMetrics, t.Metric) || r.halted(t.Stratum) && t.Stratum != "" {
			continue
		}
		if worst == nil || t.EValue > worst.EValue {
			worst = &d.Tests[i]
		}
	}
	switch {
	case worst == nil || worst.EValue <= 1:
	case worst.EValue >= SpreadE:
		d.Verdict = health.Halt
		d.Summary = fmt.Sprintf("Halt: the strata still running show the %s regression that halted the others (%s, E = %.0f ≥ %d). %s",
			worst.Metric, worst.Label, worst.EValue, SpreadE, worst.Explanation)
	case d.Verdict == health.Advance && r.holdApproved():
		d.Summary = fmt.Sprintf("Advance: approved by an operator although the %s evidence of the strata still running leans the way that halted the others (%s, E = %.1f > 1). %s",
			worst.Metric, worst.Label, worst.EValue, d.Summary)
		return nil, true
	case d.Verdict == health.Advance:
		d.Verdict = health.Hold
		d.Summary = fmt.Sprintf("Hold: the %s evidence of the strata still running leans the way that halted the others (%s, E = %.1f > 1); no new wave until it resolves. %s",
			worst.Metric, worst.Label, worst.EValue, d.Summary)
		held := *worst
		return &held, false
	}
	return nil, false
}
