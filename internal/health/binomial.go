package health

import (
	"fmt"
	"math"
)

// BinomialLogPMF returns ln P(X = k) for X ~ Bin(n, p).
func BinomialLogPMF(k, n int, p float64) float64 {
	if k < 0 || k > n || n < 0 {
		return math.Inf(-1)
	}
	switch {
	case p <= 0:
		if k == 0 {
			return 0
		}
		return math.Inf(-1)
	case p >= 1:
		if k == n {
			return 0
		}
		return math.Inf(-1)
	}
	return logChoose(n, k) + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p)
}

// BinomialPMF returns P(X = k) for X ~ Bin(n, p).
func BinomialPMF(k, n int, p float64) float64 { return math.Exp(BinomialLogPMF(k, n, p)) }

func logChoose(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

// BinomialLogTail returns ln P(X ≥ k) for X ~ Bin(n, p): the survival
// function at k−1, which is the tail a one-sided test needs.
func BinomialLogTail(k, n int, p float64) float64 {
	switch {
	case k <= 0:
		return 0
	case k > n:
		return math.Inf(-1)
	case p <= 0:
		return math.Inf(-1)
	case p >= 1:
		return 0
	}
	// P(X ≥ k) = I_p(k, n−k+1).
	lower, _ := logBetaTails(p, float64(k), float64(n-k+1))
	return lower
}

// BinomialTail returns P(X ≥ k) for X ~ Bin(n, p).
func BinomialTail(k, n int, p float64) float64 { return math.Exp(BinomialLogTail(k, n, p)) }

// BinomialLogCDF returns ln P(X ≤ k) for X ~ Bin(n, p).
func BinomialLogCDF(k, n int, p float64) float64 {
	switch {
	case k < 0:
		return math.Inf(-1)
	case k >= n:
		return 0
	case p <= 0:
		return 0
	case p >= 1:
		return math.Inf(-1)
	}
	_, upper := logBetaTails(p, float64(k+1), float64(n-k))
	return upper
}

// BinomialCDF returns P(X ≤ k) for X ~ Bin(n, p).
func BinomialCDF(k, n int, p float64) float64 { return math.Exp(BinomialLogCDF(k, n, p)) }

// BinomialTestP is the exact one-sided p-value of f failures in n devices
// against the acceptable failure rate p0: P(X ≥ f | p = p0).
func BinomialTestP(f, n int, p0 float64) float64 { return BinomialTail(f, n, p0) }

// BinomialCritical returns the smallest failure count k with
// P(X ≥ k | n, p0) ≤ alpha: the exact one-sided test at level alpha rejects
// (halts) at k or more failures. It returns n+1 when no count is extreme
// enough, i.e. when n devices cannot reject at this level.
func BinomialCritical(n int, p0, alpha float64) int {
	logAlpha := math.Log(alpha)
	lo, hi := 0, n+1 // invariant: tail(lo) > alpha (or lo == 0), tail(hi) ≤ alpha
	if BinomialLogTail(0, n, p0) <= logAlpha {
		return 0
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if BinomialLogTail(mid, n, p0) <= logAlpha {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// BinomialPower is the probability that the exact one-sided level-alpha test
// of p0 halts with n devices when the true failure rate is p.
func BinomialPower(n int, p0, p, alpha float64) float64 {
	return BinomialTail(BinomialCritical(n, p0, alpha), n, p)
}

// smallestRateForTail returns the smallest p with P(Bin(n, p) ≥ k) ≥ target,
// searching p in [lo, 1]; +Inf when even p = 1 falls short (k > n). The
// tail is increasing in p, so bisection on log p converges, to within
// relTol relative.
func smallestRateForTail(n, k int, target, lo, relTol float64) float64 {
	if k > n {
		return math.Inf(1)
	}
	logTarget := math.Log(target)
	if BinomialLogTail(k, n, lo) >= logTarget {
		return lo
	}
	a, b := math.Log(lo), 0.0
	for b-a > relTol {
		mid := (a + b) / 2
		if BinomialLogTail(k, n, math.Exp(mid)) >= logTarget {
			b = mid
		} else {
			a = mid
		}
	}
	return math.Exp(b)
}

// DetectableFactor returns the smallest regression factor f (true failure
// rate f·p0) that the exact one-sided level-alpha test with n devices
// detects with at least the given power; +Inf when n devices can detect no
// rate at all.
func DetectableFactor(n int, p0, alpha, power float64) float64 {
	k := BinomialCritical(n, p0, alpha)
	return smallestRateForTail(n, k, power, p0, 1e-7) / p0
}

// CanarySize returns the smallest canary for which the exact one-sided
// binomial test at level alpha detects a failure rate of factor·p0 with at
// least the given power, for that canary and every larger one.
//
// The exact test's power is a saw-tooth in n: it drops whenever the critical
// count steps up. A canary that met the target only at the top of a tooth
// would miss it if one more device reported, so the size returned is past
// the last dip below target. Dips grow with n; the scan stops after three
// consecutive critical-count steps whose dips all meet the target.
func CanarySize(p0, factor, alpha, power float64) (int, error) {
	p1 := factor * p0
	if err := checkRates(p0, p1, alpha, power); err != nil {
		return 0, err
	}
	// Start well below the normal-approximation size and walk upward,
	// tracking the critical count incrementally (it never decreases with n).
	za := normalQuantile(1 - alpha)
	zb := normalQuantile(power)
	approx := math.Pow(za*math.Sqrt(p0*(1-p0))+zb*math.Sqrt(p1*(1-p1)), 2) / ((p1 - p0) * (p1 - p0))
	n := max(1, int(approx/4))
	logAlpha := math.Log(alpha)
	k := BinomialCritical(n, p0, alpha)
	lastFail := n
	steps := 0
	limit := max(1000, int(approx*8)) + n
	for ; n <= limit; n++ {
		stepped := false
		for BinomialLogTail(k, n, p0) > logAlpha {
			k++
			stepped = true
		}
		if BinomialTail(k, n, p1) < power {
			lastFail = n
			steps = 0
			continue
		}
		if stepped && n > lastFail+1 {
			steps++
			if steps >= 3 {
				return lastFail + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("canary size for p0=%g factor=%g: no size up to %d reaches power %g", p0, factor, limit, power)
}

func checkRates(p0, p1, alpha, power float64) error {
	switch {
	case !(p0 > 0 && p0 < 1):
		return fmt.Errorf("baseline rate %g is not in (0, 1)", p0)
	case !(p1 > p0 && p1 < 1):
		return fmt.Errorf("regressed rate %g is not in (%g, 1)", p1, p0)
	case !(alpha > 0 && alpha < 0.5):
		return fmt.Errorf("alpha %g is not in (0, 0.5)", alpha)
	case !(power > 0 && power < 1):
		return fmt.Errorf("power %g is not in (0, 1)", power)
	}
	return nil
}

// normalQuantile returns Φ⁻¹(q), used only for starting points of searches.
func normalQuantile(q float64) float64 { return math.Sqrt2 * math.Erfinv(2*q-1) }
