package campaign

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Runtime is the engine's bookkeeping stored with a campaign (the
// campaign's Engine JSON). The rollout engine owns every field except the
// requests an operator makes through the functions below, which the engine
// acts on and clears.
type Runtime struct {
	// Targeted is set once the initial targets are drawn.
	Targeted bool `json:"targeted"`
	// DeviceCursor and AssignCursor follow device and assignment changes.
	DeviceCursor store.DeviceCursor `json:"device_cursor"`
	AssignAt     time.Time          `json:"assign_at"`
	AssignID     string             `json:"assign_id"`
	// RateHour is the next hour whose telemetry becomes rate evidence.
	RateHour time.Time `json:"rate_hour"`
	// StepStartedAt is when the current step opened; SoakStartedAt when
	// its devices had reported (nil until then).
	StepStartedAt time.Time  `json:"step_started_at"`
	SoakStartedAt *time.Time `json:"soak_started_at,omitempty"`
	// HaltedStrata stop getting devices; their updated devices are rolled back.
	HaltedStrata []string `json:"halted_strata,omitempty"`
	// HaltedMetrics are the metrics whose tests halted strata; the other
	// strata advance only while their own evidence on them is clean.
	HaltedMetrics []string `json:"halted_metrics,omitempty"`
	// HoldSince is when the current step started being held because the
	// strata still running lean the way that halted others (nil: not
	// held); EscalatedAt when the engine then asked the operator to decide
	// (nil: not asked). Both are cleared when the step advances.
	HoldSince   *time.Time `json:"hold_since,omitempty"`
	EscalatedAt *time.Time `json:"escalated_at,omitempty"`
	// HoldPausedAt is when a held campaign the engine had not asked about
	// was found paused; at resume HoldSince moves forward by the pause,
	// so that time paused does not count toward the hold limit.
	HoldPausedAt *time.Time `json:"hold_paused_at,omitempty"`
	// Tokens is the rate limiter's bucket at TokensAt.
	Tokens   float64   `json:"tokens"`
	TokensAt time.Time `json:"tokens_at"`
	// RetriesHandled counts operator retries acted on.
	RetriesHandled int `json:"retries_handled"`
	// LastVerdict and LastDecisionAt throttle stored hold decisions.
	LastVerdict    string    `json:"last_verdict,omitempty"`
	LastSummary    string    `json:"last_summary,omitempty"`
	LastDecisionAt time.Time `json:"last_decision_at"`
	// Rollbacks lists rollback campaigns created for this one, and the
	// strata (or "*" for all) whose devices still have to be added.
	Rollbacks       []string `json:"rollbacks,omitempty"`
	RollbackPending []string `json:"rollback_pending,omitempty"`
	RollbackCursor  string   `json:"rollback_cursor,omitempty"`
	// RollbackRequested is an operator's request to roll the whole
	// campaign back (set by Rollback, cleared by the engine).
	RollbackRequested bool `json:"rollback_requested,omitempty"`
	// DeadlineNotified is set once devices were woken at the deadline.
	DeadlineNotified bool `json:"deadline_notified,omitempty"`
	// Finished is set when nothing is left to do (all cleanup done).
	Finished bool `json:"finished,omitempty"`
}

// RuntimeOf decodes a campaign's runtime state.
func RuntimeOf(c store.Campaign) (Runtime, error) {
	var r Runtime
	if len(c.Engine) == 0 {
		return r, nil
	}
	if err := json.Unmarshal(c.Engine, &r); err != nil {
		return r, fmt.Errorf("campaign %s engine state: %w", c.ID, err)
	}
	return r, nil
}

// SetRuntime stores r in c.
func SetRuntime(c *store.Campaign, r Runtime) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode engine state: %w", err)
	}
	c.Engine = b
	return nil
}

// Writer is the part of the store the operator commands use.
type Writer interface {
	Reader
	CreateCampaign(ctx context.Context, c store.Campaign, by store.Actor, now time.Time) (store.Campaign, error)
	Campaign(ctx context.Context, tenant, id string) (store.Campaign, error)
	UpdateCampaign(ctx context.Context, tenant, id string, u store.CampaignUpdate) (store.Campaign, error)
}

// Create checks the spec and stores the campaign as a draft. Problems
// come back as the error (Problems) along with the preview.
func Create(ctx context.Context, st Writer, tenant string, s Spec, by store.Actor, now time.Time) (store.Campaign, Preview, error) {
	pv, err := Check(ctx, st, tenant, s)
	if err != nil {
		return store.Campaign{}, pv, err
	}
	spec, err := json.Marshal(s)
	if err != nil {
		return store.Campaign{}, pv, fmt.Errorf("encode spec: %w", err)
	}
	plan, err := json.Marshal(pv.Plan)
	if err != nil {
		return store.Campaign{}, pv, fmt.Errorf("encode plan: %w", err)
	}
	var seed [8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return store.Campaign{}, pv, fmt.Errorf("campaign seed: %w", err)
	}
	c, err := st.CreateCampaign(ctx, store.Campaign{
		TenantID: tenant, Name: s.Name, Kind: store.CampaignKindRollout, ReleaseID: pv.Release.ID,
		Spec: spec, Plan: plan, State: store.CampaignDraft, ApprovedStep: -1,
		Seed: cmp.Or(s.Seed, int64(binary.BigEndian.Uint64(seed[:])>>1)),
	}, by, now)
	if err != nil {
		return store.Campaign{}, pv, err
	}
	if s.AllowBad && pv.Release.Bad {
		// The override is on record with the campaign's creation.
		if _, err := st.UpdateCampaign(ctx, tenant, c.ID, store.CampaignUpdate{
			By: by, Now: now, Action: "campaign.override_bad",
			Details: map[string]any{"release_id": pv.Release.ID, "version": pv.Release.Version, "bad_reason": pv.Release.BadReason},
		}); err != nil {
			return store.Campaign{}, pv, err
		}
	}
	if s.OverrideStaging && s.RequireStagedRelease && len(s.Plan.Staging) == 0 {
		staged, err := StagedBy(ctx, st, tenant, pv.Release.ID)
		if err != nil {
			return store.Campaign{}, pv, err
		}
		if staged == "" {
			if _, err := st.UpdateCampaign(ctx, tenant, c.ID, store.CampaignUpdate{
				By: by, Now: now, Action: "campaign.override_staging",
				Details: map[string]any{"release_id": pv.Release.ID, "version": pv.Release.Version},
			}); err != nil {
				return store.Campaign{}, pv, err
			}
		}
	}
	return c, pv, nil
}

// transition applies an operator command: fn checks the current state and
// changes the campaign; the change is audited as action.
func transition(ctx context.Context, st Writer, tenant, id, action string, by store.Actor, now time.Time, details map[string]any, fn func(c *store.Campaign) error) (store.Campaign, error) {
	var from store.CampaignState
	c, err := st.UpdateCampaign(ctx, tenant, id, store.CampaignUpdate{
		By: by, Now: now, Action: action, Details: details,
		Apply: func(c *store.Campaign) error {
			from = c.State
			if details != nil {
				details["state_was"] = from
			}
			return fn(c)
		},
	})
	if err != nil {
		return store.Campaign{}, err
	}
	return c, nil
}

func stateConflict(c *store.Campaign, verb string) error {
	return store.Conflictf("campaign %s is %s; it cannot be %s", c.Name, c.State, verb)
}

// Start re-checks a draft against the fleet as it is now, stores the
// resolved plan and sets the campaign running.
func Start(ctx context.Context, st Writer, tenant, id string, by store.Actor, now time.Time) (store.Campaign, error) {
	c, err := st.Campaign(ctx, tenant, id)
	if err != nil {
		return store.Campaign{}, err
	}
	if c.State != store.CampaignDraft {
		return store.Campaign{}, stateConflict(&c, "started")
	}
	var plan json.RawMessage = c.Plan
	if c.Kind == store.CampaignKindRollout {
		s, err := FromCampaign(c)
		if err != nil {
			return store.Campaign{}, err
		}
		s.Release = c.ReleaseID
		pv, err := Check(ctx, st, tenant, s)
		if err != nil {
			return store.Campaign{}, err
		}
		if plan, err = json.Marshal(pv.Plan); err != nil {
			return store.Campaign{}, err
		}
	}
	return transition(ctx, st, tenant, id, "campaign.start", by, now, map[string]any{}, func(c *store.Campaign) error {
		if c.State != store.CampaignDraft {
			return stateConflict(c, "started")
		}
		c.State, c.StartedAt, c.Plan, c.Step = store.CampaignRunning, &now, plan, 0
		return nil
	})
}

// Pause stops dispatching new devices; devices already updating go on.
func Pause(ctx context.Context, st Writer, tenant, id string, by store.Actor, now time.Time) (store.Campaign, error) {
	return transition(ctx, st, tenant, id, "campaign.pause", by, now, map[string]any{}, func(c *store.Campaign) error {
		if c.State != store.CampaignRunning && c.State != store.CampaignWaitingApproval {
			return stateConflict(c, "paused")
		}
		c.State, c.StateReason = store.CampaignPaused, "paused by "+by.Name
		return nil
	})
}

// Resume continues a paused campaign, or a halted one (an audited override
// of the engine's halt).
func Resume(ctx context.Context, st Writer, tenant, id string, by store.Actor, now time.Time) (store.Campaign, error) {
	return transition(ctx, st, tenant, id, "campaign.resume", by, now, map[string]any{}, func(c *store.Campaign) error {
		if c.State != store.CampaignPaused && c.State != store.CampaignHalted {
			return stateConflict(c, "resumed")
		}
		if c.State == store.CampaignHalted {
			rt, err := RuntimeOf(*c)
			if err != nil {
				return err
			}
			if len(rt.Rollbacks) > 0 {
				return store.Conflictf("campaign %s was rolled back; start a new campaign instead", c.Name)
			}
		}
		c.State, c.StateReason = store.CampaignRunning, ""
		return nil
	})
}

// Abort ends the campaign: the engine cancels its unfinished assignments.
func Abort(ctx context.Context, st Writer, tenant, id, reason string, by store.Actor, now time.Time) (store.Campaign, error) {
	if reason == "" {
		reason = "aborted by " + by.Name
	}
	return transition(ctx, st, tenant, id, "campaign.abort", by, now, map[string]any{"reason": reason}, func(c *store.Campaign) error {
		if c.State.Terminal() {
			return stateConflict(c, "aborted")
		}
		c.State, c.StateReason = store.CampaignAborted, reason
		if c.StartedAt == nil {
			c.FinishedAt = &now // a draft has nothing to clean up
		}
		return nil
	})
}

// Retry asks the engine to queue the campaign's failed, timed-out and
// skipped devices again (in strata that are not halted).
func Retry(ctx context.Context, st Writer, tenant, id string, by store.Actor, now time.Time) (store.Campaign, error) {
	return transition(ctx, st, tenant, id, "campaign.retry", by, now, map[string]any{}, func(c *store.Campaign) error {
		if c.State.Terminal() || c.State == store.CampaignDraft {
			return stateConflict(c, "retried")
		}
		c.RetryRequested++
		return nil
	})
}

// Approve lets the current step pass once its soak and health tests allow
// (approving ahead of time is allowed).
func Approve(ctx context.Context, st Writer, tenant, id string, by store.Actor, now time.Time) (store.Campaign, error) {
	details := map[string]any{}
	return transition(ctx, st, tenant, id, "campaign.approve", by, now, details, func(c *store.Campaign) error {
		if c.State != store.CampaignRunning && c.State != store.CampaignWaitingApproval {
			return stateConflict(c, "approved")
		}
		details["step"] = c.Step
		c.ApprovedStep = c.Step
		return nil
	})
}

// Finalize declares the release proven: the signing service raises the
// security floor of the campaign's devices, after which the campaign can
// no longer be rolled back.
func Finalize(ctx context.Context, st Writer, tenant, id string, by store.Actor, now time.Time) (store.Campaign, error) {
	return transition(ctx, st, tenant, id, "campaign.finalize", by, now, map[string]any{}, func(c *store.Campaign) error {
		if c.Kind != store.CampaignKindRollout || c.FinalizedAt != nil {
			return store.Conflictf("campaign %s is a rollback or already finalized", c.Name)
		}
		if c.State != store.CampaignRunning && c.State != store.CampaignCompleted && c.State != store.CampaignWaitingApproval {
			return stateConflict(c, "finalized")
		}
		c.FinalizedAt = &now
		return nil
	})
}

// Rollback halts the campaign and asks the engine to move every device
// that got the release back (see Spec.OnFailure.RollbackTo) and to mark
// the release bad. A finalized campaign cannot be rolled back: devices
// refuse to go below their raised security floor.
func Rollback(ctx context.Context, st Writer, tenant, id, reason string, by store.Actor, now time.Time) (store.Campaign, error) {
	if reason == "" {
		reason = "rolled back by " + by.Name
	}
	return transition(ctx, st, tenant, id, "campaign.rollback", by, now, map[string]any{"reason": reason}, func(c *store.Campaign) error {
		if c.Kind != store.CampaignKindRollout || c.State == store.CampaignDraft || c.State == store.CampaignAborted {
			return stateConflict(c, "rolled back")
		}
		if c.FinalizedAt != nil {
			return store.Conflictf("campaign %s was finalized; its devices' security floor forbids going back", c.Name)
		}
		rt, err := RuntimeOf(*c)
		if err != nil {
			return err
		}
		rt.RollbackRequested = true
		if err := SetRuntime(c, rt); err != nil {
			return err
		}
		c.State, c.StateReason, c.FinishedAt = store.CampaignHalted, reason, nil
		return nil
	})
}
