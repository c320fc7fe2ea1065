package health

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPolicyDefaults(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	if p.Alpha != 0.01 || p.Beta != 0.05 || p.Power != 0.9 || p.Regression != 2 || p.RateTolerance != 1.25 ||
		p.EventCap != 3 || p.MinSoak != 24*time.Hour || p.GuardrailK != 3 ||
		!reflect.DeepEqual(p.RateMetrics, []string{"crash", "reboot"}) {
		t.Errorf("defaults: %+v", p)
	}
	if !reflect.DeepEqual(p.InstallMixture, DefaultInstallMixture(2)) || !reflect.DeepEqual(p.RateMixture, DefaultRateMixture()) {
		t.Error("default mixtures")
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	// Explicit values survive; the metric list is copied, not shared.
	metrics := []string{"crash"}
	q := Policy{Alpha: 0.05, Regression: 3, RateMetrics: metrics}.WithDefaults()
	metrics[0] = "changed"
	if q.Alpha != 0.05 || q.Regression != 3 || q.RateMetrics[0] != "crash" || q.InstallMixture.Factors[0] != 3 {
		t.Errorf("explicit values: %+v", q)
	}
}

func TestPolicyValidate(t *testing.T) {
	t.Parallel()
	tests := []Policy{
		{Alpha: 0.6},
		{Beta: -1},
		{Power: 0.3},
		{Regression: 1},
		{RateTolerance: 0.9},
		{EventCap: -1},
		{MinSoak: -time.Hour},
		{GuardrailK: -2},
		{RateMetrics: []string{"crash", "crash"}},
		{RateMetrics: []string{"install"}},
		{RateMetrics: []string{""}},
		{RateMixture: Mixture{Factors: []float64{0.5}, Weights: []float64{1}}},
	}
	for _, p := range tests {
		if p.WithDefaults().Validate() == nil {
			t.Errorf("%+v validated", p)
		}
	}
}

func TestTestAlpha(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	tests := []struct {
		strata int
		want   float64
	}{
		{1, 0.01 / 3},  // one group × (install, crash, reboot)
		{3, 0.01 / 12}, // 3 strata + all together
		{10, 0.01 / 33},
	}
	for _, tt := range tests {
		if got := p.TestAlpha(tt.strata); math.Abs(got-tt.want) > 1e-18 {
			t.Errorf("%d strata: α per test %g, want %g", tt.strata, got, tt.want)
		}
	}
	if got := (Policy{RateMetrics: []string{}}).WithDefaults().TestAlpha(3); got != 0.01/4 {
		t.Errorf("install only: %g", got)
	}
}

func TestSuggestGuardrailK(t *testing.T) {
	t.Parallel()
	tests := []struct {
		devices int
		rate    float64
		alpha   float64
		want    int
	}{
		{10000, 0, 0.001, 1},
		// 2 expected events: P(≥ 8) = 0.0011 > 0.001 ≥ P(≥ 9) = 0.00024.
		{10000, 0.0002, 0.001, 9},
		{100, 0.0002, 0.01, 2}, // P(≥ 1 | 0.02) = 0.0198 > 0.01 ≥ P(≥ 2) = 0.0002
	}
	for _, tt := range tests {
		got := SuggestGuardrailK(tt.devices, tt.rate, tt.alpha)
		if got != tt.want {
			t.Errorf("SuggestGuardrailK(%d, %g, %g) = %d, want %d", tt.devices, tt.rate, tt.alpha, got, tt.want)
		}
		mu := float64(tt.devices) * tt.rate
		if mu > 0 && (PoissonTail(got, mu) > tt.alpha || PoissonTail(got-1, mu) <= tt.alpha) {
			t.Errorf("k=%d is not the smallest with P(≥ k) ≤ %g", got, tt.alpha)
		}
	}
}

func TestPlanWaves(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		targets, strata int
		baseline        float64
		control         int
		waves           []int
		canary, fixed   int
		note            string
	}{
		{"10k fleet, 3 revisions", 10_000, 3, 0.01, 100, []int{3493, 9900}, 3493, 2849, ""},
		{"100k fleet, 3 revisions", 100_000, 3, 0.01, 1000, []int{3493, 13972, 55888, 99000}, 3493, 2849, ""},
		{"100k fleet, one revision", 100_000, 1, 0.01, 1000, []int{2979, 11916, 47664, 99000}, 2979, 2355, ""},
		{"small fleet", 500, 2, 0.01, 5, []int{248, 495}, 0, 2739, "500 targets are too few"},
	}
	for _, tt := range tests {
		plan, err := PlanWaves(Policy{}, tt.targets, tt.strata, tt.baseline, PlanOptions{})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if plan.Control != tt.control || !reflect.DeepEqual(plan.Waves, tt.waves) || plan.CanarySize != tt.canary || plan.FixedSampleSize != tt.fixed {
			t.Errorf("%s: %+v", tt.name, plan)
		}
		if !strings.HasPrefix(plan.Note, tt.note) || (tt.note == "") != (plan.Note == "") {
			t.Errorf("%s: note %q", tt.name, plan.Note)
		}
		if len(plan.Detectable) != len(plan.Waves) {
			t.Fatalf("%s: %d detectable figures for %d waves", tt.name, len(plan.Detectable), len(plan.Waves))
		}
		for i := 1; i < len(plan.Detectable); i++ {
			if plan.Detectable[i] >= plan.Detectable[i-1] {
				t.Errorf("%s: wave %d detects %g, no better than wave %d's %g", tt.name, i+1, plan.Detectable[i], i, plan.Detectable[i-1])
			}
		}
		if tt.canary == 0 {
			continue
		}
		// The canary is exactly where the test's halt probability under
		// a 2× regression reaches 90 %.
		mix := MixtureSPRT{P0: tt.baseline, Mix: DefaultInstallMixture(2)}
		bound := -math.Log(plan.TestAlpha)
		if a, b := mix.HaltProbability(tt.canary-1, 2*tt.baseline, bound), mix.HaltProbability(tt.canary, 2*tt.baseline, bound); a >= 0.9 || b < 0.9 {
			t.Errorf("%s: halt probability %.4f at %d, %.4f at %d", tt.name, a, tt.canary-1, b, tt.canary)
		}
	}
}

func TestPlanWavesErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		targets, strata int
		baseline        float64
		o               PlanOptions
	}{
		{0, 1, 0.01, PlanOptions{}},
		{100, 0, 0.01, PlanOptions{}},
		{100, 1, 0, PlanOptions{}},
		{100, 1, 0.01, PlanOptions{ControlFraction: 0.7}},
		{100, 1, 0.01, PlanOptions{Ramp: 0.5}},
		{100, 1, 0.01, PlanOptions{MaxCanaryFraction: 2}},
	} {
		if _, err := PlanWaves(Policy{}, tc.targets, tc.strata, tc.baseline, tc.o); err == nil {
			t.Errorf("%+v: no error", tc)
		}
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ got, want string }{
		{count(0), "0"}, {count(999), "999"}, {count(12408), "12,408"}, {count(-1234567), "-1,234,567"},
		{pct(0.117), "11.7%"}, {pct(0.01), "1.0%"}, {pct(0.0095), "0.95%"}, {pct(0.0005), "0.050%"}, {pct(0), "0%"},
		{magnitude(4.5539), "4.55"}, {magnitude(1200), "1,200"}, {magnitude(3.1e7), "3.1e+07"}, {magnitude(math.Inf(1)), "∞"},
		{hours(24), "24 h"}, {hours(10.5), "10.5 h"}, {hours(9800.4), "9,800 h"},
		{factor(2.134), "2.13×"}, {factor(1.25), "1.25×"}, {factor(2), "2×"}, {factor(2.1), "2.1×"}, {factor(16.4), "16×"}, {factor(math.Inf(1)), "no"},
		{perThousandHours(31, 9800), "3.16 per 1,000 device-hours"}, {perThousandHours(1, 0), "no exposure"},
		{sentence("revision B"), "Revision B"}, {sentence("Ünïcode"), "Ünïcode"}, {sentence(""), ""},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
