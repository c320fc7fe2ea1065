package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/store"
)

// HoldLimitSoaks is the default hold limit in minimum soaks: a hold that
// has seen two full soaks' worth of evidence without resolving is unlikely
// to resolve soon.
const HoldLimitSoaks = 2

// HoldLimit is how long the engine holds the next wave because the strata
// still running lean the way that halted others (E > 1 on a halting
// metric) before it asks the operator to decide: the spec's
// health.hold_limit, or HoldLimitSoaks × the policy's minimum soak.
func HoldLimit(s campaign.Spec, pol health.Policy) time.Duration {
	if d := s.Health.HoldLimit.D(); d > 0 {
		return d
	}
	return HoldLimitSoaks * pol.MinSoak
}

// holdApproved reports whether an operator approved the open step after
// the engine asked about a hold on it (escalate withdraws approvals given
// before it asked).
func (r *run) holdApproved() bool {
	return r.rt.EscalatedAt != nil && r.c.ApprovedStep >= r.step
}

// trackHold keeps the start of the current hold, and takes back the
// question to the operator when the hold resolved by itself.
func (r *run) trackHold(held *health.TestResult, overridden bool) {
	switch {
	case held != nil:
		if r.rt.HoldSince == nil {
			t := r.now
			r.rt.HoldSince = &t
		}
	case overridden:
	default:
		r.rt.HoldSince = nil
		r.withdrawQuestion()
	}
}

// pausedHold notes when a held campaign the engine has not asked about
// yet is found paused, so that the time paused does not count toward the
// hold limit (see resumedHold).
func (r *run) pausedHold() {
	if r.cur() == store.CampaignPaused && r.rt.HoldSince != nil && r.rt.EscalatedAt == nil && r.rt.HoldPausedAt == nil {
		t := r.now
		r.rt.HoldPausedAt = &t
	}
}

// resumedHold moves the hold's start forward by the time the campaign was
// paused, once it is judged again.
func (r *run) resumedHold() {
	if p := r.rt.HoldPausedAt; p != nil {
		if r.rt.HoldSince != nil {
			t := r.rt.HoldSince.Add(r.now.Sub(*p))
			r.rt.HoldSince = &t
		}
		r.rt.HoldPausedAt = nil
	}
}

// escalate asks the operator to decide about a hold that cannot resolve by
// itself (the install evidence it rests on is final) or has lasted
// HoldLimit: the campaign waits for approval with a plain-language
// explanation, and a campaign.approval_needed event goes out once per
// step. Approving opens the next wave anyway; abort and rollback work as
// in any state. It returns the decision's action, "" when it does not ask.
func (r *run) escalate(tallies []store.CampaignTally, held *health.TestResult, d *health.Decision) string {
	if r.scheduleEnded() {
		// No wave opens after the schedule's end: there is nothing to
		// decide, and the campaign completes (see complete).
		r.withdrawQuestion()
		return ""
	}
	why := ""
	if t := r.installLeans(d); t != nil && r.installFinal(tallies) {
		held = t // the evidence that cannot change is the install test's
		why = "This cannot resolve by itself: every device of the open waves in the strata still running has reported its install outcome, so no new install evidence arrives until a new wave opens."
	} else if limit := HoldLimit(r.spec, r.pol); r.now.Sub(*r.rt.HoldSince) >= limit {
		why = fmt.Sprintf("The hold has lasted %s, the hold limit (health.hold_limit; default %d × the minimum soak).", hoursText(r.now.Sub(*r.rt.HoldSince)), HoldLimitSoaks)
	}
	if why == "" {
		// A device joined or was retried in the open wave since the
		// engine asked: the evidence can change again, so the campaign
		// runs (its wave's devices are dispatched). The question stays
		// asked: an approval given in answer to it still counts, and
		// asking again later withdraws nothing.
		if r.rt.EscalatedAt != nil && r.cur() == store.CampaignWaitingApproval {
			r.state, r.reason = store.CampaignRunning, ""
		}
		return ""
	}
	if r.holdApproved() {
		// The operator answered the question: the next wave opens once
		// the open one passes its soak (watchSpread lets it).
		return ""
	}
	if r.rt.EscalatedAt != nil && r.cur() == store.CampaignWaitingApproval {
		d.Summary = fmt.Sprintf("Waiting for an operator's decision since %s. %s", r.rt.EscalatedAt.Format("2006-01-02 15:04 MST"), d.Summary)
		return ""
	}
	msg := r.decisionText(held, why)
	d.Summary = msg
	r.state, r.reason = store.CampaignWaitingApproval, msg
	if r.rt.EscalatedAt == nil {
		t := r.now
		r.rt.EscalatedAt = &t
		r.asked = true
		r.event("campaign.approval_needed", msg, map[string]any{
			"step": r.plan.Steps[r.step].Name, "needs": "hold_decision", "metric": held.Metric,
			"group": held.Label, "e_value": held.EValue, "halted_strata": r.rt.HaltedStrata, "hold_since": r.rt.HoldSince,
		})
	}
	return "ask the operator: approve the next wave anyway, abort, or roll back"
}

// installLeans returns the install test of the strata still running (or
// of them pooled) that leans most the way that halted others, or nil: with
// one, the hold cannot end in an advance while that evidence stays as it
// is.
func (r *run) installLeans(d *health.Decision) *health.TestResult {
	if !slices.Contains(r.rt.HaltedMetrics, installMetric) {
		return nil
	}
	var worst *health.TestResult
	for i, t := range d.Tests {
		if t.Method == health.MethodSPRT && t.Metric == installMetric && t.EValue > 1 && (t.Stratum == "" || !r.halted(t.Stratum)) &&
			(worst == nil || t.EValue > worst.EValue) {
			worst = &d.Tests[i]
		}
	}
	return worst
}

// withdrawQuestion takes back a question the engine asked about a hold:
// the campaign runs again (still holding the next wave).
func (r *run) withdrawQuestion() {
	if r.rt.EscalatedAt == nil {
		return
	}
	r.rt.EscalatedAt = nil
	if r.cur() == store.CampaignWaitingApproval {
		r.state, r.reason = store.CampaignRunning, ""
	}
}

// installMetric names the install test in decisions (health.TestResult.Metric).
const installMetric = "install"

// installFinal reports whether the install evidence a hold rests on can
// no longer change: no device of the strata still running in the open
// step or an earlier one (the control group aside) is queued or updating,
// so no install outcome arrives until a new wave opens.
func (r *run) installFinal(tallies []store.CampaignTally) bool {
	queued, unfinished := 0, 0
	for _, t := range tallies {
		if t.Step == store.ControlStep || t.Step > r.step || r.halted(t.Stratum) {
			continue
		}
		switch t.State {
		case store.CDQueued:
			queued += t.N
		case store.CDAssigned:
			unfinished += t.N
		}
	}
	return queued == 0 && unfinished == 0
}

// decisionText explains a hold the operator must decide about: what
// halted, what the strata still running show, why the hold cannot end by
// itself, and the options.
func (r *run) decisionText(held *health.TestResult, why string) string {
	var halted []string
	for _, k := range r.rt.HaltedStrata {
		halted = append(halted, strings.ReplaceAll(k, ",", " "))
	}
	next := "the control group"
	switch {
	case r.step+1 < r.plan.ControlPhase():
		next = r.plan.Steps[r.step+1].Name
	case r.spec.Plan.NoControl:
		next = "the campaign's completion (it has no control group)"
	}
	metrics := slices.Clone(r.rt.HaltedMetrics)
	var b strings.Builder
	fmt.Fprintf(&b, "Needs a decision: %s halted on %s; the strata still running lean the same way on %s (%s, E = %.1f: above 1, below the %d that would halt them too), so %s is held after %s.",
		strings.Join(halted, ", "), strings.Join(metrics, ", "), held.Metric, held.Label, held.EValue, SpreadE, next, r.plan.Steps[r.step].Name)
	if r.rt.HoldSince != nil {
		fmt.Fprintf(&b, " Held since %s.", r.rt.HoldSince.Format("2006-01-02 15:04 MST"))
	}
	b.WriteString(" " + why)
	if held.Explanation != "" {
		b.WriteString(" " + held.Explanation)
	}
	fmt.Fprintf(&b, " Options: approve to open %s anyway; abort to stop the campaign; or roll back to move the updated devices back to their previous release.", next)
	if r.rt.EscalatedAt == nil && r.c.ApprovedStep >= r.step {
		b.WriteString(" The approval given for this wave before the hold does not cover it: approve again to go on.")
	}
	return b.String()
}

// hoursText writes a duration in whole hours ("36 h").
func hoursText(d time.Duration) string { return fmt.Sprintf("%.0f h", d.Hours()) }
