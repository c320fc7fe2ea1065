package health

import (
	"fmt"
	"math"
)

// PlanOptions shape a wave plan; zero fields take the defaults shown.
type PlanOptions struct {
	// ControlFraction of the targets is held back as the concurrent
	// control and updated last (default 0.01; at least one device per
	// stratum when the fleet allows).
	ControlFraction float64
	// Ramp multiplies the cumulative size from one wave to the next after
	// the canary (default 4).
	Ramp float64
	// MaxCanaryFraction caps the canary, as a fraction of the targets
	// outside the control group, for fleets too small to reach the power
	// target (default 0.5).
	MaxCanaryFraction float64
}

func (o PlanOptions) withDefaults() PlanOptions {
	if o.ControlFraction == 0 {
		o.ControlFraction = 0.01
	}
	if o.Ramp == 0 {
		o.Ramp = 4
	}
	if o.MaxCanaryFraction == 0 {
		o.MaxCanaryFraction = 0.5
	}
	return o
}

// WavePlan is a rollout plan derived from a power calculation.
type WavePlan struct {
	Targets int // all targets
	Control int // held back, updated last
	// Waves are the cumulative numbers of updated devices (control
	// excluded) after each wave; the last is Targets − Control.
	Waves []int
	// CanarySize is the number of devices at which the install test has
	// halted with probability Policy.Power if the failure rate is
	// Regression × the baseline (exact, for a test checked after every
	// report). FixedSampleSize is what a single exact binomial test at
	// the same level would need — a floor no sequential test can beat.
	CanarySize, FixedSampleSize int
	// Detectable[i] is the smallest install-failure regression factor
	// that the evidence after wave i detects with probability
	// Policy.Power, counting only the last look (conservative); +Inf for
	// none.
	Detectable []float64
	// TestAlpha is each test's level after the Bonferroni split.
	TestAlpha float64
	// Note explains a plan that cannot meet the power target.
	Note string
}

// PlanWaves sizes a campaign's waves. The canary is the smallest number of
// devices with which the policy's install test — at its Bonferroni share
// of the error budget for the given number of strata — detects a
// Regression-fold rise of the baseline failure rate with probability
// Power. Later waves grow by Ramp until the next would reach the whole
// fleet, which the last wave then covers. The plan is for the fleet as a
// whole; a regression confined to one stratum is detected later, as the
// waves grow.
func PlanWaves(p Policy, targets, strata int, baseline float64, o PlanOptions) (WavePlan, error) {
	p = p.WithDefaults()
	o = o.withDefaults()
	if err := p.Validate(); err != nil {
		return WavePlan{}, err
	}
	switch {
	case targets < 1:
		return WavePlan{}, fmt.Errorf("plan waves: %d targets", targets)
	case strata < 1:
		return WavePlan{}, fmt.Errorf("plan waves: %d strata", strata)
	case !(baseline > 0 && baseline < 1):
		return WavePlan{}, fmt.Errorf("plan waves: baseline rate %g is not in (0, 1)", baseline)
	case !(o.ControlFraction >= 0 && o.ControlFraction < 0.5):
		return WavePlan{}, fmt.Errorf("plan waves: control fraction %g is not in [0, 0.5)", o.ControlFraction)
	case !(o.Ramp > 1):
		return WavePlan{}, fmt.Errorf("plan waves: ramp %g must be > 1", o.Ramp)
	case !(o.MaxCanaryFraction > 0 && o.MaxCanaryFraction <= 1):
		return WavePlan{}, fmt.Errorf("plan waves: maximum canary fraction %g is not in (0, 1]", o.MaxCanaryFraction)
	}
	alpha := p.TestAlpha(strata)
	plan := WavePlan{Targets: targets, TestAlpha: alpha}
	if o.ControlFraction > 0 {
		plan.Control = int(math.Ceil(o.ControlFraction*float64(targets) - 1e-9))
		if plan.Control < strata && targets >= 4*strata {
			plan.Control = strata
		}
	}
	eligible := targets - plan.Control
	p1 := math.Min(p.Regression*baseline, (1+baseline)/2)
	if fixed, err := CanarySize(baseline, p1/baseline, alpha, p.Power); err == nil {
		plan.FixedSampleSize = fixed
	}
	maxCanary := max(1, int(math.Ceil(o.MaxCanaryFraction*float64(eligible))))
	canary, err := p.installTest(baseline).SequentialCanarySize(p1, p.Power, -math.Log(alpha), maxCanary)
	if err != nil {
		canary = maxCanary
		plan.Note = fmt.Sprintf("%s targets are too few to detect a %s install-failure regression with %.0f%% probability before the last wave; the canary is capped at %s devices.",
			count(targets), factor(p.Regression), 100*p.Power, count(maxCanary))
	} else {
		plan.CanarySize = canary
	}
	canary = max(canary, min(strata, eligible))
	for size := float64(canary); int(math.Ceil(size)) < eligible; size *= o.Ramp {
		plan.Waves = append(plan.Waves, int(math.Ceil(size)))
	}
	plan.Waves = append(plan.Waves, eligible)
	for _, n := range plan.Waves {
		plan.Detectable = append(plan.Detectable, installDetectable(p, n, baseline, alpha))
	}
	return plan, nil
}
