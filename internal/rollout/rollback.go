package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"

	"fmt"
	"slices"
	"strconv"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/store"
)

// rollbacks acts on halts: it cancels unfinished assignments in halted
// strata and, when a rollback is pending, moves the devices that installed
// the release in those strata into a rollback campaign, a page per tick.
func (r *run) rollbacks(ctx context.Context) error {
	if !r.rollout() {
		return nil
	}
	if r.rt.RollbackRequested {
		r.handledRBReq = true
		r.rt.HaltedStrata = []string{"*"}
		if !slices.Contains(r.rt.RollbackPending, "*") {
			r.rt.RollbackPending = append(r.rt.RollbackPending, "*")
		}
		r.markBad = "rolled back: " + r.c.StateReason
		r.event("campaign.rollback", r.c.StateReason, nil)
	}
	if len(r.rt.HaltedStrata) > 0 {
		if err := r.cancelHalted(ctx); err != nil {
			return err
		}
	}
	if len(r.rt.RollbackPending) == 0 {
		return nil
	}
	pending := func(stratum string) bool {
		return slices.Contains(r.rt.RollbackPending, "*") || slices.Contains(r.rt.RollbackPending, stratum)
	}
	cds, next, err := r.e.st.ListCampaignDevices(ctx, r.c.TenantID, r.c.ID, store.CDSucceeded, store.Page{Limit: r.e.cfg.Batch, After: r.rt.RollbackCursor})
	if err != nil {
		return err
	}
	releases := map[string]store.Release{}
	find := func(version string) (store.Release, bool) {
		if rel, ok := releases[version]; ok {
			return rel, rel.ID != ""
		}
		rel, err := campaign.FindRelease(ctx, r.e.st, r.c.TenantID, version)
		if err != nil || rel.Bad || rel.State != store.ReleasePublished {
			rel = store.Release{}
		}
		releases[version] = rel
		return rel, rel.ID != ""
	}
	var target store.Release
	if to := r.spec.OnFailure.RollbackTo; to != "" {
		var ok bool
		if target, ok = find(to); !ok {
			return fmt.Errorf("rollback release %s is missing, bad or unpublished", to)
		}
	}
	var add []store.CampaignDevice
	for _, cd := range cds {
		if !pending(cd.Stratum) {
			continue
		}
		d := store.CampaignDevice{DeviceID: cd.DeviceID, Stratum: cd.Stratum, Step: 0, Silent: cd.Silent, State: store.CDQueued,
			EligibleAt: r.now, FromVersion: r.c.Version}
		rel := target
		if rel.ID == "" {
			prev, ok := find(cd.FromVersion)
			if !ok || cd.FromVersion == "" || cd.FromVersion == r.c.Version {
				d.State, d.Reason = store.CDSkipped, fmt.Sprintf("no good release for its previous version %q", cd.FromVersion)
			}
			rel = prev
		}
		d.ReleaseID = rel.ID
		if target.ID == "" && rel.ID != "" {
			target = rel
		}
		add = append(add, d)
	}
	if len(add) > 0 && target.ID == "" {
		// Nothing to go back to (the previous versions have no good,
		// published release): say so and leave the devices.
		r.e.log.Warn("no release to roll back to", "campaign_id", r.c.ID, "devices", len(add))
		r.event("campaign.rollback_failed", fmt.Sprintf("%d devices cannot be rolled back: no good, published release of their previous version", len(add)), nil)
		add = nil
	}
	if len(add) > 0 {
		id, err := r.rollbackCampaign(ctx, target)
		if err != nil {
			return err
		}
		if _, err := r.e.st.AddCampaignDevices(ctx, r.l, r.c.TenantID, id, add, r.now); err != nil {
			return err
		}
	}
	r.rt.RollbackCursor = next
	if next == "" {
		r.rt.RollbackPending = nil
	}
	return nil
}

// cancelHalted cancels the unfinished assignments in halted strata.
func (r *run) cancelHalted(ctx context.Context) error {
	cds, _, err := r.e.st.ListCampaignDevices(ctx, r.c.TenantID, r.c.ID, store.CDAssigned, store.Page{Limit: r.e.cfg.Batch})
	if err != nil {
		return err
	}
	var ends []store.CampaignEnd
	for _, cd := range cds {
		if r.halted(cd.Stratum) {
			ends = append(ends, store.CampaignEnd{DeviceID: cd.DeviceID, State: store.AssignCanceled, DeviceState: store.CDCanceled,
				Reason: "the campaign halted this device's stratum"})
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

// rollbackCampaign returns the open rollback campaign of this campaign,
// creating one when there is none. Its id derives from this campaign's, so
// a leader repeating the creation after a crash finds the same campaign.
func (r *run) rollbackCampaign(ctx context.Context, rel store.Release) (string, error) {
	if n := len(r.rt.Rollbacks); n > 0 {
		last, err := r.e.st.Campaign(ctx, r.c.TenantID, r.rt.Rollbacks[n-1])
		if err != nil {
			return "", err
		}
		if !last.State.Terminal() {
			return last.ID, nil
		}
	}
	sum := sha256.Sum256([]byte(r.c.ID + "/rollback/" + strconv.Itoa(len(r.rt.Rollbacks))))
	id := hex.EncodeToString(sum[:16])
	if existing, err := r.e.st.Campaign(ctx, r.c.TenantID, id); err == nil {
		r.rt.Rollbacks = append(r.rt.Rollbacks, existing.ID)
		return existing.ID, nil
	}
	spec := campaign.Spec{
		Name: "rollback of " + r.c.Name, Release: rel.Version,
		Plan:     campaign.Plan{Waves: []float64{100}, NoControl: true},
		Schedule: campaign.Schedule{Windows: r.spec.Schedule.Windows},
		Health:   campaign.Health{Preset: "relaxed"}, Gates: r.spec.Gates, DeviceTimeout: r.spec.DeviceTimeout,
		Strata: r.spec.Strata,
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	plan, err := json.Marshal(campaign.Resolved{Steps: []campaign.Step{{Name: "rollback", Kind: campaign.StepWave, Fraction: 1}}, Strata: map[string]int{}})
	if err != nil {
		return "", err
	}
	rt, err := json.Marshal(campaign.Runtime{Targeted: true, StepStartedAt: r.now})
	if err != nil {
		return "", err
	}
	now := r.now
	c, err := r.e.st.CreateCampaign(ctx, store.Campaign{
		TenantID: r.c.TenantID, ID: id, Name: spec.Name, Kind: store.CampaignKindRollback, ReleaseID: rel.ID, RollbackOf: r.c.ID,
		Spec: specJSON, Plan: plan, Engine: rt, State: store.CampaignRunning, ApprovedStep: -1, Seed: r.c.Seed, StartedAt: &now,
	}, actor, r.now)
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return "", err
	}
	if err != nil {
		c.ID = id
	}
	r.rt.Rollbacks = append(r.rt.Rollbacks, c.ID)
	r.event("campaign.rollback", fmt.Sprintf("rolling devices back to %s in campaign %s", rel.Version, c.ID), map[string]any{"rollback_campaign_id": c.ID})
	return c.ID, nil
}

// rollbackSourceDone reports whether a rollback campaign's source has
// added every device it will (a rollback campaign completes only then).
func (r *run) rollbackSourceDone(ctx context.Context) (bool, error) {
	if r.c.RollbackOf == "" {
		return true, nil
	}
	src, err := r.e.st.Campaign(ctx, r.c.TenantID, r.c.RollbackOf)
	if err != nil {
		return false, err
	}
	rt, err := campaign.RuntimeOf(src)
	if err != nil {
		return false, err
	}
	return len(rt.RollbackPending) == 0 && !rt.RollbackRequested, nil
}
