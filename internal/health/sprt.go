package health

import (
	"fmt"
	"math"
)

// SPRT is Wald's sequential probability ratio test for a failure rate:
// H0 p = P0 (acceptable) against H1 p = P1 (unacceptable), with error rates
// Alpha (halting a good release) and Beta (promoting a bad one).
//
// After n devices with f failures the log likelihood ratio is
//
//	Λ = f·ln(P1/P0) + (n−f)·ln((1−P1)/(1−P0)).
//
// Wald's test halts at Λ ≥ ln((1−β)/α) and promotes at Λ ≤ ln(β/(1−α)).
// Those bounds assume the test stops at the first crossing of either. A
// campaign keeps watching after a wave is promoted, so Evaluate halts at the
// open-ended bound ln(1/α) instead: e^Λ is a nonnegative martingale under
// p = P0 (a supermartingale for any p ≤ P0), and Ville's inequality bounds
// the chance it ever reaches 1/α by α, however long monitoring goes on.
type SPRT struct {
	P0, P1      float64
	Alpha, Beta float64
}

// Validate reports whether the test is well defined.
func (s SPRT) Validate() error {
	switch {
	case !(s.P0 > 0 && s.P0 < 1):
		return fmt.Errorf("sprt: p0 %g is not in (0, 1)", s.P0)
	case !(s.P1 > s.P0 && s.P1 < 1):
		return fmt.Errorf("sprt: p1 %g is not in (p0=%g, 1)", s.P1, s.P0)
	case !(s.Alpha > 0 && s.Alpha < 1):
		return fmt.Errorf("sprt: alpha %g is not in (0, 1)", s.Alpha)
	case !(s.Beta > 0 && s.Beta < 1):
		return fmt.Errorf("sprt: beta %g is not in (0, 1)", s.Beta)
	}
	return nil
}

// FailureStep is the change in Λ for each failure, ln(P1/P0).
func (s SPRT) FailureStep() float64 { return math.Log(s.P1 / s.P0) }

// SuccessStep is the change in Λ for each success, ln((1−P1)/(1−P0)) < 0.
func (s SPRT) SuccessStep() float64 { return math.Log1p(-s.P1) - math.Log1p(-s.P0) }

// LogLR returns Λ after n devices with f failures.
func (s SPRT) LogLR(n, f int) float64 {
	return float64(f)*s.FailureStep() + float64(n-f)*s.SuccessStep()
}

// HaltBound is Wald's upper bound ln((1−β)/α).
func (s SPRT) HaltBound() float64 { return math.Log((1 - s.Beta) / s.Alpha) }

// PromoteBound is Wald's lower bound ln(β/(1−α)).
func (s SPRT) PromoteBound() float64 { return math.Log(s.Beta / (1 - s.Alpha)) }

// OpenHaltBound is ln(1/α), the halt bound that stays valid when monitoring
// continues past the promote bound (Ville's inequality).
func (s SPRT) OpenHaltBound() float64 { return -math.Log(s.Alpha) }

// HaltCount returns the smallest failure count f with Λ(n, f) ≥ bound, or
// n+1 when n devices cannot reach the bound.
func (s SPRT) HaltCount(n int, bound float64) int {
	// Λ is linear in f: Λ = n·b + f·(a − b).
	a, b := s.FailureStep(), s.SuccessStep()
	f := int(math.Ceil((bound - float64(n)*b) / (a - b)))
	// Guard the rounding of the division at exact boundary values.
	for f > 0 && s.LogLR(n, f-1) >= bound {
		f--
	}
	for f <= n && s.LogLR(n, f) < bound {
		f++
	}
	return min(max(f, 0), n+1)
}

// PromoteCount returns the largest failure count f with Λ(n, f) ≤
// PromoteBound, or −1 when n devices cannot reach it.
func (s SPRT) PromoteCount(n int) int {
	bound := s.PromoteBound()
	a, b := s.FailureStep(), s.SuccessStep()
	f := int(math.Floor((bound - float64(n)*b) / (a - b)))
	for f >= 0 && s.LogLR(n, f) > bound {
		f--
	}
	for f < n && s.LogLR(n, f+1) <= bound {
		f++
	}
	return min(max(f, -1), n)
}

// ExpectedSampleSize is Wald's approximation to the average number of
// devices the two-bound test needs when the true failure rate is p (its
// operating-characteristic formula, ignoring overshoot of the bounds).
func (s SPRT) ExpectedSampleSize(p float64) float64 {
	a, b := s.FailureStep(), s.SuccessStep()
	logA, logB := s.HaltBound(), s.PromoteBound()
	drift := p*a + (1-p)*b
	// L is the probability of promoting. For p = P0 and P1 it is 1−α and
	// β; in general it comes from the root h ≠ 0 of E_p[e^{hz}] = 1.
	var l float64
	switch {
	case p == s.P0:
		l = 1 - s.Alpha
	case p == s.P1:
		l = s.Beta
	default:
		h := s.ocRoot(p)
		if h == 0 || math.Abs(drift) < 1e-12 {
			// At zero drift Wald's formula is −lnA·lnB / E[z²].
			return -logA * logB / (p*a*a + (1-p)*b*b)
		}
		l = (math.Exp(h*logA) - 1) / (math.Exp(h*logA) - math.Exp(h*logB))
	}
	return (l*logB + (1-l)*logA) / drift
}

// ocRoot solves p·e^{h·a} + (1−p)·e^{h·b} = 1 for h ≠ 0.
func (s SPRT) ocRoot(p float64) float64 {
	a, b := s.FailureStep(), s.SuccessStep()
	g := func(h float64) float64 { return p*math.Exp(h*a) + (1-p)*math.Exp(h*b) - 1 }
	drift := p*a + (1-p)*b
	if drift == 0 {
		return 0
	}
	// g is convex with g(0) = 0 and g'(0) = drift, so the other root lies
	// on the side opposite the drift.
	dir := -math.Copysign(1, drift)
	lo, hi := 0.0, dir
	for g(hi) < 0 {
		lo = hi
		hi *= 2
	}
	if dir < 0 {
		lo, hi = hi, lo
	}
	for range 200 {
		mid := (lo + hi) / 2
		if (g(mid) < 0) == (dir > 0) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// HaltProbability is the exact probability that Λ reaches bound within the
// first n devices when the true failure rate is p. It costs
// O(n · HaltCount(n, bound)).
func (s SPRT) HaltProbability(n int, p, bound float64) float64 {
	prob, _ := haltCurve(n, p, 2, func(m int) int { return s.HaltCount(m, bound) })
	return prob
}

// haltCurve computes, by a forward recursion over the number of failures
// among paths that have not yet halted, the probability that a test which
// halts at haltCount(m) or more failures among m devices has halted within
// n devices when the true failure rate is p. It stops early once that
// probability reaches stopAt and returns the probability and the number of
// devices at which it stopped. haltCount must not decrease with m, which
// holds for every test here: a success never raises the evidence.
func haltCurve(n int, p, stopAt float64, haltCount func(m int) int) (float64, int) {
	// alive[f]: probability of f failures so far without having halted.
	alive := []float64{1}
	halted := 0.0
	for m := 1; m <= n; m++ {
		h := haltCount(m)
		next := make([]float64, min(len(alive)+1, h))
		for f, w := range alive {
			if w == 0 {
				continue
			}
			if f < len(next) {
				next[f] += w * (1 - p)
			} else {
				halted += w * (1 - p)
			}
			if f+1 < len(next) {
				next[f+1] += w * p
			} else {
				halted += w * p
			}
		}
		alive = next
		if halted >= stopAt {
			return halted, m
		}
	}
	return halted, n
}

// SequentialCanarySize returns the smallest number of devices after which
// the open-ended test (halt at OpenHaltBound) has halted with at least the
// given probability when the true failure rate is P1. Unlike a fixed-sample
// test this is monotone in n, so no saw-tooth margin is needed. It gives up
// at maxN devices.
func (s SPRT) SequentialCanarySize(power float64, maxN int) (int, error) {
	if err := s.Validate(); err != nil {
		return 0, err
	}
	bound := s.OpenHaltBound()
	prob, n := haltCurve(maxN, s.P1, power, func(m int) int { return s.HaltCount(m, bound) })
	if prob < power {
		return 0, fmt.Errorf("sprt: power %g not reached within %d devices (%.3f)", power, maxN, prob)
	}
	return n, nil
}

// DefaultInstallMixture is the install test's default mixing distribution
// for a design regression factor: half the weight on the design factor,
// where the wave plan needs the test to be strong, and half spread evenly
// (in log scale) over 12 factors from 1.25 to 32, so that a gross
// regression — 7 failures in 60 devices against 1 % — halts after a handful
// of failures instead of waiting for the evidence against the design
// alternative to pile up.
func DefaultInstallMixture(design float64) Mixture {
	grid := logGrid(12, 1.25, 32)
	m := Mixture{Factors: []float64{design}, Weights: []float64{0.5}}
	for i, f := range grid.Factors {
		m.Factors = append(m.Factors, f)
		m.Weights = append(m.Weights, grid.Weights[i]/2)
	}
	return m
}

// MixtureSPRT is the sequential test Evaluate applies to install outcomes:
// H0 p ≤ P0 against a mixture of alternatives p = f·P0 over Mix. Its
// statistic is the log of the Mix-weighted average of Wald's likelihood
// ratios; each of those is a supermartingale under H0 and so is their
// average, so halting at ln(1/α) has false-halt probability at most α
// under unlimited monitoring (Ville's inequality). Alternatives at or above
// 1 are capped at (1+P0)/2.
type MixtureSPRT struct {
	P0  float64
	Mix Mixture
}

// installObs is one stratum's install outcomes for the mixture test.
type installObs struct {
	p0   float64
	n, f int
}

// mixtureLogLR returns ln Σ_j w_j Π_s LR_s(f_j), the mixture likelihood
// ratio with a common factor f_j across strata, each stratum's
// alternative being f_j times its own baseline.
func mixtureLogLR(mix Mixture, obs []installObs) float64 {
	sum := math.Inf(-1)
	for j, fac := range mix.Factors {
		l := math.Log(mix.Weights[j])
		for _, o := range obs {
			p1 := math.Min(fac*o.p0, (1+o.p0)/2)
			l += float64(o.f)*math.Log(p1/o.p0) + float64(o.n-o.f)*(math.Log1p(-p1)-math.Log1p(-o.p0))
		}
		sum = logAddExp(sum, l)
	}
	return sum
}

// LogLR returns the mixture's Λ after n devices with f failures.
func (t MixtureSPRT) LogLR(n, f int) float64 {
	return mixtureLogLR(t.Mix, []installObs{{t.P0, n, f}})
}

// HaltCount returns the smallest failure count f with LogLR(n, f) ≥ bound,
// or n+1 when n devices cannot reach it. Λ increases with f.
func (t MixtureSPRT) HaltCount(n int, bound float64) int {
	if t.LogLR(n, n) < bound {
		return n + 1
	}
	lo, hi := -1, n
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if t.LogLR(n, mid) >= bound {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// haltCounts returns HaltCount for m = 1, 2, … as a function, computed
// incrementally (the count never decreases with m).
func (t MixtureSPRT) haltCounts(bound float64) func(m int) int {
	h := 0
	return func(m int) int {
		for h <= m && t.LogLR(m, h) < bound {
			h++
		}
		return h
	}
}

// HaltProbability is the exact probability that Λ reaches bound within the
// first n devices when the true failure rate is p.
func (t MixtureSPRT) HaltProbability(n int, p, bound float64) float64 {
	prob, _ := haltCurve(n, p, 2, t.haltCounts(bound))
	return prob
}

// SequentialCanarySize returns the smallest number of devices after which
// the test, halting at bound, has halted with at least the given
// probability when the true failure rate is p; it gives up at maxN.
func (t MixtureSPRT) SequentialCanarySize(p, power, bound float64, maxN int) (int, error) {
	if err := t.Mix.Validate(); err != nil {
		return 0, err
	}
	prob, n := haltCurve(maxN, p, power, t.haltCounts(bound))
	if prob < power {
		return 0, fmt.Errorf("mixture sprt: power %g not reached within %d devices (%.3f)", power, maxN, prob)
	}
	return n, nil
}
