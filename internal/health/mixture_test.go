package health

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestBetaMixtureClosedForm compares the Go closed form with the defining
// integrals evaluated in 40-digit arithmetic (mpmath's incomplete beta,
// confirmed by quadrature over a fine partition to 1e-12). The Go code goes
// through ln B and the regularized incomplete beta in float64, so 1e-9
// absolute in ln E is ample.
func TestBetaMixtureClosedForm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		x, n      int
		pi0, a, b float64
		wantLogE  float64
	}{
		{3, 10, 0.2, 1, 4, 0.014873848823206616},
		{18, 1018, 0.00990099009900990099, 1, 100, 1.7869515304860044},
		{30, 1030, 0.0148514851485148514851, 1, 66, 4.5334670458065962},
		{0, 50, 0.1, 2, 18, -1.5942991561963731},
		{40, 100, 0.3, 1, 2, 1.0279625380553659},
	}
	for _, tt := range tests {
		if got := BetaMixtureLogE(tt.x, tt.n, tt.pi0, tt.a, tt.b); math.Abs(got-tt.wantLogE) > 1e-9 {
			t.Errorf("x=%d n=%d π0=%g Beta(%g,%g): ln E = %.15f, want %.15f", tt.x, tt.n, tt.pi0, tt.a, tt.b, got, tt.wantLogE)
		}
	}
	if !math.IsNaN(BetaMixtureLogE(5, 4, 0.2, 1, 1)) {
		t.Error("x > n gave a number")
	}
}

// TestMixturesHaveMeanOne checks the property that makes the e-processes
// valid: at the null boundary the expected e-value over every possible
// outcome is exactly 1, and below the boundary it is less.
func TestMixturesHaveMeanOne(t *testing.T) {
	t.Parallel()
	const n = 60
	const c, b, r0 = 300.0, 2000.0, 1.5
	pi0 := r0 * c / (r0*c + b)
	for _, tc := range []struct {
		name string
		logE func(x int) float64
	}{
		{"beta", func(x int) float64 { return BetaMixtureLogE(x, n, pi0, 1, 3) }},
		{"rate", func(x int) float64 {
			return RateLogE([]RatePeriod{{x, c, n - x, b}}, r0, DefaultRateMixture())
		}},
		{"install", func(x int) float64 {
			return MixtureSPRT{P0: pi0, Mix: DefaultInstallMixture(2)}.LogLR(n, x)
		}},
	} {
		for _, pi := range []float64{pi0, pi0 / 2} {
			mean := 0.0
			for x := 0; x <= n; x++ {
				mean += BinomialPMF(x, n, pi) * math.Exp(tc.logE(x))
			}
			switch {
			case pi == pi0 && math.Abs(mean-1) > 1e-9:
				t.Errorf("%s: E[e-value] at the null boundary = %.12f, want 1", tc.name, mean)
			case pi < pi0 && mean >= 1:
				t.Errorf("%s: E[e-value] inside the null = %.6f, want < 1", tc.name, mean)
			}
		}
	}
}

func TestRateLogE(t *testing.T) {
	t.Parallel()
	mix := DefaultRateMixture()
	whole := []RatePeriod{{30, 1000, 400, 20000}}
	// Splitting a period into parts with the same canary:control ratio
	// changes nothing: the evidence depends on the ratio, not the cut.
	split := []RatePeriod{{10, 250, 150, 5000}, {20, 750, 250, 15000}}
	if a, b := RateLogE(whole, 1.5, mix), RateLogE(split, 1.5, mix); math.Abs(a-b) > 1e-9 {
		t.Errorf("whole %.12f, split %.12f", a, b)
	}
	// Periods with one arm unexposed carry no information.
	padded := append([]RatePeriod{{0, 0, 12, 500}, {3, 80, 0, 0}}, whole...)
	if a, b := RateLogE(whole, 1.5, mix), RateLogE(padded, 1.5, mix); a != b {
		t.Errorf("uninformative periods changed ln E from %g to %g", a, b)
	}
	// No events: every likelihood ratio is 1.
	if got := RateLogE([]RatePeriod{{0, 100, 0, 100}}, 1.5, mix); math.Abs(got) > 1e-12 {
		t.Errorf("no events: ln E = %g", got)
	}
	// Explicit formula for a one-point mixture.
	one := Mixture{Factors: []float64{2}, Weights: []float64{1}}
	c, b, x, y := 1000.0, 20000.0, 30, 400
	pi0 := 1.5 * c / (1.5*c + b)
	pi1 := 3 * c / (3*c + b)
	want := float64(x)*math.Log(pi1/pi0) + float64(y)*math.Log((1-pi1)/(1-pi0))
	if got := RateLogE(whole, 1.5, one); math.Abs(got-want) > 1e-9 {
		t.Errorf("one-point mixture: ln E = %.12f, want %.12f", got, want)
	}
	// More canary events for the same total is more evidence.
	prev := math.Inf(-1)
	for x := 0; x <= 60; x += 5 {
		got := RateLogE([]RatePeriod{{x, 1000, 60 - x, 20000}}, 1.5, mix)
		if got <= prev {
			t.Errorf("ln E not increasing at %d canary events", x)
		}
		prev = got
	}
}

func TestMixtureValidate(t *testing.T) {
	t.Parallel()
	for _, m := range []Mixture{
		{},
		{Factors: []float64{2}, Weights: []float64{0.5, 0.5}},
		{Factors: []float64{1}, Weights: []float64{1}},
		{Factors: []float64{2, 3}, Weights: []float64{0.5, 0.6}},
		{Factors: []float64{2, math.Inf(1)}, Weights: []float64{0.5, 0.5}},
		{Factors: []float64{2, 3}, Weights: []float64{1, 0}},
	} {
		if m.Validate() == nil {
			t.Errorf("%+v validated", m)
		}
	}
	for _, m := range []Mixture{DefaultRateMixture(), DefaultInstallMixture(2), DefaultInstallMixture(3)} {
		if err := m.Validate(); err != nil {
			t.Error(err)
		}
	}
}

// poissonDraw draws from Poisson(mu) exactly: Knuth's product method on
// chunks of at most 20 (a sum of Poissons is Poisson).
func poissonDraw(rng *rand.Rand, mu float64) int {
	n := 0
	for mu > 0 {
		chunk := math.Min(mu, 20)
		mu -= chunk
		limit, prod := math.Exp(-chunk), rng.Float64()
		for prod > limit {
			n++
			prod *= rng.Float64()
		}
	}
	return n
}

// rateScenario simulates a campaign's rate evidence: the canary grows from
// 100 to 2,000 of 10,000 devices over 20 six-hour periods while the
// fleet-wide event rate climbs fourfold (a change outside the release, which
// the control shares).
func rateScenario(rng *rand.Rand, rho float64) []RatePeriod {
	const fleet, periods, hoursPer, base = 10000, 20, 6.0, 0.0005
	out := make([]RatePeriod, periods)
	for k := range periods {
		nc := 100 * float64(k+1)
		nb := fleet - nc
		lambda := base * (1 + 3*float64(k)/periods)
		out[k] = RatePeriod{
			CanaryEvents:  poissonDraw(rng, rho*lambda*nc*hoursPer),
			CanaryHours:   nc * hoursPer,
			ControlEvents: poissonDraw(rng, lambda*nb*hoursPer),
			ControlHours:  nb * hoursPer,
		}
	}
	return out
}

// TestRateEProcessUnderMonitoring looks at the e-process after every
// period of 2,000 simulated campaigns. At the null boundary (ρ = r0) the
// share that ever reach 1/α must stay below α (Ville); the standard error
// of the estimate is about 0.005 at α = 0.05, and Ville's bound is far from
// tight, so the check cannot fail by chance. Pooling all exposure into one
// period instead ignores that the canary was largest when the fleet-wide
// rate was highest, and does exceed α. Under a real 3× rise above the
// tolerance the e-process halts almost always.
func TestRateEProcessUnderMonitoring(t *testing.T) {
	t.Parallel()
	const runs, alpha, r0 = 2000, 0.05, 1.5
	mix := DefaultRateMixture()
	logThr := -math.Log(alpha)
	crossed := func(periods []RatePeriod, pooled bool) bool {
		var sum RatePeriod
		for k := range periods {
			var logE float64
			if pooled {
				sum.CanaryEvents += periods[k].CanaryEvents
				sum.ControlEvents += periods[k].ControlEvents
				sum.CanaryHours += periods[k].CanaryHours
				sum.ControlHours += periods[k].ControlHours
				logE = RateLogE([]RatePeriod{sum}, r0, mix)
			} else {
				logE = RateLogE(periods[:k+1], r0, mix)
			}
			if logE >= logThr {
				return true
			}
		}
		return false
	}
	for _, tc := range []struct {
		rho      float64
		pooled   bool
		min, max float64
	}{
		{r0, false, 0, alpha},
		{r0, true, 2 * alpha, 1},
		{3 * r0, false, 0.99, 1},
	} {
		seed := uint64(tc.rho * 1000)
		rng := rand.New(rand.NewPCG(seed, 7))
		hits := 0
		for range runs {
			if crossed(rateScenario(rng, tc.rho), tc.pooled) {
				hits++
			}
		}
		rate := float64(hits) / runs
		name := fmt.Sprintf("ρ=%g pooled=%v (seed %d, 7)", tc.rho, tc.pooled, seed)
		if rate < tc.min || rate > tc.max {
			t.Errorf("%s: halted in %.4f of runs, want [%g, %g]", name, rate, tc.min, tc.max)
		}
		t.Logf("%s: halted in %.4f of runs", name, rate)
	}
}
