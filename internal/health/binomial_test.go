package health

import (
	"fmt"
	"math"
	"testing"
)

// relClose reports whether got is within rel relative error of want
// (absolute near zero, both infinite alike).
func relClose(got, want, rel float64) bool {
	if math.IsInf(want, 0) || math.IsInf(got, 0) {
		return got == want
	}
	return math.Abs(got-want) <= rel*math.Max(math.Abs(want), 1e-300)
}

// The reference values below were computed to 17 significant digits from
// exact rational sums of binomial terms (Python fractions) and, for the
// Poisson tails, with 60-digit arithmetic (mpmath). The tolerance of 1e-10
// relative covers math.Lgamma, whose absolute error near ln Γ(10⁴) ≈ 8·10⁴
// is a few ulps (~1e-11) and enters the result through exp; the continued
// fractions themselves converge to 1e-15.
const exactTol = 1e-10

func TestBinomialTailExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		k, n int
		p    float64
		want float64
	}{
		{5, 100, 0.01, 0.0034323215877545152},
		{19, 1000, 0.01, 0.0069049947675807606},
		{125, 10000, 0.01, 0.0084791810482726538},
		{200, 1000, 0.01, 2.2214826738393829e-188}, // deep tail: log space keeps it
		{1, 10, 0.5, 0.9990234375},
		{30, 60, 0.5, 0.55128908650428476},
		{0, 10, 0.3, 1},
		{2000, 5000, 0.3, 2.9498811611695129e-51},
		{13, 20, 0.9, 0.99958436498115452},
		{11, 10, 0.5, 0},
		{3, 10, 0, 0},
		{3, 10, 1, 1},
	}
	for _, tt := range tests {
		if got := BinomialTail(tt.k, tt.n, tt.p); !relClose(got, tt.want, exactTol) {
			t.Errorf("P(Bin(%d, %g) ≥ %d) = %.17g, want %.17g", tt.n, tt.p, tt.k, got, tt.want)
		}
	}
}

func TestBinomialCDFExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		k, n int
		p    float64
		want float64
	}{
		{0, 100, 0.01, 0.3660323412732295},
		{4, 100, 0.01, 0.99656767841224548},
		{10, 1000, 0.03, 1.8129913467964553e-5},
		{1400, 5000, 0.3, 0.0010050782175404871},
		{9, 10, 0.99, 0.09561792499119551},
		{-1, 10, 0.5, 0},
		{10, 10, 0.5, 1},
	}
	for _, tt := range tests {
		if got := BinomialCDF(tt.k, tt.n, tt.p); !relClose(got, tt.want, exactTol) {
			t.Errorf("P(Bin(%d, %g) ≤ %d) = %.17g, want %.17g", tt.n, tt.p, tt.k, got, tt.want)
		}
	}
}

// TestBinomialAgainstSummation checks every k of small binomials against a
// direct sum of probability masses, and that the two tails add up to one.
func TestBinomialAgainstSummation(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 7, 30, 61} {
		for _, p := range []float64{1e-4, 0.01, 0.2, 0.5, 0.77, 0.999} {
			for k := 0; k <= n+1; k++ {
				var tail float64
				for i := n; i >= k; i-- { // small terms first
					tail += BinomialPMF(i, n, p)
				}
				if got := BinomialTail(k, n, p); !relClose(got, tail, 1e-11) {
					t.Errorf("P(Bin(%d, %g) ≥ %d) = %.17g, summed %.17g", n, p, k, got, tail)
				}
				if got := BinomialCDF(k-1, n, p) + BinomialTail(k, n, p); math.Abs(got-1) > 1e-14 {
					t.Errorf("Bin(%d, %g): P(X ≤ %d) + P(X ≥ %d) = %.17g", n, p, k-1, k, got)
				}
			}
		}
	}
}

// TestExactBinomialTable reproduces table (c) of canary-stats.md: exact
// one-sided test against p0 = 1 % at α = 0.01. The powers in the table
// are rounded to two decimals; the exact values come from rational sums.
func TestExactBinomialTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n, critical int
		power       [3]float64 // true p = 2 %, 3 %, 5 %
		table       [3]float64
	}{
		{100, 5, [3]float64{0.05083044536950031, 0.18214519392435774, 0.564018699314288}, [3]float64{0.05, 0.18, 0.56}},
		{300, 9, [3]float64{0.15066710261019117, 0.5463580035026051, 0.9659341864784934}, [3]float64{0.15, 0.55, 0.97}},
		{1000, 19, [3]float64{0.6202870577310713, 0.9880712338929696, 0.9999998971560466}, [3]float64{0.62, 0.99, 1.00}},
		{10000, 125, [3]float64{0.999999996265, 1, 1}, [3]float64{1.00, 1.00, 1.00}},
	}
	for _, tt := range tests {
		if got := BinomialCritical(tt.n, 0.01, 0.01); got != tt.critical {
			t.Errorf("n=%d: halt at ≥ %d failures, want %d", tt.n, got, tt.critical)
		}
		for i, p := range []float64{0.02, 0.03, 0.05} {
			got := BinomialPower(tt.n, 0.01, p, 0.01)
			if !relClose(got, tt.power[i], 1e-9) {
				t.Errorf("n=%d p=%g: power %.12g, want %.12g", tt.n, p, got, tt.power[i])
			}
			if r := math.Round(got*100) / 100; r != tt.table[i] {
				t.Errorf("n=%d p=%g: power rounds to %.2f, table says %.2f", tt.n, p, r, tt.table[i])
			}
		}
	}
	// Rule of three: zero failures in n devices bound p by about 3/n at
	// 95 % confidence, so showing p < 1 % takes about 300 clean devices;
	// exactly, 0.99^n drops below 0.05 at n = 299.
	if BinomialCDF(0, 298, 0.01) <= 0.05 || BinomialCDF(0, 299, 0.01) > 0.05 {
		t.Errorf("P(0 failures | 298, 1%%) = %g, | 299 = %g; want the 5%% line crossed at 299",
			BinomialCDF(0, 298, 0.01), BinomialCDF(0, 299, 0.01))
	}
}

func TestBinomialCriticalIsSmallest(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 10, 57, 300, 4000} {
		for _, a := range []float64{0.05, 0.01, 1e-4} {
			k := BinomialCritical(n, 0.02, a)
			if k <= n && BinomialTail(k, n, 0.02) > a {
				t.Errorf("n=%d α=%g: P(X ≥ %d) = %g > α", n, a, k, BinomialTail(k, n, 0.02))
			}
			if k > 0 && BinomialTail(k-1, n, 0.02) <= a {
				t.Errorf("n=%d α=%g: %d is not the smallest critical count", n, a, k)
			}
		}
	}
}

// TestCanarySize checks the defining property on both sides: from the
// returned size on (checked over the next 3,000 devices) the exact test has
// the power, and one device fewer it does not. The sizes were confirmed
// independently with 30-digit arithmetic (mpmath); the power first reaches
// 0.9 earlier (at 1,800 devices for 2×, 590 for 3×) but dips below it again
// at later steps of the critical count.
func TestCanarySize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p0, factor, alpha, power float64
		want                     int
	}{
		{0.01, 2, 0.01, 0.9, 1968},
		{0.01, 2, 0.01 / 12, 0.9, 2849},
		{0.01, 3, 0.01, 0.9, 629},
		{0.05, 1.5, 0.05, 0.8, 0},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("p0=%g factor=%g alpha=%g power=%g", tt.p0, tt.factor, tt.alpha, tt.power)
		n, err := CanarySize(tt.p0, tt.factor, tt.alpha, tt.power)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tt.want != 0 && n != tt.want {
			t.Errorf("%s: size %d, want %d", name, n, tt.want)
		}
		p1 := tt.p0 * tt.factor
		if BinomialPower(n-1, tt.p0, p1, tt.alpha) >= tt.power {
			t.Errorf("%s: size %d, but %d devices already have the power", name, n, n-1)
		}
		for m := n; m < n+3000; m++ {
			if pw := BinomialPower(m, tt.p0, p1, tt.alpha); pw < tt.power {
				t.Fatalf("%s: size %d, but power at %d is only %g", name, n, m, pw)
			}
		}
	}
	if _, err := CanarySize(0.01, 0.5, 0.01, 0.9); err == nil {
		t.Error("a factor below 1 was accepted")
	}
}

func TestDetectableFactor(t *testing.T) {
	t.Parallel()
	for _, n := range []int{100, 1000, 5000} {
		f := DetectableFactor(n, 0.01, 0.01, 0.9)
		if got := BinomialPower(n, 0.01, f*0.01, 0.01); got < 0.9 || got > 0.9+1e-5 {
			t.Errorf("n=%d: power at the detectable factor %.4f is %.6f, want 0.9", n, f, got)
		}
	}
	// Table (c): 1,000 devices detect 3 % with power 0.99, 2 % with 0.62,
	// so the 90 % point lies between 2× and 3×.
	if f := DetectableFactor(1000, 0.01, 0.01, 0.9); f <= 2 || f >= 3 {
		t.Errorf("1,000 devices: detectable factor %.3f, want between 2 and 3", f)
	}
	if f := DetectableFactor(3, 0.01, 1e-9, 0.9); !math.IsInf(f, 1) {
		t.Errorf("3 devices at α=1e-9 cannot detect anything, got %g", f)
	}
}
