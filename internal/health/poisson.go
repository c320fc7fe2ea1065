package health

import "math"

// PoissonLogTail returns ln P(X ≥ k) for X ~ Poisson(mu).
func PoissonLogTail(k int, mu float64) float64 {
	switch {
	case k <= 0:
		return 0
	case mu <= 0:
		return math.Inf(-1)
	}
	// P(X ≥ k) = P(k, mu), the regularized lower incomplete gamma.
	lower, _ := logGammaTails(float64(k), mu)
	return lower
}

// PoissonTail returns P(X ≥ k) for X ~ Poisson(mu).
func PoissonTail(k int, mu float64) float64 { return math.Exp(PoissonLogTail(k, mu)) }

// PoissonLogCDF returns ln P(X ≤ k) for X ~ Poisson(mu).
func PoissonLogCDF(k int, mu float64) float64 {
	switch {
	case k < 0:
		return math.Inf(-1)
	case mu <= 0:
		return 0
	}
	_, upper := logGammaTails(float64(k+1), mu)
	return upper
}

// PoissonCDF returns P(X ≤ k) for X ~ Poisson(mu).
func PoissonCDF(k int, mu float64) float64 { return math.Exp(PoissonLogCDF(k, mu)) }

// RateTestP is the exact conditional test of "the canary's event rate is at
// most r0 times the control's". With canaryEvents in canaryHours and
// controlEvents in controlHours, and N the total, the canary's share is
// Bin(N, π) with π = r0·Tc/(r0·Tc + Tb) under the null; the p-value is
// P(Bin(N, π) ≥ canaryEvents). It is a fixed-sample test: looking at it
// repeatedly inflates its error, which RateLogE does not.
func RateTestP(canaryEvents int, canaryHours float64, controlEvents int, controlHours, r0 float64) float64 {
	if canaryHours <= 0 || controlHours <= 0 {
		return 1
	}
	pi := r0 * canaryHours / (r0*canaryHours + controlHours)
	return BinomialTail(canaryEvents, canaryEvents+controlEvents, pi)
}
