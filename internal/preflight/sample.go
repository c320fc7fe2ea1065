package preflight

import (
	"math"
	"math/rand/v2"
)

// The simulator draws counts, not devices: how many of n devices in a cell
// fail, report in a given five minutes, or how many crashes m device-hours
// produce. Both samplers are exact (inversion), starting from the mode so
// that a draw costs O(√variance) steps rather than O(mean): a million
// devices cost a few hundred steps.

// binomial draws from Bin(n, p).
func binomial(rng *rand.Rand, n int, p float64) int {
	switch {
	case n <= 0 || p <= 0:
		return 0
	case p >= 1:
		return n
	case p > 0.5:
		return n - binomial(rng, n, 1-p)
	}
	q := 1 - p
	if float64(n)*p < 20 {
		// Inversion from 0: the mean is small.
		u := rng.Float64()
		pk := math.Pow(q, float64(n))
		for k := 0; k < n; k++ {
			if u < pk {
				return k
			}
			u -= pk
			pk *= float64(n-k) / float64(k+1) * p / q
		}
		return n
	}
	mode := int(math.Floor(float64(n+1) * p))
	mode = min(mode, n)
	lg := func(x int) float64 { v, _ := math.Lgamma(float64(x) + 1); return v }
	pm := math.Exp(lg(n) - lg(mode) - lg(n-mode) + float64(mode)*math.Log(p) + float64(n-mode)*math.Log1p(-p))
	return searchFromMode(rng.Float64(), mode, pm, 0, n,
		func(k int, pk float64) float64 { return pk * float64(k) / float64(n-k+1) * q / p }, // P(k-1) from P(k)
		func(k int, pk float64) float64 { return pk * float64(n-k) / float64(k+1) * p / q }, // P(k+1) from P(k)
	)
}

// poisson draws from Poisson(mu).
func poisson(rng *rand.Rand, mu float64) int {
	if !(mu > 0) {
		return 0
	}
	if mu < 20 {
		u := rng.Float64()
		pk := math.Exp(-mu)
		for k := 0; ; k++ {
			if u < pk || pk == 0 && k > int(mu)+1 {
				return k
			}
			u -= pk
			pk *= mu / float64(k+1)
		}
	}
	mode := int(math.Floor(mu))
	lgm, _ := math.Lgamma(float64(mode) + 1)
	pm := math.Exp(float64(mode)*math.Log(mu) - mu - lgm)
	return searchFromMode(rng.Float64(), mode, pm, 0, math.MaxInt32,
		func(k int, pk float64) float64 { return pk * float64(k) / mu },
		func(k int, pk float64) float64 { return pk * mu / float64(k+1) },
	)
}

// searchFromMode inverts a unimodal distribution by visiting its values in
// the order mode, mode−1, mode+1, mode−2, … (whichever side has the larger
// next probability first) and subtracting their probabilities from u.
// down and up give P(k−1) and P(k+1) from P(k).
func searchFromMode(u float64, mode int, pm float64, lo, hi int, down, up func(k int, pk float64) float64) int {
	if u < pm {
		return mode
	}
	u -= pm
	l, pl := mode, pm // last visited below (inclusive of the mode)
	h, ph := mode, pm
	nl, nh := -1.0, -1.0
	if l > lo {
		nl = down(l, pl)
	}
	if h < hi {
		nh = up(h, ph)
	}
	for nl > 0 || nh > 0 {
		if nh > nl {
			h, ph = h+1, nh
			if u < ph {
				return h
			}
			u -= ph
			nh = -1
			if h < hi {
				nh = up(h, ph)
			}
		} else {
			l, pl = l-1, nl
			if u < pl {
				return l
			}
			u -= pl
			nl = -1
			if l > lo {
				nl = down(l, pl)
			}
		}
	}
	// Rounding left a sliver of probability unassigned: the mode is as
	// good an answer as any for it.
	return mode
}

// multinomialSplit spreads n over bins with the given probabilities (which
// sum to 1) by conditional binomials, adding the counts to out.
func multinomialSplit(rng *rand.Rand, n int, probs []float64, out []int) {
	rest := 1.0
	for i, p := range probs {
		if n == 0 {
			return
		}
		if i == len(probs)-1 || rest <= p {
			out[i] += n
			return
		}
		k := binomial(rng, n, p/rest)
		out[i] += k
		n -= k
		rest -= p
	}
}
