package health

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Policy is a campaign's health policy. Zero fields take the defaults
// documented on each field (see WithDefaults); docs/rollout-safety.md gives
// the reasoning behind them.
type Policy struct {
	// Alpha is the false-halt budget of the whole campaign: the largest
	// probability that a release no worse than its baselines is halted by
	// any test, in any stratum, at any evaluation. Default 0.01.
	Alpha float64
	// Beta is the install test's miss rate, which sets Wald's promote bound
	// (reported when crossed; promotion does not wait for it). Default 0.05.
	Beta float64
	// Power is the probability with which a planned wave should detect a
	// Regression, and the probability used for "the smallest regression
	// the evidence could have detected". Default 0.9.
	Power float64
	// Regression is the install-failure regression the plan is sized for,
	// as a factor of the baseline rate; it is also the install test's
	// alternative, p1 = Regression·p0. Default 2.
	Regression float64
	// RateTolerance r0 is the canary:control event-rate ratio that is still
	// acceptable; the rate tests halt only on evidence of a larger ratio.
	// Default 1.25: headroom for small differences between the arms that
	// the model does not capture, while a doubling of the crash rate is
	// still caught within the canary's soak (see docs/rollout-safety.md).
	RateTolerance float64
	// RateMetrics names the rate metrics judged against the control (for
	// example "crash", "reboot", "battery_drain", "connectivity_loss").
	// The error budget is reserved for each of them in every stratum
	// whether or not that stratum reports it. Default crash and reboot.
	RateMetrics []string
	// InstallMixture is the install test's mixing distribution over
	// regression factors. Default DefaultInstallMixture(Regression).
	InstallMixture Mixture
	// RateMixture is the rate tests' mixing distribution over ratios, as
	// factors of RateTolerance. Default DefaultRateMixture.
	RateMixture Mixture
	// EventCap is the most events one device contributes per metric per
	// day (see CapEvents); the engine applies it before building Evidence.
	// Default 3.
	EventCap int
	// MinSoak is how long a wave must have run since its soak started
	// before it may advance. Default 24h.
	MinSoak time.Duration
	// GuardrailK halts the campaign at once when the bricked plus
	// rolled-back devices reach it, whatever the statistics say. Default 3.
	// SuggestGuardrailK gives a value for a fleet with a known base rate of
	// such events.
	GuardrailK int
}

// Default values of Policy's fields.
const (
	DefaultAlpha         = 0.01
	DefaultBeta          = 0.05
	DefaultPower         = 0.9
	DefaultRegression    = 2.0
	DefaultRateTolerance = 1.25
	DefaultEventCap      = 3
	DefaultMinSoak       = 24 * time.Hour
	DefaultGuardrailK    = 3
)

// DefaultRateMetrics are the rate metrics judged when a policy names none.
func DefaultRateMetrics() []string { return []string{"crash", "reboot"} }

// DefaultPolicy returns the policy with every default filled in.
func DefaultPolicy() Policy { return Policy{}.WithDefaults() }

// WithDefaults returns p with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	setF := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	setF(&p.Alpha, DefaultAlpha)
	setF(&p.Beta, DefaultBeta)
	setF(&p.Power, DefaultPower)
	setF(&p.Regression, DefaultRegression)
	setF(&p.RateTolerance, DefaultRateTolerance)
	if p.RateMetrics == nil {
		p.RateMetrics = DefaultRateMetrics()
	} else {
		p.RateMetrics = slices.Clone(p.RateMetrics)
	}
	if len(p.InstallMixture.Factors) == 0 {
		p.InstallMixture = DefaultInstallMixture(p.Regression)
	}
	if len(p.RateMixture.Factors) == 0 {
		p.RateMixture = DefaultRateMixture()
	}
	if p.EventCap == 0 {
		p.EventCap = DefaultEventCap
	}
	if p.MinSoak == 0 {
		p.MinSoak = DefaultMinSoak
	}
	if p.GuardrailK == 0 {
		p.GuardrailK = DefaultGuardrailK
	}
	return p
}

// Validate reports whether a policy (after WithDefaults) is usable.
func (p Policy) Validate() error {
	switch {
	case !(p.Alpha > 0 && p.Alpha < 0.5):
		return fmt.Errorf("policy: alpha %g is not in (0, 0.5)", p.Alpha)
	case !(p.Beta > 0 && p.Beta < 0.5):
		return fmt.Errorf("policy: beta %g is not in (0, 0.5)", p.Beta)
	case !(p.Power >= 0.5 && p.Power < 1):
		return fmt.Errorf("policy: power %g is not in [0.5, 1)", p.Power)
	case !(p.Regression > 1) || math.IsInf(p.Regression, 1):
		return fmt.Errorf("policy: regression factor %g must be finite and > 1", p.Regression)
	case !(p.RateTolerance >= 1) || math.IsInf(p.RateTolerance, 1):
		return fmt.Errorf("policy: rate tolerance %g must be finite and ≥ 1", p.RateTolerance)
	case p.EventCap < 0:
		return fmt.Errorf("policy: event cap %d is negative", p.EventCap)
	case p.MinSoak < 0:
		return fmt.Errorf("policy: minimum soak %v is negative", p.MinSoak)
	case p.GuardrailK < 1:
		return fmt.Errorf("policy: guardrail k %d must be at least 1", p.GuardrailK)
	}
	seen := map[string]bool{installMetric: true}
	for _, m := range p.RateMetrics {
		if m == "" || seen[m] {
			return fmt.Errorf("policy: rate metric %q is empty or repeated (or clashes with %q)", m, installMetric)
		}
		seen[m] = true
	}
	if err := p.InstallMixture.Validate(); err != nil {
		return fmt.Errorf("policy: install %w", err)
	}
	if err := p.RateMixture.Validate(); err != nil {
		return fmt.Errorf("policy: rate %w", err)
	}
	return nil
}

// installMetric names the install-outcome test in decisions.
const installMetric = "install"

// Groups is the number of groups judged for a campaign with the given
// number of strata: each stratum, plus all strata together when there is
// more than one.
func Groups(strata int) int {
	if strata > 1 {
		return strata + 1
	}
	return 1
}

// TestAlpha is the level of each test after the Bonferroni split of Alpha
// over groups × metrics (the install test plus each rate metric). The split
// depends only on the campaign's shape, fixed before any data, and by the
// union bound the chance that any test falsely halts is at most Alpha.
func (p Policy) TestAlpha(strata int) float64 {
	return p.Alpha / float64(Groups(strata)*(1+len(p.RateMetrics)))
}

// designSPRT returns Wald's test of a group with baseline p0 at level
// alpha against the design alternative p1 = Regression·p0 (capped halfway
// between p0 and 1 for very high baselines). Evaluate uses its promote
// bound to report acceptance; halting is the mixture test's job.
func (p Policy) designSPRT(p0, alpha float64) SPRT {
	return SPRT{P0: p0, P1: math.Min(p.Regression*p0, (1+p0)/2), Alpha: alpha, Beta: p.Beta}
}

// installTest returns the mixture test Evaluate halts on for a baseline p0.
func (p Policy) installTest(p0 float64) MixtureSPRT {
	return MixtureSPRT{P0: p0, Mix: p.InstallMixture}
}

// SuggestGuardrailK returns the smallest guardrail k that a release as good as the
// baseline trips with probability at most alpha, when each of devices
// updated devices is bricked or rolled back independently with probability
// baseRate (Poisson approximation, which errs on the high side). With a
// base rate of zero it returns 1.
func SuggestGuardrailK(devices int, baseRate, alpha float64) int {
	mu := float64(devices) * baseRate
	if mu <= 0 {
		return 1
	}
	logAlpha := math.Log(alpha)
	k := 1
	for PoissonLogTail(k, mu) > logAlpha {
		k++
	}
	return k
}
