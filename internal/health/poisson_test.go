package health

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestPoissonTailExact(t *testing.T) {
	t.Parallel()
	// P(X ≥ k) from 60-digit arithmetic (mpmath), cross-checked by summing
	// the probability masses below k.
	tests := []struct {
		k    int
		mu   float64
		tail float64
		cdf  float64 // P(X ≤ k−1)
	}{
		{1, 0.5, 0.39346934028736658, 0.60653065971263342},
		{10, 10, 0.54207028552814779, 0.45792971447185221},
		{18, 10, 0.014277613597049613, 0.98572238640295039},
		{100, 10, 5.3985897281395815e-63, 1},
		{5, 50, 0.99999999999999995, 5.4497019829205293e-17},
		{1000, 1000, 0.50420524418021551, 0.49579475581978449},
		{1, 1e-3, 0.00099950016662500833, 0.99900049983337499},
		{60, 30, 9.2518688049150571e-7, 0.99999907481311951},
	}
	for _, tt := range tests {
		if got := PoissonTail(tt.k, tt.mu); !relClose(got, tt.tail, exactTol) {
			t.Errorf("P(Poisson(%g) ≥ %d) = %.17g, want %.17g", tt.mu, tt.k, got, tt.tail)
		}
		if got := PoissonCDF(tt.k-1, tt.mu); !relClose(got, tt.cdf, exactTol) {
			t.Errorf("P(Poisson(%g) ≤ %d) = %.17g, want %.17g", tt.mu, tt.k-1, got, tt.cdf)
		}
	}
	if PoissonTail(0, 3) != 1 || PoissonCDF(-1, 3) != 0 || PoissonTail(2, 0) != 0 || PoissonCDF(0, 0) != 1 {
		t.Error("edge cases: want P(X ≥ 0) = 1, P(X ≤ −1) = 0, and Poisson(0) ≡ 0")
	}
}

func TestPoissonAgainstSummation(t *testing.T) {
	t.Parallel()
	for _, mu := range []float64{0.01, 0.7, 3, 25, 140} {
		cdf := 0.0
		for k := 0; k < 400; k++ {
			cdf += math.Exp(float64(k)*math.Log(mu) - mu - lgamma(float64(k+1)))
			if got := PoissonCDF(k, mu); !relClose(got, cdf, 1e-11) {
				t.Fatalf("P(Poisson(%g) ≤ %d) = %.17g, summed %.17g", mu, k, got, cdf)
			}
			if got := PoissonCDF(k, mu) + PoissonTail(k+1, mu); math.Abs(got-1) > 1e-14 {
				t.Fatalf("Poisson(%g): tails at %d add to %.17g", mu, k, got)
			}
		}
	}
}

func lgamma(x float64) float64 {
	v, _ := math.Lgamma(x)
	return v
}

// TestRateTestExample reproduces example (d) of canary-stats.md: canary
// 10,000 device-hours, control 1,000,000 device-hours with 1,000 crashes.
// The document gives the p-values to two digits; the precise values are
// exact conditional binomial tails (mpmath, 50 digits).
func TestRateTestExample(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r0      float64
		crashes int
		want    float64
		doc     string // as printed, to its significant digits
	}{
		{1, 18, 0.0148565747095102, "0.015"},
		{1, 20, 0.00366305955650287, "0.0037"},
		{1.5, 25, 0.0118584708756052, "0.012"},
		{1.5, 30, 0.000473884037603941, "0.0005"},
	}
	for _, tt := range tests {
		got := RateTestP(tt.crashes, 10_000, 1000, 1_000_000, tt.r0)
		if !relClose(got, tt.want, exactTol) {
			t.Errorf("r0=%g, %d crashes: p = %.15g, want %.15g", tt.r0, tt.crashes, got, tt.want)
		}
		digits := len(strings.TrimLeft(strings.TrimPrefix(tt.doc, "0."), "0"))
		if s := strconv.FormatFloat(got, 'g', digits, 64); s != tt.doc {
			t.Errorf("r0=%g, %d crashes: p rounds to %s, canary-stats.md says %s", tt.r0, tt.crashes, s, tt.doc)
		}
	}
	if got := RateTestP(5, 0, 10, 100, 1); got != 1 {
		t.Errorf("no canary exposure: p = %g, want 1", got)
	}
}
