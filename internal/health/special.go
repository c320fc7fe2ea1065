package health

import "math"

// The special functions below work in log space so that tail probabilities
// far below the float64 range (binomial tails at 1e-300 and smaller) keep
// their relative accuracy instead of rounding to zero.

// lbeta returns ln B(a, b) for a, b > 0.
func lbeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// log1mexp returns ln(1 − e^l) for l ≤ 0, accurate at both ends.
func log1mexp(l float64) float64 {
	switch {
	case l >= 0:
		return math.Inf(-1)
	case l > -math.Ln2:
		return math.Log(-math.Expm1(l))
	default:
		return math.Log1p(-math.Exp(l))
	}
}

// logAddExp returns ln(e^a + e^b).
func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(a, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// logSumExp returns ln Σ e^v[i] with one logarithm, shifting by the
// maximum so that nothing overflows.
func logSumExp(v []float64) float64 {
	hi := math.Inf(-1)
	for _, x := range v {
		if x > hi {
			hi = x
		}
	}
	if math.IsInf(hi, 0) {
		return hi
	}
	sum := 0.0
	for _, x := range v {
		sum += math.Exp(x - hi)
	}
	return hi + math.Log(sum)
}

// cfMaxIter bounds the continued fractions. They converge in O(√max(a,b))
// terms; the bound leaves a wide margin for the sample sizes used here
// (fleets up to tens of millions of devices).
func cfMaxIter(a, b float64) int {
	return 200 + int(20*math.Sqrt(math.Max(a, b)))
}

const (
	cfEps  = 1e-15
	cfTiny = 1e-300
)

// betaCF evaluates the continued fraction for the incomplete beta function
// (Abramowitz & Stegun 26.5.8) by the modified Lentz method. It converges
// quickly for x < (a+1)/(a+b+2).
func betaCF(x, a, b float64) float64 {
	clamp := func(v float64) float64 {
		if math.Abs(v) < cfTiny {
			return cfTiny
		}
		return v
	}
	c := 1.0
	d := 1 / clamp(1-(a+b)*x/(a+1))
	h := d
	for m := 1; m <= cfMaxIter(a, b); m++ {
		fm := float64(m)
		// Even term d_{2m}.
		num := fm * (b - fm) * x / ((a + 2*fm - 1) * (a + 2*fm))
		d = 1 / clamp(1+num*d)
		c = clamp(1 + num/c)
		h *= d * c
		// Odd term d_{2m+1}.
		num = -(a + fm) * (a + b + fm) * x / ((a + 2*fm) * (a + 2*fm + 1))
		d = 1 / clamp(1+num*d)
		c = clamp(1 + num/c)
		step := d * c
		h *= step
		if math.Abs(step-1) < cfEps {
			break
		}
	}
	return h
}

// logBetaTails returns ln I_x(a, b) and ln(1 − I_x(a, b)), where I is the
// regularized incomplete beta function. The smaller of the two is computed
// directly, so both keep full relative accuracy deep in the tails.
func logBetaTails(x, a, b float64) (lower, upper float64) {
	switch {
	case x <= 0:
		return math.Inf(-1), 0
	case x >= 1:
		return 0, math.Inf(-1)
	}
	logFront := a*math.Log(x) + b*math.Log1p(-x) - lbeta(a, b)
	if x < (a+1)/(a+b+2) {
		lower = logFront - math.Log(a) + math.Log(betaCF(x, a, b))
		return lower, log1mexp(lower)
	}
	upper = logFront - math.Log(b) + math.Log(betaCF(1-x, b, a))
	return log1mexp(upper), upper
}

// logGammaTails returns ln P(a, x) and ln Q(a, x), the regularized lower and
// upper incomplete gamma functions, for a > 0 and x ≥ 0.
func logGammaTails(a, x float64) (lower, upper float64) {
	if x <= 0 {
		return math.Inf(-1), 0
	}
	lga, _ := math.Lgamma(a)
	logFront := a*math.Log(x) - x - lga
	if x < a+1 {
		// Series: P(a,x) = e^{-x} x^a / Γ(a+1) · Σ x^n / ((a+1)…(a+n)).
		sum, term := 1.0, 1.0
		for n := 1; n <= cfMaxIter(a, x); n++ {
			term *= x / (a + float64(n))
			sum += term
			if term < sum*cfEps {
				break
			}
		}
		lower = logFront - math.Log(a) + math.Log(sum)
		return lower, log1mexp(lower)
	}
	// Continued fraction for Q(a,x) (Legendre), modified Lentz.
	clamp := func(v float64) float64 {
		if math.Abs(v) < cfTiny {
			return cfTiny
		}
		return v
	}
	bb := x + 1 - a
	c := 1 / cfTiny
	d := 1 / clamp(bb)
	h := d
	for n := 1; n <= cfMaxIter(a, x); n++ {
		fn := float64(n)
		an := -fn * (fn - a)
		bb += 2
		d = 1 / clamp(an*d+bb)
		c = clamp(bb + an/c)
		step := d * c
		h *= step
		if math.Abs(step-1) < cfEps {
			break
		}
	}
	upper = logFront + math.Log(h)
	return log1mexp(upper), upper
}
