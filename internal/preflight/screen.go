package preflight

import (
	"math"
	"slices"

	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/rollout"
)

// screenMargin keeps the screen conservative against rounding: Evaluate is
// called whenever a statistic comes within this many nats of a bound.
const screenMargin = 0.05

// screen looks at the evidence with the same exported statistics
// Evaluate uses (health.MixtureSPRT for install outcomes, health.RateLogE
// for rates) and reports whether Evaluate could halt — the guardrail
// count or some test's statistic reaches its bound, or, once strata have
// halted on the metrics in watch, the spread bound rollout.SpreadE — the
// largest e-value among the tests of the watched metrics, and the largest
// among the install tests when install is watched (1 otherwise).
//
// Most of Evaluate's cost is the explanatory "smallest detectable
// regression" of every test. The simulator skips the calls whose verdict
// the screen shows to be a hold; every verdict it acts on still comes
// from Evaluate. It assumes, as the simulator's evidence has, one
// baseline for every stratum. TestScreen checks that a skipped call would
// have held.
func screen(p health.Policy, e health.Evidence, watch []string) (mayHalt bool, worst, worstInstall float64) {
	bound := -math.Log(p.TestAlpha(len(e.Strata))) - screenMargin
	spread := math.Min(bound, math.Log(rollout.SpreadE)-screenMargin)
	worst, worstInstall = 0, 1
	look := func(metric string, stat float64) {
		watched := slices.Contains(watch, metric)
		if stat >= bound || watched && stat >= spread {
			mayHalt = true
		}
		if watched {
			worst = math.Max(worst, math.Exp(stat))
			if metric == "install" {
				worstInstall = math.Max(worstInstall, math.Exp(stat))
			}
		}
	}
	guard, n, f := 0, 0, 0
	p0 := 0.0
	all := make([][]health.RatePeriod, len(p.RateMetrics))
	for _, s := range e.Strata {
		guard += s.Bricked + s.RolledBack
		p0 = s.Baseline.Rate()
		look("install", health.MixtureSPRT{P0: p0, Mix: p.InstallMixture}.LogLR(s.Installs, s.Failures))
		n += s.Installs
		f += s.Failures
		for _, r := range s.Rates {
			mi := slices.Index(p.RateMetrics, r.Metric)
			if mi < 0 {
				continue
			}
			look(r.Metric, health.RateLogE(r.Periods, p.RateTolerance, p.RateMixture))
			all[mi] = append(all[mi], r.Periods...)
		}
	}
	if guard >= p.GuardrailK {
		mayHalt = true
	}
	if len(e.Strata) > 1 {
		look("install", health.MixtureSPRT{P0: p0, Mix: p.InstallMixture}.LogLR(n, f))
		for mi, ps := range all {
			if len(ps) > 0 {
				look(p.RateMetrics[mi], health.RateLogE(ps, p.RateTolerance, p.RateMixture))
			}
		}
	}
	return mayHalt, worst, worstInstall
}
