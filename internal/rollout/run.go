package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/store"
)

// run is one tick's work on one campaign. It reads the campaign as it was
// at the start of the tick, writes device rows as it goes (each write
// fenced) and saves the campaign row once at the end, merging with any
// operator command committed meanwhile.
type run struct {
	e    *Engine
	l    store.Lease
	c    store.Campaign
	spec campaign.Spec
	plan campaign.Resolved
	rt   campaign.Runtime
	pol  health.Policy
	sel  *filter.Expr
	now  time.Time

	// Changes to save with the campaign row.
	state         store.CampaignState // "" keeps the state
	reason        string
	step          int
	finished      bool
	decision      *store.CampaignDecision
	periods       []store.CampaignRatePeriod
	events        []store.WebhookEvent
	handledRBReq  bool
	markBad       string
	notifyDevices []string
	tallies       []store.CampaignTally
	critical      *bool // the release's severity is critical (read once)
	// asked is set when this tick asks the operator about a hold (see
	// escalate): saving it withdraws an approval of the open step given
	// before, and an operator's command that wins over the tick's state
	// change also cancels the question.
	asked bool
}

// actor is who the engine's changes are audited as.
var actor = store.Actor{Kind: store.ActorSystem, ID: "rollout-engine", Name: "rollout engine"}

func (e *Engine) runCampaign(ctx context.Context, l store.Lease, c store.Campaign) error {
	r := &run{e: e, l: l, c: c, now: e.clock.Now().UTC(), step: c.Step}
	var err error
	if r.spec, err = campaign.FromCampaign(c); err != nil {
		return err
	}
	if r.plan, err = campaign.PlanOf(c); err != nil {
		return err
	}
	if r.rt, err = campaign.RuntimeOf(c); err != nil {
		return err
	}
	if r.pol, err = r.spec.Health.Policy(); err != nil {
		return err
	}
	if r.sel, err = r.spec.SelectorExpr(); err != nil {
		return err
	}
	if c.State == store.CampaignAborted {
		if err := r.cancelAll(ctx, store.CDCanceled, c.StateReason); err != nil {
			return err
		}
		return r.save(ctx)
	}
	steps := []func(context.Context) error{r.sync, r.timeouts, r.retries, r.target, r.rollbacks, r.dispatch, r.collectRates, r.evaluate, r.deadline, r.complete}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return r.save(ctx)
}

// cur is the campaign's state as this tick left it.
func (r *run) cur() store.CampaignState {
	if r.state != "" {
		return r.state
	}
	return r.c.State
}

func (r *run) rollout() bool { return r.c.Kind == store.CampaignKindRollout }

func (r *run) halted(stratum string) bool {
	return slices.Contains(r.rt.HaltedStrata, stratum) || slices.Contains(r.rt.HaltedStrata, "*")
}

// save writes the campaign row with the tick's changes. An operator's
// command committed since the tick read the row wins over the engine's
// own state change (the engine acts on it next tick).
func (r *run) save(ctx context.Context) error {
	var bad string
	c, err := r.e.st.UpdateCampaign(ctx, r.c.TenantID, r.c.ID, store.CampaignUpdate{
		Lease: &r.l, Now: r.now, By: actor,
		Decision: r.decision, RatePeriods: r.periods, Events: r.events,
		Apply: func(c *store.Campaign) error {
			rowRT, err := campaign.RuntimeOf(*c)
			if err != nil {
				return err
			}
			rt := r.rt
			rt.RollbackRequested = rowRT.RollbackRequested && !r.handledRBReq
			applied := c.State == r.c.State && c.Step == r.c.Step
			if !applied {
				// The operator's command (pause, approve, abort) won over
				// the tick's state and step change: the step's own
				// records stay as they were (a question this tick asked
				// is not asked, an advance not made); the engine acts
				// again on the row as it is now.
				rt.EscalatedAt, rt.HoldSince, rt.HoldPausedAt = rowRT.EscalatedAt, rowRT.HoldSince, rowRT.HoldPausedAt
				rt.SoakStartedAt, rt.StepStartedAt = rowRT.SoakStartedAt, rowRT.StepStartedAt
			}
			if err := campaign.SetRuntime(c, rt); err != nil {
				return err
			}
			if applied {
				if r.state != "" {
					c.State, c.StateReason = r.state, r.reason
				}
				c.Step = r.step
				if r.asked {
					// An approval given before the question, even one
					// committed during this tick, does not answer it.
					c.ApprovedStep = min(c.ApprovedStep, r.step-1)
				}
				if r.finished && c.FinishedAt == nil {
					c.FinishedAt = &r.now
				}
			} else if c.State == store.CampaignAborted && r.finished && c.FinishedAt == nil {
				c.FinishedAt = &r.now
			}
			bad = r.markBad
			return nil
		},
	})
	if err != nil {
		return err
	}
	for _, id := range r.notifyDevices {
		r.e.notify.Notify(r.c.TenantID, id)
	}
	if bad != "" {
		if _, err := r.e.st.MarkBad(ctx, c.TenantID, c.ReleaseID, true, bad, actor, r.now); err != nil {
			r.e.log.Error("mark release bad", "release_id", c.ReleaseID, "err", err)
		}
	}
	r.e.m.observe(c, r.tallies, r.decision)
	canary, control := 0.0, 0.0
	for _, p := range r.periods {
		canary += p.CanaryHours
		control += p.ControlHours
	}
	r.e.m.addExposure(c.ID, canary, control)
	return nil
}

// event queues a webhook event about the campaign.
func (r *run) event(name, summary string, extra map[string]any) {
	payload := map[string]any{
		"event": name, "campaign_id": r.c.ID, "campaign": r.c.Name, "version": r.c.Version,
		"state": r.cur(), "summary": summary, "at": r.now,
	}
	for k, v := range extra {
		payload[k] = v
	}
	b, err := json.Marshal(payload)
	if err != nil {
		r.e.log.Error("encode webhook event", "err", err)
		return
	}
	r.events = append(r.events, store.WebhookEvent{Event: name, Payload: b})
}

// waitingMessage reports whether a device's report says it waits for a
// maintenance window or an install gate (the agent reports "waiting to
// download: …" and "downloaded; waiting to install: …").
func waitingMessage(msg string) bool { return strings.Contains(msg, "waiting to ") }

// sync folds assignment changes of the campaign into its device rows.
func (r *run) sync(ctx context.Context) error {
	since, after := r.rt.AssignAt, r.rt.AssignID
	if r.e.cfg.Lag > 0 && !since.IsZero() {
		since, after = since.Add(-r.e.cfg.Lag), ""
	}
	for page := 0; page < 20; page++ {
		changes, err := r.e.st.CampaignAssignmentChanges(ctx, r.c.TenantID, r.c.ID, since, after, r.e.cfg.Batch)
		if err != nil {
			return err
		}
		var updates []store.CampaignDeviceChange
		for _, a := range changes {
			cd, err := r.e.st.CampaignDevice(ctx, r.c.TenantID, r.c.ID, a.DeviceID)
			if err != nil {
				return err
			}
			if nd, ok := r.applyAssignment(cd, a); ok {
				updates = append(updates, store.CampaignDeviceChange{Device: nd})
			}
		}
		if len(updates) > 0 {
			if err := r.e.st.UpdateCampaignDevices(ctx, r.l, r.c.TenantID, r.c.ID, updates, r.now); err != nil {
				return err
			}
		}
		for _, a := range changes {
			if a.UpdatedAt.After(r.rt.AssignAt) || a.UpdatedAt.Equal(r.rt.AssignAt) && a.ID > r.rt.AssignID {
				r.rt.AssignAt, r.rt.AssignID = a.UpdatedAt, a.ID
			}
		}
		if len(changes) < r.e.cfg.Batch {
			return nil
		}
		last := changes[len(changes)-1]
		since, after = last.UpdatedAt, last.ID
	}
	return nil
}

// applyAssignment returns the device row after the assignment change, and
// whether it differs.
func (r *run) applyAssignment(cd store.CampaignDevice, a store.AssignmentChange) (store.CampaignDevice, bool) {
	if cd.AssignmentID != a.ID || cd.State != store.CDAssigned {
		return cd, false
	}
	nd := cd
	if !a.State.Terminal() {
		nd.Waiting = waitingMessage(a.LastMessage)
		due := a.UpdatedAt.Add(r.spec.DeviceTimeout.D())
		if nd.DueAt == nil || due.After(*nd.DueAt) {
			nd.DueAt = &due
		}
		return nd, nd.Waiting != cd.Waiting || !timeEq(nd.DueAt, cd.DueAt)
	}
	at := a.UpdatedAt
	nd.FinishedAt, nd.DueAt, nd.Waiting = &at, nil, false
	nd.Reason = strings.TrimSpace(strings.Join([]string{a.ErrorCode, a.Reason}, " "))
	switch a.State {
	case store.AssignSucceeded:
		nd.State, nd.SoakStartedAt = store.CDSucceeded, &at
	case store.AssignFailed:
		nd.State = store.CDFailed
	case store.AssignRolledBack:
		nd.State = store.CDRolledBack
	case store.AssignTimedOut:
		nd.State = store.CDTimedOut
	case store.AssignSkipped:
		nd.State = store.CDSkipped
	case store.AssignCanceled:
		nd.State = store.CDCanceled
	case store.AssignSuperseded:
		nd.State, nd.Reason = store.CDSuperseded, "superseded by assignment "+a.SupersededBy
	}
	return nd, true
}

func timeEq(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// timeouts ends assignments whose devices made no progress in time. A
// device that said it waits for a window or a gate is not a failure: it is
// recorded as skipped.
func (r *run) timeouts(ctx context.Context) error {
	due, err := r.e.st.DueCampaignDevices(ctx, r.c.TenantID, r.c.ID, r.now, r.e.cfg.Batch)
	if err != nil || len(due) == 0 {
		return err
	}
	var ends []store.CampaignEnd
	var extend []store.CampaignDeviceChange
	for _, cd := range due {
		if len(r.spec.Schedule.Windows) > 0 && !r.forced() {
			d, err := r.e.st.Device(ctx, r.c.TenantID, cd.DeviceID)
			if err != nil {
				return err
			}
			if in, _ := insideWindow(r.now, d.TimeZone, r.spec.Schedule.Windows); !in {
				// Time outside the device's windows does not count.
				next := nextWindowOpen(r.now, d.TimeZone, r.spec.Schedule.Windows).Add(r.spec.DeviceTimeout.D())
				cd.DueAt = &next
				extend = append(extend, store.CampaignDeviceChange{Device: cd})
				continue
			}
		}
		end := store.CampaignEnd{DeviceID: cd.DeviceID, State: store.AssignTimedOut, DeviceState: store.CDTimedOut,
			Reason: fmt.Sprintf("no progress for %v", r.spec.DeviceTimeout.D())}
		if cd.Waiting {
			end.DeviceState, end.Reason = store.CDSkipped, fmt.Sprintf("waited for a maintenance window or install gate for %v", r.spec.DeviceTimeout.D())
		}
		ends = append(ends, end)
	}
	if len(extend) > 0 {
		if err := r.e.st.UpdateCampaignDevices(ctx, r.l, r.c.TenantID, r.c.ID, extend, r.now); err != nil {
			return err
		}
	}
	if len(ends) == 0 {
		return nil
	}
	ended, err := r.e.st.EndCampaignAssignments(ctx, r.l, r.c.TenantID, r.c.ID, ends, actor, r.now)
	if err != nil {
		return err
	}
	for _, a := range ended {
		r.notifyDevices = append(r.notifyDevices, a.DeviceID)
	}
	return nil
}

// retries re-queues failed devices once per operator retry request.
func (r *run) retries(ctx context.Context) error {
	if r.c.RetryRequested <= r.rt.RetriesHandled {
		return nil
	}
	for _, st := range []store.CampaignDeviceState{store.CDFailed, store.CDTimedOut, store.CDSkipped, store.CDCanceled} {
		after := ""
		for {
			cds, next, err := r.e.st.ListCampaignDevices(ctx, r.c.TenantID, r.c.ID, st, store.Page{Limit: r.e.cfg.Batch, After: after})
			if err != nil {
				return err
			}
			var changes []store.CampaignDeviceChange
			for _, cd := range cds {
				if r.halted(cd.Stratum) {
					continue
				}
				cd.State, cd.EligibleAt, cd.Reason, cd.FinishedAt, cd.DueAt = store.CDQueued, r.now, "retry requested", nil, nil
				changes = append(changes, store.CampaignDeviceChange{Device: cd})
			}
			if len(changes) > 0 {
				if err := r.e.st.UpdateCampaignDevices(ctx, r.l, r.c.TenantID, r.c.ID, changes, r.now); err != nil {
					return err
				}
			}
			if next == "" {
				break
			}
			after = next
		}
	}
	r.rt.RetriesHandled = r.c.RetryRequested
	return nil
}

// cancelAll cancels the campaign's unfinished assignments, a batch per
// tick, and marks the campaign finished when none is left.
func (r *run) cancelAll(ctx context.Context, st store.CampaignDeviceState, reason string) error {
	cds, _, err := r.e.st.ListCampaignDevices(ctx, r.c.TenantID, r.c.ID, store.CDAssigned, store.Page{Limit: r.e.cfg.Batch})
	if err != nil {
		return err
	}
	if len(cds) == 0 {
		r.finished = true
		return nil
	}
	ends := make([]store.CampaignEnd, len(cds))
	for i, cd := range cds {
		ends[i] = store.CampaignEnd{DeviceID: cd.DeviceID, State: store.AssignCanceled, DeviceState: st, Reason: reason}
	}
	ended, err := r.e.st.EndCampaignAssignments(ctx, r.l, r.c.TenantID, r.c.ID, ends, actor, r.now)
	if err != nil {
		return err
	}
	for _, a := range ended {
		r.notifyDevices = append(r.notifyDevices, a.DeviceID)
	}
	return nil
}

// forced reports whether the campaign's deadline has made it forced.
func (r *run) forced() bool {
	d := r.spec.Schedule.Deadline
	return d != nil && !r.now.Before(*d) && r.releaseCritical()
}

func (r *run) releaseCritical() bool {
	if r.critical == nil {
		rel, err := r.e.st.Release(context.Background(), r.c.TenantID, r.c.ReleaseID)
		crit := err == nil && rel.Severity == store.SeverityCritical
		r.critical = &crit
	}
	return *r.critical
}
