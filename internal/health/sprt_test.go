package health

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestWaldTable reproduces table (a) of canary-stats.md: p0 = 1 %,
// p1 = 3 %, α = 0.01, β = 0.05.
func TestWaldTable(t *testing.T) {
	t.Parallel()
	s := SPRT{P0: 0.01, P1: 0.03, Alpha: 0.01, Beta: 0.05}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	// Bounds +4.55 and −2.99; +1.099 per failure, −0.0204 per success.
	for _, c := range []struct {
		name      string
		got, want float64
		digits    float64
	}{
		{"halt bound", s.HaltBound(), 4.55, 100},
		{"promote bound", s.PromoteBound(), -2.99, 100},
		{"failure step", s.FailureStep(), 1.099, 1000},
		{"success step", s.SuccessStep(), -0.0204, 10000},
	} {
		if r := math.Round(c.got*c.digits) / c.digits; r != c.want {
			t.Errorf("%s = %.6f, rounds to %g, want %g", c.name, c.got, r, c.want)
		}
	}
	// Exact values: ln 95, ln(0.05/0.99), ln 3, ln(0.97/0.99).
	if !relClose(s.HaltBound(), math.Log(95), 1e-15) || !relClose(s.PromoteBound(), math.Log(0.05/0.99), 1e-15) {
		t.Errorf("bounds %.17g, %.17g", s.HaltBound(), s.PromoteBound())
	}
	tests := []struct {
		n, halt, promote int // promote −1: cannot promote yet
	}{
		{50, 5, -1},
		{100, 6, -1},
		{200, 8, 0},
		{500, 14, 6},
		{1000, 23, 15},
	}
	for _, tt := range tests {
		if got := s.HaltCount(tt.n, s.HaltBound()); got != tt.halt {
			t.Errorf("n=%d: halt at ≥ %d failures, want %d", tt.n, got, tt.halt)
		}
		if got := s.PromoteCount(tt.n); got != tt.promote {
			t.Errorf("n=%d: promote at ≤ %d failures, want %d", tt.n, got, tt.promote)
		}
		// The counts are the boundary: one fewer does not halt, one more
		// does not promote.
		if s.LogLR(tt.n, tt.halt) < s.HaltBound() || s.LogLR(tt.n, tt.halt-1) >= s.HaltBound() {
			t.Errorf("n=%d: %d is not the first halting count", tt.n, tt.halt)
		}
	}
	// Expected sample size ≈ 316 under either hypothesis (Wald): 315.7
	// under p0, 317.4 under p1.
	if got := s.ExpectedSampleSize(0.01); math.Abs(got-315.70) > 0.01 {
		t.Errorf("E[N | p0] = %.3f, want 315.70", got)
	}
	if got := s.ExpectedSampleSize(0.03); math.Abs(got-317.35) > 0.01 {
		t.Errorf("E[N | p1] = %.3f, want 317.35", got)
	}
	// The general operating-characteristic formula agrees with the two
	// closed forms as p approaches them, and peaks in between.
	if a, b := s.ExpectedSampleSize(0.01+1e-9), s.ExpectedSampleSize(0.01); math.Abs(a-b) > 1e-3 {
		t.Errorf("E[N] near p0: %.6f vs %.6f", a, b)
	}
	if a, b := s.ExpectedSampleSize(0.03-1e-9), s.ExpectedSampleSize(0.03); math.Abs(a-b) > 1e-3 {
		t.Errorf("E[N] near p1: %.6f vs %.6f", a, b)
	}
	if mid := s.ExpectedSampleSize(0.0185); mid < 500 {
		t.Errorf("E[N] between the hypotheses = %.1f, want the peak above 500", mid)
	}
}

func TestSPRTValidate(t *testing.T) {
	t.Parallel()
	for _, s := range []SPRT{
		{P0: 0, P1: 0.03, Alpha: 0.01, Beta: 0.05},
		{P0: 0.03, P1: 0.01, Alpha: 0.01, Beta: 0.05},
		{P0: 0.01, P1: 1, Alpha: 0.01, Beta: 0.05},
		{P0: 0.01, P1: 0.03, Alpha: 0, Beta: 0.05},
		{P0: 0.01, P1: 0.03, Alpha: 0.01, Beta: 1},
	} {
		if s.Validate() == nil {
			t.Errorf("%+v validated", s)
		}
	}
}

// TestHaltProbabilityByEnumeration checks the forward recursion against
// all 2^14 failure/success sequences of 14 devices.
func TestHaltProbabilityByEnumeration(t *testing.T) {
	t.Parallel()
	s := SPRT{P0: 0.1, P1: 0.3, Alpha: 0.05, Beta: 0.1}
	mix := MixtureSPRT{P0: 0.1, Mix: DefaultInstallMixture(2)}
	const n = 14
	for _, p := range []float64{0.1, 0.25, 0.5} {
		for _, tc := range []struct {
			name  string
			llr   func(n, f int) float64
			bound float64
			got   float64
		}{
			{"wald", s.LogLR, s.HaltBound(), s.HaltProbability(n, p, s.HaltBound())},
			{"mixture", mix.LogLR, 2.5, mix.HaltProbability(n, p, 2.5)},
		} {
			want := haltByPrefix(n, p, tc.llr, tc.bound)
			if math.Abs(tc.got-want) > 1e-12 {
				t.Errorf("%s p=%g: recursion %.15f, enumeration %.15f", tc.name, p, tc.got, want)
			}
		}
	}
}

// haltByPrefix sums the probabilities of all failure sequences that first
// reach the bound at some m ≤ n.
func haltByPrefix(n int, p float64, llr func(n, f int) float64, bound float64) float64 {
	var walk func(m, f int, prob float64) float64
	walk = func(m, f int, prob float64) float64 {
		if m > 0 && llr(m, f) >= bound {
			return prob
		}
		if m == n {
			return 0
		}
		return walk(m+1, f+1, prob*p) + walk(m+1, f, prob*(1-p))
	}
	return walk(0, 0, 1)
}

// TestOpenBoundValid checks exactly, by the forward recursion, that the
// open-ended halt bound ln(1/α) keeps the false-halt probability below α
// over 20,000 devices at or below the baseline rate, for Wald's test and
// for the install mixture, with the promote bound ignored.
func TestOpenBoundValid(t *testing.T) {
	t.Parallel()
	const alpha = 0.01
	s := SPRT{P0: 0.01, P1: 0.02, Alpha: alpha, Beta: 0.05}
	if got := s.HaltProbability(20000, 0.01, s.OpenHaltBound()); got > alpha {
		t.Errorf("wald, open bound: false-halt probability %.5f > α", got)
	}
	mix := MixtureSPRT{P0: 0.01, Mix: DefaultInstallMixture(2)}
	for _, p := range []float64{0.01, 0.005} { // the null is p ≤ p0
		if got := mix.HaltProbability(20000, p, -math.Log(alpha)); got > alpha {
			t.Errorf("mixture at p=%g: false-halt probability %.5f > α", p, got)
		}
	}
	// Under a 3× regression the mixture halts within 2,000 devices almost
	// surely.
	if got := mix.HaltProbability(2000, 0.03, -math.Log(alpha)); got < 0.99 {
		t.Errorf("mixture at 3×: halt probability within 2,000 devices %.4f", got)
	}
}

// TestSequentialCanarySize checks the size against the recursion directly
// and compares the tests' efficiency at the campaign's default level.
func TestSequentialCanarySize(t *testing.T) {
	t.Parallel()
	alpha := 0.01 / 12
	mix := MixtureSPRT{P0: 0.01, Mix: DefaultInstallMixture(2)}
	n, err := mix.SequentialCanarySize(0.02, 0.9, -math.Log(alpha), 100000)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3493 {
		t.Errorf("mixture canary for 2× at α=%.3g: %d devices, want 3493", alpha, n)
	}
	if a, b := mix.HaltProbability(n-1, 0.02, -math.Log(alpha)), mix.HaltProbability(n, 0.02, -math.Log(alpha)); a >= 0.9 || b < 0.9 {
		t.Errorf("halt probability %.5f at %d, %.5f at %d; want 0.9 crossed at %d", a, n-1, b, n, n)
	}
	wald := SPRT{P0: 0.01, P1: 0.02, Alpha: alpha, Beta: 0.05}
	wn, err := wald.SequentialCanarySize(0.9, 100000)
	if err != nil {
		t.Fatal(err)
	}
	fixed, err := CanarySize(0.01, 2, alpha, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	// The fixed-sample test is the floor; Wald's simple test is the best
	// sequential test at exactly 2×; the mixture pays a little for being
	// fast against larger regressions.
	if !(fixed < wn && wn < n && float64(n) < 1.1*float64(wn)) {
		t.Errorf("sizes: fixed %d, wald %d, mixture %d; want fixed < wald < mixture < 1.1·wald", fixed, wn, n)
	}
	if _, err := mix.SequentialCanarySize(0.02, 0.9, -math.Log(alpha), 100); err == nil {
		t.Error("an unreachable power within 100 devices reported no error")
	}
}

// TestMixtureHaltsFastOnGrossRegressions: the reason for the mixture — 7
// failures in 60 devices against 1 % halts, which Wald's test against 2×
// cannot do (each failure adds only ln 2).
func TestMixtureHaltsFastOnGrossRegressions(t *testing.T) {
	t.Parallel()
	bound := -math.Log(0.01 / 12)
	mix := MixtureSPRT{P0: 0.01, Mix: DefaultInstallMixture(2)}
	wald := SPRT{P0: 0.01, P1: 0.02, Alpha: 0.01 / 12, Beta: 0.05}
	if got := mix.LogLR(60, 7); got < bound {
		t.Errorf("mixture Λ(60, 7) = %.3f < %.3f", got, bound)
	}
	if got := wald.LogLR(60, 7); got >= bound {
		t.Errorf("wald Λ(60, 7) = %.3f, expected below %.3f", got, bound)
	}
	if h := mix.HaltCount(60, bound); h != 7 {
		t.Errorf("mixture halts at %d of 60, want 7", h)
	}
	// Monte Carlo cross-check of the recursion with a fixed seed: 4,000
	// campaigns at 5 %; the binomial standard error is under 0.008.
	rng := rand.New(rand.NewPCG(1, 2))
	want := mix.HaltProbability(300, 0.05, bound)
	halt := make([]int, 301)
	for m := range halt {
		halt[m] = mix.HaltCount(m, bound)
	}
	hits := 0
	for range 4000 {
		f := 0
		for m := 1; m <= 300; m++ {
			if rng.Float64() < 0.05 {
				f++
			}
			if f >= halt[m] {
				hits++
				break
			}
		}
	}
	if got := float64(hits) / 4000; math.Abs(got-want) > 0.04 {
		t.Errorf("seed (1, 2): simulated halt rate %.4f, recursion %.4f", got, want)
	}
}
