package campaign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/store"
)

// Step kinds.
const (
	StepStaging = "staging"
	StepWave    = "wave"
)

// Step is one step of a resolved plan.
type Step struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Selector chooses a staging wave's devices.
	Selector string `json:"selector,omitempty"`
	// Fraction is a production wave's cumulative share of the production
	// targets; Planned the cumulative devices that meant at planning time.
	Fraction float64 `json:"fraction,omitempty"`
	Planned  int     `json:"planned"`
	// Approval: the step may pass only once an operator approved it.
	Approval bool `json:"approval"`
	// Detectable is the smallest install-failure regression factor the
	// evidence after this step detects with the policy's power (+Inf: none),
	// as JSON null when infinite.
	Detectable *float64 `json:"detectable,omitempty"`
}

// Resolved is a plan made concrete against the fleet when the campaign
// starts (and for a preview before).
type Resolved struct {
	Steps []Step `json:"steps"`
	// Staging is the number of staging steps at the front of Steps.
	Staging         int     `json:"staging"`
	ControlFraction float64 `json:"control_fraction"`
	Targets         int     `json:"targets"`
	// Strata counts the targets per stratum key ("hw_rev=B,…").
	Strata map[string]int `json:"strata"`
	// Baseline is the install-failure rate the release is judged against,
	// from the previous release's outcomes (BaselineDevices > 0) or the SLO.
	Baseline         float64 `json:"baseline"`
	BaselineVersion  string  `json:"baseline_version,omitempty"`
	BaselineDevices  int     `json:"baseline_devices"`
	BaselineFailures int     `json:"baseline_failures"`
	Note             string  `json:"note,omitempty"`
}

// Production returns the number of production waves.
func (r Resolved) Production() int { return len(r.Steps) - r.Staging }

// ControlPhase is the step in which the control group is updated.
func (r Resolved) ControlPhase() int { return len(r.Steps) }

// StratumKeys returns the strata in a fixed order.
func (r Resolved) StratumKeys() []string {
	keys := make([]string, 0, len(r.Strata))
	for k := range r.Strata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// PlanOf decodes the plan stored with a campaign.
func PlanOf(c store.Campaign) (Resolved, error) {
	var r Resolved
	if err := json.Unmarshal(c.Plan, &r); err != nil {
		return r, fmt.Errorf("campaign %s plan: %w", c.ID, err)
	}
	return r, nil
}

// HardwareCoverage is one (device type, revision) among the targets and
// whether the release can update it.
type HardwareCoverage struct {
	DeviceType string `json:"device_type"`
	HWRev      string `json:"hw_rev"`
	Devices    int    `json:"devices"`
	Covered    bool   `json:"covered"`
}

// Preview is what a campaign would do, computed before it starts.
type Preview struct {
	Release  store.Release      `json:"release"`
	Targets  int                `json:"targets"`
	Strata   map[string]int     `json:"strata"`
	Hardware []HardwareCoverage `json:"hardware"`
	Plan     Resolved           `json:"plan"`
	// Problems stop the campaign from starting; Warnings do not.
	Problems Problems `json:"problems"`
	Warnings []string `json:"warnings"`
}

// Summary states the preview in one line, e.g. "matches 12,408 devices:
// 9,100 hw_rev=B, 3,308 hw_rev=C".
func (p Preview) Summary() string {
	keys := make([]string, 0, len(p.Strata))
	for k := range p.Strata {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if p.Strata[keys[i]] != p.Strata[keys[j]] {
			return p.Strata[keys[i]] > p.Strata[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", p.Strata[k], k)
	}
	return fmt.Sprintf("matches %d devices: %s", p.Targets, strings.Join(parts, ", "))
}

// Reader is the part of the store a preview reads.
type Reader interface {
	Release(ctx context.Context, tenant, id string) (store.Release, error)
	ReleaseByVersion(ctx context.Context, tenant, version string) (store.Release, error)
	CountTargets(ctx context.Context, tenant string, f *filter.Expr, fields []string) (map[string]int, error)
	HardwareOf(ctx context.Context, tenant string, f *filter.Expr) (map[[2]string]int, error)
	CountDevicesBy(ctx context.Context, tenant string, f *filter.Expr, field string) (map[string]int, error)
	ReleaseOutcomes(ctx context.Context, tenant, releaseID string) (devices, failures int, err error)
	ListCampaigns(ctx context.Context, tenant string, q store.CampaignQuery) ([]store.Campaign, string, error)
}

// FindRelease resolves a release reference: a semantic version, or else an id.
func FindRelease(ctx context.Context, st Reader, tenant, ref string) (store.Release, error) {
	if _, err := semver.Parse(ref); err == nil {
		return st.ReleaseByVersion(ctx, tenant, ref)
	}
	return st.Release(ctx, tenant, ref)
}

// Check validates the spec against the fleet and the release and resolves
// its plan. Problems in the result (and the returned error, which is then
// Problems) are everything that would stop the campaign from ever
// completing: no target, hardware without an artifact, a bad release
// without the override, a staging wave with no device, a schedule too
// short for the plan's soaks. Other errors are store failures.
func Check(ctx context.Context, st Reader, tenant string, s Spec) (Preview, error) {
	var pv Preview
	pv.Strata = map[string]int{}
	pv.Warnings = []string{}
	if err := s.Validate(); err != nil {
		var ps Problems
		if errors.As(err, &ps) {
			pv.Problems = append(pv.Problems, ps...)
		} else {
			return pv, err
		}
	}
	s = s.WithDefaults()
	rel, err := FindRelease(ctx, st, tenant, s.Release)
	switch {
	case errors.Is(err, store.ErrNotFound):
		pv.Problems.add("release", "release %q not found", s.Release)
	case err != nil:
		return pv, err
	default:
		pv.Release = rel
		if rel.State != store.ReleasePublished {
			pv.Problems.add("release", "release %s is a draft; publish it first", rel.Version)
		}
		if rel.Bad && !s.AllowBad {
			pv.Problems.add("release", "release %s is marked bad (%s); rolling it out needs allow_bad, an audited override", rel.Version, rel.BadReason)
		}
	}
	if s.OnFailure.RollbackTo != "" {
		if rb, err := FindRelease(ctx, st, tenant, s.OnFailure.RollbackTo); err != nil {
			pv.Problems.add("on_failure.rollback_to", "release %q not found", s.OnFailure.RollbackTo)
		} else if rb.Bad || rb.State != store.ReleasePublished {
			pv.Problems.add("on_failure.rollback_to", "release %s is not a published, good release", rb.Version)
		}
	}
	sel, err := s.SelectorExpr()
	if err != nil || len(pv.Problems) > 0 && pv.Release.ID == "" {
		return pv, pv.Problems.err()
	}
	strataFields := s.Strata
	if bad := slices.ContainsFunc(strataFields, func(f string) bool { return !store.IsCountByField(f) || f == store.CountByState }); bad {
		return pv, pv.Problems.err()
	}
	pv.Strata, err = st.CountTargets(ctx, tenant, sel, strataFields)
	if err != nil {
		return pv, err
	}
	for _, n := range pv.Strata {
		pv.Targets += n
	}
	if pv.Targets == 0 {
		pv.Problems.add("selector", "matches no accepted device: the campaign can never promote a wave")
	}
	hw, err := st.HardwareOf(ctx, tenant, sel)
	if err != nil {
		return pv, err
	}
	for k, n := range hw {
		cov := HardwareCoverage{DeviceType: k[0], HWRev: k[1], Devices: n, Covered: covers(pv.Release, k[0], k[1])}
		pv.Hardware = append(pv.Hardware, cov)
		if pv.Release.ID != "" && !cov.Covered {
			pv.Problems.add("release", "%d targeted devices are %s rev %s, for which release %s has no artifact",
				n, k[0], k[1], pv.Release.Version)
		}
	}
	sort.Slice(pv.Hardware, func(i, j int) bool {
		a, b := pv.Hardware[i], pv.Hardware[j]
		return a.DeviceType < b.DeviceType || a.DeviceType == b.DeviceType && a.HWRev < b.HWRev
	})
	if pv.Release.ID != "" {
		if err := checkDDI(ctx, st, tenant, s, pv.Release, &pv); err != nil {
			return pv, err
		}
		if err := checkStaged(ctx, st, tenant, s, pv.Release, &pv); err != nil {
			return pv, err
		}
	}
	pv.Plan, err = resolve(ctx, st, tenant, s, sel, pv.Targets, pv.Strata, &pv)
	if err != nil {
		return pv, err
	}
	return pv, pv.Problems.err()
}

// covers reports whether the release has a full artifact for the hardware.
func covers(r store.Release, deviceType, rev string) bool {
	for _, a := range r.Artifacts {
		if a.DeviceType == deviceType && a.FromVersion == "" && slices.Contains(a.HWRevs, rev) {
			return true
		}
	}
	return false
}

// resolve makes the plan concrete: staging steps, production wave sizes
// (explicit or from a power calculation) and the baseline.
func resolve(ctx context.Context, st Reader, tenant string, s Spec, sel *filter.Expr, targets int, strata map[string]int, pv *Preview) (Resolved, error) {
	r := Resolved{Targets: targets, Strata: strata, ControlFraction: s.Plan.ControlPercent / 100, Baseline: s.Health.BaselineSLO}
	pol, perr := s.Health.Policy()
	staged := 0
	for _, w := range s.Plan.Staging {
		f, err := filter.Parse(w.Selector)
		if err != nil {
			continue // reported by Validate
		}
		both := f
		if sel != nil {
			both, err = filter.Parse("(" + s.Selector + ") and (" + w.Selector + ")")
			if err != nil {
				return r, err
			}
		}
		counts, err := st.CountDevicesBy(ctx, tenant, both, store.CountByState)
		if err != nil {
			return r, err
		}
		n := counts[string(store.DeviceAccepted)]
		if n == 0 {
			pv.Problems.add("plan.staging", "staging wave %q matches no targeted device: it can never be approved", w.Name)
		}
		staged += n
		r.Steps = append(r.Steps, Step{Name: w.Name, Kind: StepStaging, Selector: w.Selector, Planned: n, Approval: true})
	}
	r.Staging = len(r.Steps)
	// The baseline: the outcomes of the release most targets run now.
	if versions, err := st.CountDevicesBy(ctx, tenant, sel, store.CountByVersion); err == nil {
		best, bestN := "", 0
		for v, n := range versions {
			if v != "" && (n > bestN || n == bestN && v < best) {
				best, bestN = v, n
			}
		}
		if best != "" && best != pv.Release.Version {
			if prev, err := st.ReleaseByVersion(ctx, tenant, best); err == nil {
				devs, fails, err := st.ReleaseOutcomes(ctx, tenant, prev.ID)
				if err != nil {
					return r, err
				}
				if devs >= 50 {
					r.BaselineVersion, r.BaselineDevices, r.BaselineFailures = prev.Version, devs, fails
					r.Baseline = health.Baseline{Devices: devs, Failures: fails}.Rate()
				}
			}
		}
	} else {
		return r, err
	}
	production := max(targets-staged, 0)
	control := 0
	if r.ControlFraction > 0 {
		control = int(math.Ceil(r.ControlFraction * float64(production)))
	}
	eligible := production - control
	waves := s.Plan.Waves
	if len(waves) == 0 && perr == nil && eligible > 0 {
		wp, err := health.PlanWaves(pol, production, max(len(strata), 1), r.Baseline, health.PlanOptions{ControlFraction: r.ControlFraction, MaxCanaryFraction: 0.5})
		if err == nil {
			for _, n := range wp.Waves {
				waves = append(waves, 100*float64(n)/float64(wp.Targets-wp.Control))
			}
			r.Note = wp.Note
		}
	}
	if len(waves) == 0 {
		waves = []float64{100}
	}
	for i, w := range waves {
		planned := int(math.Ceil(w/100*float64(eligible) - 1e-9))
		if i == len(waves)-1 {
			w, planned = 100, eligible
		}
		st := Step{Name: fmt.Sprintf("wave %d", i+1), Kind: StepWave, Fraction: w / 100, Planned: planned, Approval: s.Plan.ApproveWaves && i > 0}
		if perr == nil && planned > 0 {
			if d := health.DetectableFactor(planned, r.Baseline, pol.TestAlpha(max(len(strata), 1)), pol.Power); !math.IsInf(d, 1) && !math.IsNaN(d) {
				st.Detectable = &d
			}
		}
		r.Steps = append(r.Steps, st)
	}
	if eligible > 0 && r.Steps[r.Staging].Planned == 0 {
		pv.Warnings = append(pv.Warnings, "the first production wave rounds to no device; it will take one")
	}
	return r, nil
}
