package preflight

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/rollout"
)

// TestScreen checks the screen against health.Evaluate on random evidence
// (seed 3), from clean to strongly regressed: whenever it says Evaluate
// cannot halt, Evaluate does not, no watched test reaches the spread
// bound, and its largest watched e-value is Evaluate's.
func TestScreen(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 3))
	p := health.DefaultPolicy()
	skipped, halts := 0, 0
	for i := range 600 {
		ns := 1 + rng.IntN(3)
		e := health.Evidence{SoakElapsed: time.Hour}
		factor := []float64{1, 1.5, 2, 4}[rng.IntN(4)]
		for s := range ns {
			n := rng.IntN(3000)
			st := health.Stratum{Key: fmt.Sprint("s", s), Installs: n, Failures: binomial(rng, n, math.Min(0.01*factor, 1)),
				Baseline: health.Baseline{SLO: 0.01}, RolledBack: rng.IntN(2)}
			st.Failures = max(st.Failures, st.RolledBack)
			st.Installs = max(st.Installs, st.Failures)
			for _, m := range p.RateMetrics {
				var ps []health.RatePeriod
				for range 1 + rng.IntN(4) {
					c, b := float64(1+rng.IntN(2000)), float64(1+rng.IntN(20000))
					ps = append(ps, health.RatePeriod{CanaryHours: c, ControlHours: b,
						CanaryEvents: poisson(rng, 0.002*factor*c), ControlEvents: poisson(rng, 0.002*b)})
				}
				st.Rates = append(st.Rates, health.RateSeries{Metric: m, Periods: ps})
			}
			e.Strata = append(e.Strata, st)
		}
		watch := [][]string{nil, {"install"}, {"crash"}}[rng.IntN(3)]
		mayHalt, worst, worstInstall := screen(p, e, watch)
		d := health.Evaluate(p, e)
		if d.Verdict == health.Halt {
			halts++
		}
		want, wantInstall := 0.0, 1.0
		for _, r := range d.Tests {
			if slices.Contains(watch, r.Metric) {
				want = math.Max(want, r.EValue)
				if r.Metric == "install" {
					wantInstall = math.Max(wantInstall, r.EValue)
				}
			}
		}
		if math.Abs(worstInstall-wantInstall) > 1e-6*math.Max(1, wantInstall) {
			t.Errorf("case %d: screen's worst watched install e-value %g, Evaluate's %g", i, worstInstall, wantInstall)
		}
		if len(watch) > 0 && math.Abs(worst-want) > 1e-6*math.Max(1, want) {
			t.Errorf("case %d: screen's worst watched e-value %g, Evaluate's %g", i, worst, want)
		}
		if mayHalt {
			continue
		}
		skipped++
		if d.Verdict == health.Halt {
			t.Errorf("case %d: the screen skipped a halt: %s", i, d.Summary)
		}
		if len(watch) > 0 && want >= rollout.SpreadE {
			t.Errorf("case %d: the screen skipped a spread halt (E = %g)", i, want)
		}
	}
	if skipped < 50 || halts < 50 {
		t.Errorf("%d skipped and %d halts of 600: the cases do not exercise both sides", skipped, halts)
	}
}
