package preflight

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/updraft/updraft/internal/health"
)

// TestBinomialMatchesPMF compares the sampler's frequencies with the exact
// probabilities (health.BinomialPMF) by a chi-square statistic, for small
// means (inversion from 0), large ones (search from the mode) and p > ½.
// Seeds are fixed; the bound is the 0.9999 quantile of chi-square.
func TestBinomialMatchesPMF(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n int
		p float64
	}{{10, 0.3}, {200, 0.04}, {1000, 0.5}, {100000, 0.02}, {50, 0.9}} {
		rng := rand.New(rand.NewPCG(uint64(c.n), 7))
		const draws = 20000
		counts := map[int]int{}
		for range draws {
			k := binomial(rng, c.n, c.p)
			if k < 0 || k > c.n {
				t.Fatalf("Bin(%d, %g) drew %d", c.n, c.p, k)
			}
			counts[k]++
		}
		chi2, bins := chiSquare(counts, draws, func(k int) float64 { return health.BinomialPMF(k, c.n, c.p) }, c.n)
		if limit := chi2Limit(bins); chi2 > limit {
			t.Errorf("Bin(%d, %g): chi-square %.1f over %d bins exceeds %.1f", c.n, c.p, chi2, bins, limit)
		}
	}
}

func TestPoissonMatchesPMF(t *testing.T) {
	t.Parallel()
	for _, mu := range []float64{0.5, 7, 40, 2500} {
		rng := rand.New(rand.NewPCG(uint64(mu*10), 9))
		const draws = 20000
		counts := map[int]int{}
		for range draws {
			counts[poisson(rng, mu)]++
		}
		pmf := func(k int) float64 {
			lg, _ := math.Lgamma(float64(k) + 1)
			return math.Exp(float64(k)*math.Log(mu) - mu - lg)
		}
		chi2, bins := chiSquare(counts, draws, pmf, int(mu+20*math.Sqrt(mu)+20))
		if limit := chi2Limit(bins); chi2 > limit {
			t.Errorf("Poisson(%g): chi-square %.1f over %d bins exceeds %.1f", mu, chi2, bins, limit)
		}
	}
}

// chiSquare pools the values into bins of expected count ≥ 20 and returns
// the statistic and the number of bins.
func chiSquare(counts map[int]int, draws int, pmf func(int) float64, maxK int) (float64, int) {
	chi2, bins := 0.0, 0
	expected, observed := 0.0, 0
	for k := 0; k <= maxK; k++ {
		expected += float64(draws) * pmf(k)
		observed += counts[k]
		if expected >= 20 {
			chi2 += (float64(observed) - expected) * (float64(observed) - expected) / expected
			bins++
			expected, observed = 0, 0
		}
	}
	if expected > 0 || observed > 0 {
		e := math.Max(expected, 1e-9)
		chi2 += (float64(observed) - e) * (float64(observed) - e) / e
		bins++
	}
	return chi2, bins
}

// chi2Limit is about the 0.9999 quantile of chi-square with bins−1 degrees
// of freedom (Wilson–Hilferty).
func chi2Limit(bins int) float64 {
	k := float64(max(bins-1, 1))
	z := 3.72
	return k * math.Pow(1-2/(9*k)+z*math.Sqrt(2/(9*k)), 3)
}

func TestMultinomialSplitKeepsEveryDevice(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 1))
	probs := delayBins(nil, 288)
	for _, n := range []int{0, 1, 17, 5000, 1_000_000} {
		out := make([]int, len(probs))
		multinomialSplit(rng, n, probs, out)
		sum := 0
		for i, c := range out {
			if c < 0 || c > 0 && probs[i] == 0 {
				t.Fatalf("n=%d: bin %d got %d with probability %g", n, i, c, probs[i])
			}
			sum += c
		}
		if sum != n {
			t.Errorf("split %d devices into %d", n, sum)
		}
	}
}
