package campaign

import (
	"context"
	"fmt"

	"github.com/updraft/updraft/internal/store"
)

// The release rule: a release must have passed staging before production
// campaigns without staging waves take it (Spec.RequireStagedRelease).

// checkStaged applies the release rule (Spec.RequireStagedRelease): a
// campaign without staging waves of its own needs an earlier campaign of
// the release that passed all of its staging waves, unless the operator
// overrides it (Create audits the override).
func checkStaged(ctx context.Context, st Reader, tenant string, s Spec, rel store.Release, pv *Preview) error {
	if !s.RequireStagedRelease || len(s.Plan.Staging) > 0 || s.OverrideStaging {
		return nil
	}
	staged, err := StagedBy(ctx, st, tenant, rel.ID)
	if err != nil {
		return err
	}
	if staged == "" {
		pv.Problems.add("release", "release %s has not completed staging in any campaign and require_staged_release is set: "+
			"run a campaign with staging waves first, or set override_staging (audited)", rel.Version)
	}
	return nil
}

// StagedBy returns the id of a campaign of the release that passed all of
// its staging waves (each approved and left behind by the engine), or ""
// when there is none.
func StagedBy(ctx context.Context, st Reader, tenant, releaseID string) (string, error) {
	p := store.Page{Limit: store.MaxPageLimit}
	for {
		cs, next, err := st.ListCampaigns(ctx, tenant, store.CampaignQuery{Page: p})
		if err != nil {
			return "", fmt.Errorf("campaigns of release %s: %w", releaseID, err)
		}
		for _, c := range cs {
			if c.Kind != store.CampaignKindRollout || c.ReleaseID != releaseID || c.State == store.CampaignDraft {
				continue
			}
			plan, err := PlanOf(c)
			if err != nil || plan.Staging == 0 {
				continue
			}
			if c.Step >= plan.Staging && c.ApprovedStep >= plan.Staging-1 {
				return c.ID, nil
			}
		}
		if next == "" {
			return "", nil
		}
		p.After = next
	}
}
