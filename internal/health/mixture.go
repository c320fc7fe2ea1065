package health

import (
	"fmt"
	"math"
)

// Rate comparison against a concurrent control that stays valid under
// continuous monitoring.
//
// Model: within a stratum, every device in an arm has the event rate of its
// arm, and the canary's rate is a constant multiple ρ of the control's,
// λc(t) = ρ·λ(t), where the common λ(t) may change in any way over time
// (time of day, a network outage that reboots everything). Given that an
// event happened at time t, it came from the canary with probability
//
//	π(t) = ρ·nc(t) / (ρ·nc(t) + nb(t)),
//
// nc and nb being the numbers of devices exposed in each arm at t. This does
// not depend on λ(t): the control absorbs every fleet-wide effect. The arm
// labels of successive events are independent Bernoulli(π) draws, so for any
// alternative ρ1 > r0 the product over events of π(ρ1)/π(r0) (canary) or
// (1−π(ρ1))/(1−π(r0)) (control) is a nonnegative martingale with mean 1
// when ρ = r0, and a supermartingale for every ρ ≤ r0. A mixture of such
// products with weights fixed in advance is again one, so by Ville's
// inequality P(the mixture ever reaches 1/α) ≤ α under the null ρ ≤ r0.
//
// Evidence arrives as periods within which the arm sizes are (about)
// constant; inside a period π is the same for every event and equals
// ρ·Tc/(ρ·Tc + Tb) with the period's exposures. Periods should therefore
// break wherever devices move from one arm to the other — at least at every
// wave start, and better at every evaluation or hour.

// RatePeriod is the evidence for one metric in one stratum over one period:
// events (already capped per device-day) and exposure in device-hours for
// the canary and the concurrent control.
type RatePeriod struct {
	CanaryEvents  int
	CanaryHours   float64
	ControlEvents int
	ControlHours  float64
}

// informative reports whether the period says anything about the ratio:
// with one arm unexposed, every event's label is certain.
func (p RatePeriod) informative() bool { return p.CanaryHours > 0 && p.ControlHours > 0 }

func (p RatePeriod) validate() error {
	switch {
	case p.CanaryEvents < 0 || p.ControlEvents < 0:
		return fmt.Errorf("negative event count (%d canary, %d control)", p.CanaryEvents, p.ControlEvents)
	case !(p.CanaryHours >= 0) || !(p.ControlHours >= 0) || math.IsInf(p.CanaryHours, 0) || math.IsInf(p.ControlHours, 0):
		return fmt.Errorf("exposure must be finite and non-negative (%g canary, %g control device-hours)", p.CanaryHours, p.ControlHours)
	case p.CanaryEvents > 0 && p.CanaryHours == 0:
		return fmt.Errorf("%d canary events without canary exposure", p.CanaryEvents)
	case p.ControlEvents > 0 && p.ControlHours == 0:
		return fmt.Errorf("%d control events without control exposure", p.ControlEvents)
	}
	return nil
}

// Mixture is a discrete mixing distribution over alternatives, given as
// factors (each > 1) of the null value — of the baseline failure rate for
// the install test, of the tolerated ratio r0 for rate tests — with weights
// that sum to 1. It must be fixed before the data are seen. A discrete
// mixture is exact: there is no quadrature error, the grid is the prior.
type Mixture struct {
	Factors []float64
	Weights []float64
}

// logGrid returns k factors evenly spaced in log scale from lo to hi with
// equal weights.
func logGrid(k int, lo, hi float64) Mixture {
	m := Mixture{Factors: make([]float64, k), Weights: make([]float64, k)}
	a, b := math.Log(lo), math.Log(hi)
	for i := range k {
		m.Factors[i] = math.Exp(a + (b-a)*float64(i)/float64(k-1))
		m.Weights[i] = 1.0 / float64(k)
	}
	return m
}

// DefaultRateMixture spreads equal weight over 16 ratios from 1.1·r0 to
// 16·r0, evenly in log scale (about 20 % apart). A true ratio between two
// grid points loses little: the likelihood ratio is flat near its peak. The
// price of the mixture is at most ln 16 ≈ 2.8 in log-evidence against
// knowing the best grid ratio in advance, and unlike a continuous prior it
// does not grow with the amount of data.
func DefaultRateMixture() Mixture { return logGrid(16, 1.1, 16) }

// Validate reports whether m is a proper one-sided mixing distribution.
func (m Mixture) Validate() error {
	if len(m.Factors) == 0 || len(m.Factors) != len(m.Weights) {
		return fmt.Errorf("mixture: %d factors and %d weights", len(m.Factors), len(m.Weights))
	}
	sum := 0.0
	for i, f := range m.Factors {
		if !(f > 1) || math.IsInf(f, 1) {
			return fmt.Errorf("mixture: factor %g must be finite and > 1", f)
		}
		if !(m.Weights[i] > 0) {
			return fmt.Errorf("mixture: weight %g must be > 0", m.Weights[i])
		}
		sum += m.Weights[i]
	}
	if math.Abs(sum-1) > 1e-9 {
		return fmt.Errorf("mixture: weights sum to %g, not 1", sum)
	}
	return nil
}

// RateLogE returns ln E, the log of the mixture likelihood ratio of "the
// canary's rate exceeds r0 times the control's" against "it does not", over
// the given periods. Halting when E ≥ 1/α has false-halt probability at
// most α however often it is evaluated. Periods with one arm unexposed
// carry no information and are skipped.
func RateLogE(periods []RatePeriod, r0 float64, mix Mixture) float64 {
	terms := make([]float64, len(mix.Factors))
	for j, f := range mix.Factors {
		terms[j] = math.Log(mix.Weights[j]) + rateLogLR(periods, r0, r0*f)
	}
	return logSumExp(terms)
}

// rateLogLR is the log likelihood ratio of ratio rho1 against r0 for the
// arm labels of the events in periods. With c and b the period's exposures,
//
//	ln π(ρ1)/π(r0)         = ln(ρ1/r0) + ln((r0·c + b)/(ρ1·c + b))
//	ln (1−π(ρ1))/(1−π(r0)) =             ln((r0·c + b)/(ρ1·c + b)).
func rateLogLR(periods []RatePeriod, r0, rho1 float64) float64 {
	lr := 0.0
	logRatio := math.Log(rho1 / r0)
	for _, p := range periods {
		if !p.informative() {
			continue
		}
		n := float64(p.CanaryEvents + p.ControlEvents)
		if n == 0 {
			continue
		}
		c, b := p.CanaryHours, p.ControlHours
		lr += float64(p.CanaryEvents)*logRatio + n*math.Log((r0*c+b)/(rho1*c+b))
	}
	return lr
}

// BetaMixtureLogE is the closed-form mixture e-value for a single period (a
// constant canary share π0 under the null): x of n events in the canary,
// tested against π ≤ π0 with a Beta(a, b) prior on π truncated to [π0, 1]:
//
//	E = ∫_{π0}^1 π^x (1−π)^(n−x) Beta(π; a, b) dπ / (S(a, b) · π0^x (1−π0)^(n−x))
//	  = B(a+x, b+n−x) · S(a+x, b+n−x) / (B(a, b) · S(a, b) · π0^x (1−π0)^(n−x)),
//
// where S(a, b) = 1 − I_{π0}(a, b) is the Beta(a, b) mass above π0. As n
// grows event by event, E is a mixture of likelihood ratios each of which is
// a supermartingale when π ≤ π0, so Ville's inequality applies. RateLogE
// generalises this to periods with different shares, where no closed form
// exists.
func BetaMixtureLogE(x, n int, pi0, a, b float64) float64 {
	if x < 0 || x > n || !(pi0 > 0 && pi0 < 1) || !(a > 0) || !(b > 0) {
		return math.NaN()
	}
	xf, yf := float64(x), float64(n-x)
	_, postAbove := logBetaTails(pi0, a+xf, b+yf)
	_, priorAbove := logBetaTails(pi0, a, b)
	return lbeta(a+xf, b+yf) + postAbove - lbeta(a, b) - priorAbove -
		xf*math.Log(pi0) - yf*math.Log1p(-pi0)
}
